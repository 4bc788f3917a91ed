package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +kubebuilder:object:root=true

// ProxyArgs are the arguments of the Proxy plugin of the proxy scheduler
// (admiralty-proxy). See package v1 for what each field does and its default.
type ProxyArgs struct {
	metav1.TypeMeta

	// CandidateVerdictTimeout is how long the proxy scheduler waits for every
	// target's verdict on its candidate before it decides with the verdicts it
	// has.
	CandidateVerdictTimeout metav1.Duration

	// DelegateBindTimeout is how long the proxy waits, after allowing the
	// chosen candidate, for it to be bound in its target before giving up that
	// choice and trying again.
	DelegateBindTimeout metav1.Duration

	// MaxTargets is the most targets a proxy pod's candidates are sent to at
	// once; 0 means no limit.
	MaxTargets int32
}

// +kubebuilder:object:root=true

// CandidateArgs are the arguments of the Candidate plugin of the candidate
// scheduler (admiralty-candidate). See package v1 for what each field does and
// its default.
type CandidateArgs struct {
	metav1.TypeMeta

	// PermitWaitTimeout is how long a candidate pod, having reserved a node,
	// waits in Permit for the proxy's decision before releasing its reservation
	// and trying again.
	PermitWaitTimeout metav1.Duration
}
