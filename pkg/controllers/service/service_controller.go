package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// Marks on the copies of Services and Ingresses.
const (
	// GlobalAnnotation marks a Service or Ingress that Flotilla copied to
	// the targets that run its pods.
	GlobalAnnotation = "multicluster.admiralty.io/global"
	// CiliumGlobalAnnotation makes a Service global in a Cilium ClusterMesh:
	// the endpoints of the Services of this name in every cluster of the
	// mesh are merged.
	CiliumGlobalAnnotation = "service.cilium.io/global"
	// CiliumLegacyGlobalAnnotation is the same, as Cilium before 1.16
	// spells it.
	CiliumLegacyGlobalAnnotation = "io.cilium/global-service"
)

// ReasonFollowerConflict: a target has its own object of the name.
const ReasonFollowerConflict = "FollowerConflict"

// Fleet is what the reconciler needs of the connections to targets.
type Fleet interface {
	Get(remote.Key) (remote.Cluster, error)
	Keys() []remote.Key
}

// Kinds of requests.
const (
	kindService = "Service"
	kindIngress = "Ingress"
)

// request names a Service or an Ingress of the source.
type request struct {
	Kind string
	types.NamespacedName
}

// Reconciler makes the Services whose selector matches proxy pods follow
// them: each target that runs delegates of matching pods gets a copy that
// selects those delegates (the selector plus this source's
// SourceClusterLabel; cluster IP and node ports left for the target to
// allocate), marked global; Ingresses backed by such Services follow to
// the same targets. Copies are owned by the chaperons of the delegates
// they serve, so a target's garbage collector removes them when the last
// one goes, and the reconciler removes them when no delegate there matches
// any more or the source object is deleted. Copies are written as the
// follow controller writes its own (remote.EnsureCopy): a target's own
// object of the same name is never overwritten.
type Reconciler struct {
	Client   client.Client
	Fleet    Fleet
	SourceID string
	Recorder events.EventRecorder

	resync chan event.TypedGenericEvent[remote.Key]

	mu sync.Mutex
	// known remembers each copy as last written: "" when there is none,
	// else the source's resourceVersion and the owners it was written
	// with. An unchanged copy is not even probed (a Service is reconciled
	// on every change of its pods).
	known map[copyKey]string
}

// copyKey names a copy: the target's API server, kind, namespace and name.
type copyKey struct {
	server string
	kind   string
	types.NamespacedName
}

// +kubebuilder:rbac:groups="",resources=services;pods;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// Reconcile makes the copies of a Service or an Ingress match where its
// pods run.
func (r *Reconciler) Reconcile(ctx context.Context, req request) (ctrl.Result, error) {
	switch req.Kind {
	case kindService:
		return ctrl.Result{}, r.reconcileService(ctx, req.NamespacedName)
	case kindIngress:
		return ctrl.Result{}, r.reconcileIngress(ctx, req.NamespacedName)
	}
	return ctrl.Result{}, nil
}

// owners are, per target, the chaperons of the delegates a Service serves.
type owners map[remote.Key][]metav1.OwnerReference

func (r *Reconciler) reconcileService(ctx context.Context, nn types.NamespacedName) error {
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, nn, svc); err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		svc = nil
	}
	want := owners{}
	if svc != nil && svc.DeletionTimestamp.IsZero() {
		var err error
		if want, err = r.ownersOf(ctx, svc); err != nil {
			return err
		}
	}
	return r.apply(ctx, kindService, nn, want, func(current client.Object, refs []metav1.OwnerReference) client.Object {
		return desiredService(svc, r.SourceID, current, refs)
	}, svc)
}

