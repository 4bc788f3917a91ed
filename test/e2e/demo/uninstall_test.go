package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// checkUninstall runs `make demo-uninstall` (helm uninstall in every
// cluster) on the running demo, with proxy pods running, one waiting
// (fits nowhere) and a followed ConfigMap, and checks that nothing is left
// behind: no pod holds Flotilla's finalizer, no chaperon, delegate or
// follower is left in the targets, the Deployment runs at home again, and
// the demo namespace can be deleted in every cluster.
func checkUninstall(t *testing.T, s *framework.Sandbox, root, dir, bin string) {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	src, err := s.Cluster(framework.SourceCluster)
	g.Expect(err).NotTo(HaveOccurred())
	var targets []*framework.Cluster
	for _, name := range s.Targets() {
		c, err := s.Cluster(name)
		g.Expect(err).NotTo(HaveOccurred())
		targets = append(targets, c)
	}

	// A pod that follows a ConfigMap to its target, and one that fits
	// nowhere (a proxy pod without owner, waiting).
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "settings"}, Data: map[string]string{"k": "v"}}
	g.Expect(src.Client.Create(ctx, cm)).To(Succeed())
	follower := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "with-settings",
		Annotations: map[string]string{protocol.ElectAnnotation: ""}}, Spec: framework.PodSpec()}
	follower.Spec.Volumes = []corev1.Volume{{Name: "settings", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name}}}}}
	waiting := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "fits-nowhere",
		Annotations: map[string]string{protocol.ElectAnnotation: ""}}, Spec: framework.PodSpec()}
	waiting.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000")}
	for _, p := range []*corev1.Pod{follower, waiting} {
		g.Expect(src.Client.Create(ctx, p)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(follower), follower)).To(Succeed())
		g.Expect(follower.Status.Phase).To(Equal(corev1.PodRunning))
		copies := 0
		for _, c := range targets {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{}); err == nil {
				copies++
			}
		}
		g.Expect(copies).To(Equal(1), "the ConfigMap followed its pod to one target")
	}, framework.LongTimeout, framework.Interval).Should(Succeed())
	g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(waiting), waiting)).To(Succeed())
	g.Expect(waiting.Spec.NodeName).To(BeEmpty())
	g.Expect(waiting.Finalizers).To(ContainElement(protocol.ProxyPodFinalizer))

	out := makeDemo(t, root, dir, bin, "demo-uninstall")
	t.Logf("make demo-uninstall:\n%s", out)
	for _, want := range []string{"pre-delete hook Job flotilla-uninstall", "Uninstalling Flotilla from",
		"deleted MutatingWebhookConfiguration flotilla-elect", "Flotilla is uninstalled from every cluster"} {
		g.Expect(out).To(ContainSubstring(want))
	}

	// Flotilla no longer runs anywhere.
	s, err = framework.Load(dir)
	g.Expect(err).NotTo(HaveOccurred())
	for _, p := range s.Processes {
		if strings.HasPrefix(p.Name, "flotilla-") {
			g.Expect(p.Alive()).To(BeFalse(), "%s still runs", p.ID())
		}
	}

	all := append([]*framework.Cluster{src}, targets...)
	g.Eventually(func(g Gomega) {
		for _, c := range all {
			var pods corev1.PodList
			g.Expect(c.Client.List(ctx, &pods)).To(Succeed())
			for _, p := range pods.Items {
				g.Expect(p.Finalizers).NotTo(ContainElement(protocol.ProxyPodFinalizer), "%s: pod %s/%s", c.Name, p.Namespace, p.Name)
			}
			var chs multiclusterv1alpha1.PodChaperonList
			g.Expect(c.Client.List(ctx, &chs)).To(Succeed())
			g.Expect(chs.Items).To(BeEmpty(), "%s: chaperons left", c.Name)
		}
		for _, c := range targets {
			var pods corev1.PodList
			g.Expect(c.Client.List(ctx, &pods, client.InNamespace("demo"))).To(Succeed())
			g.Expect(pods.Items).To(BeEmpty(), "%s: delegates left", c.Name)
			err := c.Client.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s: the follower ConfigMap is left: %v", c.Name, err)
		}
		var nodes corev1.NodeList
		g.Expect(src.Client.List(ctx, &nodes, client.MatchingLabels{
			protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider})).To(Succeed())
		g.Expect(nodes.Items).To(BeEmpty(), "virtual nodes left")
	}, framework.LongTimeout, framework.Interval).Should(Succeed())

	// The Deployment is made of ordinary pods again, running at home; the
	// waiting pod without owner is left Pending, without the finalizer.
	g.Eventually(func() error {
		return src.RunningOnOwnNodes(ctx, "demo", map[string]string{"app": "web"}, 4)
	}, framework.LongTimeout, framework.Interval).Should(Succeed())
	g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(waiting), waiting)).To(Succeed())
	g.Expect(waiting.Status.Phase).To(Equal(corev1.PodPending))
	g.Expect(waiting.Finalizers).To(BeEmpty())
	g.Expect(out).To(ContainSubstring("demo/fits-nowhere"), "the pod left Pending is named")

	// The sources lost their access to the targets.
	for _, c := range targets {
		var sources multiclusterv1alpha1.ClusterSourceList
		g.Expect(c.Client.List(ctx, &sources)).To(Succeed())
		g.Expect(sources.Items).To(BeEmpty(), "%s: ClusterSources left", c.Name)
	}

	// Every namespace can be deleted.
	for _, c := range all {
		g.Expect(c.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}})).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for _, c := range all {
			ns := &corev1.Namespace{}
			err := c.Client.Get(ctx, client.ObjectKey{Name: "demo"}, ns)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s: namespace demo: %v", c.Name, describe(ctx, c, ns, err))
		}
	}, framework.LongTimeout, framework.Interval).Should(Succeed())
}

// describe says what holds a namespace that is still there.
func describe(ctx context.Context, c *framework.Cluster, ns *corev1.Namespace, err error) string {
	if err != nil {
		return err.Error()
	}
	var conds []string
	for _, cond := range ns.Status.Conditions {
		if cond.Status == corev1.ConditionTrue {
			conds = append(conds, string(cond.Type)+": "+cond.Message)
		}
	}
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(ns.Name)); err == nil {
		for _, p := range pods.Items {
			conds = append(conds, fmt.Sprintf("pod %s finalizers %v", p.Name, p.Finalizers))
		}
	}
	slices.Sort(conds)
	return string(ns.Status.Phase) + " " + strings.Join(conds, "; ")
}
