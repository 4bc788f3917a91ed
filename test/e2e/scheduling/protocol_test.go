package scheduling

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// An elected Deployment becomes Available in the source; its pods run in
// the targets, one delegate each, and losing targets keep nothing.
func TestDeploymentRunsAcrossTargets(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	d := framework.Deployment(ns, "web", 6)
	d.Spec.Template.Annotations = map[string]string{protocol.ElectAnnotation: ""}
	g.Expect(src.Client.Create(ctx, d)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		g.Expect(d.Status.AvailableReplicas).To(Equal(int32(6)))
		var proxies corev1.PodList
		g.Expect(src.Client.List(ctx, &proxies, client.InNamespace(ns), client.MatchingLabels{"app": "web"})).To(Succeed())
		g.Expect(proxies.Items).To(HaveLen(6))
		for i := range proxies.Items {
			p := &proxies.Items[i]
			g.Expect(p.Spec.SchedulerName).To(Equal(protocol.ProxySchedulerName))
			expectDelegated(g, ctx, p)
			g.Expect(p.Status.PodIP).NotTo(BeEmpty(), "the delegate's pod IP is fed back")
		}
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	// Each pod had a candidate in both targets, where it fits; the losers
	// were withdrawn without the candidate scheduler reporting anything on
	// them (kube-scheduler would write a FailedScheduling Event and a status
	// for each rejection, and another Event when their deletion brings them
	// back to its queue: scheduler.Quiet, the Candidate plugin's PreEnqueue).
	for _, c := range fleet.Targets {
		list, err := c.Clientset.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		for _, e := range list.Items {
			g.Expect(e.Reason).NotTo(Equal("FailedScheduling"), "%s: %s %q on %s", c.Name, e.Reason, e.Note, e.Regarding.Name)
		}
	}

	// Deleting a proxy pod deletes its delegate; the ReplicaSet makes a new one.
	var proxies corev1.PodList
	g.Expect(src.Client.List(ctx, &proxies, client.InNamespace(ns), client.MatchingLabels{"app": "web"})).To(Succeed())
	victim := proxies.Items[0]
	g.Expect(src.Client.Delete(ctx, &victim)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(candidatesOf(g, ctx, ns, victim.UID)).To(BeEmpty())
		g.Expect(chaperonsOf(g, ctx, ns, victim.UID)).To(BeEmpty())
		err := src.Client.Get(ctx, client.ObjectKeyFromObject(&victim), &corev1.Pod{})
		g.Expect(client.IgnoreNotFound(err)).To(Succeed())
		g.Expect(err).To(HaveOccurred(), "the proxy pod is still there (finalizer)")
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		g.Expect(d.Status.AvailableReplicas).To(Equal(int32(6)))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
}

// A pod that only fits target-2's bigger nodes goes there, whatever the
// targets' total capacity.
func TestPodGoesWhereItFits(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	pod := elected(ns, "big", "6", nil)
	g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(expectDelegated(g, ctx, pod)).To(Equal(framework.TargetName(2)))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
}

// A pod that fits nowhere stays Pending with an Event that says why, per
// cluster; when a target gains a node big enough, the pod goes there
// within seconds.
func TestUnschedulableUntilATargetGrows(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	pod := elected(ns, "huge", "12", nil)
	g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		msgs := events(g, ctx, fleet.Source, pod, "NoTargetAvailable")
		g.Expect(msgs).NotTo(BeEmpty())
		g.Expect(msgs[len(msgs)-1]).To(And(
			HavePrefix("0/2 clusters available: "),
			ContainSubstring("target-1: 0/3 nodes are available: 3 Insufficient cpu"),
			ContainSubstring("target-2: 0/2 nodes are available: 2 Insufficient cpu")))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Spec.NodeName).To(BeEmpty())
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodPending))
	}, framework.ConsistentlyDuration, framework.Interval).Should(Succeed())

	names, err := sandbox.AddNodes(ctx, framework.TargetName(1), framework.NodePool{Name: "big", Count: 1,
		CPU: "16", Memory: "64Gi", Pods: "110", Labels: map[string]string{framework.RegionLabel: "eu-west"}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		t1 := cluster(t, framework.TargetName(1))
		for _, n := range names {
			_ = t1.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(pod.Spec.NodeName).To(Equal("admiralty-" + framework.TargetName(1)))
	}, framework.RequeueTimeout, framework.Interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectDelegated(g, ctx, pod)
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
}

// Cluster-level affinity on region labels (the proxy-pod-scheduling-
// constraints annotation) is honoured, required and preferred.
func TestRegionAffinity(t *testing.T) {
	ns := namespace(t)
	region := func(op string, weight int32, value string) string {
		term := fmt.Sprintf(`{"matchExpressions":[{"key":%q,"operator":"In","values":[%q]}]}`, framework.RegionLabel, value)
		if op == "required" {
			return `{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[` + term + `]}}}}`
		}
		return fmt.Sprintf(`{"affinity":{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":%d,"preference":%s}]}}}`, weight, term)
	}
	// The regions of the default sandbox (framework.DefaultConfig).
	regionOf := map[int]string{1: "eu-west", 2: "us-east"}
	cases := []struct {
		name, constraints, want string
	}{
		{"required target-1's region", region("required", 0, regionOf[1]), framework.TargetName(1)},
		{"required target-2's region", region("required", 0, regionOf[2]), framework.TargetName(2)},
		{"preferred target-1's region", region("preferred", 100, regionOf[1]), framework.TargetName(1)},
		{"preferred target-2's region", region("preferred", 100, regionOf[2]), framework.TargetName(2)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := t.Context()
			pod := elected(ns, fmt.Sprintf("affine-%d", i), "100m",
				map[string]string{protocol.ProxyPodSchedulingConstraintsAnnotation: tc.constraints})
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			g.Eventually(func(g Gomega) {
				g.Expect(expectDelegated(g, ctx, pod)).To(Equal(tc.want))
			}, framework.PodTimeout, framework.Interval).Should(Succeed())
		})
	}
}

