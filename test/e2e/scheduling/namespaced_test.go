package scheduling

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// A namespaced Target, through a Source that grants one namespace only,
// takes the pods of its namespace: the source watches and writes chaperons
// in that namespace alone.
func TestNamespacedTarget(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
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
	virtualNode := "admiralty-" + ns + "-team"

	pod := elected(ns, "scoped", "100m", map[string]string{
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"nodeSelector":{"kubernetes.io/hostname":"` + virtualNode + `"}}`,
	})
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