func (r *Reconciler) reconcileIngress(ctx context.Context, nn types.NamespacedName) error {
	ing := &networkingv1.Ingress{}
	if err := r.Client.Get(ctx, nn, ing); err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		ing = nil
	}
	want := owners{}
	if ing != nil && ing.DeletionTimestamp.IsZero() {
		for _, name := range backends(ing) {
			svc := &corev1.Service{}
			if err := r.Client.Get(ctx, types.NamespacedName{Namespace: nn.Namespace, Name: name}, svc); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return err
			}
			o, err := r.ownersOf(ctx, svc)
			if err != nil {
				return err
			}
			for key, refs := range o {
				want[key] = mergeOwners(want[key], refs)
			}
		}
	}
	return r.apply(ctx, kindIngress, nn, want, func(current client.Object, refs []metav1.OwnerReference) client.Object {
		return desiredIngress(ing, r.SourceID, refs)
	}, ing)
}

// followable: a Service that selects pods (not ExternalName, not one
// without a selector, whose endpoints someone else manages).
func followable(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && len(svc.Spec.Selector) > 0
}

// ownersOf finds the delegates that svc serves: for each proxy pod it
// selects, bound to a target's virtual node, that target's chaperon.
func (r *Reconciler) ownersOf(ctx context.Context, svc *corev1.Service) (owners, error) {
	out := owners{}
	if !followable(svc) {
		return out, nil
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingLabelsSelector{
		Selector: labels.SelectorFromSet(svc.Spec.Selector)}); err != nil {
		return nil, fmt.Errorf("listing the pods of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	nodes := map[string]remote.Key{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Spec.SchedulerName != protocol.ProxySchedulerName || pod.Spec.NodeName == "" || !pod.DeletionTimestamp.IsZero() ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		key, ok := nodes[pod.Spec.NodeName]
		if !ok {
			node := &corev1.Node{}
			if err := r.Client.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, node); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, err
			}
			if key, ok = remote.KeyOfVirtualNode(node); !ok {
				continue
			}
			nodes[pod.Spec.NodeName] = key
		}
		cl, err := r.Fleet.Get(key)
		if err != nil {
			continue
		}
		ch := &multiclusterv1alpha1.PodChaperon{}
		if err := cl.GetClient().Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: protocol.ChaperonName(pod)}, ch); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("reading the chaperon of %s/%s in %s: %w", pod.Namespace, pod.Name, key, err)
		}
		if ch.Labels[protocol.ProxyPodUIDLabel] != string(pod.UID) || !ch.DeletionTimestamp.IsZero() || !protocol.OfTarget(ch, key.String()) {
			continue
		}
		out[key] = mergeOwners(out[key], []metav1.OwnerReference{{
			APIVersion: multiclusterv1alpha1.GroupVersion.String(), Kind: "PodChaperon", Name: ch.Name, UID: ch.UID,
		}})
	}
	return out, nil
}

