package v1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Default values of the args' fields.
const (
	// DefaultCandidateVerdictTimeout is ProxyArgs.CandidateVerdictTimeout's default.
	DefaultCandidateVerdictTimeout = 5 * time.Second
	// DefaultDelegateBindTimeout is ProxyArgs.DelegateBindTimeout's default.
	DefaultDelegateBindTimeout = 30 * time.Second
	// DefaultMaxTargets is ProxyArgs.MaxTargets's default: no limit.
	DefaultMaxTargets int32 = 0
	// DefaultPermitWaitTimeout is CandidateArgs.PermitWaitTimeout's default.
	DefaultPermitWaitTimeout = 30 * time.Second
)

// RegisterDefaults adds the args' defaulting functions to a scheme.
func RegisterDefaults(s *runtime.Scheme) error {
	s.AddTypeDefaultingFunc(&ProxyArgs{}, func(obj any) { SetDefaults_ProxyArgs(obj.(*ProxyArgs)) })
	s.AddTypeDefaultingFunc(&CandidateArgs{}, func(obj any) { SetDefaults_CandidateArgs(obj.(*CandidateArgs)) })
	return nil
}

// SetDefaults_ProxyArgs sets the unset fields of ProxyArgs to their defaults.
func SetDefaults_ProxyArgs(obj *ProxyArgs) {
	if obj.CandidateVerdictTimeout == nil {
		obj.CandidateVerdictTimeout = &metav1.Duration{Duration: DefaultCandidateVerdictTimeout}
	}
	if obj.DelegateBindTimeout == nil {
		obj.DelegateBindTimeout = &metav1.Duration{Duration: DefaultDelegateBindTimeout}
	}
	if obj.MaxTargets == nil {
		v := DefaultMaxTargets
		obj.MaxTargets = &v
	}
}

// SetDefaults_CandidateArgs sets the unset fields of CandidateArgs to their
// defaults.
func SetDefaults_CandidateArgs(obj *CandidateArgs) {
	if obj.PermitWaitTimeout == nil {
		obj.PermitWaitTimeout = &metav1.Duration{Duration: DefaultPermitWaitTimeout}
	}
}
