package summary

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// DefaultDebounce is how long the reconciler lets changes gather before it
// summarises them: at most one write per period.
const DefaultDebounce = time.Second

// Reconciler keeps the ClusterSummary named protocol.ClusterSummaryName up
// to date with the cluster's nodes and pods.
type Reconciler struct {
	Client client.Client
	// Debounce defaults to DefaultDebounce.
	Debounce time.Duration
}

var summaryRequest = reconcile.Request{NamespacedName: types.NamespacedName{Name: protocol.ClusterSummaryName}}

// +kubebuilder:rbac:groups="",resources=nodes;pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=clustersummaries,verbs=get;list;watch;create;update;patch

// Reconcile writes the summary of the cluster's nodes and pods, when it
// changed.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	logger := ctrl.LoggerFrom(ctx)
	var nodeList corev1.NodeList
	if err := r.Client.List(ctx, &nodeList); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing nodes: %w", err)
	}
	var podList corev1.PodList
	if err := r.Client.List(ctx, &podList); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing pods: %w", err)
	}
	nodes := make([]*corev1.Node, len(nodeList.Items))
	for i := range nodeList.Items {
		nodes[i] = &nodeList.Items[i]
	}
	pods := make([]*corev1.Pod, len(podList.Items))
	for i := range podList.Items {
		pods[i] = &podList.Items[i]
	}
	s := Summarize(nodes, pods)

	var current multiclusterv1alpha1.ClusterSummary
	err := r.Client.Get(ctx, summaryRequest.NamespacedName, &current)
	if apierrors.IsNotFound(err) {
		obj := &multiclusterv1alpha1.ClusterSummary{ObjectMeta: metav1.ObjectMeta{Name: protocol.ClusterSummaryName}}
		apply(obj, s)
		if err := r.Client.Create(ctx, obj); err != nil {
			return ctrl.Result{}, fmt.Errorf("creating cluster summary: %w", err)
		}
		logger.V(2).Info("Created cluster summary", "nodes", s.Nodes)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("getting cluster summary: %w", err)
	}
	updated := current.DeepCopy()
	apply(updated, s)
	if apiequality.Semantic.DeepEqual(&current, updated) {
		return ctrl.Result{}, nil
	}
	if err := r.Client.Update(ctx, updated); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating cluster summary: %w", err)
	}
	logger.V(4).Info("Updated cluster summary", "nodes", s.Nodes)
	return ctrl.Result{}, nil
}

func apply(obj *multiclusterv1alpha1.ClusterSummary, s Summary) {
	obj.Capacity = s.Capacity
	obj.Allocatable = s.Allocatable
	obj.Free = s.Free
	obj.NodeLabels = s.NodeLabels
	obj.Nodes = s.Nodes
}

// SetupWithManager watches nodes, pods and the summary itself; every event
// schedules the one summary request after the debounce period, and events in
// the meantime merge into it.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Debounce <= 0 {
		r.Debounce = DefaultDebounce
	}
	debounced := debounceHandler(r.Debounce)
	return ctrl.NewControllerManagedBy(mgr).
		Named("summary").
		Watches(&corev1.Node{}, debounced).
		Watches(&corev1.Pod{}, debounced, podChangesSummary()).
		Watches(&multiclusterv1alpha1.ClusterSummary{}, debounced).
		Complete(r)
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func debounceHandler(d time.Duration) handler.EventHandler {
	enqueue := func(q queue) { q.AddAfter(summaryRequest, d) }
	return handler.Funcs{
		CreateFunc:  func(_ context.Context, _ event.CreateEvent, q queue) { enqueue(q) },
		UpdateFunc:  func(_ context.Context, _ event.UpdateEvent, q queue) { enqueue(q) },
		DeleteFunc:  func(_ context.Context, _ event.DeleteEvent, q queue) { enqueue(q) },
		GenericFunc: func(_ context.Context, _ event.GenericEvent, q queue) { enqueue(q) },
	}
}
