package scheduling

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/controllers/service"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// A Service selecting an elected Deployment, and its Ingress, are copied
// to each target that runs replicas (selecting this source's delegates,
// with the target's own cluster IP, marked global), leave a target that no
// longer runs any, and go when deleted.
func TestServiceAndIngressFollowPods(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	kubeSystem := &corev1.Namespace{}
	g.Expect(src.Client.Get(ctx, types.NamespacedName{Name: metav1.NamespaceSystem}, kubeSystem)).To(Succeed())
	sourceID := string(kubeSystem.UID)

	d := framework.Deployment(ns, "web", 2)
	d.Spec.Template.Annotations = map[string]string{
		protocol.ElectAnnotation: "",
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"topologySpreadConstraints":[{"maxSkew":1,` +
			`"topologyKey":"multicluster.admiralty.io/cluster-name","whenUnsatisfiable":"DoNotSchedule",` +
			`"labelSelector":{"matchLabels":{"app":"web"}}}]}`,
	}
	g.Expect(src.Client.Create(ctx, d)).To(Succeed())
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	g.Expect(src.Client.Create(ctx, svc)).To(Succeed())
	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "web.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web",
					Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
	g.Expect(src.Client.Create(ctx, ing)).To(Succeed())

	expectCopies := func(g Gomega, in map[string]bool) {
		for _, tc := range fleet.Targets {
			copied := &corev1.Service{}
			err := tc.Client.Get(ctx, client.ObjectKeyFromObject(svc), copied)
			copiedIng := &networkingv1.Ingress{}
			ingErr := tc.Client.Get(ctx, client.ObjectKeyFromObject(ing), copiedIng)
			if !in[tc.Name] {
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "service copy in %s, which runs no replica (%v)", tc.Name, err)
				g.Expect(apierrors.IsNotFound(ingErr)).To(BeTrue(), "ingress copy in %s, which runs no replica (%v)", tc.Name, ingErr)
				continue
			}
			g.Expect(err).NotTo(HaveOccurred(), "service copy in %s", tc.Name)
			g.Expect(copied.Spec.Selector).To(Equal(map[string]string{"app": "web", protocol.SourceClusterLabel: sourceID}))
			g.Expect(copied.Spec.ClusterIP).NotTo(BeEmpty())
			g.Expect(copied.Spec.Ports).To(HaveLen(1))
			g.Expect(copied.Spec.Ports[0].TargetPort).To(Equal(intstr.FromInt32(8080)))
			g.Expect(copied.Labels).To(HaveKeyWithValue("tier", "front"))
			g.Expect(copied.Annotations).To(HaveKeyWithValue(service.GlobalAnnotation, "true"))
			g.Expect(copied.Annotations).To(HaveKeyWithValue(service.CiliumGlobalAnnotation, "true"))
			g.Expect(ingErr).NotTo(HaveOccurred(), "ingress copy in %s", tc.Name)
			g.Expect(copiedIng.Spec.Rules).To(HaveLen(1))
			g.Expect(copiedIng.Spec.Rules[0].Host).To(Equal("web.example.com"))
			// The copy selects the delegates there.
			var pods corev1.PodList
			g.Expect(tc.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(copied.Spec.Selector))).To(Succeed())
			g.Expect(pods.Items).NotTo(BeEmpty(), "the copy in %s selects no delegate", tc.Name)
		}
	}
	g.Eventually(func(g Gomega) {
		expectCopies(g, map[string]bool{framework.TargetName(1): true, framework.TargetName(2): true})
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	// One replica left: one target keeps the copies.
	// A patch: the Deployment controller updates the status meanwhile.
	g.Expect(src.Client.Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":1}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		var proxies corev1.PodList
		g.Expect(src.Client.List(ctx, &proxies, client.InNamespace(ns), client.MatchingLabels{"app": "web"})).To(Succeed())
		g.Expect(proxies.Items).To(HaveLen(1))
		running := expectDelegated(g, ctx, &proxies.Items[0])
		expectCopies(g, map[string]bool{running: true})
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	g.Expect(src.Client.Delete(ctx, ing)).To(Succeed())
	g.Expect(src.Client.Delete(ctx, svc)).To(Succeed())
	g.Eventually(func(g Gomega) { expectCopies(g, nil) }, framework.ShortTimeout, framework.Interval).Should(Succeed())
}
