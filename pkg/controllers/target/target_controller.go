package target

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/remote"
	"github.com/flotilla-io/flotilla/pkg/vk"
)

// secretIndex indexes Targets and ClusterTargets by the Secret they read,
// "namespace/name".
const secretIndex = "flotilla.spec.kubeconfigSecret"

// Reconciler reconciles one kind, Target or ClusterTarget (set ClusterScoped).
type Reconciler struct {
	// Client reads Targets from the cache and writes their status.
	Client client.Client
	// SecretReader reads Secrets directly (they are watched as metadata only).
	SecretReader client.Reader
	Connector    remote.Connector
	// SelfConfig connects targets with self: true.
	SelfConfig *rest.Config
	Recorder   events.EventRecorder
	// ClusterScoped selects ClusterTargets instead of Targets.
	ClusterScoped bool
	// HealthEvents delivers targets whose health or summary changed (see
	// Notifier).
	HealthEvents <-chan event.GenericEvent
	// Nodes runs the virtual nodes; nil runs none.
	Nodes *vk.Manager
	// ConnectOnly keeps the connections without reporting: no status, no
	// events. The proxy scheduler runs it so, beside the controller-manager
	// that reports.
	ConnectOnly bool
}

// view is what the reconciler needs of a Target or a ClusterTarget.
type view struct {
	obj        client.Object
	key        remote.Key
	self       bool
	secret     *types.NamespacedName
	secretKey  string
	context    string
	excluded   *string
	conditions *[]metav1.Condition
}

func (r *Reconciler) newObject() client.Object {
	if r.ClusterScoped {
		return &multiclusterv1alpha1.ClusterTarget{}
	}
	return &multiclusterv1alpha1.Target{}
}

func viewOf(obj client.Object) view {
	switch t := obj.(type) {
	case *multiclusterv1alpha1.Target:
		v := view{obj: t, key: remote.Key{Namespace: t.Namespace, Name: t.Name}, self: t.Spec.Self,
			excluded: t.Spec.ExcludedLabelsRegexp, conditions: &t.Status.Conditions}
		if s := t.Spec.KubeconfigSecret; s != nil {
			v.secret = &types.NamespacedName{Namespace: t.Namespace, Name: s.Name}
			v.secretKey, v.context = s.Key, s.Context
		}
		return v
	case *multiclusterv1alpha1.ClusterTarget:
		v := view{obj: t, key: remote.Key{Name: t.Name}, self: t.Spec.Self,
			excluded: t.Spec.ExcludedLabelsRegexp, conditions: &t.Status.Conditions}
		if s := t.Spec.KubeconfigSecret; s != nil {
			v.secret = &types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
			v.secretKey, v.context = s.Key, s.Context
		}
		return v
	}
	panic(fmt.Sprintf("unexpected target type %T", obj))
}

// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=targets;clustertargets,verbs=get;list;watch
// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=targets/status;clustertargets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Reconcile connects the target as its spec says and reports how that went.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	obj := r.newObject()
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.forget(ctx, remote.Key{Namespace: req.Namespace, Name: req.Name})
		}
		return ctrl.Result{}, err
	}
	v := viewOf(obj)
	if !obj.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, r.forget(ctx, v.key)
	}
	original := obj.DeepCopyObject().(client.Object)

	cond := metav1.Condition{Type: multiclusterv1alpha1.ConditionReady, ObservedGeneration: obj.GetGeneration()}
	cfg, fingerprint, cerr, err := r.config(ctx, v)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case cerr != nil:
		r.Connector.Disconnect(v.key)
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, cerr.Reason, cerr.Message
		// The virtual node stays, NotReady, and says why.
		if err := r.setNode(v, nil, remote.Health{Reason: cerr.Reason, Message: cerr.Message}); err != nil {
			return ctrl.Result{}, err
		}
	default:
		conn, err := r.Connector.Connect(ctx, v.key, cfg, fingerprint)
		if err != nil {
			return ctrl.Result{}, err
		}
		h := conn.Health()
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, h.Reason, h.Message
		if h.Ready {
			cond.Status = metav1.ConditionTrue
		}
		if err := r.setNode(v, conn.Summary(), h); err != nil {
			return ctrl.Result{}, err
		}
	}
	if r.ConnectOnly {
		return ctrl.Result{}, nil
	}
	previous := meta.FindStatusCondition(*v.conditions, cond.Type)
	transition := previous == nil || previous.Status != cond.Status || previous.Reason != cond.Reason
	if !meta.SetStatusCondition(v.conditions, cond) {
		return ctrl.Result{}, nil
	}
	if err := r.Client.Status().Patch(ctx, obj, client.MergeFrom(original)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating status: %w", err)
	}
	if transition && r.Recorder != nil {
		eventType := corev1.EventTypeWarning
		if cond.Status == metav1.ConditionTrue {
			eventType = corev1.EventTypeNormal
		}
		r.Recorder.Eventf(obj, nil, eventType, cond.Reason, "Connect", "%s", cond.Message)
	}
	ctrl.LoggerFrom(ctx).V(2).Info("Target condition", "ready", cond.Status, "reason", cond.Reason)
	return ctrl.Result{}, nil
}

