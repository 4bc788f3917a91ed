package scheduling

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	targetctl "github.com/flotilla-io/flotilla/pkg/controllers/target"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// teamTarget makes a namespaced Target "team" in ns, to target-1 through a
// Source there that grants ns only, and returns it and its virtual node.
func teamTarget(t *testing.T, ns string) (*multiclusterv1alpha1.Target, string) {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	t1 := fleet.Targets[0]
	source := &multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team"},
		Spec: multiclusterv1alpha1.SourceSpec{ServiceAccountName: "team-source"}}
	token, err := t1.ServiceAccountToken(ctx, ns, "team-source")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(t1.Client.Create(ctx, source)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(t1.Client.Get(ctx, client.ObjectKeyFromObject(source), source)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(source.Status.Conditions, multiclusterv1alpha1.ConditionReady)).To(BeTrue())
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	kubeconfig, err := t1.KubeconfigFor(token, "team")
	g.Expect(err).NotTo(HaveOccurred())
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team-kubeconfig"},
		Data: map[string][]byte{"config": kubeconfig}}
	g.Expect(fleet.Source.Client.Create(ctx, secret)).To(Succeed())
	target := &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team"},
		Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: secret.Name}}}
	g.Expect(fleet.Source.Client.Create(ctx, target)).To(Succeed())
	t.Cleanup(func() { _ = fleet.Source.Client.Delete(context.Background(), target) })
	return target, "admiralty-" + ns + "-team"
}

// pinned is an elected pod that only the virtual node may take.
func pinned(ns, name, virtualNode string) *corev1.Pod {
	return elected(ns, name, "100m", map[string]string{
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"nodeSelector":{"kubernetes.io/hostname":"` + virtualNode + `"}}`,
	})
}

// A namespaced Target, through a Source that grants one namespace only,
// takes the pods of its namespace: the source watches and writes chaperons
// in that namespace alone.
func TestNamespacedTarget(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	t1 := fleet.Targets[0]
	_, virtualNode := teamTarget(t, ns)

	pod := pinned(ns, "scoped", virtualNode)
	g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Spec.NodeName).To(Equal(virtualNode))
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		candidates := candidatesOf(g, ctx, ns, pod.UID)
		g.Expect(keys(candidates)).To(Equal([]string{t1.Name}))
		g.Expect(candidates[t1.Name]).To(HaveLen(1))
		g.Expect(t1.Nodes).To(ContainElement(candidates[t1.Name][0].Spec.NodeName))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
}

// Removing a Target releases what it held: its chaperons (and so its
// delegates) in its cluster, and its proxy pods, whose finalizers go with
// them; the other targets' pods are not touched.
func TestTargetRemovalReleasesItsPods(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	target, virtualNode := teamTarget(t, ns)
	pod := pinned(ns, "team-pod", virtualNode)
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
	other := elected(ns, "other", "100m", map[string]string{
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"nodeSelector":{"kubernetes.io/hostname":"admiralty-` + fleet.Targets[1].Name + `"}}`,
	})
	g.Expect(src.Client.Create(ctx, other)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Spec.NodeName).To(Equal(virtualNode))
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		expectDelegated(g, ctx, other)
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	g.Expect(src.Client.Delete(ctx, target)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := src.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the removed target's pod is still there (%v)", err)
		g.Expect(chaperonsOf(g, ctx, ns, pod.UID)).To(BeEmpty())
		g.Expect(candidatesOf(g, ctx, ns, pod.UID)).To(BeEmpty())
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Expect(events(g, ctx, src, pod, targetctl.ReasonTargetRemoved)).NotTo(BeEmpty())
	g.Consistently(func(g Gomega) { expectDelegated(g, ctx, other) }, framework.ConsistentlyDuration, framework.Interval).Should(Succeed())
}
