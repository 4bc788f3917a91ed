// Package resilience takes a target away while an elected Deployment runs
// spread over three targets, and brings it back: by killing its API
// server, and by revoking the source's access to it (deleting its
// ClusterSource), as a network cut would.
//
// Pass: the target's virtual node goes NotReady within
// framework.TargetLossTimeout; proxies that tolerate
// node.kubernetes.io/unreachable for a few seconds are replaced in the other
// targets, and the Deployment is Available again within a minute; when the
// target returns, the delegates that were replaced are removed there, and
// nothing live is deleted. The measured times are logged.
//
// TestTargetBackFromALongOutage cuts the network between the source and a
// target (a TCP link in between) for longer than client-go's watch backoff
// takes to grow: pods for the target run within seconds of its return.
package resilience

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

const (
	targets  = 3
	replicas = 6
	// tolerated is how long proxies stay on a virtual node that went
	// NotReady (their toleration of node.kubernetes.io/unreachable).
	tolerated = 5
	// replacedWithin bounds how long after the node went NotReady the
	// Deployment is Available again.
	replacedWithin = time.Minute
)

var (
	sandbox *framework.Sandbox
	fleet   *framework.Fleet
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	s, stop, err := framework.SetupSandbox(ctx, targets, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the sandbox:", err)
		return 1
	}
	defer func() {
		if err := stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping the sandbox:", err)
		}
	}()
	sandbox = s
	logDir, err := os.MkdirTemp("", "flotilla-resilience-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if os.Getenv("FLOTILLA_KEEP_LOGS") != "" {
		fmt.Fprintln(os.Stderr, "e2e: component logs in", logDir)
	} else {
		defer func() { _ = os.RemoveAll(logDir) }()
	}
	// Targets keep what an unseen source left for as long as they do by
	// default (15 minutes): the outages here are shorter, and whatever is
	// cleaned up is Flotilla's doing on the source's side.
	fleet, err = framework.StartFleetWith(ctx, s, targets, logDir, framework.FleetOptions{
		ControllerManagerArgs: []string{"--orphan-grace-period=15m"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting Flotilla:", err)
		return 1
	}
	defer fleet.Stop()
	code := m.Run()
	if code != 0 {
		for _, p := range fleet.Components {
			fmt.Fprintf(os.Stderr, "==== last lines of %s\n%s\n", p.Name, p.Tail(60))
		}
	}
	return code
}

func TestTargetLossAndReturn(t *testing.T) {
	cases := []struct {
		name string
		// cut takes the target away; restore brings it back.
		cut, restore func(t *testing.T, target *framework.Cluster) error
	}{
		{
			name: "API server killed",
			cut: func(_ *testing.T, target *framework.Cluster) error {
				return sandbox.KillProcess(target.Name, "kube-apiserver")
			},
			restore: func(t *testing.T, target *framework.Cluster) error {
				return sandbox.StartProcess(t.Context(), target.Name, "kube-apiserver")
			},
		},
		{
			name: "source's access revoked",
			cut: func(t *testing.T, target *framework.Cluster) error {
				cs := &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: framework.SourceCluster}}
				return target.Client.Delete(t.Context(), cs)
			},
			restore: func(t *testing.T, target *framework.Cluster) error {
				cs := &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: framework.SourceCluster},
					Spec: multiclusterv1alpha1.ClusterSourceSpec{ServiceAccount: &multiclusterv1alpha1.ServiceAccountReference{
						Namespace: framework.FleetNamespace, Name: framework.SourceCluster}}}
				return target.Client.Create(t.Context(), cs)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := t.Context()
			src := fleet.Source
			ns := fmt.Sprintf("loss-%d", time.Now().UnixNano()%1e6)
			g.Expect(fleet.Namespace(ctx, ns)).To(Succeed())

			d := spreadDeployment(ns)
			g.Expect(src.Client.Create(ctx, d)).To(Succeed())
			var placed map[string][]corev1.Pod
			g.Eventually(func(g Gomega) {
				placed = delegates(g, ctx, ns)
				g.Expect(available(g, ctx, d)).To(Equal(int32(replicas)))
			}, framework.PodTimeout, framework.Interval).Should(Succeed())
			// The target with the most delegates goes away.
			victim := fleet.Targets[0]
			for _, tgt := range fleet.Targets {
				if len(placed[tgt.Name]) > len(placed[victim.Name]) {
					victim = tgt
				}
			}
			g.Expect(placed[victim.Name]).NotTo(BeEmpty())
			// What runs elsewhere must survive all that follows.
			live := map[types.UID]string{}
			for name, pods := range placed {
				if name == victim.Name {
					continue
				}
				for _, p := range pods {
					live[p.UID] = name + "/" + p.Name
				}
			}
			t.Logf("delegates: %v; %s goes away", counts(placed), victim.Name)

			g.Expect(tc.cut(t, victim)).To(Succeed())
			cutAt := time.Now()
			restored := false
			t.Cleanup(func() {
				if !restored {
					_ = tc.restore(t, victim)
				}
			})
			node := "admiralty-" + victim.Name
			g.Eventually(func(g Gomega) {
				g.Expect(nodeReady(g, ctx, node)).NotTo(Equal(corev1.ConditionTrue))
			}, framework.TargetLossTimeout, framework.Interval).Should(Succeed())
			notReadyAt := time.Now()

			// The Deployment's proxies on that node are evicted and
			// replaced elsewhere.
			g.Eventually(func(g Gomega) {
				g.Expect(available(g, ctx, d)).To(Equal(int32(replicas)))
				var proxies corev1.PodList
				g.Expect(src.Client.List(ctx, &proxies, client.InNamespace(ns), client.MatchingLabels{"app": "web"})).To(Succeed())
				running := 0
				for _, p := range proxies.Items {
					if p.DeletionTimestamp == nil {
						g.Expect(p.Spec.NodeName).NotTo(Equal(node))
						running++
					}
				}
				g.Expect(running).To(Equal(replicas))
			}, replacedWithin, framework.Interval).Should(Succeed())
			replacedAt := time.Now()
			t.Logf("%s: virtual node NotReady %s after the cut; its proxies replaced, and the Deployment Available, %s after the cut",
				tc.name, notReadyAt.Sub(cutAt).Round(100*time.Millisecond), replacedAt.Sub(cutAt).Round(100*time.Millisecond))

			// The target returns: what was replaced goes, nothing else.
			g.Expect(tc.restore(t, victim)).To(Succeed())
			restored = true
			returnedAt := time.Now()
			g.Eventually(func(g Gomega) {
				g.Expect(nodeReady(g, ctx, node)).To(Equal(corev1.ConditionTrue))
				now := delegates(g, ctx, ns)
				g.Expect(now[victim.Name]).To(BeEmpty(), "replaced delegates left in %s", victim.Name)
				var proxies corev1.PodList
				g.Expect(src.Client.List(ctx, &proxies, client.InNamespace(ns))).To(Succeed())
				g.Expect(proxies.Items).To(HaveLen(replicas), "terminating proxy pods left")
			}, framework.LongTimeout, framework.Interval).Should(Succeed())
			t.Logf("%s: replaced delegates removed %s after the target returned", tc.name, time.Since(returnedAt).Round(100*time.Millisecond))

			now := delegates(NewWithT(t), ctx, ns)
			seen := map[types.UID]bool{}
			for _, pods := range now {
				for _, p := range pods {
					seen[p.UID] = true
				}
			}
			for uid, name := range live {
				g.Expect(seen).To(HaveKey(uid), "live delegate %s was deleted", name)
			}
			g.Expect(available(NewWithT(t), ctx, d)).To(Equal(int32(replicas)))
			g.Expect(fleet.Crashed()).To(Succeed())
		})
	}
}

