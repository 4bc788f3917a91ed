package isolation

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/controllers/feedback"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// work is what a tenant runs in the shared target, as its admin sees it.
type work struct {
	proxy     *corev1.Pod
	chaperon  *multiclusterv1alpha1.PodChaperon
	delegate  *corev1.Pod
	secret    *corev1.Secret
	configMap *corev1.ConfigMap
}

// runWork starts, in the tenant's source, an elected pod that references a
// Secret and a ConfigMap and may only go to target, and returns it and its
// chaperon, delegate and followers there once it runs.
func runWork(t *testing.T, tn tenant, target *framework.Cluster) *work {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	prefix := strings.ToLower(tn.name)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: prefix + "-creds"},
		StringData: map[string]string{"password": "only " + tn.name + " may know"}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: prefix + "-env"}, Data: map[string]string{"OWNER": tn.name}}
	create(t, tn.source, secret)
	create(t, tn.source, cm)
	pod := withConfigMap(withSecret(pinned(tn.ns, prefix+"-app", target.Name), secret.Name), cm.Name)
	create(t, tn.source, pod)
	w := &work{proxy: pod, secret: &corev1.Secret{}, configMap: &corev1.ConfigMap{}}
	g.Eventually(func(g Gomega) {
		w.delegate, w.chaperon = expectDelegated(g, ctx, tn.source, pod, target)
		g.Expect(target.Client.Get(ctx, client.ObjectKeyFromObject(secret), w.secret)).To(Succeed())
		g.Expect(target.Client.Get(ctx, client.ObjectKeyFromObject(cm), w.configMap)).To(Succeed())
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Expect(w.secret.Labels).To(HaveKey(protocol.FollowerLabel))
	g.Expect(w.configMap.Labels).To(HaveKey(protocol.FollowerLabel))
	return w
}

// access is one thing an identity tries in the target, and whether it
// must be allowed (otherwise it must be refused as Forbidden).
type access struct {
	name    string
	try     func(ctx context.Context) error
	allowed bool
}

const touchedLabel = "e2e.flotilla.io/touched"

// objectAccess tries get, list, watch, update, patch and delete on obj (the
// writes as dry runs) as cl; allowed names the verbs that must pass.
func objectAccess(cl client.WithWatch, admin client.Client, what string, obj client.Object, list client.ObjectList, allowed ...string) []access {
	ns, name := obj.GetNamespace(), obj.GetName()
	fresh := func() client.Object { return obj.DeepCopyObject().(client.Object) }
	// touch is the object as it is now (read as admin: the identity may not
	// read it), labelled.
	touch := func(ctx context.Context) (client.Object, error) {
		o := fresh()
		if err := admin.Get(ctx, client.ObjectKeyFromObject(obj), o); err != nil {
			return nil, err
		}
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[touchedLabel] = "true"
		o.SetLabels(labels)
		return o, nil
	}
	verbs := []struct {
		verb string
		try  func(ctx context.Context) error
	}{
		{"get", func(ctx context.Context) error { return cl.Get(ctx, client.ObjectKeyFromObject(obj), fresh()) }},
		{"list", func(ctx context.Context) error {
			return cl.List(ctx, list.DeepCopyObject().(client.ObjectList), client.InNamespace(ns))
		}},
		{"watch", func(ctx context.Context) error {
			w, err := cl.Watch(ctx, list.DeepCopyObject().(client.ObjectList), client.InNamespace(ns),
				client.MatchingFields{"metadata.name": name})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"update", func(ctx context.Context) error {
			o, err := touch(ctx)
			if err != nil {
				return fmt.Errorf("reading %s as admin: %w", what, err)
			}
			return cl.Update(ctx, o, client.DryRunAll)
		}},
		{"patch", func(ctx context.Context) error {
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, touchedLabel)
			return cl.Patch(ctx, fresh(), client.RawPatch(types.MergePatchType, []byte(patch)), client.DryRunAll)
		}},
		{"delete", func(ctx context.Context) error {
			return cl.Delete(ctx, fresh(), client.DryRunAll, client.Preconditions{UID: ptrTo(obj.GetUID())})
		}},
	}
	out := make([]access, 0, len(verbs))
	for _, v := range verbs {
		ok := false
		for _, a := range allowed {
			ok = ok || a == v.verb
		}
		out = append(out, access{name: fmt.Sprintf("%s %s %s/%s", v.verb, what, ns, name), try: v.try, allowed: ok})
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

// streamAccess reads the logs of, execs into, attaches to and
// port-forwards to pod as the identity of as; when allowed, each must
// also reach the pod (kwok's exec says which cluster it runs in, its
// port-forward echoes).
func streamAccess(as *framework.Cluster, pod *corev1.Pod, allowed bool) []access {
	ns, name := pod.Namespace, pod.Name
	where := fmt.Sprintf("%s/%s", ns, name)
	return []access{
		{"pods/log of " + where, func(ctx context.Context) error {
			out, err := as.Kubectl(ctx, "logs", "-n", ns, name)
			if err == nil && !strings.Contains(out, logLine) {
				return fmt.Errorf("logs without %q: %s", logLine, out)
			}
			return err
		}, allowed},
		{"pods/exec into " + where, func(ctx context.Context) error {
			out, err := as.Kubectl(ctx, "exec", "-n", ns, name, "--", "sh", "-c", "echo exec-ok in $FLOTILLA_SANDBOX_CLUSTER")
			if err == nil && strings.TrimSpace(out) != "exec-ok in "+as.Name {
				return fmt.Errorf("exec printed %q", out)
			}
			return err
		}, allowed},
		{"pods/attach to " + where, func(ctx context.Context) error {
			// attach streams what the container writes from now on.
			line := fmt.Sprintf("written for an attach to %s at %s", where, time.Now().Format(time.RFC3339Nano))
			wctx, stop := context.WithCancel(ctx)
			defer stop()
			go func() {
				for {
					_ = as.AppendContainerLog(line)
					select {
					case <-wctx.Done():
						return
					case <-time.After(framework.Interval):
					}
				}
			}()
			_, err := as.KubectlStreamUntil(ctx, line, "attach", "-n", ns, name, "-c", "main")
			return err
		}, allowed},
		{"pods/portforward to " + where, func(ctx context.Context) error {
			echoed, err := as.PortForwardEcho(ctx, ns, name, 8080, "ping\n")
			if err == nil && echoed != "ping\n" {
				return fmt.Errorf("port-forward echoed %q", echoed)
			}
			return err
		}, allowed},
	}
}

// logLine is the first line that every sandbox container logs.
const logLine = "Hello from the Flotilla sandbox"

// Each source's identity in the shared target (the token of its Target's
// kubeconfig) can do what the protocol needs with its own chaperons,
// delegates and followers, and nothing with the other source's: every
// attempt is Forbidden, for that identity.
func TestSourcesCannotReachEachOther(t *testing.T) {
	shared := cluster(t, sharedTarget)
	a, b := tenantA(t), tenantB(t)
	works := map[string]*work{a.name: runWork(t, a, shared), b.name: runWork(t, b, shared)}

	for _, pair := range []struct{ actor, other tenant }{{a, b}, {b, a}} {
		t.Run(pair.actor.name+" on "+pair.other.name+"'s work", func(t *testing.T) {
			g := NewWithT(t)
			as := pair.actor.in(t, shared)
			cl, err := client.NewWithWatch(as.RESTConfig, client.Options{Scheme: framework.Scheme})
			g.Expect(err).NotTo(HaveOccurred())
			mine, theirs := works[pair.actor.name], works[pair.other.name]

			var cases []access
			// Its own: chaperons are its to manage, delegates to read and
			// stream from, followers to write (never to read).
			cases = append(cases, objectAccess(cl, shared.Client, "own PodChaperon", mine.chaperon, &multiclusterv1alpha1.PodChaperonList{},
				"get", "list", "watch", "update", "patch", "delete")...)
			cases = append(cases, objectAccess(cl, shared.Client, "own delegate", mine.delegate, &corev1.PodList{}, "get", "list", "watch")...)
			cases = append(cases, objectAccess(cl, shared.Client, "own followed Secret", mine.secret, &corev1.SecretList{}, "update", "patch", "delete")...)
			cases = append(cases, objectAccess(cl, shared.Client, "own followed ConfigMap", mine.configMap, &corev1.ConfigMapList{}, "update", "patch", "delete")...)
			cases = append(cases, streamAccess(as, mine.delegate, true)...)
			// The other's: nothing.
			cases = append(cases, objectAccess(cl, shared.Client, "other's PodChaperon", theirs.chaperon, &multiclusterv1alpha1.PodChaperonList{})...)
			cases = append(cases, objectAccess(cl, shared.Client, "other's delegate", theirs.delegate, &corev1.PodList{})...)
			cases = append(cases, objectAccess(cl, shared.Client, "other's followed Secret", theirs.secret, &corev1.SecretList{})...)
			cases = append(cases, objectAccess(cl, shared.Client, "other's followed ConfigMap", theirs.configMap, &corev1.ConfigMapList{})...)
			cases = append(cases, streamAccess(as, theirs.delegate, false)...)
			otherNS := pair.other.ns
			cases = append(cases,
				access{"create a PodChaperon in the other's namespace", func(ctx context.Context) error {
					ch := &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: otherNS, Name: "intruder"}, Spec: framework.PodSpec()}
					return cl.Create(ctx, ch, client.DryRunAll)
				}, false},
				access{"create a Secret in the other's namespace", func(ctx context.Context) error {
					s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: otherNS, Name: theirs.secret.Name}}
					return cl.Create(ctx, s, client.DryRunAll)
				}, false},
			)
			// Nothing cluster-wide either, which would include the other's.
			for what, list := range map[string]client.ObjectList{
				"PodChaperons": &multiclusterv1alpha1.PodChaperonList{}, "Pods": &corev1.PodList{},
				"Secrets": &corev1.SecretList{}, "ConfigMaps": &corev1.ConfigMapList{},
			} {
				cases = append(cases,
					access{"list " + what + " in every namespace", func(ctx context.Context) error { return cl.List(ctx, list) }, false},
					access{"watch " + what + " in every namespace", func(ctx context.Context) error {
						w, err := cl.Watch(ctx, list)
						if err == nil {
							w.Stop()
						}
						return err
					}, false})
			}

			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					err := tc.try(t.Context())
					if tc.allowed {
						NewWithT(t).Expect(err).NotTo(HaveOccurred())
					} else {
						NewWithT(t).Expect(refusedTo(err, pair.actor.user())).To(BeTrue(),
							"want Forbidden for %s, got %v", pair.actor.user(), err)
					}
				})
			}
		})
	}

	// A user of source A reaches delegates only through A's virtual node,
	// and the virtual node only with A's identity: exec and logs on A's
	// proxy pod reach A's delegate; a pod of another namespace of A bound
	// by hand to A's virtual node, named as B's pod, fails at home and its
	// logs are refused by the target (A's identity may not enter B's
	// namespace).
	t.Run("through A's virtual node", func(t *testing.T) {
		g := NewWithT(t)
		ctx := t.Context()
		proxy := works[a.name].proxy
		out, err := a.source.Kubectl(ctx, "exec", "-n", proxy.Namespace, proxy.Name, "--", "sh", "-c", "echo exec-ok in $FLOTILLA_SANDBOX_CLUSTER")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strings.TrimSpace(out)).To(Equal("exec-ok in " + shared.Name))
		out, err = a.source.Kubectl(ctx, "logs", "-n", proxy.Namespace, proxy.Name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(ContainSubstring(logLine))

		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.ns}}
		create(t, a.source, ns)
		g.Expect(a.source.WaitDefaultServiceAccount(ctx, b.ns)).To(Succeed())
		forged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: works[b.name].proxy.Name}, Spec: framework.PodSpec()}
		forged.Spec.SchedulerName = protocol.ProxySchedulerName
		forged.Spec.NodeName = framework.VirtualNode(a.ns, shared.Name)
		create(t, a.source, forged)
		// No delegate can run for it: it fails, as a pod its kubelet
		// refuses (pkg/controllers/feedback).
		g.Eventually(func(g Gomega) {
			g.Expect(a.source.Client.Get(ctx, client.ObjectKeyFromObject(forged), forged)).To(Succeed())
			g.Expect(forged.Status.Phase).To(Equal(corev1.PodFailed))
			g.Expect(forged.Status.Reason).To(Equal(feedback.ReasonTargetNamespace))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
		// Its logs (which kubectl still asks the virtual node for) are
		// refused by the target all the same.
		for _, args := range [][]string{
			{"logs", "-n", b.ns, forged.Name},
		} {
			out, err := a.source.Kubectl(ctx, args...)
			g.Expect(err).To(HaveOccurred(), "kubectl %s printed %q", args[0], out)
			g.Expect(err.Error()).To(And(ContainSubstring("forbidden"), ContainSubstring(a.user()), ContainSubstring(`namespace "`+b.ns+`"`)),
				"kubectl %s on a pod bound by hand to A's virtual node", args[0])
		}
	})
}

