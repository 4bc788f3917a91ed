package scheduling

import (
	"context"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// namespace creates a namespace in the source (elect enabled) and in every
// target; it is deleted at the end of the test.
func namespace(t *testing.T) string {
	t.Helper()
	name := "e2e-" + utilrand.String(6)
	if err := fleet.Namespace(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range append([]*framework.Cluster{fleet.Source}, fleet.Targets...) {
			_ = c.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		}
	})
	return name
}

// elected is a pod opted in to multi-cluster scheduling, asking for cpu.
func elected(ns, name, cpu string, annotations map[string]string) *corev1.Pod {
	a := map[string]string{protocol.ElectAnnotation: ""}
	for k, v := range annotations {
		a[k] = v
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: a}, Spec: framework.PodSpec()}
	pod.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	return pod
}

// targetCluster returns the target whose virtual node is nodeName.
func targetCluster(nodeName string) *framework.Cluster {
	for _, t := range fleet.Targets {
		if nodeName == "admiralty-"+t.Name {
			return t
		}
	}
	return nil
}

// candidatesOf lists, per target, the candidate pods of a proxy pod.
func candidatesOf(g Gomega, ctx context.Context, ns string, uid types.UID) map[string][]corev1.Pod {
	out := map[string][]corev1.Pod{}
	for _, t := range fleet.Targets {
		var pods corev1.PodList
		g.Expect(t.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{protocol.ProxyPodUIDLabel: string(uid)})).To(Succeed())
		if len(pods.Items) > 0 {
			out[t.Name] = pods.Items
		}
	}
	return out
}

// chaperonsOf counts, per target, the chaperons of a proxy pod.
func chaperonsOf(g Gomega, ctx context.Context, ns string, uid types.UID) map[string]int {
	out := map[string]int{}
	for _, t := range fleet.Targets {
		var list multiclusterv1alpha1.PodChaperonList
		g.Expect(t.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{protocol.ProxyPodUIDLabel: string(uid)})).To(Succeed())
		if len(list.Items) > 0 {
			out[t.Name] = len(list.Items)
		}
	}
	return out
}

// expectDelegated checks, inside Eventually, that a proxy pod is bound to a
// virtual node and Running, and that it has exactly one delegate, Running on
// a real node of that target, and no candidate or chaperon elsewhere. It
// returns the target's name.
func expectDelegated(g Gomega, ctx context.Context, proxy *corev1.Pod) string {
	g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(proxy), proxy)).To(Succeed())
	target := targetCluster(proxy.Spec.NodeName)
	g.Expect(target).NotTo(BeNil(), "proxy %s is bound to %q, not to a virtual node", proxy.Name, proxy.Spec.NodeName)
	candidates := candidatesOf(g, ctx, proxy.Namespace, proxy.UID)
	g.Expect(candidates).To(HaveLen(1), "proxy %s: candidates in %v", proxy.Name, keys(candidates))
	g.Expect(candidates).To(HaveKey(target.Name))
	delegate := candidates[target.Name]
	g.Expect(delegate).To(HaveLen(1))
	g.Expect(target.Nodes).To(ContainElement(delegate[0].Spec.NodeName))
	g.Expect(delegate[0].Status.Phase).To(Equal(corev1.PodRunning))
	g.Expect(chaperonsOf(g, ctx, proxy.Namespace, proxy.UID)).To(Equal(map[string]int{target.Name: 1}))
	g.Expect(proxy.Status.Phase).To(Equal(corev1.PodRunning), "proxy status not fed back")
	return target.Name
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// events returns the messages of the events of reason on an object.
func events(g Gomega, ctx context.Context, c *framework.Cluster, obj client.Object, reason string) []string {
	notes, err := c.Events(ctx, obj, reason)
	g.Expect(err).NotTo(HaveOccurred())
	return notes
}
