package scheduling

import (
	"context"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/test/framework"
)

// Annotations set on the proxy pod after scheduling (as Argo does to stop
// a step) reach the delegate, annotations set on the delegate come back,
// removals too, and nothing keeps writing once they agree.
func TestAnnotationsBothWays(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	pod := elected(ns, "step", "100m", map[string]string{"team": "a"})
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
	var target string
	g.Eventually(func(g Gomega) { target = expectDelegated(g, ctx, pod) }, framework.PodTimeout, framework.Interval).Should(Succeed())
	tc := cluster(t, target)
	delegate := func(g Gomega) *corev1.Pod {
		d := candidatesOf(g, ctx, ns, pod.UID)[target]
		g.Expect(d).To(HaveLen(1))
		return &d[0]
	}
	g.Expect(delegate(g).Annotations).To(HaveKeyWithValue("team", "a"))

	const argo = "workflows.argoproj.io/execution"
	patchAnnotations(ctx, g, src, pod, map[string]any{argo: `{"deadline":"0001-01-01T00:00:00Z"}`})
	g.Eventually(func(g Gomega) {
		g.Expect(delegate(g).Annotations).To(HaveKeyWithValue(argo, `{"deadline":"0001-01-01T00:00:00Z"}`))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	const seen = "target.example.com/seen"
	d := delegate(g)
	patchAnnotations(ctx, g, tc, d, map[string]any{seen: "yes"})
	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Annotations).To(HaveKeyWithValue(seen, "yes"))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	patchAnnotations(ctx, g, src, pod, map[string]any{"team": nil})
	patchAnnotations(ctx, g, tc, d, map[string]any{seen: nil})
	g.Eventually(func(g Gomega) {
		g.Expect(delegate(g).Annotations).NotTo(HaveKey("team"))
		g.Expect(delegate(g).Annotations).To(HaveKey(argo))
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Annotations).NotTo(HaveKey(seen))
		g.Expect(pod.Annotations).To(HaveKey(argo))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	// Settled: no write loop between the two sides.
	proxyVersion, delegateVersion := pod.ResourceVersion, delegate(g).ResourceVersion
	g.Consistently(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.ResourceVersion).To(Equal(proxyVersion), "the proxy pod keeps changing")
		g.Expect(delegate(g).ResourceVersion).To(Equal(delegateVersion), "the delegate keeps changing")
	}, framework.ConsistentlyDuration, framework.Interval).Should(Succeed())
}

// patchAnnotations merge-patches obj's annotations in c (nil removes).
func patchAnnotations(ctx context.Context, g Gomega, c *framework.Cluster, obj client.Object, annotations map[string]any) {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, body))).To(Succeed())
}
