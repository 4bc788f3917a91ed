// Package chaperon runs, in a target cluster, the PodChaperons that sources
// create there: for each chaperon it creates the candidate pod (see
// protocol.CandidatePod) and reports that pod's status back in the
// chaperon's status, which is how the source reads the target's verdict.
//
// It never makes a second delegate: a candidate pod deleted once bound is not
// recreated; its chaperon fails instead. When the candidate pod cannot be
// made at all (invalid or forbidden in this cluster, or its name taken by
// another pod), the chaperon says so as an unschedulable verdict, so that the
// source explains, per cluster, why the pod did not go there.
package chaperon
