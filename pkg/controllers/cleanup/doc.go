// Package cleanup collects what a source left in a target after it forgot
// it: a source keeps a Lease renewed in each target namespace where it has
// PodChaperons (Heartbeat, in the source), and a target deletes the
// chaperons of a Lease it has not seen renewed for the Lease's duration
// plus a grace period (Reconciler, in the target); their candidate or
// delegate pods and followers go with them.
package cleanup
