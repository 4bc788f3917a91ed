package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/test/framework"
)

// Every cluster runs Deployments on its kwok nodes and completes Jobs, which
// needs its kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
func TestWorkloadsRunInEveryCluster(t *testing.T) {
	for _, name := range sandbox.ClusterNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			c := cluster(t, name)
			ctx := t.Context()
			ns := c.CreateNamespace(t, nil)

			g.Expect(c.Client.Create(ctx, framework.Deployment(ns, "web", 3))).To(Succeed())
			g.Expect(c.Client.Create(ctx, framework.Job(ns, "batch", 2))).To(Succeed())

			g.Eventually(func() error {
				return c.RunningOnOwnNodes(ctx, ns, map[string]string{"app": "web"}, 3)
			}, framework.PodTimeout, framework.Interval).Should(Succeed())

			g.Eventually(func(g Gomega) {
				var job batchv1.Job
				g.Expect(c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "batch"}, &job)).To(Succeed())
				g.Expect(job.Status.Succeeded).To(BeEquivalentTo(2))
				g.Expect(job.Status.Conditions).To(ContainElement(And(
					HaveField("Type", batchv1.JobComplete), HaveField("Status", corev1.ConditionTrue))))
			}, framework.PodTimeout, framework.Interval).Should(Succeed())
		})
	}
}

// The API server reaches the fake kubelets: logs, exec, attach and
// port-forward on a target's pod return what the sandbox configured.
func TestKubectlStreamsFromKwokNodes(t *testing.T) {
	g := NewWithT(t)
	c := cluster(t, framework.TargetName(1))
	ctx := t.Context()
	ns := c.CreateNamespace(t, nil)
	g.Expect(c.Client.Create(ctx, framework.Deployment(ns, "web", 1))).To(Succeed())
	var pod string
	g.Eventually(func(g Gomega) {
		g.Expect(c.RunningOnOwnNodes(ctx, ns, map[string]string{"app": "web"}, 1)).To(Succeed())
		var pods corev1.PodList
		g.Expect(c.Client.List(ctx, &pods, client.InNamespace(ns))).To(Succeed())
		pod = pods.Items[0].Name
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	t.Run("logs", func(t *testing.T) {
		g := NewWithT(t)
		out, err := c.Kubectl(ctx, "logs", "-n", ns, pod, "-c", "main")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(ContainSubstring("Hello from the Flotilla sandbox"))
		g.Expect(out).NotTo(ContainSubstring("stdout F"), "CRI framing must be stripped")
	})
	t.Run("exec", func(t *testing.T) {
		g := NewWithT(t)
		out, err := c.Kubectl(ctx, "exec", "-n", ns, pod, "--", "sh", "-c", "echo exec-ok in $FLOTILLA_SANDBOX_CLUSTER")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strings.TrimSpace(out)).To(Equal("exec-ok in " + c.Name))
	})
	t.Run("exec with stdin", func(t *testing.T) {
		g := NewWithT(t)
		// kwok does not pass on the end of stdin, so read one line rather than to EOF.
		out, err := c.KubectlWithInput(ctx, "from stdin\n", "exec", "-i", "-n", ns, pod, "--", "head", "-n1")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(Equal("from stdin\n"))
	})
	// attach and logs -f stream what the container writes from now on.
	for name, stream := range map[string][]string{
		"attach":  {"attach", "-n", ns, pod, "-c", "main"},
		"logs -f": {"logs", "-f", "--tail=0", "-n", ns, pod, "-c", "main"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			line := fmt.Sprintf("written at %s for %s", time.Now().Format(time.RFC3339Nano), name)
			// The stream may connect after a given write, so keep writing.
			go func() {
				for i := 0; i < 40; i++ {
					_ = c.AppendContainerLog(line)
					time.Sleep(250 * time.Millisecond)
				}
			}()
			out, err := c.KubectlStreamUntil(ctx, line, stream...)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(out).To(ContainSubstring(line))
			g.Expect(out).NotTo(ContainSubstring("Hello from the Flotilla sandbox"), "only new output is streamed")
		})
	}
	t.Run("port-forward", func(t *testing.T) {
		g := NewWithT(t)
		echoed, err := c.PortForwardEcho(ctx, ns, pod, 8080, "ping through port-forward\n")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(echoed).To(Equal("ping through port-forward\n"))
	})
}

