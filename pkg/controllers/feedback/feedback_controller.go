package feedback

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// Event reasons.
const (
	// ReasonCandidatesLeft: a target could not be reached to delete a
	// deleted proxy pod's candidates.
	ReasonCandidatesLeft = "CandidatesLeft"
	// ReasonDelegateGone: the proxy pod was deleted because its delegate
	// (or the delegate's PodChaperon) was deleted in the target.
	ReasonDelegateGone = "DelegateGone"
	// ReasonTargetNamespace: the proxy pod is bound to the virtual node of
	// a Target that serves another namespace (it was bound by hand), so no
	// delegate can run for it; it fails, as a pod that a kubelet refuses.
	ReasonTargetNamespace = "TargetServesAnotherNamespace"
)

// Fleet is what the reconciler needs of the connections to targets.
type Fleet interface {
	Get(remote.Key) (remote.Cluster, error)
	Keys() []remote.Key
}

// Reconciler reconciles proxy pods: their status follows their delegate's
// (through its PodChaperon), and deleting one deletes its chaperons (and so
// its candidate or delegate) in every target before its finalizer goes.
type Reconciler struct {
	Client   client.Client
	Fleet    Fleet
	Recorder events.EventRecorder

	events  chan event.GenericEvent
	watcher remote.Watcher
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// Reconcile feeds a proxy pod's status back, or cleans up after it.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !isProxy(pod) {
		return ctrl.Result{}, nil
	}
	if !pod.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, pod)
	}
	if pod.Spec.NodeName == "" {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.reconcileStatus(ctx, pod)
}

func isProxy(pod *corev1.Pod) bool {
	return pod.Spec.SchedulerName == protocol.ProxySchedulerName
}

// reconcileStatus copies the delegate's status (as its chaperon reports it)
// to the proxy pod bound to the delegate's target.
func (r *Reconciler) reconcileStatus(ctx context.Context, pod *corev1.Pod) error {
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, node); err != nil {
		return client.IgnoreNotFound(err)
	}
	key, ok := remote.KeyOfVirtualNode(node)
	if !ok {
		return nil
	}
	if key.Namespace != "" && key.Namespace != pod.Namespace {
		return r.failForNamespace(ctx, pod, node.Name, key)
	}
	cl, err := r.Fleet.Get(key)
	if err != nil {
		return nil // reconnecting brings a new event
	}
	if err := r.releaseStrays(ctx, pod, key); err != nil {
		return err
	}
	ch := &multiclusterv1alpha1.PodChaperon{}
	name := types.NamespacedName{Namespace: pod.Namespace, Name: protocol.ChaperonName(pod)}
	if err := cl.GetClient().Get(ctx, name, ch); err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		// The cache may lag behind the target (e.g. re-watching after
		// the target's API server came back) while the chaperon made
		// before the binding exists: only its API server says it is gone.
		if err := cl.GetAPIReader().Get(ctx, name, ch); err != nil {
			if apierrors.IsNotFound(err) && cl.Health().Ready {
				return r.deleteProxy(ctx, pod, fmt.Sprintf("its delegate's PodChaperon %s in target %s was deleted", name, key))
			}
			return client.IgnoreNotFound(err)
		}
	}
	if ch.Labels[protocol.ProxyPodUIDLabel] != string(pod.UID) {
		return nil
	}
	if ch.Status.Phase == corev1.PodFailed && ch.Status.Reason == protocol.ReasonDelegateDeleted {
		return r.deleteProxy(ctx, pod, fmt.Sprintf("its delegate %s was deleted in target %s", name, key))
	}
	if err := r.syncAnnotations(ctx, cl, pod, ch); err != nil {
		return err
	}
	status := desiredStatus(pod, ch)
	if equality.Semantic.DeepEqual(pod.Status, *status) {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = *status
	if err := r.Client.Status().Update(ctx, updated); err != nil {
		return fmt.Errorf("updating the proxy pod's status: %w", err)
	}
	ctrl.LoggerFrom(ctx).V(4).Info("Fed back delegate status", "phase", status.Phase, "target", key.String())
	return nil
}

