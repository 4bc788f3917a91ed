package join

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	watchtools "k8s.io/client-go/tools/watch"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/remote"
	"github.com/flotilla-io/flotilla/pkg/vk"
)

// What join and unjoin did to an object.
const (
	Created    = "created"
	Configured = "configured"
	Unchanged  = "unchanged"
	Deleted    = "deleted"
	NotFound   = "not found"
	// LeftAlone: unjoin found an object of that name that flotillactl did
	// not make, and did not delete it.
	LeftAlone = "left alone (not made by flotillactl)"
)

// Change is what join or unjoin did to one object.
type Change struct {
	// Cluster is "source" or "target"; Context its kubeconfig context.
	Cluster, Context string
	// Object is its kind and name, "ClusterTarget eu".
	Object string
	// Action is Created, Configured, Unchanged, Deleted, NotFound or LeftAlone.
	Action string
}

// Result is what join or unjoin did.
type Result struct {
	Names Names
	// VirtualNode is the name of the target's virtual node in the source.
	VirtualNode string
	Changes     []Change
	// Notes say what the user may want to act on (a wait that ran out).
	Notes []string
}

func (r *Result) add(s side, object, action string) {
	r.Changes = append(r.Changes, Change{Cluster: s.role, Context: s.Context, Object: object, Action: action})
}

// side is a cluster in its role in a join.
type side struct {
	*Cluster
	role string // "source" or "target"
}

func (s side) String() string { return fmt.Sprintf("the %s cluster (context %q)", s.role, s.Context) }

// fail says what was being done where, and why it failed, in words for a
// refused request: the API server's message names the verb, the resource
// and the user.
func (s side) fail(err error, doing string) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s in %s: permission denied: %w", doing, s, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s in %s: the API server rejected the context's credentials: %w", doing, s, err)
	}
	return fmt.Errorf("%s in %s: %w", doing, s, err)
}

// NotInstalledError says that a cluster does not serve Flotilla's API.
type NotInstalledError struct {
	// Cluster is "source" or "target"; Context its kubeconfig context.
	Cluster, Context string
	// Missing are the resources of multicluster.admiralty.io/v1alpha1
	// that it does not serve.
	Missing []string
}

func (e *NotInstalledError) Error() string {
	return fmt.Sprintf("Flotilla is not installed in the %s cluster (context %q): it does not serve %s %s: install Flotilla in the %s cluster first",
		e.Cluster, e.Context, multiclusterv1alpha1.GroupVersion, strings.Join(e.Missing, ", "), e.Cluster)
}

// resourceDiscoverer is the part of discovery that checkInstalled needs.
type resourceDiscoverer interface {
	ServerResourcesForGroupVersionWithContext(ctx context.Context, groupVersion string) (*metav1.APIResourceList, error)
}

// checkInstalled returns a NotInstalledError unless the cluster serves
// every one of resources in Flotilla's API group.
func checkInstalled(ctx context.Context, d resourceDiscoverer, s side, resources ...string) error {
	list, err := d.ServerResourcesForGroupVersionWithContext(ctx, multiclusterv1alpha1.GroupVersion.String())
	if apierrors.IsNotFound(err) {
		return &NotInstalledError{Cluster: s.role, Context: s.Context, Missing: resources}
	}
	if err != nil {
		return s.fail(err, "discovering "+multiclusterv1alpha1.GroupVersion.String())
	}
	if missing := missingResources(list, resources); len(missing) > 0 {
		return &NotInstalledError{Cluster: s.role, Context: s.Context, Missing: missing}
	}
	return nil
}

func missingResources(list *metav1.APIResourceList, want []string) []string {
	served := map[string]bool{}
	for _, r := range list.APIResources {
		served[r.Name] = true
	}
	var missing []string
	for _, w := range want {
		if !served[w] {
			missing = append(missing, w)
		}
	}
	return missing
}

func (s side) resource(r ref) dynamic.ResourceInterface {
	if r.namespace == "" {
		return s.dynamic.Resource(r.resource)
	}
	return s.dynamic.Resource(r.resource).Namespace(r.namespace)
}

// get returns the object, or nil if there is none (or no such resource).
func (s side) get(ctx context.Context, r ref) (*unstructured.Unstructured, error) {
	obj, err := s.resource(r).Get(ctx, r.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(err, "reading "+r.String())
	}
	return obj, nil
}

func managed(obj metav1.Object) bool { return obj.GetLabels()[ManagedByLabel] == FieldManager }

// apply writes obj by server-side apply and records whether it was
// created, changed or left as it was (before is what was there).
func (s side) apply(ctx context.Context, r ref, obj runtime.Object, before *unstructured.Unstructured, res *Result) (*unstructured.Unstructured, error) {
	u, err := applyConfiguration(obj)
	if err != nil {
		return nil, err
	}
	out, err := s.resource(r).Apply(ctx, r.name, u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		if isNamespaceNotFound(err) {
			return nil, fmt.Errorf("applying %s in %s: namespace %q does not exist there: create it first", r, s, r.namespace)
		}
		return nil, s.fail(err, "applying "+r.String())
	}
	action := Created
	if before != nil {
		action = Configured
		if before.GetResourceVersion() == out.GetResourceVersion() {
			action = Unchanged
		}
	}
	res.add(s, r.String(), action)
	return out, nil
}

func isNamespaceNotFound(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Kind == "namespaces"
}

// checkNamespace fails when the namespace of a namespaced join is missing
// in this cluster. Who may not read namespaces is not stopped here (apply
// reports a missing namespace too).
func (s side) checkNamespace(ctx context.Context, n Names) error {
	if n.ClusterScoped {
		return nil
	}
	_, err := s.kube.CoreV1().Namespaces().Get(ctx, n.Namespace, metav1.GetOptions{})
	switch {
	case err == nil, apierrors.IsForbidden(err):
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("joining in %s: namespace %q does not exist there: create it first (nothing was changed)", s, n.Namespace)
	}
	return s.fail(err, "reading namespace "+n.Namespace)
}

// ensureSystemNamespace creates the namespace of a cluster-scoped join if
// it is missing. A namespaced join never creates its namespace: it belongs
// to the user, and apply says so if it is missing.
func (s side) ensureSystemNamespace(ctx context.Context, n Names, res *Result) error {
	if !n.ClusterScoped {
		return nil
	}
	namespaces := s.kube.CoreV1().Namespaces()
	_, err := namespaces.Get(ctx, n.Namespace, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return s.fail(err, "reading namespace "+n.Namespace)
	}
	_, err = namespaces.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.Namespace}}, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return s.fail(err, "creating namespace "+n.Namespace)
	}
	res.add(s, "Namespace "+n.Namespace, Created)
	return nil
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

// VirtualNodeName is the name of the virtual node of the target that a
// join with these names makes.
func (n Names) VirtualNodeName() string {
	if n.ClusterScoped {
		return vk.NodeName(remote.Key{Name: n.Target})
	}
	return vk.NodeName(remote.Key{Namespace: n.Namespace, Name: n.Target})
}

