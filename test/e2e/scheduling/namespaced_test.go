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
	g.Eventually(func(g Gomega) {
		g.Expect(events(g, ctx, src, pod, targetctl.ReasonTargetRemoved)).NotTo(BeEmpty())
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Consistently(func(g Gomega) { expectDelegated(g, ctx, other) }, framework.ConsistentlyDuration, framework.Interval).Should(Succeed())
}

// A Target deleted while its cluster is down leaves its chaperon and
// delegate there; when the cluster comes back, they are collected (the
// source no longer renews its Lease for that Target), and the pods of the
// source's other Target to the same cluster are not touched.
func TestTargetDeletedWhileItsClusterIsDown(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	t1 := fleet.Targets[0]
	target, virtualNode := teamTarget(t, ns)
	pod := pinned(ns, "team-pod", virtualNode)
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
	other := pinned(ns, "other", "admiralty-"+t1.Name)
	g.Expect(src.Client.Create(ctx, other)).To(Succeed())
	var kept map[string][]corev1.Pod
	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Spec.NodeName).To(Equal(virtualNode))
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		g.Expect(chaperonsOf(g, ctx, ns, pod.UID)).To(Equal(map[string]int{t1.Name: 1}))
		expectDelegated(g, ctx, other)
		kept = candidatesOf(g, ctx, ns, other.UID)
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	g.Expect(sandbox.KillProcess(t1.Name, "kube-apiserver")).To(Succeed())
	restarted := false
	defer func() {
		if !restarted {
			_ = sandbox.StartProcess(context.Background(), t1.Name, "kube-apiserver")
		}
	}()
	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(target), target)).To(Succeed())
		g.Expect(meta.IsStatusConditionFalse(target.Status.Conditions, multiclusterv1alpha1.ConditionReady)).To(BeTrue())
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Expect(src.Client.Delete(ctx, target)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := src.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the removed target's proxy pod is still there (%v)", err)
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	g.Expect(sandbox.StartProcess(ctx, t1.Name, "kube-apiserver")).To(Succeed())
	restarted = true
	g.Eventually(func(g Gomega) {
		g.Expect(chaperonsOf(g, ctx, ns, pod.UID)).To(BeEmpty(), "the removed target's chaperon is still in %s", t1.Name)
		g.Expect(candidatesOf(g, ctx, ns, pod.UID)).To(BeEmpty(), "the removed target's delegate is still in %s", t1.Name)
	}, framework.LongTimeout, framework.Interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		expectDelegated(g, ctx, other)
		now := candidatesOf(g, ctx, ns, other.UID)
		g.Expect(now[t1.Name][0].UID).To(Equal(kept[t1.Name][0].UID), "the other Target's delegate was replaced")
	}, framework.ConsistentlyDuration, framework.Interval).Should(Succeed())
}