// failForNamespace fails a proxy pod bound to the virtual node of a
// Target that serves another namespace: the proxy scheduler never does
// that, a hand-made binding does, and no delegate can run for the pod
// there (the source may not even read that namespace in the target). Its
// owner, if any, replaces it, as for a pod its kubelet refuses.
func (r *Reconciler) failForNamespace(ctx context.Context, pod *corev1.Pod, node string, key remote.Key) error {
	if terminal(pod.Status.Phase) {
		return nil
	}
	msg := fmt.Sprintf("bound to virtual node %s of Target %s, which serves namespace %s only: no delegate can run for a pod of namespace %s",
		node, key, key.Namespace, pod.Namespace)
	updated := pod.DeepCopy()
	updated.Status.Phase = corev1.PodFailed
	updated.Status.Reason = ReasonTargetNamespace
	updated.Status.Message = msg
	if err := r.Client.Status().Update(ctx, updated); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("failing the proxy pod: %w", err))
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonTargetNamespace, "Feedback", "%s", msg)
	}
	return nil
}

// syncAnnotations feeds the delegate's own annotations back to the proxy
// pod, and brings the proxy's down to the chaperon (whose controller in the
// target sets them on the delegate); see protocol.ProxyAnnotationsPatch.
func (r *Reconciler) syncAnnotations(ctx context.Context, cl remote.Cluster, pod *corev1.Pod, ch *multiclusterv1alpha1.PodChaperon) error {
	if terminal(pod.Status.Phase) {
		return nil
	}
	up := protocol.ProxyAnnotationsPatch(pod, ch)
	if len(up) > 0 {
		body, err := up.Body()
		if err != nil {
			return err
		}
		if err := r.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body)); err != nil {
			return client.IgnoreNotFound(fmt.Errorf("feeding annotations back to the proxy pod: %w", err))
		}
	}
	down := protocol.ChaperonAnnotationsPatch(pod, ch)
	if len(down) > 0 {
		body, err := down.Body()
		if err != nil {
			return err
		}
		if err := cl.GetClient().Patch(ctx, ch, client.RawPatch(types.MergePatchType, body)); err != nil {
			return client.IgnoreNotFound(fmt.Errorf("bringing annotations down to the chaperon in %s: %w", cl.Key(), err))
		}
	}
	return nil
}

// deleteProxy deletes a proxy pod whose delegate is gone, as the pod
// would be gone had it run here: its owner makes a new one. (The delegate is
// never made again: a proxy pod has at most one.)
func (r *Reconciler) deleteProxy(ctx context.Context, pod *corev1.Pod, why string) error {
	if terminal(pod.Status.Phase) {
		return nil // it ended before: that stands, as for a local pod
	}
	if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return fmt.Errorf("deleting the proxy pod: %w", err)
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonDelegateGone, "Delete", "Deleted: %s", why)
	}
	ctrl.LoggerFrom(ctx).V(2).Info("Deleted proxy pod whose delegate is gone", "why", why)
	return nil
}

// releaseStrays deletes the chaperons that a bound proxy pod still has in
// targets other than its own (the proxy scheduler releases them when it
// binds; this catches those it could not, e.g. across a restart).
func (r *Reconciler) releaseStrays(ctx context.Context, pod *corev1.Pod, bound remote.Key) error {
	for _, key := range r.Fleet.Keys() {
		if key == bound || key.Namespace != "" && key.Namespace != pod.Namespace {
			continue
		}
		cl, err := r.Fleet.Get(key)
		if err != nil || !cl.Health().Ready {
			continue
		}
		ch := &multiclusterv1alpha1.PodChaperon{}
		if err := cl.GetClient().Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: protocol.ChaperonName(pod)}, ch); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("reading candidate in %s: %w", key, err)
		}
		if ch.Labels[protocol.ProxyPodUIDLabel] != string(pod.UID) || !ch.DeletionTimestamp.IsZero() ||
			!protocol.OfTarget(ch, key.String()) || protocol.Decided(ch) {
			// Not this target's (two Targets may lead to one cluster), or
			// the choice itself.
			continue
		}
		err = cl.GetClient().Delete(ctx, ch, client.Preconditions{UID: &ch.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("releasing candidate in %s: %w", key, err)
		}
		ctrl.LoggerFrom(ctx).V(2).Info("Released a stray candidate of a bound proxy pod", "target", key.String())
	}
	return nil
}

