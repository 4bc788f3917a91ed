package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// installWebhook registers the elect webhook of config/webhook with the
// source, served at a loopback URL (no in-cluster Service here), and runs the
// controller-manager's webhook with certificate rotation.
func installWebhook(t *testing.T, c *framework.Cluster) *framework.Component {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	port := framework.FreePort(t)
	secretNS := c.CreateNamespace(t, nil)
	name, err := framework.InstallWebhookConfiguration(ctx, c, repoRoot(t), port, "flotilla-elect-"+secretNS)
	g.Expect(err).NotTo(HaveOccurred())
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	t.Cleanup(func() { _ = c.Client.Delete(context.Background(), cfg) })
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretNS, Name: "flotilla-webhook-cert"}}
	g.Expect(c.Client.Create(ctx, secret)).To(Succeed())

	mgr := framework.StartComponent(t, "controller-manager", "--kubeconfig="+c.Kubeconfig, "--controllers=webhook",
		"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", framework.FreePort(t)),
		"--webhook-bind-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", port),
		"--webhook-cert-dir="+t.TempDir(), "--webhook-secret="+secretNS+"/flotilla-webhook-cert",
		"--webhook-dns-names=localhost", "--webhook-configuration="+cfg.Name, "--webhook-cert-from-secret")
	g.Eventually(func(g Gomega) {
		var got admissionregistrationv1.MutatingWebhookConfiguration
		g.Expect(c.Client.Get(ctx, client.ObjectKeyFromObject(cfg), &got)).To(Succeed())
		g.Expect(got.Webhooks[0].ClientConfig.CABundle).NotTo(BeEmpty(), "CA bundle not injected yet")
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	return mgr
}

func repoRoot(t *testing.T) string {
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// removeFinalizers lets proxy pods go when the test's namespace is deleted
// (no proxy scheduler or delegate here to release them).
func removeFinalizers(c *framework.Cluster, ns string) {
	var pods corev1.PodList
	if err := c.Client.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		return
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		patch := client.MergeFrom(p.DeepCopy())
		p.Finalizers = nil
		_ = c.Client.Patch(context.Background(), p, patch)
	}
}

func electedPod(ns, name string, annotations map[string]string) *corev1.Pod {
	a := map[string]string{protocol.ElectAnnotation: ""}
	for k, v := range annotations {
		a[k] = v
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: a}, Spec: framework.PodSpec()}
	pod.Spec.NodeSelector = map[string]string{"disktype": "ssd"}
	return pod
}

