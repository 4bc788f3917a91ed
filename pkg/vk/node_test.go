package vk

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

func TestNodeName(t *testing.T) {
	for key, want := range map[remote.Key]string{
		{Namespace: "team-a", Name: "eu"}: "admiralty-team-a-eu",
		{Name: "us"}:                      "admiralty-us",
	} {
		if got := NodeName(key); got != want {
			t.Errorf("NodeName(%v) = %q, want %q", key, got, want)
		}
	}
}

func TestDesired(t *testing.T) {
	key := remote.Key{Namespace: "ns", Name: "eu"}
	summary := &multiclusterv1alpha1.ClusterSummary{
		Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("12")},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("11")},
		NodeLabels: map[string]string{
			"topology.kubernetes.io/region": "eu-west", "node.kubernetes.io/instance-type": "m5",
			corev1.LabelOSStable: "linux", corev1.LabelArchStable: "arm64",
			// A target cannot impersonate another cluster or drop the taint's label.
			protocol.ClusterNameLabel: "someone-else", protocol.VirtualKubeletProviderKey: "other",
		},
	}
	since := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ready := remote.Health{Ready: true, Reason: "Connected", Since: since}
	down := remote.Health{Reason: "Unreachable", Message: "cannot reach https://x: connection refused", Since: since}
	cases := []struct {
		name        string
		summary     *multiclusterv1alpha1.ClusterSummary
		health      remote.Health
		excluded    *regexp.Regexp
		wantLabels  map[string]string
		wantReady   corev1.ConditionStatus
		wantMessage string
		wantCPU     string
	}{
		{
			name: "ready target", summary: summary, health: ready,
			wantLabels: map[string]string{
				"topology.kubernetes.io/region": "eu-west", "node.kubernetes.io/instance-type": "m5",
				corev1.LabelOSStable: "linux", corev1.LabelArchStable: "arm64",
			},
			wantReady: corev1.ConditionTrue, wantMessage: "target ns/eu answers", wantCPU: "11",
		},
		{
			name: "excluded labels", summary: summary, health: ready, excluded: regexp.MustCompile(`^node\.kubernetes\.io/|region`),
			wantLabels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "arm64"},
			wantReady:  corev1.ConditionTrue, wantMessage: "target ns/eu answers", wantCPU: "11",
		},
		{
			name: "unreachable target", summary: summary, health: down,
			wantLabels: map[string]string{
				"topology.kubernetes.io/region": "eu-west", "node.kubernetes.io/instance-type": "m5",
				corev1.LabelOSStable: "linux", corev1.LabelArchStable: "arm64",
			},
			wantReady: corev1.ConditionUnknown, wantMessage: "target ns/eu: Unreachable: cannot reach https://x: connection refused", wantCPU: "11",
		},
		{
			name: "no summary yet", health: ready, wantLabels: map[string]string{},
			wantReady: corev1.ConditionTrue, wantMessage: "target ns/eu answers", wantCPU: "0",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := Desired(key, tc.summary, tc.health, tc.excluded)
			want := map[string]string{
				protocol.ClusterNameLabel: "eu", protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider,
				"type": "virtual-kubelet", "kubernetes.io/role": "agent", corev1.LabelHostname: "admiralty-ns-eu",
				corev1.LabelNodeExcludeBalancers: "true",
			}
			for k, v := range tc.wantLabels {
				want[k] = v
			}
			if diff := cmp.Diff(want, n.Labels); diff != "" {
				t.Errorf("labels (-want,+got):\n%s", diff)
			}
			if n.Name != "admiralty-ns-eu" || n.Annotations[protocol.TargetAnnotation] != "ns/eu" {
				t.Errorf("name %q, target annotation %q", n.Name, n.Annotations[protocol.TargetAnnotation])
			}
			if diff := cmp.Diff([]corev1.Taint{Taint}, n.Spec.Taints); diff != "" {
				t.Errorf("taints (-want,+got):\n%s", diff)
			}
			cond := n.Status.Conditions[0]
			if cond.Type != corev1.NodeReady || cond.Status != tc.wantReady || cond.Message != tc.wantMessage ||
				!cond.LastTransitionTime.Equal(&metav1.Time{Time: since}) {
				t.Errorf("Ready condition = %+v, want status %s message %q", cond, tc.wantReady, tc.wantMessage)
			}
			if got := n.Status.Allocatable.Cpu().String(); got != tc.wantCPU {
				t.Errorf("allocatable cpu = %s, want %s", got, tc.wantCPU)
			}
		})
	}
}

func TestSetKubeletEndpoint(t *testing.T) {
	key := remote.Key{Namespace: "ns", Name: "eu"}
	cases := []struct {
		name          string
		address       string
		port          int32
		wantAddresses []corev1.NodeAddress
		wantEndpoints corev1.NodeDaemonEndpoints
	}{
		{name: "none (as before)"},
		{
			name: "address and port", address: "10.1.2.3", port: 10250,
			wantAddresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.1.2.3"}},
			wantEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		},
		{
			name: "address only", address: "10.1.2.3",
			wantAddresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.1.2.3"}},
		},
		{
			name: "port only", port: 10250,
			wantEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := Desired(key, nil, remote.Health{Ready: true}, nil)
			// What an earlier endpoint said is replaced.
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "old"}}
			n.Status.DaemonEndpoints.KubeletEndpoint.Port = 1
			SetKubeletEndpoint(n, tc.address, tc.port)
			if diff := cmp.Diff(tc.wantAddresses, n.Status.Addresses); diff != "" {
				t.Errorf("addresses (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEndpoints, n.Status.DaemonEndpoints); diff != "" {
				t.Errorf("daemon endpoints (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestManagerAdvertisesKubeletEndpoint(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := fake.NewClientset()
	watcher, err := client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()
	m := NewManager(ctx, client, Options{Address: "10.1.2.3", KubeletPort: 10250})
	key := remote.Key{Name: "us"}
	if err := m.Set(key, nil, remote.Health{Ready: true}, nil); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Remove(context.Background(), key); err != nil {
			t.Error(err)
		}
	}()
	var node *corev1.Node
	for node == nil {
		select {
		case ev := <-watcher.ResultChan():
			node, _ = ev.Object.(*corev1.Node)
		case <-ctx.Done():
			t.Fatal("the virtual node was not created")
		}
	}
	wantAddresses := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.1.2.3"}}
	if diff := cmp.Diff(wantAddresses, node.Status.Addresses); diff != "" {
		t.Errorf("addresses (-want,+got):\n%s", diff)
	}
	if port := node.Status.DaemonEndpoints.KubeletEndpoint.Port; port != 10250 {
		t.Errorf("kubelet port = %d, want 10250", port)
	}
}