// A source writes its followers without reading them, but the API server
// answers a write with the object written: the target's admission
// policies (pkg/controllers/source.Policies) keep a source's writes to what
// Flotilla made for a source, so no write, not even a no-op patch or a dry
// run, reads or changes the target's own objects in the source's
// namespace.
func TestSourceCannotReadTheTargetsOwnObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	shared := cluster(t, sharedTarget)
	a := tenantA(t)
	const secretValue = "target-admin-only"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "target-owned"},
		StringData: map[string]string{"token": secretValue}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "target-owned"}, Data: map[string]string{"token": secretValue}}
	create(t, shared, secret)
	create(t, shared, cm)
	as := a.in(t, shared)
	cl, err := client.New(as.RESTConfig, client.Options{Scheme: framework.Scheme})
	g.Expect(err).NotTo(HaveOccurred())

	// The follow controller's own probe: a JSON patch that only tests a
	// label, which answers with the object when the test passes.
	probe := func(obj client.Object) func(context.Context) error {
		return func(ctx context.Context) error {
			patch := `[{"op":"test","path":"/metadata/name","value":"target-owned"}]`
			return cl.Patch(ctx, obj.DeepCopyObject().(client.Object), client.RawPatch(types.JSONPatchType, []byte(patch)))
		}
	}
	emptyPatch := func(obj client.Object) func(context.Context) error {
		return func(ctx context.Context) error {
			return cl.Patch(ctx, obj.DeepCopyObject().(client.Object), client.RawPatch(types.MergePatchType, []byte(`{}`)), client.DryRunAll)
		}
	}
	update := func(obj client.Object) func(context.Context) error {
		return func(ctx context.Context) error {
			o := obj.DeepCopyObject().(client.Object)
			if err := shared.Client.Get(ctx, client.ObjectKeyFromObject(obj), o); err != nil {
				return fmt.Errorf("reading as admin: %w", err)
			}
			o.SetLabels(map[string]string{protocol.FollowerLabel: "forged"})
			return cl.Update(ctx, o, client.DryRunAll)
		}
	}
	del := func(obj client.Object) func(context.Context) error {
		return func(ctx context.Context) error {
			return cl.Delete(ctx, obj.DeepCopyObject().(client.Object), client.DryRunAll)
		}
	}
	for _, obj := range []client.Object{secret, cm} {
		kind := fmt.Sprintf("%T", obj)[len("*v1."):]
		for name, try := range map[string]func(context.Context) error{
			"a no-op JSON patch": probe(obj), "an empty merge patch (dry run)": emptyPatch(obj),
			"an update labelling it a follower (dry run)": update(obj), "a delete (dry run)": del(obj),
		} {
			t.Run(name+" of the target's "+kind, func(t *testing.T) {
				g := NewWithT(t)
				// The policy's parameters (the Sources) reach the API
				// server's admission through an informer.
				g.Eventually(func(g Gomega) {
					err := try(t.Context())
					g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
					g.Expect(err.Error()).To(ContainSubstring("may update or delete only what Flotilla made for a source"))
					g.Expect(err.Error()).NotTo(ContainSubstring(secretValue))
				}, framework.ShortTimeout, framework.Interval).Should(Succeed())
			})
		}
	}
	// Untouched.
	have := &corev1.Secret{}
	g.Expect(shared.Client.Get(ctx, client.ObjectKeyFromObject(secret), have)).To(Succeed())
	g.Expect(have.Labels).NotTo(HaveKey(protocol.FollowerLabel))
	g.Expect(string(have.Data["token"])).To(Equal(secretValue))
}
