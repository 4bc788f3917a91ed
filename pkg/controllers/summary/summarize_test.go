package summary

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

type nodeOpt func(*corev1.Node)

func makeNode(name, cpu, mem string, labels map[string]string, opts ...nodeOpt) *corev1.Node {
	l := map[string]string{corev1.LabelHostname: name}
	for k, v := range labels {
		l[k] = v
	}
	rl := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods: resource.MustParse("110"),
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Status: corev1.NodeStatus{
			Capacity: rl, Allocatable: rl.DeepCopy(),
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func notReady(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }
func cordoned(n *corev1.Node) { n.Spec.Unschedulable = true }
func virtual(n *corev1.Node) {
	n.Labels[protocol.VirtualKubeletProviderKey] = protocol.VirtualKubeletProvider
}

func makePod(node, cpu string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name:      "c",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}},
		}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func TestSummarize(t *testing.T) {
	eu := map[string]string{"topology.kubernetes.io/region": "eu-west", "type": "kwok"}
	cases := []struct {
		name  string
		nodes []*corev1.Node
		pods  []*corev1.Pod
		want  Summary
	}{
		{
			name: "no nodes",
			want: Summary{Capacity: corev1.ResourceList{}, Allocatable: corev1.ResourceList{}, Free: corev1.ResourceList{}},
		},
		{
			name: "sums nodes, keeps only common labels, subtracts bound pods",
			nodes: []*corev1.Node{
				makeNode("a", "4", "16Gi", eu),
				makeNode("b", "8", "32Gi", map[string]string{"topology.kubernetes.io/region": "eu-west", "type": "big"}),
			},
			pods: []*corev1.Pod{
				makePod("a", "1", corev1.PodRunning),
				makePod("a", "500m", corev1.PodPending),
				makePod("b", "2", corev1.PodSucceeded), // terminated: frees its requests
				makePod("", "3", corev1.PodPending),    // not bound
			},
			want: Summary{
				Capacity:    rl("12", "48Gi", "220"),
				Allocatable: rl("12", "48Gi", "220"),
				Free:        rl("10500m", "48Gi", "218"),
				NodeLabels:  map[string]string{"topology.kubernetes.io/region": "eu-west"},
				Nodes:       2,
			},
		},
		{
			name:  "single node: its hostname is not a common label",
			nodes: []*corev1.Node{makeNode("a", "4", "16Gi", eu)},
			want: Summary{
				Capacity: rl("4", "16Gi", "110"), Allocatable: rl("4", "16Gi", "110"), Free: rl("4", "16Gi", "110"),
				NodeLabels: eu, Nodes: 1,
			},
		},
		{
			name: "virtual, not-ready and cordoned nodes do not count",
			nodes: []*corev1.Node{
				makeNode("a", "4", "16Gi", eu),
				makeNode("v", "100", "1Ti", eu, virtual),
				makeNode("n", "100", "1Ti", eu, notReady),
				makeNode("c", "100", "1Ti", eu, cordoned),
			},
			pods: []*corev1.Pod{makePod("v", "50", corev1.PodRunning)},
			want: Summary{
				Capacity: rl("4", "16Gi", "110"), Allocatable: rl("4", "16Gi", "110"), Free: rl("4", "16Gi", "110"),
				NodeLabels: eu, Nodes: 1,
			},
		},
		{
			name:  "overcommitted node frees nothing, not less than nothing",
			nodes: []*corev1.Node{makeNode("a", "4", "16Gi", eu), makeNode("b", "4", "16Gi", eu)},
			pods:  []*corev1.Pod{makePod("a", "6", corev1.PodRunning)},
			want: Summary{
				Capacity: rl("8", "32Gi", "220"), Allocatable: rl("8", "32Gi", "220"), Free: rl("4", "32Gi", "219"),
				NodeLabels: eu, Nodes: 2,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarize(tc.nodes, tc.pods)
			if diff := cmp.Diff(tc.want, got, quantityEqual); diff != "" {
				t.Errorf("Summarize() (-want,+got):\n%s", diff)
			}
		})
	}
}

func rl(cpu, mem, pods string) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods: resource.MustParse(pods),
	}
}

var quantityEqual = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })
