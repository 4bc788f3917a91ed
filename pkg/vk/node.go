package vk

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// NodeName is the virtual node's name: admiralty-<namespace>-<target> for a
// Target, admiralty-<target> for a ClusterTarget (Admiralty's names).
func NodeName(key remote.Key) string {
	if key.Namespace == "" {
		return "admiralty-" + key.Name
	}
	return "admiralty-" + key.Namespace + "-" + key.Name
}

// Taint keeps pods that do not tolerate it off virtual nodes.
var Taint = corev1.Taint{
	Key: protocol.VirtualKubeletProviderKey, Value: protocol.VirtualKubeletProvider, Effect: corev1.TaintEffectNoSchedule,
}

// Reasons of the virtual node's Ready condition.
const (
	ReasonTargetReady    = "TargetReady"
	ReasonTargetNotReady = "TargetNotReady"
)

// labels that Flotilla sets itself; a target's labels never override them.
func ownLabels(key remote.Key, name string) map[string]string {
	return map[string]string{
		protocol.ClusterNameLabel:          key.Name,
		protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider,
		"type":                             "virtual-kubelet",
		"kubernetes.io/role":               "agent",
		corev1.LabelHostname:               name,
		corev1.LabelNodeExcludeBalancers:   "true",
	}
}

// Desired is the virtual node of a target as it should be: labels are the
// summary's common labels minus those matching excluded, then Flotilla's
// own; capacity and allocatable are the summary's; Ready follows health
// (True, or Unknown).
func Desired(key remote.Key, summary *multiclusterv1alpha1.ClusterSummary, health remote.Health, excluded *regexp.Regexp) *corev1.Node {
	name := NodeName(key)
	labels := map[string]string{}
	if summary != nil {
		for k, v := range summary.NodeLabels {
			if excluded != nil && excluded.MatchString(k) {
				continue
			}
			labels[k] = v
		}
	}
	for k, v := range ownLabels(key, name) {
		labels[k] = v
	}
	// A target that does not answer (or refuses us) is a node whose kubelet
	// stopped reporting: Ready is Unknown, which Kubernetes' node lifecycle
	// controller taints node.kubernetes.io/unreachable (NoExecute), so
	// proxies leave it after their toleration of that taint.
	status := corev1.ConditionUnknown
	reason := ReasonTargetNotReady
	message := fmt.Sprintf("target %s: %s: %s", key, health.Reason, health.Message)
	if health.Ready {
		status, reason = corev1.ConditionTrue, ReasonTargetReady
		message = fmt.Sprintf("target %s answers", key)
	}
	since := metav1.NewTime(health.Since)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels,
			Annotations: map[string]string{protocol.TargetAnnotation: key.String()}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{Taint}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{},
			Allocatable: corev1.ResourceList{},
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: status, Reason: reason, Message: message,
				LastTransitionTime: since, LastHeartbeatTime: since,
			}},
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem: labels[corev1.LabelOSStable],
				Architecture:    labels[corev1.LabelArchStable],
				KubeletVersion:  "flotilla",
			},
		},
	}
	if node.Status.NodeInfo.OperatingSystem == "" {
		node.Status.NodeInfo.OperatingSystem = "linux"
	}
	if summary != nil {
		node.Status.Capacity = summary.Capacity.DeepCopy()
		node.Status.Allocatable = summary.Allocatable.DeepCopy()
	}
	return node
}

// SetKubeletEndpoint makes node say where its kubelet endpoint is, for
// kube-apiserver (logs, exec, attach, port-forward): address as its
// InternalIP (its only address: kube-apiserver prefers a Hostname by
// default, and a virtual node's name does not resolve) and port as its
// kubelet port. An empty address or a zero port is left out.
func SetKubeletEndpoint(node *corev1.Node, address string, port int32) {
	node.Status.Addresses = nil
	if address != "" {
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: address}}
	}
	node.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{}
	if port != 0 {
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	}
}

// CompileExcluded compiles a Target's excludedLabelsRegexp (nil for none).
func CompileExcluded(expr *string) (*regexp.Regexp, error) {
	if expr == nil || strings.TrimSpace(*expr) == "" {
		return nil, nil
	}
	return regexp.Compile(*expr)
}
