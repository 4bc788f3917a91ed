package summary

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// Summary is what a ClusterSummary says about a cluster's nodes.
type Summary struct {
	Capacity    corev1.ResourceList
	Allocatable corev1.ResourceList
	// Free is, summed over nodes, allocatable minus the requests of the
	// non-terminated pods bound to the node, never below zero on any node.
	Free corev1.ResourceList
	// NodeLabels are the labels that every counted node has, same value.
	NodeLabels map[string]string
	Nodes      int32
}

// Counts reports whether a node's resources count: it is a real node (not
// one of Flotilla's virtual nodes), Ready, and not cordoned.
func Counts(node *corev1.Node) bool {
	if node.Labels[protocol.VirtualKubeletProviderKey] == protocol.VirtualKubeletProvider {
		return false
	}
	if node.Spec.Unschedulable {
		return false
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Summarize sums the nodes that count and the pods bound to them.
func Summarize(nodes []*corev1.Node, pods []*corev1.Pod) Summary {
	s := Summary{
		Capacity:    corev1.ResourceList{},
		Allocatable: corev1.ResourceList{},
		Free:        corev1.ResourceList{},
	}
	used := map[string]corev1.ResourceList{}
	for _, pod := range pods {
		if pod.Spec.NodeName == "" || terminated(pod) {
			continue
		}
		u := used[pod.Spec.NodeName]
		if u == nil {
			u = corev1.ResourceList{}
			used[pod.Spec.NodeName] = u
		}
		addTo(u, resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
		addTo(u, corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(1, resource.DecimalSI)})
	}
	first := true
	for _, node := range nodes {
		if !Counts(node) {
			continue
		}
		s.Nodes++
		addTo(s.Capacity, node.Status.Capacity)
		addTo(s.Allocatable, node.Status.Allocatable)
		free := corev1.ResourceList{}
		for name, alloc := range node.Status.Allocatable {
			q := alloc.DeepCopy()
			if u, ok := used[node.Name][name]; ok {
				q.Sub(u)
			}
			if q.Sign() < 0 {
				q = *resource.NewQuantity(0, alloc.Format)
			}
			free[name] = q
		}
		addTo(s.Free, free)
		if first {
			s.NodeLabels = map[string]string{}
			for k, v := range node.Labels {
				if !nodeIdentityLabels[k] {
					s.NodeLabels[k] = v
				}
			}
			first = false
			continue
		}
		for k, v := range s.NodeLabels {
			if node.Labels[k] != v {
				delete(s.NodeLabels, k)
			}
		}
	}
	return s
}

// nodeIdentityLabels name one node; they are never common, even when a
// cluster has a single node.
var nodeIdentityLabels = map[string]bool{corev1.LabelHostname: true}

func terminated(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func addTo(sum, add corev1.ResourceList) {
	for name, q := range add {
		if cur, ok := sum[name]; ok {
			cur.Add(q)
			sum[name] = cur
		} else {
			sum[name] = q.DeepCopy()
		}
	}
}
