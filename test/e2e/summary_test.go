package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// A target's controller-manager keeps its ClusterSummary true to its real
// nodes and the pods bound to them, and writes it at most about once a
// second however fast pods come.
func TestClusterSummaryFollowsNodesAndPods(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := cluster(t, framework.TargetName(1))
	g.Expect(c.InstallCRDs(ctx)).To(Succeed())
	framework.StartComponent(t, "controller-manager",
		"--kubeconfig="+c.Kubeconfig, "--controllers=summary",
		"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", framework.FreePort(t)))

	summary := func(g Gomega) *multiclusterv1alpha1.ClusterSummary {
		var s multiclusterv1alpha1.ClusterSummary
		g.Expect(c.Client.Get(ctx, client.ObjectKey{Name: protocol.ClusterSummaryName}, &s)).To(Succeed())
		return &s
	}
	// Its figures match what the nodes and pods of the cluster add up to now.
	matchesCluster := func(g Gomega) {
		want := expectedSummary(g, ctx, c)
		s := summary(g)
		g.Expect(s.Nodes).To(Equal(want.nodes))
		g.Expect(s.Allocatable.Cpu().MilliValue()).To(Equal(want.allocCPU))
		g.Expect(s.Free.Cpu().MilliValue()).To(Equal(want.freeCPU))
	}

	g.Eventually(func(g Gomega) {
		s := summary(g)
		g.Expect(s.Nodes).To(BeEquivalentTo(3))
		g.Expect(s.Allocatable.Cpu().String()).To(Equal("12"))
		g.Expect(s.Allocatable.Memory().String()).To(Equal("48Gi"))
		g.Expect(s.Capacity.Pods().String()).To(Equal("330"))
		g.Expect(s.NodeLabels).To(HaveKeyWithValue(framework.RegionLabel, "eu-west"))
		g.Expect(s.NodeLabels).To(HaveKeyWithValue(framework.SandboxClusterLabel, c.Name))
		g.Expect(s.NodeLabels).NotTo(HaveKey(corev1.LabelHostname))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Eventually(matchesCluster, framework.ShortTimeout, framework.Interval).Should(Succeed())

	// Pods take their requests out of free; count the writes meanwhile.
	dyn, err := dynamic.NewForConfig(c.RESTConfig)
	g.Expect(err).NotTo(HaveOccurred())
	w, err := dyn.Resource(multiclusterv1alpha1.GroupVersion.WithResource("clustersummaries")).
		Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + protocol.ClusterSummaryName})
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	modified := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				modified++
			}
		}
	}()
	start := time.Now()
	ns := c.CreateNamespace(t, nil)
	dep := framework.Deployment(ns, "busy", 20)
	dep.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("250m")
	g.Expect(c.Client.Create(ctx, dep)).To(Succeed())
	g.Eventually(func() error {
		return c.RunningOnOwnNodes(ctx, ns, map[string]string{"app": "busy"}, 20)
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Eventually(matchesCluster, framework.ShortTimeout, framework.Interval).Should(Succeed())
	elapsed := time.Since(start)
	w.Stop()
	<-done
	t.Logf("%d summary writes in %s while 20 pods started", modified, elapsed)
	g.Expect(modified).To(BeNumerically(">=", 1))
	g.Expect(modified).To(BeNumerically("<=", int(elapsed/time.Second)+2),
		"%d summary writes in %s for 20 pods: not debounced", modified, elapsed)

	// A cordoned node does not count; uncordoned, it does again.
	node := c.Nodes[2]
	_, err = c.Kubectl(ctx, "cordon", node)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(matchesCluster, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Expect(summary(g).Nodes).To(BeEquivalentTo(2))
	_, err = c.Kubectl(ctx, "uncordon", node)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) { g.Expect(summary(g).Nodes).To(BeEquivalentTo(3)) },
		framework.ShortTimeout, framework.Interval).Should(Succeed())

	// A node that joins adds its resources; a label only it has is not common.
	_, err = sandbox.AddNodes(ctx, c.Name, framework.NodePool{Name: "joined", Count: 1, CPU: "2", Memory: "8Gi", Pods: "110",
		Labels: map[string]string{framework.RegionLabel: "eu-west", "example.com/only-here": "yes"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		s := summary(g)
		g.Expect(s.Nodes).To(BeEquivalentTo(4))
		g.Expect(s.Allocatable.Cpu().String()).To(Equal("14"))
		g.Expect(s.NodeLabels).To(HaveKeyWithValue(framework.RegionLabel, "eu-west"))
		g.Expect(s.NodeLabels).NotTo(HaveKey("example.com/only-here"))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Eventually(matchesCluster, framework.ShortTimeout, framework.Interval).Should(Succeed())
}

type expected struct {
	nodes             int32
	allocCPU, freeCPU int64
}

// expectedSummary adds up the live cluster independently of the controller:
// schedulable Ready nodes, minus the CPU requests of live pods bound to them.
func expectedSummary(g Gomega, ctx context.Context, c *framework.Cluster) expected {
	var nodes corev1.NodeList
	g.Expect(c.Client.List(ctx, &nodes)).To(Succeed())
	var pods corev1.PodList
	g.Expect(c.Client.List(ctx, &pods)).To(Succeed())
	var e expected
	for _, n := range nodes.Items {
		ready := false
		for _, cond := range n.Status.Conditions {
			ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
		}
		if !ready || n.Spec.Unschedulable {
			continue
		}
		e.nodes++
		alloc := n.Status.Allocatable.Cpu().MilliValue()
		e.allocCPU += alloc
		used := int64(0)
		for _, p := range pods.Items {
			if p.Spec.NodeName != n.Name || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			for _, ctr := range p.Spec.Containers {
				used += ctr.Resources.Requests.Cpu().MilliValue()
			}
		}
		e.freeCPU += max(alloc-used, 0)
	}
	return e
}
