// Package candidate is the Candidate scheduler plugin, run by the
// candidate scheduler of each target cluster for candidate pods (made by
// the chaperon controller from PodChaperons that sources create).
//
// The default filters and scorers choose a real node. Then:
//
//   - Reserve marks the chaperon reserved ("<attempt>/<node>"; attempts
//     only grow). The write is queued to workers, off the scheduling cycle.
//     A candidate that fits no node has its verdict in its status
//     (PodScheduled=False, Unschedulable, with the scheduler's reasons),
//     which the chaperon controller copies to the chaperon; PostFilter
//     releases a reservation mark left over from an earlier attempt.
//   - Permit returns Wait. An informer event on the chaperon Allows the
//     waiting pod when the proxy's allow mark names the chaperon's proxy
//     pod UID and this very attempt (pkg/protocol's fencing rule), or
//     Rejects it when the chaperon is deleted (the proxy chose another
//     target): the reservation is freed at once. A pod that references
//     ConfigMaps or Secrets is allowed only once its source has copied them
//     here too (the chaperon's dependencies-followed mark), so the delegate
//     never starts without them. permitWaitTimeout bounds the wait.
//   - PreBind commits: it marks the chaperon binding with an update
//     conditional on the resourceVersion that carried the current allow
//     mark. The proxy withdraws a choice only by a delete conditional on
//     the version it saw; whichever write lands first wins, so a candidate
//     binds only under a current allow, and a proxy pod never has two
//     delegates.
package candidate

// What the candidate scheduler needs besides kube-scheduler's own role
// (make manifests writes config/rbac/candidate-scheduler/role.yaml):
// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=podchaperons,verbs=get;list;watch;update;patch
