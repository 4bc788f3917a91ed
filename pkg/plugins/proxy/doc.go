// Package proxy is the Proxy scheduler plugin: it schedules proxy pods (the
// source's stand-ins for pods that run in other clusters) onto virtual
// nodes, one per target, by the two-phase protocol of DESIGN.md.
//
// How the protocol keeps kube-scheduler's serial scheduling cycle free of
// remote round trips and polling:
//
//   - PreEnqueue is a gate. For a proxy pod it looks (in memory) for the
//     pod's PodChaperons in every eligible target. Missing ones are handed
//     to dispatch workers, which create them in the targets off the
//     scheduling cycle; the pod stays gated until every target has given a
//     verdict (Reserved or Unschedulable, written by the target's candidate
//     scheduler) or candidateVerdictTimeout has passed. Verdicts arrive by
//     the chaperon informers of pkg/remote's per-target caches; each
//     verdict change calls Handle.Activate, which runs PreEnqueue again.
//   - Filter reads the verdicts snapshotted in PreFilter: a virtual node
//     passes only if its target reserved a real node. Score prefers the
//     target with the most free capacity (its ClusterSummary) left after
//     the pod. PostFilter records, per cluster, why none passed.
//   - PreBind (the binding cycle, one goroutine per pod) first records the
//     choice on the proxy pod (protocol.DecisionAnnotation: target and
//     chaperon UID), then writes the decision: the allow mark on the
//     winner's chaperon, fenced by the proxy
//     pod's UID and the reservation attempt (see pkg/protocol); it deletes
//     the losers' chaperons at once, which releases their reservations; it
//     then waits, on chaperon events, for the candidate to commit (its
//     binding mark, written in its PreBind: from then on it is the delegate
//     and a revocation fails) before the proxy pod is bound to the virtual
//     node. If the delegate is not
//     bound in time, PreBind revokes its choice by deleting the chaperon
//     with a resourceVersion precondition, which fails if the candidate has
//     committed to bind meanwhile: then the choice is adopted instead. It
//     revokes at once a choice whose source cannot copy the pod's
//     ConfigMaps or Secrets there (protocol.FollowConflictAnnotation), and
//     leaves that target out for a while.
//   - Requeueing: chaperon changes, a target connected or gaining capacity
//     (ClusterSummary), and virtual-node changes bring pending proxy pods
//     back within seconds.
//
// A restarted proxy scheduler adopts the chaperons it finds (their names
// derive from the proxy pod's UID): a chaperon that carries an allow mark
// (or is binding or bound) is the only target such a pod may go to. It
// need not find them first: the pod's decision record names the one
// chaperon that may carry an allow mark, and a pod whose record names a
// target not connected or not listed yet waits for it, rather than going
// elsewhere and ending with two delegates. A record whose chaperon is gone
// from a listed target is void.
package proxy

// What the proxy scheduler needs besides kube-scheduler's own role (make
// manifests writes config/rbac/proxy-scheduler/role.yaml):
// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=targets;clustertargets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get