// forget releases what the target held (see release), closes its
// connection and removes its virtual node.
func (r *Reconciler) forget(ctx context.Context, key remote.Key) error {
	if !r.ConnectOnly {
		if err := r.release(ctx, key); err != nil {
			return err
		}
	}
	r.Connector.Disconnect(key)
	if r.Nodes == nil {
		return nil
	}
	return r.Nodes.Remove(ctx, key)
}

func (r *Reconciler) setNode(v view, summary *multiclusterv1alpha1.ClusterSummary, h remote.Health) error {
	if r.Nodes == nil {
		return nil
	}
	excluded, err := vk.CompileExcluded(v.excluded)
	if err != nil {
		excluded = nil // reported in the condition already
	}
	if h.Since.IsZero() {
		h.Since = time.Now()
	}
	return r.Nodes.Set(v.key, summary, h, excluded)
}

// config returns the client configuration for the target, or the
// configuration problem to report; err is for transient failures only.
func (r *Reconciler) config(ctx context.Context, v view) (*rest.Config, string, *configError, error) {
	if cerr := checkExcludedLabels(v.excluded); cerr != nil {
		return nil, "", cerr, nil
	}
	if v.self {
		return r.SelfConfig, "self", nil, nil
	}
	if v.secret == nil {
		return nil, "", &configError{multiclusterv1alpha1.ReasonInvalidSpec, "set spec.self or spec.kubeconfigSecret"}, nil
	}
	where := fmt.Sprintf("key %q of secret %s", v.secretKey, v.secret)
	var secret corev1.Secret
	if err := r.SecretReader.Get(ctx, *v.secret, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", &configError{multiclusterv1alpha1.ReasonSecretNotFound,
				fmt.Sprintf("secret %s does not exist: create it with a kubeconfig for the target under key %q", v.secret, v.secretKey)}, nil
		}
		return nil, "", nil, fmt.Errorf("reading secret %s: %w", v.secret, err)
	}
	data, ok := secret.Data[v.secretKey]
	if !ok {
		keys := make([]string, 0, len(secret.Data))
		for k := range secret.Data {
			keys = append(keys, k)
		}
		return nil, "", &configError{multiclusterv1alpha1.ReasonSecretKeyNotFound,
			fmt.Sprintf("secret %s has no key %q (it has: %v): set spec.kubeconfigSecret.key", v.secret, v.secretKey, keys)}, nil
	}
	cfg, fingerprint, cerr := restConfigFromKubeconfig(data, v.context, where)
	if cerr != nil {
		return nil, "", cerr, nil
	}
	return cfg, fingerprint, nil, nil
}

// SetupWithManager indexes targets by Secret and watches targets, Secrets
// (metadata only) and health changes.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	name := "target"
	if r.ClusterScoped {
		name = "clustertarget"
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), r.newObject(), secretIndex, func(o client.Object) []string {
		if v := viewOf(o); v.secret != nil {
			return []string{v.secret.String()}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing %ss by secret: %w", name, err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(r.newObject()).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.targetsOfSecret), builder.OnlyMetadata)
	if r.HealthEvents != nil {
		b = b.WatchesRawSource(source.Channel(r.HealthEvents, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

func (r *Reconciler) targetsOfSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var list client.ObjectList = &multiclusterv1alpha1.TargetList{}
	if r.ClusterScoped {
		list = &multiclusterv1alpha1.ClusterTargetList{}
	}
	key := types.NamespacedName{Namespace: secret.GetNamespace(), Name: secret.GetName()}.String()
	if err := r.Client.List(ctx, list, client.MatchingFields{secretIndex: key}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing targets of a secret", "secret", key)
		return nil
	}
	var reqs []reconcile.Request
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		obj := o.(client.Object)
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		return nil
	})
	return reqs
}

// Notifier turns health changes of connections into events for the Target
// and ClusterTarget reconcilers; use its Notify as remote.Options.OnHealthChange.
type Notifier struct {
	Targets        chan event.GenericEvent
	ClusterTargets chan event.GenericEvent
}

// NewNotifier returns a Notifier with buffered channels.
func NewNotifier() *Notifier {
	return &Notifier{Targets: make(chan event.GenericEvent, 1024), ClusterTargets: make(chan event.GenericEvent, 1024)}
}

// Notify sends the target whose health changed to its reconciler.
func (n *Notifier) Notify(key remote.Key, _ remote.Health) { n.NotifyKey(key) }

// NotifyKey sends the target to its reconciler (e.g. its summary changed).
func (n *Notifier) NotifyKey(key remote.Key) {
	if key.Namespace == "" {
		n.ClusterTargets <- event.GenericEvent{Object: &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: key.Name}}}
		return
	}
	n.Targets <- event.GenericEvent{Object: &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
}