// Join lets source schedule pods to target (see the package doc). It
// checks, before writing anything, that both clusters serve Flotilla's API
// and that no object of the names it will write exists that flotillactl
// did not make. Running it again updates in place and reuses the token.
func Join(ctx context.Context, source, target *Cluster, opts Options) (*Result, error) {
	names, err := ResolveNames(opts, source.Name, target.Name)
	if err != nil {
		return nil, err
	}
	server := target.Config.Host
	if opts.TargetServer != "" {
		server = opts.TargetServer
	}
	if err := validateServer(server); err != nil {
		return nil, fmt.Errorf("the target's API server: %w (set --target-server)", err)
	}
	kubeconfigCA, insecure, err := clusterCA(target.Config)
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", target.Context, err)
	}
	src, tgt := side{source, "source"}, side{target, "target"}
	res := &Result{Names: names, VirtualNode: names.VirtualNodeName()}

	if err := checkInstalled(ctx, src.discovery, src, names.target().resource.Resource); err != nil {
		return nil, err
	}
	if err := checkInstalled(ctx, tgt.discovery, tgt, names.source().resource.Resource); err != nil {
		return nil, err
	}
	// A namespaced join needs its namespace on both sides: check both
	// before changing anything, so that a missing one never leaves half a
	// join behind.
	for _, sd := range []side{tgt, src} {
		if err := sd.checkNamespace(ctx, names); err != nil {
			return nil, err
		}
	}
	before := map[ref]*unstructured.Unstructured{}
	for _, sr := range []struct {
		side
		refs []ref
	}{{tgt, names.targetSide()}, {src, names.sourceSide()}} {
		for _, r := range sr.refs {
			obj, err := sr.get(ctx, r)
			if err != nil {
				return nil, err
			}
			if obj != nil && !managed(obj) {
				return nil, fmt.Errorf("%s already exists in %s and was not made by flotillactl (no label %s=%s): choose another %s, or delete it",
					r, sr.side, ManagedByLabel, FieldManager, r.flag)
			}
			before[r] = obj
		}
	}

	// The target: an identity for the source, the Source that grants it
	// its permissions, and a long-lived token.
	if err := tgt.ensureSystemNamespace(ctx, names, res); err != nil {
		return res, err
	}
	if _, err := tgt.apply(ctx, names.serviceAccount(), names.serviceAccountObject(), before[names.serviceAccount()], res); err != nil {
		return res, err
	}
	if _, err := tgt.apply(ctx, names.source(), names.sourceObject(), before[names.source()], res); err != nil {
		return res, err
	}
	applied, err := tgt.apply(ctx, names.tokenSecret(), names.tokenSecretObject(), before[names.tokenSecret()], res)
	if err != nil {
		return res, err
	}
	token, err := tgt.waitForToken(ctx, names.tokenSecret(), applied, opts.timeout())
	if err != nil {
		return res, err
	}
	kubeconfig, err := BuildKubeconfig(names.Target, Credentials{
		Server:        server,
		CAData:        chooseCA(kubeconfigCA, insecure, token.Data[corev1.ServiceAccountRootCAKey]),
		TLSServerName: target.Config.ServerName,
		Token:         string(token.Data[corev1.ServiceAccountTokenKey]),
	})
	if err != nil {
		return res, err
	}

	// The source: the kubeconfig and the Target that uses it.
	if err := src.ensureSystemNamespace(ctx, names, res); err != nil {
		return res, err
	}
	if _, err := src.apply(ctx, names.kubeconfigSecret(), names.kubeconfigSecretObject(kubeconfig), before[names.kubeconfigSecret()], res); err != nil {
		return res, err
	}
	if _, err := src.apply(ctx, names.target(), names.targetObject(), before[names.target()], res); err != nil {
		return res, err
	}
	return res, nil
}

// waitForToken returns the token Secret once kube-controller-manager's
// token controller has filled it, watching it from the version applied.
func (s side) waitForToken(ctx context.Context, r ref, applied *unstructured.Unstructured, timeout time.Duration) (*corev1.Secret, error) {
	filled := func(obj runtime.Object) *corev1.Secret {
		var sec corev1.Secret
		switch o := obj.(type) {
		case *corev1.Secret:
			sec = *o
		case *unstructured.Unstructured:
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &sec); err != nil {
				return nil
			}
		default:
			return nil
		}
		if len(sec.Data[corev1.ServiceAccountTokenKey]) == 0 {
			return nil
		}
		return &sec
	}
	if sec := filled(applied); sec != nil {
		return sec, nil
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	secrets := s.kube.CoreV1().Secrets(r.namespace)
	var token *corev1.Secret
	err := watchFrom(wctx, applied.GetResourceVersion(), func(ctx context.Context, rv string) (watch.Interface, error) {
		return secrets.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", r.name).String(), ResourceVersion: rv})
	}, func(ev watch.Event) (bool, error) {
		if ev.Type == watch.Deleted {
			return false, fmt.Errorf("%s was deleted in %s while waiting for its token (the token controller deletes it if its ServiceAccount is gone): run join again", r, s)
		}
		token = filled(ev.Object)
		return token != nil, nil
	})
	switch {
	case token != nil:
		return token, nil
	case wctx.Err() != nil && ctx.Err() == nil:
		return nil, fmt.Errorf("%s in %s was not given a token within %s: is kube-controller-manager running there, with its service account token controller (--service-account-private-key-file)? (--timeout waits longer)",
			r, s, timeout)
	case err != nil:
		return nil, s.fail(err, "waiting for the token of "+r.String())
	}
	return nil, ctx.Err()
}

