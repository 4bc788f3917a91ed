package isolation

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/plugins/proxy"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

const enforceLabel = "pod-security.kubernetes.io/enforce"

func privileged(pod *corev1.Pod) *corev1.Pod {
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	return pod
}

// A source cannot run a privileged pod in a target namespace whose Pod
// Security level is baseline: the source pod stays Pending with an Event
// naming the violation, other pods there still run, and a privileged pod
// free to go elsewhere runs in the target that allows it.
func TestPodSecurityOfTheTargetHolds(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	a := tenantA(t)
	shared, other := cluster(t, sharedTarget), cluster(t, onlyATarget)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.ns}}
	g.Expect(shared.Client.Patch(ctx, ns, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"`+enforceLabel+`":"baseline"}}}`)))).To(Succeed())
	t.Cleanup(func() {
		_ = shared.Client.Patch(context.Background(), ns, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+enforceLabel+`":null}}}`)))
	})

	refused := privileged(pinned(a.ns, "privileged", shared.Name))
	plain := pinned(a.ns, "plain", shared.Name)
	free := privileged(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "privileged-anywhere",
		Annotations: map[string]string{protocol.ElectAnnotation: ""}}, Spec: framework.PodSpec()})
	for _, pod := range []*corev1.Pod{refused, plain, free} {
		create(t, a.source, pod)
	}

	t.Run("a privileged pod is refused by the target, with an Event", func(t *testing.T) {
		g := NewWithT(t)
		violation := And(
			ContainSubstring(a.ns+"/"+shared.Name+": cannot create the candidate pod"),
			ContainSubstring(`violates PodSecurity "baseline:latest": privileged`),
		)
		var notes []string
		g.Eventually(func(g Gomega) {
			notes = events(g, ctx, a.source, refused, proxy.EventReasonNoTarget)
			g.Expect(notes).To(ContainElement(violation))
		}, framework.PodTimeout, framework.Interval).Should(Succeed())
		t.Logf("Events %s on the source pod: %q", proxy.EventReasonNoTarget, notes)
		g.Consistently(func(g Gomega) {
			g.Expect(a.source.Client.Get(ctx, client.ObjectKeyFromObject(refused), refused)).To(Succeed())
			g.Expect(refused.Spec.NodeName).To(BeEmpty())
			g.Expect(candidates(g, ctx, shared, refused)).To(BeEmpty())
		}, framework.ConsistentlyDuration, framework.Interval).Should(Succeed())
	})
	t.Run("a pod that meets the level runs there", func(t *testing.T) {
		NewWithT(t).Eventually(func(g Gomega) { expectDelegated(g, ctx, a.source, plain, shared) },
			framework.PodTimeout, framework.Interval).Should(Succeed())
	})
	t.Run("a privileged pod free to go elsewhere runs in the target that allows it", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func(g Gomega) { expectDelegated(g, ctx, a.source, free, other) },
			framework.PodTimeout, framework.Interval).Should(Succeed())
		g.Expect(candidates(g, ctx, shared, free)).To(BeEmpty())
	})
}

// A Secret of a source reaches a target only when a pod placed there
// references it: not when no pod does, nor when the pod that does runs in
// another target, nor in another source's namespace; the copy goes when the
// pod (and its Deployment) goes.
func TestSecretsFollowOnlyTheirPods(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	a := tenantA(t)
	shared, other := cluster(t, sharedTarget), cluster(t, onlyATarget)
	for _, name := range []string{"s1", "s2", "s3"} {
		create(t, a.source, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: name},
			StringData: map[string]string{"key": name + " of " + a.name}})
	}
	template := withSecret(pinned(a.ns, "", shared.Name), "s1")
	template.Labels = map[string]string{"app": "s1-user"}
	deployment := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "s1-user"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: template.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: template.ObjectMeta, Spec: template.Spec}}}
	create(t, a.source, deployment)
	s3User := withSecret(pinned(a.ns, "s3-user", other.Name), "s3")
	create(t, a.source, s3User)
	g.Eventually(func(g Gomega) {
		var pods corev1.PodList
		g.Expect(a.source.Client.List(ctx, &pods, client.InNamespace(a.ns), client.MatchingLabels(template.Labels))).To(Succeed())
		g.Expect(pods.Items).To(HaveLen(1))
		expectDelegated(g, ctx, a.source, &pods.Items[0], shared)
		expectDelegated(g, ctx, a.source, s3User, other)
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	cases := []struct {
		target *framework.Cluster
		ns     string
		secret string
		there  bool
	}{
		{shared, a.ns, "s1", true},
		{shared, a.ns, "s2", false},
		{shared, a.ns, "s3", false},
		{other, a.ns, "s1", false},
		{other, a.ns, "s2", false},
		{other, a.ns, "s3", true},
		{shared, nsB, "s1", false},
		{shared, nsB, "s3", false},
	}
	t.Run("only where a pod placed there references them", func(t *testing.T) {
		g := NewWithT(t)
		check := func(g Gomega) {
			for _, tc := range cases {
				s := &corev1.Secret{}
				err := tc.target.Client.Get(ctx, types.NamespacedName{Namespace: tc.ns, Name: tc.secret}, s)
				if tc.there {
					g.Expect(err).NotTo(HaveOccurred(), "%s in %s/%s", tc.secret, tc.target.Name, tc.ns)
					g.Expect(s.Labels).To(HaveKey(protocol.FollowerLabel))
					g.Expect(s.Data).To(HaveKeyWithValue("key", []byte(tc.secret+" of "+a.name)))
				} else {
					g.Expect(absent(err)).To(BeTrue(), "%s in %s/%s: want NotFound, got %v", tc.secret, tc.target.Name, tc.ns, err)
				}
			}
		}
		g.Eventually(check, framework.ShortTimeout, framework.Interval).Should(Succeed())
		g.Consistently(check, framework.ConsistentlyDuration, framework.Interval).Should(Succeed())
	})
	t.Run("the copy goes with its pod", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(a.source.Client.Delete(ctx, deployment, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
		start := time.Now()
		g.Eventually(func(g Gomega) {
			err := shared.Client.Get(ctx, types.NamespacedName{Namespace: a.ns, Name: "s1"}, &corev1.Secret{})
			g.Expect(absent(err)).To(BeTrue(), "s1 still in %s after its pod went (%v)", shared.Name, err)
		}, framework.PodTimeout, framework.Interval).Should(Succeed())
		t.Logf("s1 left %s %s after its Deployment was deleted", shared.Name, time.Since(start).Round(100*time.Millisecond))
		g.Expect(other.Client.Get(ctx, types.NamespacedName{Namespace: a.ns, Name: "s3"}, &corev1.Secret{})).To(Succeed(),
			"s3 left %s while its pod runs there", other.Name)
	})
}