// spreadDeployment is an elected Deployment spread over the targets, whose
// proxies leave a virtual node tolerated seconds after it goes NotReady.
func spreadDeployment(ns string) *appsv1.Deployment {
	d := framework.Deployment(ns, "web", replicas)
	d.Spec.Template.Annotations = map[string]string{
		protocol.ElectAnnotation: "",
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"topologySpreadConstraints":[{"maxSkew":1,` +
			`"topologyKey":"` + protocol.ClusterNameLabel + `","whenUnsatisfiable":"ScheduleAnyway",` +
			`"labelSelector":{"matchLabels":{"app":"web"}}}]}`,
	}
	d.Spec.Template.Spec.Tolerations = []corev1.Toleration{
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](tolerated)},
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](tolerated)},
	}
	return d
}

// delegates lists, per reachable target, the delegates (bound candidates)
// in ns.
func delegates(g Gomega, ctx context.Context, ns string) map[string][]corev1.Pod {
	out := map[string][]corev1.Pod{}
	for _, tgt := range fleet.Targets {
		var pods corev1.PodList
		if err := tgt.Client.List(ctx, &pods, client.InNamespace(ns), client.HasLabels{protocol.ProxyPodUIDLabel}); err != nil {
			continue // unreachable for now
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				out[tgt.Name] = append(out[tgt.Name], p)
			}
		}
	}
	return out
}

func counts(m map[string][]corev1.Pod) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

func available(g Gomega, ctx context.Context, d *appsv1.Deployment) int32 {
	g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
	return d.Status.AvailableReplicas
}

// nodeReady is the Ready condition of the source's node name.
func nodeReady(g Gomega, ctx context.Context, name string) corev1.ConditionStatus {
	var n corev1.Node
	g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKey{Name: name}, &n)).To(Succeed())
	return ready(&n)
}

func ready(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}
