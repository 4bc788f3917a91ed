package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +kubebuilder:object:root=true

// ProxyArgs are the arguments of the Proxy plugin of the proxy scheduler
// (scheduler name admiralty-proxy), which schedules a source cluster's proxy
// pods onto virtual nodes by sending candidate pods to the targets behind them.
type ProxyArgs struct {
	metav1.TypeMeta `json:",inline"`

	// CandidateVerdictTimeout is how long the proxy scheduler waits for every
	// target's verdict on its candidate (can the candidate pod be scheduled
	// there?) before it decides with the verdicts it has: a target that has
	// not answered by then is passed over for this scheduling attempt.
	// Defaults to 5s.
	// +optional
	CandidateVerdictTimeout *metav1.Duration `json:"candidateVerdictTimeout,omitempty"`

	// DelegateBindTimeout is how long the proxy waits, after allowing the
	// chosen candidate, for it to be bound to a node in its target (the
	// candidate then becomes the delegate pod) before it gives up that choice
	// and tries again.
	// Defaults to 30s.
	// +optional
	DelegateBindTimeout *metav1.Duration `json:"delegateBindTimeout,omitempty"`

	// MaxTargets is the fan-out limit: the most targets a proxy pod's
	// candidates are sent to at once. When more targets fit, those with the
	// most free capacity are preferred. 0 means no limit.
	// Defaults to 0.
	// +optional
	MaxTargets *int32 `json:"maxTargets,omitempty"`
}

// +kubebuilder:object:root=true

// CandidateArgs are the arguments of the Candidate plugin of the candidate
// scheduler (scheduler name admiralty-candidate), which schedules a target
// cluster's candidate pods and holds them until their proxy picks one.
type CandidateArgs struct {
	metav1.TypeMeta `json:",inline"`

	// PermitWaitTimeout is how long a candidate pod, having reserved a node,
	// waits in Permit for the proxy's decision (allowed or not) before it
	// releases its reservation and tries again.
	// Defaults to 30s.
	// +optional
	PermitWaitTimeout *metav1.Duration `json:"permitWaitTimeout,omitempty"`
}