// mergeOwners is a ∪ b, sorted by UID.
func mergeOwners(a, b []metav1.OwnerReference) []metav1.OwnerReference {
	out := slices.Clone(a)
	for _, o := range b {
		if !slices.ContainsFunc(out, func(p metav1.OwnerReference) bool { return p.UID == o.UID }) {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out
}

// apply makes each ready target hold a copy where want has owners, and none
// elsewhere. Two Targets may lead to one cluster: copies are made per
// cluster (API server), with the owners wanted through all its Targets.
func (r *Reconciler) apply(ctx context.Context, kind string, nn types.NamespacedName, want owners,
	desired func(current client.Object, refs []metav1.OwnerReference) client.Object, src client.Object) error {
	type destination struct {
		cl   remote.Cluster
		refs []metav1.OwnerReference
	}
	destinations := map[string]*destination{}
	for _, key := range r.Fleet.Keys() {
		if key.Namespace != "" && key.Namespace != nn.Namespace {
			continue
		}
		cl, err := r.Fleet.Get(key)
		if err != nil || !cl.Health().Ready {
			continue // a reconnection reconciles everything again
		}
		server := cl.GetConfig().Host
		d, ok := destinations[server]
		if !ok {
			d = &destination{cl: cl}
			destinations[server] = d
		}
		d.refs = mergeOwners(d.refs, want[key])
	}
	var errs, conflicts []string
	for server, d := range destinations {
		key := d.cl.Key()
		ck := copyKey{server: server, kind: kind, NamespacedName: nn}
		newObj := func() client.Object {
			obj := newObject(kind)
			obj.SetNamespace(nn.Namespace)
			obj.SetName(nn.Name)
			return obj
		}
		signature := ""
		if len(d.refs) > 0 {
			signature = src.GetResourceVersion()
			for _, o := range d.refs {
				signature += "," + string(o.UID)
			}
		}
		r.mu.Lock()
		last, known := r.known[ck]
		r.mu.Unlock()
		if known && last == signature {
			continue
		}
		if len(d.refs) == 0 {
			if err := remote.DeleteCopy(ctx, d.cl.GetClient(), newObj(), r.SourceID); err != nil {
				errs = append(errs, fmt.Sprintf("deleting the copy in %s: %v", key, err))
				continue
			}
			r.remember(ck, signature)
			continue
		}
		_, err := remote.EnsureCopy(ctx, d.cl.GetClient(), newObj,
			func(current client.Object) client.Object { return desired(current, d.refs) }, same, r.SourceID)
		switch {
		case errors.Is(err, remote.ErrForeign):
			conflicts = append(conflicts, key.String())
		case err != nil:
			errs = append(errs, fmt.Sprintf("copying to %s: %v", key, err))
		default:
			r.remember(ck, signature)
		}
	}
	if len(conflicts) > 0 && src != nil && r.Recorder != nil {
		slices.Sort(conflicts)
		r.Recorder.Eventf(src, nil, corev1.EventTypeWarning, ReasonFollowerConflict, "Follow",
			"targets %s have their own %s %s, not made by Flotilla: not overwritten", strings.Join(conflicts, ", "), kind, nn.Name)
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return fmt.Errorf("%s %s: %s", kind, nn, strings.Join(errs, "; "))
	}
	if len(want) > 0 {
		ctrl.LoggerFrom(ctx).V(2).Info("Followed", "kind", kind, "targets", len(want))
	}
	return nil
}

func (r *Reconciler) remember(ck copyKey, signature string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known == nil {
		r.known = map[copyKey]string{}
	}
	r.known[ck] = signature
}

func newObject(kind string) client.Object {
	if kind == kindIngress {
		return &networkingv1.Ingress{}
	}
	return &corev1.Service{}
}

// meta is the metadata of a copy of src: its labels (plus the follower
// label), annotations (plus the global marks), owned by refs.
func meta(src client.Object, sourceID string, refs []metav1.OwnerReference, marks ...string) metav1.ObjectMeta {
	l := maps.Clone(src.GetLabels())
	if l == nil {
		l = map[string]string{}
	}
	l[protocol.FollowerLabel] = sourceID
	a := maps.Clone(src.GetAnnotations())
	if a == nil {
		a = map[string]string{}
	}
	delete(a, corev1.LastAppliedConfigAnnotation)
	for _, m := range marks {
		a[m] = "true"
	}
	return metav1.ObjectMeta{Namespace: src.GetNamespace(), Name: src.GetName(), Labels: l, Annotations: a, OwnerReferences: refs}
}

// desiredService is the copy of svc in a target: it selects this source's
// delegates that match svc's selector; the addresses and ports that a
// cluster allocates are the target's (kept from current, if any).
func desiredService(svc *corev1.Service, sourceID string, current client.Object, refs []metav1.OwnerReference) client.Object {
	out := &corev1.Service{
		ObjectMeta: meta(svc, sourceID, refs, GlobalAnnotation, CiliumGlobalAnnotation, CiliumLegacyGlobalAnnotation),
		Spec:       *svc.Spec.DeepCopy(),
	}
	spec := &out.Spec
	spec.Selector = maps.Clone(svc.Spec.Selector)
	spec.Selector[protocol.SourceClusterLabel] = sourceID
	if spec.ClusterIP != corev1.ClusterIPNone {
		spec.ClusterIP, spec.ClusterIPs = "", nil
	} else {
		spec.ClusterIPs = []string{corev1.ClusterIPNone}
	}
	spec.IPFamilies = nil
	spec.HealthCheckNodePort = 0
	for i := range spec.Ports {
		spec.Ports[i].NodePort = 0
	}
	if cur, ok := current.(*corev1.Service); ok && cur != nil {
		// What the target allocated stays (the API server would keep it).
		if spec.ClusterIP == "" {
			spec.ClusterIP, spec.ClusterIPs = cur.Spec.ClusterIP, cur.Spec.ClusterIPs
		}
		spec.IPFamilies = cur.Spec.IPFamilies
		if spec.IPFamilyPolicy == nil {
			spec.IPFamilyPolicy = cur.Spec.IPFamilyPolicy
		}
		spec.HealthCheckNodePort = cur.Spec.HealthCheckNodePort
		for i, p := range spec.Ports {
			for _, c := range cur.Spec.Ports {
				if c.Port == p.Port && c.Protocol == p.Protocol {
					spec.Ports[i].NodePort = c.NodePort
				}
			}
		}
		defaulted(spec, &cur.Spec)
	}
	return out
}

// defaulted fills the fields the API server defaults, as current has them,
// so that comparing with current means something.
func defaulted(spec, current *corev1.ServiceSpec) {
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = current.SessionAffinity
	}
	if spec.Type == "" {
		spec.Type = current.Type
	}
	if spec.InternalTrafficPolicy == nil {
		spec.InternalTrafficPolicy = current.InternalTrafficPolicy
	}
	for i := range spec.Ports {
		if spec.Ports[i].Protocol == "" {
			spec.Ports[i].Protocol = corev1.ProtocolTCP
		}
		if spec.Ports[i].TargetPort.IntVal == 0 && spec.Ports[i].TargetPort.StrVal == "" {
			spec.Ports[i].TargetPort.IntVal = spec.Ports[i].Port
		}
	}
}

// desiredIngress is the copy of ing in a target.
func desiredIngress(ing *networkingv1.Ingress, sourceID string, refs []metav1.OwnerReference) client.Object {
	return &networkingv1.Ingress{ObjectMeta: meta(ing, sourceID, refs, GlobalAnnotation), Spec: *ing.Spec.DeepCopy()}
}

// same reports whether current already is want.
func same(current, want client.Object) bool {
	if !equality.Semantic.DeepEqual(current.GetLabels(), want.GetLabels()) ||
		!equality.Semantic.DeepEqual(current.GetAnnotations(), want.GetAnnotations()) ||
		!equality.Semantic.DeepEqual(current.GetOwnerReferences(), want.GetOwnerReferences()) {
		return false
	}
	switch c := current.(type) {
	case *corev1.Service:
		return equality.Semantic.DeepEqual(c.Spec, want.(*corev1.Service).Spec)
	case *networkingv1.Ingress:
		return equality.Semantic.DeepEqual(c.Spec, want.(*networkingv1.Ingress).Spec)
	}
	return false
}

// backends are the names of the Services an Ingress sends to.
func backends(ing *networkingv1.Ingress) []string {
	var names []string
	add := func(b *networkingv1.IngressBackend) {
		if b != nil && b.Service != nil && !slices.Contains(names, b.Service.Name) {
			names = append(names, b.Service.Name)
		}
	}
	add(ing.Spec.DefaultBackend)
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for i := range rule.HTTP.Paths {
			add(&rule.HTTP.Paths[i].Backend)
		}
	}
	return names
}

// ingressesOf lists the requests of the Ingresses that send to a Service.
func (r *Reconciler) ingressesOf(ctx context.Context, namespace string, services ...string) []request {
	list := &networkingv1.IngressList{}
	if err := r.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing Ingresses", "namespace", namespace)
		return nil
	}
	var out []request
	for i := range list.Items {
		for _, b := range backends(&list.Items[i]) {
			if slices.Contains(services, b) {
				out = append(out, request{Kind: kindIngress, NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
				break
			}
		}
	}
	return out
}

// servicesOf lists the requests of the Services that select a pod, and of
// their Ingresses.
func (r *Reconciler) servicesOf(ctx context.Context, pod *corev1.Pod) []request {
	list := &corev1.ServiceList{}
	if err := r.Client.List(ctx, list, client.InNamespace(pod.Namespace)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing Services", "namespace", pod.Namespace)
		return nil
	}
	var out []request
	var names []string
	for i := range list.Items {
		svc := &list.Items[i]
		if followable(svc) && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			out = append(out, request{Kind: kindService, NamespacedName: client.ObjectKeyFromObject(svc)})
			names = append(names, svc.Name)
		}
	}
	if len(names) > 0 {
		out = append(out, r.ingressesOf(ctx, pod.Namespace, names...)...)
	}
	return out
}

// TargetChanged reconciles every Service and Ingress again when a target
// connects (its copies may have changed meanwhile). Call it on every
// connection change.
func (r *Reconciler) TargetChanged(ctx context.Context, key remote.Key) {
	r.mu.Lock()
	r.known = nil // forget all: a connection's server may have changed
	r.mu.Unlock()
	if r.resync != nil {
		r.resync <- event.TypedGenericEvent[remote.Key]{Object: key}
	}
}

// all lists the requests of every Service and Ingress.
func (r *Reconciler) all(ctx context.Context) []request {
	var out []request
	services := &corev1.ServiceList{}
	if err := r.Client.List(ctx, services); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing Services")
	}
	for i := range services.Items {
		if followable(&services.Items[i]) {
			out = append(out, request{Kind: kindService, NamespacedName: client.ObjectKeyFromObject(&services.Items[i])})
		}
	}
	ingresses := &networkingv1.IngressList{}
	if err := r.Client.List(ctx, ingresses); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing Ingresses")
	}
	for i := range ingresses.Items {
		out = append(out, request{Kind: kindIngress, NamespacedName: client.ObjectKeyFromObject(&ingresses.Items[i])})
	}
	return out
}

// SetupWithManager watches Services, Ingresses and proxy pods.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.SourceID == "" {
		return errors.New("service: SourceID is required")
	}
	r.resync = make(chan event.TypedGenericEvent[remote.Key], 64)
	svcHandler := handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, svc *corev1.Service) []request {
		return append([]request{{Kind: kindService, NamespacedName: client.ObjectKeyFromObject(svc)}},
			r.ingressesOf(ctx, svc.Namespace, svc.Name)...)
	})
	ingHandler := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, ing *networkingv1.Ingress) []request {
		return []request{{Kind: kindIngress, NamespacedName: client.ObjectKeyFromObject(ing)}}
	})
	podHandler := handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, pod *corev1.Pod) []request {
		if pod.Spec.SchedulerName != protocol.ProxySchedulerName {
			return nil
		}
		return r.servicesOf(ctx, pod)
	})
	resync := source.TypedChannel(r.resync, handler.TypedFuncs[remote.Key, request]{
		GenericFunc: func(ctx context.Context, _ event.TypedGenericEvent[remote.Key], q workqueue.TypedRateLimitingInterface[request]) {
			for _, req := range r.all(ctx) {
				q.Add(req)
			}
		},
	})
	return builder.TypedControllerManagedBy[request](mgr).
		Named("service").
		WatchesRawSource(source.TypedKind(mgr.GetCache(), &corev1.Service{}, svcHandler)).
		WatchesRawSource(source.TypedKind(mgr.GetCache(), &networkingv1.Ingress{}, ingHandler)).
		WatchesRawSource(source.TypedKind(mgr.GetCache(), &corev1.Pod{}, podHandler)).
		WatchesRawSource(resync).
		WithOptions(controller.TypedOptions[request]{MaxConcurrentReconciles: 4}).
		Complete(r)
}
