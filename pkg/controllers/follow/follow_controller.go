package follow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
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

// Event reasons, on proxy pods.
const (
	// ReasonFollowerConflict: a target has an object of the name of a
	// dependency that Flotilla did not make there; it is not overwritten,
	// and the pod does not start in that target.
	ReasonFollowerConflict = "FollowerConflict"
	// ReasonDependencyNotFound: a ConfigMap or Secret that the pod needs
	// does not exist in the source; the delegate waits for it, as a pod
	// would.
	ReasonDependencyNotFound = "DependencyNotFound"
	// ReasonFollowFailed: copying a dependency to a target failed.
	ReasonFollowFailed = "FollowFailed"
)

// conflictRecheck is how often a target whose own object blocks a copy is
// looked at again (a source cannot watch a target's objects).
const conflictRecheck = 10 * time.Second

// dependencyIndex indexes proxy pods by the ConfigMaps and Secrets they
// reference ("ConfigMap/<name>", "Secret/<name>").
const dependencyIndex = "flotilla.dependencies"

// Fleet is what the reconciler needs of the connections to targets.
type Fleet interface {
	Get(remote.Key) (remote.Cluster, error)
	Keys() []remote.Key
}

// Reconciler copies the ConfigMaps and Secrets that a proxy pod references
// to the target that its proxy scheduler chose, before the delegate may
// start there, and keeps the copies in sync. Each copy is owned (owner
// references) by the chaperons of the delegates that use it, so the target's
// garbage collector deletes it when the last of them goes, even if the
// source is gone by then.
//
// A source cannot read ConfigMaps or Secrets in a target, only write them:
// a copy is recognized as its own by a JSON patch whose only operation
// tests FollowerLabel for the source's ID (the API server answers with the
// object only if the test passes), and then updated conditionally on the
// resourceVersion it answered with.
type Reconciler struct {
	Client client.Client
	Fleet  Fleet
	// SourceID identifies this source cluster in the targets (the UID of
	// its kube-system namespace).
	SourceID string
	Recorder events.EventRecorder

	events  chan event.GenericEvent
	watcher remote.Watcher

	mu sync.Mutex
	// applied remembers what each copy is known to hold, to skip writes.
	applied map[copyKey]applied
}

type copyKey struct {
	target          remote.Key
	kind            protocol.DependencyKind
	namespace, name string
}

type applied struct {
	sourceVersion string
	owners        map[types.UID]bool
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// Reconcile follows a proxy pod's dependencies to its chosen target.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Spec.SchedulerName != protocol.ProxySchedulerName || !pod.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	deps := dependencies(pod)
	if len(deps) == 0 {
		return ctrl.Result{}, nil
	}
	var errs []error
	var result ctrl.Result
	for _, key := range r.Fleet.Keys() {
		if key.Namespace != "" && key.Namespace != pod.Namespace {
			continue
		}
		cl, err := r.Fleet.Get(key)
		if err != nil || !cl.Health().Ready {
			continue // reconnecting brings the chaperon again
		}
		ch := &multiclusterv1alpha1.PodChaperon{}
		if err := cl.GetClient().Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: protocol.ChaperonName(pod)}, ch); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("reading the chaperon in %s: %w", key, err))
			}
			continue
		}
		if ch.Labels[protocol.ProxyPodUIDLabel] != string(pod.UID) || !protocol.OfTarget(ch, key.String()) ||
			!ch.DeletionTimestamp.IsZero() || !protocol.Decided(ch) {
			continue
		}
		res, err := r.followTo(ctx, pod, cl, ch, deps)
		if err != nil {
			errs = append(errs, err)
		}
		if res.RequeueAfter > 0 && (result.RequeueAfter == 0 || res.RequeueAfter < result.RequeueAfter) {
			result = res
		}
	}
	return result, errors.Join(errs...)
}

func dependencies(pod *corev1.Pod) []protocol.Dependency {
	manifest, err := protocol.SourceManifest(pod)
	if err != nil {
		return nil // the proxy scheduler reports a bad manifest
	}
	return protocol.Dependencies(protocol.DelegateSpec(&manifest.Spec))
}