// watchFrom watches from resourceVersion on until cond holds, and watches
// again from the last version seen if the server closes the watch (after a
// second if it closed it without an event). A watch error event ends it
// with that error.
func watchFrom(ctx context.Context, resourceVersion string, start func(context.Context, string) (watch.Interface, error), cond watchtools.ConditionFunc) error {
	for {
		w, err := start(ctx, resourceVersion)
		if err != nil {
			return err
		}
		seen := false
		_, err = watchtools.UntilWithoutRetry(ctx, w, func(ev watch.Event) (bool, error) {
			if ev.Type == watch.Error {
				return false, apierrors.FromObject(ev.Object)
			}
			seen = true
			if m, err := meta.Accessor(ev.Object); err == nil {
				resourceVersion = m.GetResourceVersion()
			}
			return cond(ev)
		})
		if !errors.Is(err, watchtools.ErrWatchClosed) {
			return err
		}
		if !seen {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
}

// Unjoin undoes Join with the same options: in the source, the Target (and
// it waits, at most the timeout, for the source's controller-manager to
// release the target and remove its virtual node while the credentials
// still work) and its Secret; in the target, the Source, the token and the
// service account. Objects that are gone already are fine; objects that
// flotillactl did not make are left alone.
func Unjoin(ctx context.Context, source, target *Cluster, opts Options) (*Result, error) {
	names, err := ResolveNames(opts, source.Name, target.Name)
	if err != nil {
		return nil, err
	}
	src, tgt := side{source, "source"}, side{target, "target"}
	res := &Result{Names: names, VirtualNode: names.VirtualNodeName()}
	deleted, err := src.deleteOwned(ctx, names.target(), res)
	if err != nil {
		return res, err
	}
	if deleted {
		if err := src.waitNodeGone(ctx, res, opts.timeout()); err != nil {
			return res, err
		}
	}
	for _, step := range []struct {
		side
		ref
	}{{src, names.kubeconfigSecret()}, {tgt, names.source()}, {tgt, names.tokenSecret()}, {tgt, names.serviceAccount()}} {
		if _, err := step.deleteOwned(ctx, step.ref, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// deleteOwned deletes the object if flotillactl made it, and says whether
// it did.
func (s side) deleteOwned(ctx context.Context, r ref, res *Result) (bool, error) {
	obj, err := s.get(ctx, r)
	if err != nil {
		return false, err
	}
	if obj == nil {
		res.add(s, r.String(), NotFound)
		return false, nil
	}
	if !managed(obj) {
		res.add(s, r.String(), LeftAlone)
		return false, nil
	}
	uid := obj.GetUID()
	err = s.resource(r).Delete(ctx, r.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) {
		res.add(s, r.String(), NotFound)
		return false, nil
	}
	if err != nil {
		return false, s.fail(err, "deleting "+r.String())
	}
	res.add(s, r.String(), Deleted)
	return true, nil
}

// waitNodeGone waits for the removed target's virtual node to go: the
// source's controller-manager removes it once it has released what the
// target held (proxy pods, chaperons through the connection it still has).
// If that does not happen within timeout (no controller-manager running),
// or the user may not read nodes, it says so in a note and returns.
func (s side) waitNodeGone(ctx context.Context, res *Result, timeout time.Duration) error {
	nodes := s.kube.CoreV1().Nodes()
	node, err := nodes.Get(ctx, res.VirtualNode, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case apierrors.IsForbidden(err):
		res.Notes = append(res.Notes, fmt.Sprintf("not waiting for the virtual node %s to go: %v", res.VirtualNode, err))
		return nil
	case err != nil:
		return s.fail(err, "reading node "+res.VirtualNode)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = watchFrom(wctx, node.ResourceVersion, func(ctx context.Context, rv string) (watch.Interface, error) {
		return nodes.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", res.VirtualNode).String(), ResourceVersion: rv})
	}, func(ev watch.Event) (bool, error) { return ev.Type == watch.Deleted, nil })
	switch {
	case err == nil:
		return nil
	case wctx.Err() != nil && ctx.Err() == nil:
		res.Notes = append(res.Notes, fmt.Sprintf("the virtual node %s was still there after %s (is Flotilla's controller-manager running in the source?); "+
			"revoking the source's access to the target now: the target's cleanup controller collects what the source left there", res.VirtualNode, timeout))
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return s.fail(err, "waiting for node "+res.VirtualNode+" to go")
}
