package join

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFormatPods(t *testing.T) {
	cases := []struct {
		pods []corev1.PodPhase
		want string
	}{
		{nil, "0"},
		{[]corev1.PodPhase{corev1.PodRunning}, "1 (1 Running)"},
		// A pod without a phase yet counts as Pending.
		{[]corev1.PodPhase{corev1.PodPending, corev1.PodRunning, "", corev1.PodFailed, corev1.PodRunning}, "5 (2 Running, 2 Pending, 1 Failed)"},
		{[]corev1.PodPhase{corev1.PodSucceeded, corev1.PodUnknown}, "2 (1 Succeeded, 1 Unknown)"},
	}
	for _, tc := range cases {
		var pods []corev1.Pod
		for _, p := range tc.pods {
			pods = append(pods, corev1.Pod{Status: corev1.PodStatus{Phase: p}})
		}
		if got := formatPods(countPhases(pods)); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.pods, got, tc.want)
		}
	}
}

func TestWriteStatus(t *testing.T) {
	rows := []TargetStatus{
		{Kind: "Target", Namespace: "team-a", Name: "eu", Node: "admiralty-team-a-eu",
			Ready: &metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Forbidden",
				Message: "https://eu:6443 accepted the credentials but forbids\nreading ClusterSummaries"},
			NodeReady: corev1.ConditionUnknown},
		{Kind: "ClusterTarget", Name: "us", Node: "admiralty-us"},
		{Kind: "ClusterTarget", Name: "eu", Node: "admiralty-eu",
			Ready:     &metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Connected", Message: "connected to https://eu:6443"},
			NodeReady: corev1.ConditionTrue, Pods: map[corev1.PodPhase]int{corev1.PodRunning: 2, corev1.PodPending: 1}},
	}
	sortRows(rows)
	var b strings.Builder
	if err := WriteStatus(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := `KIND           NAMESPACE  NAME  READY    REASON     VIRTUAL NODE         NODE READY  PROXY PODS                MESSAGE
ClusterTarget  -          eu    True     Connected  admiralty-eu         True        3 (2 Running, 1 Pending)  connected to https://eu:6443
ClusterTarget  -          us    Unknown  -          admiralty-us         absent      0                         no Ready condition yet (is Flotilla's controller-manager running in this cluster?)
Target         team-a     eu    False    Forbidden  admiralty-team-a-eu  Unknown     0                         https://eu:6443 accepted the credentials but forbids reading ClusterSummaries
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want,+got):\n%s", diff)
	}
}