// desiredStatus is the delegate's status as the proxy pod shows it: all of
// it, except that a proxy pod that ended stays ended, and the proxy's own
// PodScheduled condition (bound to the virtual node) is kept.
func desiredStatus(pod *corev1.Pod, ch *multiclusterv1alpha1.PodChaperon) *corev1.PodStatus {
	if terminal(pod.Status.Phase) {
		return pod.Status.DeepCopy()
	}
	status := ch.Status.DeepCopy()
	if status.Phase == "" {
		return pod.Status.DeepCopy()
	}
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			continue
		}
		if i := slices.IndexFunc(status.Conditions, func(d corev1.PodCondition) bool { return d.Type == corev1.PodScheduled }); i >= 0 {
			status.Conditions[i] = c
		} else {
			status.Conditions = append(status.Conditions, c)
		}
	}
	return status
}

func terminal(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

// reconcileDelete deletes the proxy pod's chaperons in every target (the
// target's chaperon controller deletes their pods at once) and removes the
// finalizer once none is left in any target that answers.
func (r *Reconciler) reconcileDelete(ctx context.Context, pod *corev1.Pod) (ctrl.Result, error) {
	if !slices.Contains(pod.Finalizers, protocol.ProxyPodFinalizer) {
		return ctrl.Result{}, nil
	}
	left := 0
	var unreachable []string
	for _, key := range r.Fleet.Keys() {
		if key.Namespace != "" && key.Namespace != pod.Namespace {
			continue
		}
		cl, err := r.Fleet.Get(key)
		if err != nil {
			continue
		}
		if !cl.Health().Ready {
			unreachable = append(unreachable, key.String())
			continue
		}
		list := &multiclusterv1alpha1.PodChaperonList{}
		if err := cl.GetClient().List(ctx, list, client.InNamespace(pod.Namespace),
			client.MatchingLabels{protocol.ProxyPodUIDLabel: string(pod.UID)}); err != nil {
			return ctrl.Result{}, fmt.Errorf("listing candidates in %s: %w", key, err)
		}
		for i := range list.Items {
			ch := &list.Items[i]
			left++
			if err := r.deleteChaperon(ctx, cl, pod, ch); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if left > 0 {
		// Chaperon deletions bring the pod back; the requeue covers a
		// missed event.
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	if len(unreachable) > 0 && r.Recorder != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonCandidatesLeft, "Delete",
			"targets %v did not answer; candidates of this pod may be left there", unreachable)
	}
	patch := client.MergeFromWithOptions(pod.DeepCopy(), client.MergeFromWithOptimisticLock{})
	pod.Finalizers = slices.DeleteFunc(pod.Finalizers, func(f string) bool { return f == protocol.ProxyPodFinalizer })
	if err := r.Client.Patch(ctx, pod, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Spec.NodeName != "" {
		// A virtual node has no kubelet to finish a graceful deletion: the
		// delegate is gone, so the proxy pod goes now.
		err := r.Client.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &pod.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return ctrl.Result{}, fmt.Errorf("deleting the proxy pod: %w", err)
		}
	}
	return ctrl.Result{}, nil
}

// deletionMargin is how long past the grace period a chaperon may take to
// go (its delegate terminating, then the target's garbage collector): then
// the source lets it go without waiting for its dependents.
const deletionMargin = 30 * time.Second

// deleteChaperon deletes a chaperon of a deleted proxy pod in the
// foreground, so that it stays until its delegate has terminated, within
// the grace period of the proxy pod's deletion (which the chaperon carries
// to the target), and the proxy pod stays until then, as a pod does until
// its kubelet has stopped it.
func (r *Reconciler) deleteChaperon(ctx context.Context, cl remote.Cluster, pod *corev1.Pod, ch *multiclusterv1alpha1.PodChaperon) error {
	key := cl.Key()
	if !ch.DeletionTimestamp.IsZero() {
		grace := time.Duration(0)
		if g := protocol.DeletionGracePeriod(ch); g != nil {
			grace = time.Duration(*g) * time.Second
		}
		if time.Since(ch.DeletionTimestamp.Time) < grace+deletionMargin ||
			!slices.Contains(ch.Finalizers, metav1.FinalizerDeleteDependents) {
			return nil
		}
		// The target's garbage collector does not finish: stop waiting.
		patch := client.MergeFromWithOptions(ch.DeepCopy(), client.MergeFromWithOptimisticLock{})
		ch.Finalizers = slices.DeleteFunc(ch.Finalizers, func(f string) bool { return f == metav1.FinalizerDeleteDependents })
		if err := cl.GetClient().Patch(ctx, ch, patch); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("releasing candidate %s in %s: %w", ch.Name, key, err)
		}
		ctrl.LoggerFrom(ctx).Info("Stopped waiting for a deleted proxy pod's delegate to terminate", "target", key.String(), "chaperon", ch.Name)
		return nil
	}
	if g := pod.DeletionGracePeriodSeconds; g != nil && ch.Annotations[protocol.DeletionGracePeriodAnnotation] != strconv.FormatInt(*g, 10) {
		body, err := protocol.AnnotationPatch{protocol.DeletionGracePeriodAnnotation: ptr.To(strconv.FormatInt(*g, 10))}.Body()
		if err != nil {
			return err
		}
		if err := cl.GetClient().Patch(ctx, ch, client.RawPatch(types.MergePatchType, body)); err != nil {
			return client.IgnoreNotFound(fmt.Errorf("passing the grace period to candidate %s in %s: %w", ch.Name, key, err))
		}
	}
	err := cl.GetClient().Delete(ctx, ch, client.Preconditions{UID: &ch.UID}, client.PropagationPolicy(metav1.DeletePropagationForeground))
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting candidate %s in %s: %w", ch.Name, key, err)
	}
	ctrl.LoggerFrom(ctx).V(4).Info("Deleted candidate of deleted proxy pod", "target", key.String(), "chaperon", ch.Name)
	return nil
}