// The elect webhook turns elected pods of enabled namespaces into proxy pods,
// leaves everything else alone, rejects malformed annotations, and when it is
// down only enabled namespaces notice.
func TestElectWebhook(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := cluster(t, framework.SourceCluster)
	mgr := installWebhook(t, c)
	enabled := c.CreateNamespace(t, map[string]string{protocol.NamespaceEnabledLabel: protocol.NamespaceEnabledLabelValue})
	other := c.CreateNamespace(t, nil)
	t.Cleanup(func() { removeFinalizers(c, enabled) })

	// The server may take a moment after the CA is injected.
	proxy := electedPod(enabled, "elected", map[string]string{
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"nodeSelector":{"topology.kubernetes.io/region":"eu-west"}}`,
	})
	g.Eventually(func() error { return c.Client.Create(ctx, proxy.DeepCopy()) }, framework.ShortTimeout, framework.Interval).Should(Succeed())

	t.Run("elected pod in an enabled namespace becomes a proxy pod", func(t *testing.T) {
		g := NewWithT(t)
		var got corev1.Pod
		g.Expect(c.Client.Get(ctx, client.ObjectKeyFromObject(proxy), &got)).To(Succeed())
		g.Expect(got.Spec.SchedulerName).To(Equal(protocol.ProxySchedulerName))
		g.Expect(got.Spec.NodeSelector).To(Equal(map[string]string{
			protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider, "topology.kubernetes.io/region": "eu-west"}))
		g.Expect(got.Spec.Tolerations).To(ContainElement(And(HaveField("Key", protocol.VirtualKubeletProviderKey),
			HaveField("Effect", corev1.TaintEffectNoSchedule))))
		// The API server's default not-ready/unreachable tolerations stay.
		g.Expect(got.Spec.Tolerations).To(ContainElement(HaveField("Key", corev1.TaintNodeUnreachable)))
		g.Expect(got.Finalizers).To(ContainElement(protocol.ProxyPodFinalizer))
		var saved corev1.Pod
		g.Expect(json.Unmarshal([]byte(got.Annotations[protocol.SourcePodManifestAnnotation]), &saved)).To(Succeed())
		g.Expect(saved.Spec.NodeSelector).To(Equal(map[string]string{"disktype": "ssd"}), "the user's constraints are kept for the candidates")
		g.Expect(saved.Spec.SchedulerName).To(Equal(corev1.DefaultSchedulerName))
	})

	t.Run("pods elsewhere or not elected are untouched", func(t *testing.T) {
		g := NewWithT(t)
		for _, pod := range []*corev1.Pod{
			electedPod(other, "elected-elsewhere", nil),
			{ObjectMeta: metav1.ObjectMeta{Namespace: enabled, Name: "plain"}, Spec: framework.PodSpec()},
		} {
			g.Expect(c.Client.Create(ctx, pod)).To(Succeed())
			g.Expect(pod.Spec.SchedulerName).To(Equal(corev1.DefaultSchedulerName), pod.Name)
			g.Expect(pod.Annotations).NotTo(HaveKey(protocol.SourcePodManifestAnnotation))
			g.Expect(pod.Finalizers).To(BeEmpty())
		}
	})

	t.Run("pods of an elected Deployment template become proxies", func(t *testing.T) {
		g := NewWithT(t)
		dep := framework.Deployment(enabled, "web", 2)
		dep.Spec.Template.Annotations = map[string]string{protocol.ElectAnnotation: ""}
		g.Expect(c.Client.Create(ctx, dep)).To(Succeed())
		g.Eventually(func(g Gomega) {
			var pods corev1.PodList
			g.Expect(c.Client.List(ctx, &pods, client.InNamespace(enabled), client.MatchingLabels{"app": "web"})).To(Succeed())
			g.Expect(pods.Items).To(HaveLen(2))
			for _, p := range pods.Items {
				g.Expect(p.Spec.SchedulerName).To(Equal(protocol.ProxySchedulerName))
				g.Expect(p.Annotations).To(HaveKey(protocol.SourcePodManifestAnnotation))
			}
		}, framework.PodTimeout, framework.Interval).Should(Succeed())
		// Scale to zero so that the controller does not recreate pods at cleanup.
		patch := client.MergeFrom(dep.DeepCopy())
		dep.Spec.Replicas = ptr.To[int32](0)
		g.Expect(c.Client.Patch(ctx, dep, patch)).To(Succeed())
	})

	t.Run("malformed annotations are rejected with a message naming them", func(t *testing.T) {
		g := NewWithT(t)
		for value, want := range map[string]string{
			`{"nodeSelecter":{"a":"b"}}`: `unknown field "nodeSelecter"`,
			`nodeSelector: [unclosed`:    "is not valid YAML or JSON",
		} {
			err := c.Client.Create(ctx, electedPod(enabled, "malformed", map[string]string{protocol.ProxyPodSchedulingConstraintsAnnotation: value}))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(protocol.ProxyPodSchedulingConstraintsAnnotation))
			g.Expect(err.Error()).To(ContainSubstring(want))
		}
	})

	t.Run("with the webhook down, only enabled namespaces are affected", func(t *testing.T) {
		g := NewWithT(t)
		mgr.Stop()
		g.Expect(c.Client.Create(ctx, electedPod(other, "while-down", nil))).To(Succeed())
		err := c.Client.Create(ctx, electedPod(enabled, "while-down", nil))
		g.Expect(err).To(HaveOccurred())
		g.Expect(err.Error()).To(ContainSubstring("elect.multicluster.admiralty.io"))
	})
}
