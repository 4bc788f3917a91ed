package scheduling

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/controllers/feedback"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// Deleting a proxy pod deletes its delegate with the grace period the
// deletion asked for; the proxy pod goes once the delegate is gone.
func TestDeleteProxyDeletesDelegateGracefully(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	pod := elected(ns, "app", "100m", nil)
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
	var target string
	g.Eventually(func(g Gomega) { target = expectDelegated(g, ctx, pod) }, framework.PodTimeout, framework.Interval).Should(Succeed())
	tc := cluster(t, target)

	w, err := tc.Clientset.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: protocol.ProxyPodUIDLabel + "=" + string(pod.UID)})
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	grace := make(chan int64, 1)
	go func() {
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*corev1.Pod); ok && d.DeletionGracePeriodSeconds != nil {
				grace <- *d.DeletionGracePeriodSeconds
				return
			}
		}
	}()

	g.Expect(src.Client.Delete(ctx, pod, client.GracePeriodSeconds(7))).To(Succeed())
	g.Eventually(grace, framework.ShortTimeout).Should(Receive(Equal(int64(7))), "the delegate's deletion grace period")
	g.Eventually(func(g Gomega) {
		err := src.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "proxy pod still there (%v)", err)
		g.Expect(candidatesOf(g, ctx, ns, pod.UID)).To(BeEmpty(), "delegate still there")
		g.Expect(chaperonsOf(g, ctx, ns, pod.UID)).To(BeEmpty(), "chaperon still there")
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
}

// A proxy pod deleted while its target does not answer goes at once
// (Event CandidatesLeft); when the target comes back, the source deletes the
// chaperon there, and with it the delegate.
func TestProxyDeletedWhileItsTargetIsDown(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	t2 := fleet.Targets[1]
	pod := pinned(ns, "app", "admiralty-"+t2.Name)
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) { expectDelegated(g, ctx, pod) }, framework.PodTimeout, framework.Interval).Should(Succeed())

	g.Expect(sandbox.KillProcess(t2.Name, "kube-apiserver")).To(Succeed())
	restarted := false
	defer func() {
		if !restarted {
			_ = sandbox.StartProcess(context.Background(), t2.Name, "kube-apiserver")
		}
	}()
	ct := &multiclusterv1alpha1.ClusterTarget{}
	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKey{Name: t2.Name}, ct)).To(Succeed())
		g.Expect(meta.IsStatusConditionFalse(ct.Status.Conditions, multiclusterv1alpha1.ConditionReady)).To(BeTrue())
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Expect(src.Client.Delete(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := src.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "proxy pod still there (%v)", err)
		g.Expect(events(g, ctx, src, pod, feedback.ReasonCandidatesLeft)).NotTo(BeEmpty())
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	g.Expect(sandbox.StartProcess(ctx, t2.Name, "kube-apiserver")).To(Succeed())
	restarted = true
	// Right after the outage the source's cache of the target may still be
	// re-watching: a pod placed there then runs, and is not taken for one
	// whose delegate is gone (CI saw that happen).
	again := pinned(ns, "again", "admiralty-"+t2.Name)
	g.Expect(src.Client.Create(ctx, again)).To(Succeed())
	g.Eventually(func(g Gomega) { expectDelegated(g, ctx, again) }, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(again), &corev1.Pod{})).To(Succeed())
		g.Expect(events(g, ctx, src, again, feedback.ReasonDelegateGone)).To(BeEmpty())
	}, 3*time.Second, framework.Interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(chaperonsOf(g, ctx, ns, pod.UID)).To(BeEmpty(), "the chaperon of the deleted proxy pod is still in %s", t2.Name)
		g.Expect(candidatesOf(g, ctx, ns, pod.UID)).To(BeEmpty(), "the delegate of the deleted proxy pod is still in %s", t2.Name)
	}, framework.LongTimeout, framework.Interval).Should(Succeed())
}