// TargetChanged follows a target's connection: a new one's PodChaperon
// informer is watched, so that chaperon changes reconcile their proxy pods.
// Call it on every connection change (remote.Options.OnConnectionChange).
func (r *Reconciler) TargetChanged(ctx context.Context, key remote.Key) {
	if err := r.watcher.TargetChanged(ctx, key); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Watching PodChaperons", "target", key.String())
	}
}

// SetupWithManager watches proxy pods and, through TargetChanged, the
// targets' chaperons.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.events = make(chan event.GenericEvent, 1024)
	r.watcher = remote.Watcher{Fleet: r.Fleet, Object: &multiclusterv1alpha1.PodChaperon{}, Handler: func(_ remote.Key, obj client.Object) {
		if name := obj.GetAnnotations()[protocol.ProxyPodNameAnnotation]; name != "" {
			r.events <- event.GenericEvent{Object: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: obj.GetNamespace(), Name: name}}}
		}
	}}
	proxies := predicate.NewPredicateFuncs(func(o client.Object) bool {
		pod, ok := o.(*corev1.Pod)
		return ok && isProxy(pod)
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("feedback").
		For(&corev1.Pod{}, builder.WithPredicates(proxies)).
		WatchesRawSource(source.Channel(r.events, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		Complete(r)
}
