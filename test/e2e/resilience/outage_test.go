package resilience

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// longOutage is long enough for client-go's reflectors, which retry a lost
// watch with a backoff that doubles from 0.8 s, to wait tens of seconds
// between attempts.
const longOutage = 40 * time.Second

// A target back from a long network outage takes pods at once: the source
// does not wait for its caches' backed-off watches (up to a minute) to see
// the chaperons made there, but watches anew as soon as the target
// answers. The source reaches the target through a link that the test
// cuts: the target itself, and its components, run on undisturbed.
func TestTargetBackFromALongOutage(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := fleet.Source
	victim := fleet.Targets[len(fleet.Targets)-1]
	node := "admiralty-" + victim.Name
	ns := fmt.Sprintf("outage-%d", time.Now().UnixNano()%1e6)
	g.Expect(fleet.Namespace(ctx, ns)).To(Succeed())

	// The Target's kubeconfig leads through the link from now on.
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: framework.FleetNamespace, Name: victim.Name}
	g.Expect(src.Client.Get(ctx, key, secret)).To(Succeed())
	original := secret.Data["config"]
	cfg, err := clientcmd.Load(original)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.Clusters).To(HaveLen(1))
	var server *url.URL
	for _, c := range cfg.Clusters {
		server, err = url.Parse(c.Server)
		g.Expect(err).NotTo(HaveOccurred())
	}
	l, err := newLink(server.Host)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		restored := &corev1.Secret{}
		if err := src.Client.Get(context.Background(), key, restored); err == nil {
			restored.Data["config"] = original
			_ = src.Client.Update(context.Background(), restored)
		}
		_ = l.Restore()
		time.AfterFunc(time.Minute, l.Cut) // once the source has left it
	})
	for _, c := range cfg.Clusters {
		c.Server = "https://" + l.addr
	}
	secret.Data["config"], err = clientcmd.Write(*cfg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(src.Client.Update(ctx, secret)).To(Succeed())

	pinned := func(name string) *corev1.Pod {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{
			protocol.ElectAnnotation:                         "",
			protocol.ProxyPodSchedulingConstraintsAnnotation: `{"nodeSelector":{"kubernetes.io/hostname":"` + node + `"}}`,
		}}, Spec: framework.PodSpec()}
		g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
		return pod
	}
	runs := func(pod *corev1.Pod) func(g Gomega) {
		return func(g Gomega) {
			g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
			g.Expect(pod.Spec.NodeName).To(Equal(node))
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning), "the delegate's status is not fed back")
		}
	}
	// Both the proxy scheduler and the controller-manager go through the
	// link: the former says so, the latter's virtual node goes NotReady
	// once it is cut.
	g.Eventually(func(g Gomega) {
		log, err := os.ReadFile(fleet.Components["proxy-scheduler"].Log)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(log)).To(ContainSubstring(`"Connected to target" logger="targets" target="` + victim.Name + `" server="https://` + l.addr + `"`))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Eventually(runs(pinned("before")), framework.PodTimeout, framework.Interval).Should(Succeed())
	l.Cut()
	g.Eventually(func(g Gomega) {
		g.Expect(nodeReady(g, ctx, node)).NotTo(Equal(corev1.ConditionTrue))
	}, framework.TargetLossTimeout, framework.Interval).Should(Succeed())
	waiting := pinned("waiting")
	time.Sleep(longOutage)

	g.Expect(l.Restore()).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(nodeReady(g, ctx, node)).To(Equal(corev1.ConditionTrue))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	readyAt := time.Now()
	g.Eventually(runs(waiting), framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Eventually(runs(pinned("after")), framework.ShortTimeout, framework.Interval).Should(Succeed())
	t.Logf("pods for %s ran %s after its virtual node was Ready again", victim.Name, time.Since(readyAt).Round(100*time.Millisecond))
	g.Expect(fleet.Crashed()).To(Succeed())
}
