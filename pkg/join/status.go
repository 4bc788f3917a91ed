package join

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/remote"
	"github.com/flotilla-io/flotilla/pkg/vk"
)

// TargetStatus is what a source knows of one of its targets.
type TargetStatus struct {
	// Kind is "ClusterTarget" or "Target"; Namespace is empty for a
	// ClusterTarget.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Ready is the Target's Ready condition; nil if it has none yet.
	Ready *metav1.Condition `json:"ready,omitempty"`
	// Node is the name of its virtual node; NodeReady the node's Ready
	// condition status, empty if there is no such node.
	Node      string                 `json:"virtualNode"`
	NodeReady corev1.ConditionStatus `json:"virtualNodeReady,omitempty"`
	// Pods counts the (proxy) pods bound to the virtual node, by phase.
	Pods map[corev1.PodPhase]int `json:"proxyPods,omitempty"`
}

// Status reports the Targets and ClusterTargets of a source cluster:
// ClusterTargets first, each kind by namespace and name.
func Status(ctx context.Context, c *Cluster) ([]TargetStatus, error) {
	s := side{c, "source"}
	if err := checkInstalled(ctx, s.discovery, s, targets.Resource, clusterTargets.Resource); err != nil {
		return nil, err
	}
	var rows []TargetStatus
	cts, err := s.dynamic.Resource(clusterTargets).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, s.fail(err, "listing ClusterTargets")
	}
	for i := range cts.Items {
		var ct multiclusterv1alpha1.ClusterTarget
		if err := fromUnstructured(&cts.Items[i], &ct); err != nil {
			return nil, err
		}
		rows = append(rows, TargetStatus{Kind: "ClusterTarget", Name: ct.Name,
			Ready: meta.FindStatusCondition(ct.Status.Conditions, multiclusterv1alpha1.ConditionReady),
			Node:  vk.NodeName(remote.Key{Name: ct.Name})})
	}
	ts, err := s.dynamic.Resource(targets).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, s.fail(err, "listing Targets")
	}
	for i := range ts.Items {
		var t multiclusterv1alpha1.Target
		if err := fromUnstructured(&ts.Items[i], &t); err != nil {
			return nil, err
		}
		rows = append(rows, TargetStatus{Kind: "Target", Namespace: t.Namespace, Name: t.Name,
			Ready: meta.FindStatusCondition(t.Status.Conditions, multiclusterv1alpha1.ConditionReady),
			Node:  vk.NodeName(remote.Key{Namespace: t.Namespace, Name: t.Name})})
	}
	sortRows(rows)
	for i := range rows {
		if err := s.observeNode(ctx, &rows[i]); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func fromUnstructured(u *unstructured.Unstructured, obj any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return fmt.Errorf("reading %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

func sortRows(rows []TargetStatus) {
	slices.SortFunc(rows, func(a, b TargetStatus) int {
		return strings.Compare(a.Kind+"\x00"+a.Namespace+"\x00"+a.Name, b.Kind+"\x00"+b.Namespace+"\x00"+b.Name)
	})
}

// observeNode fills in the virtual node's readiness and its pods.
func (s side) observeNode(ctx context.Context, row *TargetStatus) error {
	node, err := s.kube.CoreV1().Nodes().Get(ctx, row.Node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return s.fail(err, "reading node "+row.Node)
	default:
		row.NodeReady = corev1.ConditionUnknown
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				row.NodeReady = c.Status
			}
		}
	}
	pods, err := s.kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", row.Node).String()})
	if err != nil {
		return s.fail(err, "listing the pods of node "+row.Node)
	}
	row.Pods = countPhases(pods.Items)
	return nil
}

func countPhases(pods []corev1.Pod) map[corev1.PodPhase]int {
	counts := map[corev1.PodPhase]int{}
	for _, p := range pods {
		phase := p.Status.Phase
		if phase == "" {
			phase = corev1.PodPending
		}
		counts[phase]++
	}
	return counts
}

// phases is the order in which pod counts are shown.
var phases = []corev1.PodPhase{corev1.PodRunning, corev1.PodPending, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown}

// formatPods shows a count by phase: "0", "3 (2 Running, 1 Pending)".
func formatPods(counts map[corev1.PodPhase]int) string {
	total := 0
	var parts []string
	for _, p := range phases {
		if n := counts[p]; n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%d %s", n, p))
		}
	}
	if total == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// WriteStatus writes rows as a table, as kubectl would.
func WriteStatus(w io.Writer, rows []TargetStatus) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tREADY\tREASON\tVIRTUAL NODE\tNODE READY\tPROXY PODS\tMESSAGE")
	for _, r := range rows {
		ready, reason, message := "Unknown", "-", "no Ready condition yet (is Flotilla's controller-manager running in this cluster?)"
		if r.Ready != nil {
			ready, reason, message = string(r.Ready.Status), r.Ready.Reason, r.Ready.Message
		}
		nodeReady := string(r.NodeReady)
		if nodeReady == "" {
			nodeReady = "absent"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, orDash(r.Namespace), r.Name, ready, orDash(reason),
			r.Node, nodeReady, formatPods(r.Pods), oneLine(message))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a message on its row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