// followTo copies deps to the target of cl, owned by ch, and marks ch
// followed when all are there.
func (r *Reconciler) followTo(ctx context.Context, pod *corev1.Pod, cl remote.Cluster, ch *multiclusterv1alpha1.PodChaperon, deps []protocol.Dependency) (ctrl.Result, error) {
	key := cl.Key()
	var missing, conflicts []string
	var errs []error
	for _, dep := range deps {
		src, err := r.source(ctx, pod.Namespace, dep)
		if apierrors.IsNotFound(err) {
			if !dep.Optional {
				missing = append(missing, fmt.Sprintf("%s %s", dep.Kind, dep.Name))
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = r.ensureCopy(ctx, cl, dep.Kind, src, ch)
		switch {
		case errors.Is(err, errForeign):
			conflicts = append(conflicts, fmt.Sprintf("%s %s", dep.Kind, dep.Name))
		case err != nil:
			errs = append(errs, fmt.Errorf("copying %s %s to %s: %w", dep.Kind, dep.Name, key, err))
		}
	}
	if len(missing) > 0 {
		r.event(pod, corev1.EventTypeWarning, ReasonDependencyNotFound,
			"%s not found in this cluster: the pod waits for them in target %s, as it would here", strings.Join(missing, ", "), key)
	}
	if len(conflicts) > 0 {
		msg := fmt.Sprintf("%s already exist in target %s and were not made by Flotilla: not overwritten; the pod does not start there until they are removed or renamed",
			strings.Join(conflicts, ", "), key)
		r.event(pod, corev1.EventTypeWarning, ReasonFollowerConflict, "%s", msg)
		if err := r.markConflict(ctx, cl, ch, msg); err != nil {
			errs = append(errs, err)
		}
		return ctrl.Result{RequeueAfter: conflictRecheck}, errors.Join(errs...)
	}
	if len(errs) > 0 {
		err := errors.Join(errs...)
		r.event(pod, corev1.EventTypeWarning, ReasonFollowFailed, "%v", err)
		return ctrl.Result{}, err
	}
	if _, ok := ch.Annotations[protocol.FollowedAnnotation]; ok {
		return ctrl.Result{}, nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{protocol.FollowedAnnotation: "true"},
	}})
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := cl.GetClient().Patch(ctx, ch, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("marking the chaperon in %s followed: %w", key, err))
	}
	ctrl.LoggerFrom(ctx).V(2).Info("Followed dependencies", "target", key.String(), "count", len(deps))
	return ctrl.Result{}, nil
}

// markConflict tells the proxy scheduler, on the chaperon, that the pod
// cannot start in its target: it withdraws the choice and tries elsewhere.
func (r *Reconciler) markConflict(ctx context.Context, cl remote.Cluster, ch *multiclusterv1alpha1.PodChaperon, msg string) error {
	if ch.Annotations[protocol.FollowConflictAnnotation] == msg {
		return nil
	}
	body, err := protocol.AnnotationPatch{protocol.FollowConflictAnnotation: &msg}.Body()
	if err != nil {
		return err
	}
	if err := cl.GetClient().Patch(ctx, ch, client.RawPatch(types.MergePatchType, body)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("marking the chaperon in %s: %w", cl.Key(), err))
	}
	return nil
}

func (r *Reconciler) source(ctx context.Context, namespace string, dep protocol.Dependency) (client.Object, error) {
	obj := newObject(dep.Kind)
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: dep.Name}, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func newObject(kind protocol.DependencyKind) client.Object {
	if kind == protocol.Secret {
		return &corev1.Secret{}
	}
	return &corev1.ConfigMap{}
}

// errForeign: the target has an object of that name that is not this
// source's copy.
var errForeign = remote.ErrForeign

// ensureCopy makes the target's copy of src hold src's content and be
// owned (also) by ch.
func (r *Reconciler) ensureCopy(ctx context.Context, cl remote.Cluster, kind protocol.DependencyKind, src client.Object, ch *multiclusterv1alpha1.PodChaperon) error {
	ck := copyKey{target: cl.Key(), kind: kind, namespace: src.GetNamespace(), name: src.GetName()}
	r.mu.Lock()
	a, known := r.applied[ck]
	r.mu.Unlock()
	if known && a.sourceVersion == src.GetResourceVersion() && a.owners[ch.UID] {
		return nil
	}
	c := cl.GetClient()
	newObj := func() client.Object {
		obj := newObject(kind)
		obj.SetNamespace(src.GetNamespace())
		obj.SetName(src.GetName())
		return obj
	}
	desired := func(current client.Object) client.Object { return desiredCopy(kind, src, r.SourceID, current, ch) }
	for range 2 {
		copied, err := remote.EnsureCopy(ctx, c, newObj, desired, same, r.SourceID)
		if err == nil {
			r.remember(ck, src, copied)
			return nil
		}
		if !apierrors.IsInvalid(err) || copied == nil || !immutable(copied) {
			return err
		}
		// An immutable copy of an object that was replaced in the source:
		// make it again.
		uid, version := copied.GetUID(), copied.GetResourceVersion()
		if err := c.Delete(ctx, copied, client.Preconditions{UID: &uid, ResourceVersion: &version}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("the copy kept changing")
}

// probe reads this source's copy of src in the target (see
// remote.ProbeCopy).
func (r *Reconciler) probe(ctx context.Context, c client.Client, kind protocol.DependencyKind, src client.Object) (client.Object, error) {
	obj := newObject(kind)
	obj.SetNamespace(src.GetNamespace())
	obj.SetName(src.GetName())
	if err := remote.ProbeCopy(ctx, c, obj, r.SourceID); err != nil {
		return nil, err
	}
	return obj, nil
}

// desiredCopy is src as copied to a target: its labels (plus the
// follower label), annotations and content; owned by the chaperons that own
// current, and ch.
func desiredCopy(kind protocol.DependencyKind, src client.Object, sourceID string, current client.Object, ch *multiclusterv1alpha1.PodChaperon) client.Object {
	labels := maps.Clone(src.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	labels[protocol.FollowerLabel] = sourceID
	annotations := maps.Clone(src.GetAnnotations())
	delete(annotations, corev1.LastAppliedConfigAnnotation)
	var owners []metav1.OwnerReference
	if current != nil {
		owners = slices.Clone(current.GetOwnerReferences())
	}
	if !slices.ContainsFunc(owners, func(o metav1.OwnerReference) bool { return o.UID == ch.UID }) {
		owners = append(owners, metav1.OwnerReference{
			APIVersion: multiclusterv1alpha1.GroupVersion.String(), Kind: "PodChaperon", Name: ch.Name, UID: ch.UID,
		})
	}
	meta := metav1.ObjectMeta{Namespace: src.GetNamespace(), Name: src.GetName(), Labels: labels,
		Annotations: annotations, OwnerReferences: owners}
	switch s := src.(type) {
	case *corev1.Secret:
		return &corev1.Secret{ObjectMeta: meta, Type: s.Type, Data: s.Data, Immutable: s.Immutable}
	case *corev1.ConfigMap:
		return &corev1.ConfigMap{ObjectMeta: meta, Data: s.Data, BinaryData: s.BinaryData, Immutable: s.Immutable}
	}
	panic(fmt.Sprintf("follow: unexpected %T for %s", src, kind))
}

// same reports whether current already is want (content, labels,
// annotations, owners).
func same(current, want client.Object) bool {
	if !equality.Semantic.DeepEqual(current.GetLabels(), want.GetLabels()) ||
		!equality.Semantic.DeepEqual(nilIfEmpty(current.GetAnnotations()), nilIfEmpty(want.GetAnnotations())) ||
		!equality.Semantic.DeepEqual(current.GetOwnerReferences(), want.GetOwnerReferences()) {
		return false
	}
	switch c := current.(type) {
	case *corev1.Secret:
		w := want.(*corev1.Secret)
		return c.Type == w.Type && equality.Semantic.DeepEqual(nilIfEmpty(c.Data), nilIfEmpty(w.Data)) &&
			equality.Semantic.DeepEqual(c.Immutable, w.Immutable)
	case *corev1.ConfigMap:
		w := want.(*corev1.ConfigMap)
		return equality.Semantic.DeepEqual(nilIfEmpty(c.Data), nilIfEmpty(w.Data)) &&
			equality.Semantic.DeepEqual(nilIfEmpty(c.BinaryData), nilIfEmpty(w.BinaryData)) &&
			equality.Semantic.DeepEqual(c.Immutable, w.Immutable)
	}
	return false
}

func nilIfEmpty[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return m
}

func immutable(obj client.Object) bool {
	switch o := obj.(type) {
	case *corev1.Secret:
		return o.Immutable != nil && *o.Immutable
	case *corev1.ConfigMap:
		return o.Immutable != nil && *o.Immutable
	}
	return false
}

func (r *Reconciler) remember(ck copyKey, src, copied client.Object) {
	owners := map[types.UID]bool{}
	for _, o := range copied.GetOwnerReferences() {
		owners[o.UID] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applied == nil {
		r.applied = map[copyKey]applied{}
	}
	r.applied[ck] = applied{sourceVersion: src.GetResourceVersion(), owners: owners}
}

func (r *Reconciler) event(pod *corev1.Pod, kind, reason, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(pod, nil, kind, reason, "Follow", note, args...)
	}
}

// TargetChanged follows a target's connection: its PodChaperons are
// watched, so that a chaperon the proxy scheduler allows reconciles its
// proxy pod. Call it on every connection change.
func (r *Reconciler) TargetChanged(ctx context.Context, key remote.Key) {
	if err := r.watcher.TargetChanged(ctx, key); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Watching PodChaperons", "target", key.String())
	}
}

func (r *Reconciler) chaperonEvent(_ remote.Key, obj client.Object) {
	ch, ok := obj.(*multiclusterv1alpha1.PodChaperon)
	if !ok {
		return
	}
	if _, followed := ch.Annotations[protocol.FollowedAnnotation]; followed || !ch.DeletionTimestamp.IsZero() ||
		!protocol.Decided(ch) || len(protocol.Dependencies(&ch.Spec)) == 0 {
		return
	}
	if name := ch.Annotations[protocol.ProxyPodNameAnnotation]; name != "" {
		r.events <- event.GenericEvent{Object: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ch.Namespace, Name: name}}}
	}
}

