package source

import (
	rbacv1 "k8s.io/api/rbac/v1"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// Names of the roles that sources are bound to.
const (
	// NamespacedRole holds what a source may do in a namespace it is granted.
	NamespacedRole = "flotilla-source"
	// ClusterRole holds what every source may read cluster-wide.
	ClusterRole = "flotilla-source-cluster"
)

var group = multiclusterv1alpha1.GroupVersion.Group

// NamespacedRules are the permissions of a source in its namespaces.
var NamespacedRules = []rbacv1.PolicyRule{
	{APIGroups: []string{group}, Resources: []string{"podchaperons"},
		Verbs: []string{"create", "get", "list", "watch", "update", "patch", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
	{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}, Verbs: []string{"create", "get"}},
	// Followed objects are written, never read: a source must not be able to
	// read the target's own Secrets in a namespace it is granted.
	{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets", "services"},
		Verbs: []string{"create", "update", "patch", "delete"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"},
		Verbs: []string{"create", "update", "patch", "delete"}},
	{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
	// The source's Leases, by which it stands behind its chaperons (see
	// package cleanup); written, not read.
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create", "patch", "delete"}},
}

// ClusterRules are the permissions of every source cluster-wide: reading
// the target's summary and nodes, nothing else.
var ClusterRules = []rbacv1.PolicyRule{
	{APIGroups: []string{group}, Resources: []string{"clustersummaries"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
}