// The clusters share one etcd, each under its own key prefix: what one
// cluster holds is invisible in the others.
func TestClustersAreIsolated(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := cluster(t, framework.SourceCluster)
	ns := src.CreateNamespace(t, nil)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "only-in-source"},
		Data:       map[string]string{"k": "v"},
	}
	g.Expect(src.Client.Create(ctx, cm)).To(Succeed())

	for _, name := range sandbox.Targets() {
		c := cluster(t, name)
		err := c.Client.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "namespace %s from the source is visible in %s: %v", ns, name, err)
		err = c.Client.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "config map from the source is visible in %s: %v", name, err)

		var nodes corev1.NodeList
		g.Expect(c.Client.List(ctx, &nodes)).To(Succeed())
		var names []string
		for _, n := range nodes.Items {
			names = append(names, n.Name)
		}
		g.Expect(names).To(ConsistOf(c.Nodes), "%s sees nodes of other clusters", name)
	}

	// Each cluster has its own certificate authority: the source's admin
	// credentials are refused by a target.
	target := cluster(t, framework.TargetName(1))
	foreign := *src.RESTConfig
	foreign.Host = target.Server
	foreign.CAData = target.RESTConfig.CAData
	foreign.CAFile = target.RESTConfig.CAFile
	cl, err := client.New(&foreign, client.Options{Scheme: framework.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	err = cl.List(ctx, &corev1.NamespaceList{})
	g.Expect(apierrors.IsUnauthorized(err)).To(BeTrue(), fmt.Sprintf("source credentials in target-1: %v", err))
}

// A second `up` on a running sandbox says so and leaves it alone.
func TestSecondUpDoesNotClobberRunningSandbox(t *testing.T) {
	g := NewWithT(t)
	binDir, err := framework.BinDir()
	g.Expect(err).NotTo(HaveOccurred())
	_, err = framework.Up(t.Context(), framework.DefaultConfig(sandbox.Dir, binDir, 2))
	var running *framework.AlreadyRunningError
	g.Expect(errors.As(err, &running)).To(BeTrue(), "second Up returned %v", err)
	g.Expect(err.Error()).To(ContainSubstring("already running"))

	g.Expect(sandbox.Crashed()).To(BeEmpty())
	again, err := framework.Load(sandbox.Dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again.ClusterNames()).To(Equal(sandbox.ClusterNames()))
	src := cluster(t, framework.SourceCluster)
	g.Expect(src.Client.List(t.Context(), &corev1.NamespaceList{})).To(Succeed())
}

// A cluster's API server can be stopped (an outage) and started again on the
// same address; the rest of the fleet is not disturbed.
func TestAPIServerOutageAndReturn(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	name := framework.TargetName(2)
	c := cluster(t, name)
	g.Expect(sandbox.StopProcess(name, "kube-apiserver")).To(Succeed())
	err := c.Client.List(ctx, &corev1.NamespaceList{})
	g.Expect(err).To(HaveOccurred(), "%s still answers with its API server stopped", name)
	g.Expect(cluster(t, framework.TargetName(1)).Client.List(ctx, &corev1.NamespaceList{})).To(Succeed())

	g.Expect(sandbox.StartProcess(ctx, name, "kube-apiserver")).To(Succeed())
	g.Expect(c.Client.List(ctx, &corev1.NamespaceList{})).To(Succeed())
	g.Eventually(func() error {
		return c.RunningOnOwnNodes(ctx, "default", map[string]string{"no-such": "pod"}, 0)
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Expect(sandbox.Crashed()).To(BeEmpty())
}

// Nodes can join a running cluster; kwok makes them Ready and schedulable.
func TestAddNodesToRunningCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	name := framework.TargetName(2)
	names, err := sandbox.AddNodes(ctx, name, framework.NodePool{
		Name: "added", Count: 1, CPU: "16", Memory: "64Gi", Pods: "110",
		Labels: map[string]string{"example.com/pool": "added"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(names).To(HaveLen(1))
	c := cluster(t, name)
	g.Expect(c.Nodes).To(ContainElement(names[0]))
	g.Eventually(func(g Gomega) {
		var node corev1.Node
		g.Expect(c.Client.Get(ctx, client.ObjectKey{Name: names[0]}, &node)).To(Succeed())
		g.Expect(node.Labels).To(HaveKeyWithValue("example.com/pool", "added"))
		g.Expect(node.Status.Allocatable.Cpu().String()).To(Equal("16"))
		g.Expect(node.Status.Conditions).To(ContainElement(And(
			HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))))
		g.Expect(node.Spec.Taints).To(BeEmpty())
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	// A pod that fits only the new node runs there.
	ns := c.CreateNamespace(t, nil)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "big", Labels: map[string]string{"app": "big"}}, Spec: framework.PodSpec()}
	pod.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("12")
	g.Expect(c.Client.Create(ctx, pod)).To(Succeed())
	g.Eventually(func() error {
		return c.RunningOnOwnNodes(ctx, ns, map[string]string{"app": "big"}, 1)
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Expect(c.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
	g.Expect(pod.Spec.NodeName).To(Equal(names[0]))
}