// dependents maps a ConfigMap or Secret to the proxy pods that reference it.
func (r *Reconciler) dependents(kind protocol.DependencyKind) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		pods := &corev1.PodList{}
		if err := r.Client.List(ctx, pods, client.InNamespace(obj.GetNamespace()),
			client.MatchingFields{dependencyIndex: string(kind) + "/" + obj.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing the pods that reference an object", "kind", kind, "object", client.ObjectKeyFromObject(obj))
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(pods.Items))
		for _, p := range pods.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
		}
		return reqs
	}
}

func indexDependencies(obj client.Object) []string {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.SchedulerName != protocol.ProxySchedulerName {
		return nil
	}
	var keys []string
	for _, d := range dependencies(pod) {
		keys = append(keys, string(d.Kind)+"/"+d.Name)
	}
	return keys
}

// SetupWithManager watches proxy pods, the ConfigMaps and Secrets they
// reference and, through TargetChanged, the targets' chaperons.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.SourceID == "" {
		return errors.New("follow: SourceID is required")
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, dependencyIndex, indexDependencies); err != nil {
		return fmt.Errorf("indexing pods by dependency: %w", err)
	}
	r.events = make(chan event.GenericEvent, 1024)
	r.watcher = remote.Watcher{Fleet: r.Fleet, Object: &multiclusterv1alpha1.PodChaperon{}, Handler: r.chaperonEvent}
	proxies := predicate.NewPredicateFuncs(func(o client.Object) bool {
		pod, ok := o.(*corev1.Pod)
		return ok && pod.Spec.SchedulerName == protocol.ProxySchedulerName
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("follow").
		For(&corev1.Pod{}, builder.WithPredicates(proxies)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.dependents(protocol.ConfigMap))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.dependents(protocol.Secret))).
		WatchesRawSource(source.Channel(r.events, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		Complete(r)
}
