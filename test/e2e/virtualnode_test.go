package e2e

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// Each Target gets a virtual node in the source with the target's real
// allocatable and common labels; it goes NotReady when the target stops
// answering and away when the Target does, even if that happens while no
// controller runs.
func TestVirtualNodes(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := cluster(t, framework.SourceCluster)
	t1 := cluster(t, framework.TargetName(1))
	g.Expect(src.InstallCRDs(ctx)).To(Succeed())
	g.Expect(t1.InstallCRDs(ctx)).To(Succeed())
	// The target side, as a user sets it up: Flotilla's summary and source
	// controllers, and a Source for the source cluster's service account.
	framework.StartComponent(t, "controller-manager", "--kubeconfig="+t1.Kubeconfig, "--controllers=summary,source",
		"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", framework.FreePort(t)))
	idNS := t1.CreateNamespace(t, nil)
	token, err := t1.ServiceAccountToken(ctx, idNS, "source")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(t1.Client.Create(ctx, &multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: idNS, Name: "source"},
		Spec: multiclusterv1alpha1.SourceSpec{ServiceAccountName: "source"}})).To(Succeed())
	kc, err := t1.KubeconfigFor(token, "target-1")
	g.Expect(err).NotTo(HaveOccurred())

	mgr, _ := startTargetController(t, src)
	ns := src.CreateNamespace(t, nil)
	g.Expect(src.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "t1"}, Data: map[string][]byte{"config": kc}})).To(Succeed())
	tgt := &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "eu"},
		Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: "t1"}}}
	filtered := &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: ns + "-filtered"},
		Spec: multiclusterv1alpha1.ClusterTargetSpec{
			KubeconfigSecret:     &multiclusterv1alpha1.ClusterKubeconfigSecret{Namespace: ns, Name: "t1"},
			ExcludedLabelsRegexp: ptr.To(`^topology\.kubernetes\.io/`),
		}}
	g.Expect(src.Client.Create(ctx, tgt)).To(Succeed())
	g.Expect(src.Client.Create(ctx, filtered)).To(Succeed())
	t.Cleanup(func() { _ = src.Client.Delete(t0(), filtered) })
	nodeName, filteredName := "admiralty-"+ns+"-eu", "admiralty-"+ns+"-filtered"

	getNode := func(g Gomega, name string) *corev1.Node {
		var n corev1.Node
		g.Expect(src.Client.Get(ctx, client.ObjectKey{Name: name}, &n)).To(Succeed())
		return &n
	}
	targetAllocatable := func(g Gomega) corev1.ResourceList {
		var s multiclusterv1alpha1.ClusterSummary
		g.Expect(t1.Client.Get(ctx, client.ObjectKey{Name: protocol.ClusterSummaryName}, &s)).To(Succeed())
		return s.Allocatable
	}
	matchesTarget := func(g Gomega) {
		n := getNode(g, nodeName)
		want := targetAllocatable(g)
		g.Expect(n.Status.Allocatable.Cpu().Cmp(*want.Cpu())).To(BeZero(), "cpu %s, target has %s", n.Status.Allocatable.Cpu(), want.Cpu())
		g.Expect(n.Status.Allocatable.Memory().Cmp(*want.Memory())).To(BeZero())
		g.Expect(n.Status.Allocatable.Pods().Cmp(*want.Pods())).To(BeZero())
	}

	g.Eventually(func(g Gomega) {
		n := getNode(g, nodeName)
		g.Expect(nodeReady(n)).To(Equal(corev1.ConditionTrue))
		g.Expect(n.Labels).To(HaveKeyWithValue(framework.RegionLabel, "eu-west"))
		g.Expect(n.Labels).To(HaveKeyWithValue(protocol.ClusterNameLabel, "eu"))
		g.Expect(n.Labels).To(HaveKeyWithValue(protocol.VirtualKubeletProviderKey, protocol.VirtualKubeletProvider))
		g.Expect(n.Spec.Taints).To(ContainElement(And(
			HaveField("Key", protocol.VirtualKubeletProviderKey), HaveField("Value", protocol.VirtualKubeletProvider),
			HaveField("Effect", corev1.TaintEffectNoSchedule))))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Eventually(matchesTarget, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		n := getNode(g, filteredName)
		g.Expect(n.Labels).To(HaveKeyWithValue(protocol.ClusterNameLabel, ns+"-filtered"))
		g.Expect(n.Labels).NotTo(HaveKey(framework.RegionLabel))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	// The virtual node has a lease, like a kubelet.
	g.Eventually(func() error {
		_, err := src.Clientset.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, nodeName, metav1.GetOptions{})
		return err
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	t.Run("capacity follows the target's nodes", func(t *testing.T) {
		g := NewWithT(t)
		before := getNode(g, nodeName).Status.Allocatable.Cpu().DeepCopy()
		_, err := sandbox.AddNodes(ctx, t1.Name, framework.NodePool{Name: "grown", Count: 1, CPU: "8", Memory: "32Gi", Pods: "110",
			Labels: map[string]string{framework.RegionLabel: "eu-west"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Eventually(func(g Gomega) {
			after := getNode(g, nodeName).Status.Allocatable.Cpu()
			g.Expect(after.Cmp(before)).To(Equal(1), "allocatable cpu still %s", after)
			matchesTarget(g)
		}, framework.PodTimeout, framework.Interval).Should(Succeed())
	})

	t.Run("NotReady while the target does not answer", func(t *testing.T) {
		g := NewWithT(t)
		stopped := time.Now()
		g.Expect(sandbox.KillProcess(t1.Name, "kube-apiserver")).To(Succeed())
		restarted := false
		defer func() {
			if !restarted {
				_ = sandbox.StartProcess(t0(), t1.Name, "kube-apiserver")
			}
		}()
		g.Eventually(func(g Gomega) {
			n := getNode(g, nodeName)
			g.Expect(nodeReady(n)).To(Equal(corev1.ConditionUnknown))
		}, framework.TargetLossTimeout, framework.Interval).Should(Succeed())
		t.Logf("virtual node NotReady %s after the API server was killed", time.Since(stopped).Round(time.Millisecond))
		g.Expect(sandbox.StartProcess(ctx, t1.Name, "kube-apiserver")).To(Succeed())
		restarted = true
		g.Eventually(func(g Gomega) {
			g.Expect(nodeReady(getNode(g, nodeName))).To(Equal(corev1.ConditionTrue))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	})

	t.Run("deleting the Target removes its node", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(src.Client.Delete(ctx, tgt)).To(Succeed())
		g.Eventually(func() bool {
			err := src.Client.Get(ctx, client.ObjectKey{Name: nodeName}, &corev1.Node{})
			return apierrors.IsNotFound(err)
		}, framework.ShortTimeout, framework.Interval).Should(BeTrue())
	})

	t.Run("a Target deleted while no controller runs loses its node at the next start", func(t *testing.T) {
		g := NewWithT(t)
		mgr.Stop()
		g.Expect(src.Client.Delete(ctx, filtered)).To(Succeed())
		g.Expect(src.Client.Get(ctx, client.ObjectKey{Name: filteredName}, &corev1.Node{})).To(Succeed())
		startTargetController(t, src)
		g.Eventually(func() bool {
			err := src.Client.Get(ctx, client.ObjectKey{Name: filteredName}, &corev1.Node{})
			return apierrors.IsNotFound(err)
		}, framework.ShortTimeout, framework.Interval).Should(BeTrue())
	})
}
