package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
)

// RegisterConversions adds the conversions between the v1 and the internal
// args types to a scheme. They are written by hand, named as conversion-gen
// would name them.
func RegisterConversions(s *runtime.Scheme) error {
	if err := s.AddGeneratedConversionFunc((*ProxyArgs)(nil), (*config.ProxyArgs)(nil), func(a, b any, scope conversion.Scope) error {
		return Convert_v1_ProxyArgs_To_config_ProxyArgs(a.(*ProxyArgs), b.(*config.ProxyArgs), scope)
	}); err != nil {
		return err
	}
	if err := s.AddGeneratedConversionFunc((*config.ProxyArgs)(nil), (*ProxyArgs)(nil), func(a, b any, scope conversion.Scope) error {
		return Convert_config_ProxyArgs_To_v1_ProxyArgs(a.(*config.ProxyArgs), b.(*ProxyArgs), scope)
	}); err != nil {
		return err
	}
	if err := s.AddGeneratedConversionFunc((*CandidateArgs)(nil), (*config.CandidateArgs)(nil), func(a, b any, scope conversion.Scope) error {
		return Convert_v1_CandidateArgs_To_config_CandidateArgs(a.(*CandidateArgs), b.(*config.CandidateArgs), scope)
	}); err != nil {
		return err
	}
	return s.AddGeneratedConversionFunc((*config.CandidateArgs)(nil), (*CandidateArgs)(nil), func(a, b any, scope conversion.Scope) error {
		return Convert_config_CandidateArgs_To_v1_CandidateArgs(a.(*config.CandidateArgs), b.(*CandidateArgs), scope)
	})
}

// Convert_v1_ProxyArgs_To_config_ProxyArgs converts v1 ProxyArgs to the
// internal type; an unset field becomes its zero value (defaulting runs first).
func Convert_v1_ProxyArgs_To_config_ProxyArgs(in *ProxyArgs, out *config.ProxyArgs, _ conversion.Scope) error {
	out.CandidateVerdictTimeout = durationValue(in.CandidateVerdictTimeout)
	out.DelegateBindTimeout = durationValue(in.DelegateBindTimeout)
	out.MaxTargets = 0
	if in.MaxTargets != nil {
		out.MaxTargets = *in.MaxTargets
	}
	return nil
}

// Convert_config_ProxyArgs_To_v1_ProxyArgs converts internal ProxyArgs to v1.
func Convert_config_ProxyArgs_To_v1_ProxyArgs(in *config.ProxyArgs, out *ProxyArgs, _ conversion.Scope) error {
	out.CandidateVerdictTimeout = durationPointer(in.CandidateVerdictTimeout)
	out.DelegateBindTimeout = durationPointer(in.DelegateBindTimeout)
	maxTargets := in.MaxTargets
	out.MaxTargets = &maxTargets
	return nil
}

// Convert_v1_CandidateArgs_To_config_CandidateArgs converts v1 CandidateArgs
// to the internal type; an unset field becomes its zero value (defaulting runs
// first).
func Convert_v1_CandidateArgs_To_config_CandidateArgs(in *CandidateArgs, out *config.CandidateArgs, _ conversion.Scope) error {
	out.PermitWaitTimeout = durationValue(in.PermitWaitTimeout)
	return nil
}

// Convert_config_CandidateArgs_To_v1_CandidateArgs converts internal
// CandidateArgs to v1.
func Convert_config_CandidateArgs_To_v1_CandidateArgs(in *config.CandidateArgs, out *CandidateArgs, _ conversion.Scope) error {
	out.PermitWaitTimeout = durationPointer(in.PermitWaitTimeout)
	return nil
}

func durationValue(d *metav1.Duration) metav1.Duration {
	if d == nil {
		return metav1.Duration{}
	}
	return *d
}

func durationPointer(d metav1.Duration) *metav1.Duration {
	return &d
}
