package scheduling

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