// An elected Job completes in the source once its delegates succeed.
func TestJobCompletes(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	job := framework.Job(ns, "batch", 3)
	job.Spec.Template.Annotations = map[string]string{protocol.ElectAnnotation: ""}
	g.Expect(fleet.Source.Client.Create(ctx, job)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
		g.Expect(job.Status.Succeeded).To(Equal(int32(3)))
		g.Expect(job.Status.Conditions).To(ContainElement(And(
			HaveField("Type", batchv1.JobComplete), HaveField("Status", corev1.ConditionTrue))))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	var delegates int
	for _, tc := range fleet.Targets {
		var pods corev1.PodList
		g.Expect(tc.Client.List(ctx, &pods, client.InNamespace(ns), client.HasLabels{protocol.ProxyPodUIDLabel})).To(Succeed())
		for _, p := range pods.Items {
			g.Expect(p.Status.Phase).To(Equal(corev1.PodSucceeded))
			delegates++
		}
	}
	g.Expect(delegates).To(Equal(3))
}

// A pod that names the proxy scheduler itself, without the elect
// annotation (and so without the webhook's toleration and finalizer), is
// scheduled all the same, and cleaned up when deleted.
func TestSchedulerNameWithoutAnnotation(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "direct"}, Spec: framework.PodSpec()}
	pod.Spec.SchedulerName = protocol.ProxySchedulerName
	g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectDelegated(g, ctx, pod)
		g.Expect(pod.Finalizers).To(ContainElement(protocol.ProxyPodFinalizer))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Expect(fleet.Source.Client.Delete(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(candidatesOf(g, ctx, ns, pod.UID)).To(BeEmpty())
		err := fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		g.Expect(err).To(HaveOccurred())
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
}

// Killing the proxy scheduler and a candidate scheduler (SIGKILL) while 50
// pods are in flight, then restarting them: all 50 run, and no proxy pod
// ever has two delegates.
func TestSchedulerCrashesWhileInFlight(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	watch := framework.SampleDelegates(t, fleet.Targets, ns)
	const n = 50
	for i := range n {
		g.Expect(fleet.Source.Client.Create(ctx, elected(ns, fmt.Sprintf("p-%02d", i), "100m", nil))).To(Succeed())
	}
	// Kill both once candidates are on their way but before all are decided.
	g.Eventually(func(g Gomega) {
		var list multiclusterv1alpha1.PodChaperonList
		g.Expect(fleet.Targets[0].Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(len(list.Items)).To(BeNumerically(">=", 5))
	}, framework.PodTimeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(fleet.Kill("proxy-scheduler")).To(Succeed())
	g.Expect(fleet.Kill("candidate-scheduler/" + framework.TargetName(1))).To(Succeed())
	var bound int
	var proxies corev1.PodList
	g.Expect(fleet.Source.Client.List(ctx, &proxies, client.InNamespace(ns))).To(Succeed())
	for _, p := range proxies.Items {
		if p.Spec.NodeName != "" {
			bound++
		}
	}
	t.Logf("%d/%d proxy pods bound when the schedulers were killed", bound, n)
	g.Expect(fleet.Restart("proxy-scheduler")).To(Succeed())
	g.Expect(fleet.Restart("candidate-scheduler/" + framework.TargetName(1))).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(fleet.Source.Client.List(ctx, &proxies, client.InNamespace(ns))).To(Succeed())
		g.Expect(proxies.Items).To(HaveLen(n))
		for i := range proxies.Items {
			expectDelegated(g, ctx, &proxies.Items[i])
		}
	}, 2*framework.LongTimeout, time.Second).Should(Succeed())
	g.Expect(watch.Doubles()).To(BeEmpty(), "proxy pods with two delegates")
	g.Expect(fleet.Crashed()).To(Succeed())
}

// Topology spread over the cluster-name label of virtual nodes spreads a
// Deployment's pods evenly across targets.
func TestTopologySpreadAcrossClusters(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	d := framework.Deployment(ns, "spread", 4)
	d.Spec.Template.Annotations = map[string]string{
		protocol.ElectAnnotation: "",
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"topologySpreadConstraints":[{"maxSkew":1,` +
			`"topologyKey":"multicluster.admiralty.io/cluster-name","whenUnsatisfiable":"DoNotSchedule",` +
			`"labelSelector":{"matchLabels":{"app":"spread"}}}]}`,
	}
	g.Expect(fleet.Source.Client.Create(ctx, d)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var proxies corev1.PodList
		g.Expect(fleet.Source.Client.List(ctx, &proxies, client.InNamespace(ns), client.MatchingLabels{"app": "spread"})).To(Succeed())
		g.Expect(proxies.Items).To(HaveLen(4))
		perTarget := map[string]int{}
		for i := range proxies.Items {
			perTarget[expectDelegated(g, ctx, &proxies.Items[i])]++
		}
		g.Expect(perTarget).To(Equal(map[string]int{framework.TargetName(1): 2, framework.TargetName(2): 2}))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
}

// Deleting a delegate in its target deletes its proxy pod, as if the pod
// had been deleted at home: the ReplicaSet makes a new one, which runs;
// the deleted delegate is never made again.
func TestDelegateDeletedInTarget(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	watch := framework.SampleDelegates(t, fleet.Targets, ns)
	src := fleet.Source
	d := framework.Deployment(ns, "app", 2)
	d.Spec.Template.Annotations = map[string]string{protocol.ElectAnnotation: ""}
	g.Expect(src.Client.Create(ctx, d)).To(Succeed())
	var proxies corev1.PodList
	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.List(ctx, &proxies, client.InNamespace(ns), client.MatchingLabels{"app": "app"})).To(Succeed())
		g.Expect(proxies.Items).To(HaveLen(2))
		for i := range proxies.Items {
			expectDelegated(g, ctx, &proxies.Items[i])
		}
	}, framework.PodTimeout, framework.Interval).Should(Succeed())

	victim := proxies.Items[0]
	target := targetCluster(victim.Spec.NodeName)
	delegates := candidatesOf(g, ctx, ns, victim.UID)[target.Name]
	g.Expect(delegates).To(HaveLen(1))
	g.Expect(target.Client.Delete(ctx, &delegates[0])).To(Succeed())

	g.Eventually(func(g Gomega) {
		err := src.Client.Get(ctx, client.ObjectKeyFromObject(&victim), &corev1.Pod{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the proxy pod of the deleted delegate is still there (%v)", err)
		g.Expect(src.Client.List(ctx, &proxies, client.InNamespace(ns), client.MatchingLabels{"app": "app"})).To(Succeed())
		g.Expect(proxies.Items).To(HaveLen(2))
		for i := range proxies.Items {
			g.Expect(proxies.Items[i].UID).NotTo(Equal(victim.UID))
			expectDelegated(g, ctx, &proxies.Items[i])
		}
		g.Expect(candidatesOf(g, ctx, ns, victim.UID)).To(BeEmpty(), "the deleted delegate came back")
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Expect(watch.Doubles()).To(BeEmpty(), "proxy pods with two delegates")
}
