package summary

import (
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	resourcehelper "k8s.io/component-helpers/resource"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// podChangesSummary drops pod updates that cannot change the summary: most
// are status updates of running pods.
func podChangesSummary() builder.WatchesOption {
	return builder.WithPredicates(predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			old, okOld := e.ObjectOld.(*corev1.Pod)
			cur, okNew := e.ObjectNew.(*corev1.Pod)
			if !okOld || !okNew {
				return true
			}
			return podCounts(old) != podCounts(cur) ||
				old.Spec.NodeName != cur.Spec.NodeName ||
				!apiequality.Semantic.DeepEqual(
					resourcehelper.PodRequests(old, resourcehelper.PodResourcesOptions{}),
					resourcehelper.PodRequests(cur, resourcehelper.PodResourcesOptions{}))
		},
	})
}

// podCounts reports whether the pod holds resources on its node.
func podCounts(p *corev1.Pod) bool {
	return p.Spec.NodeName != "" && !terminated(p)
}
