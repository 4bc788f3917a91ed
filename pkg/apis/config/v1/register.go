package v1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
)

// SchemeGroupVersion is kubescheduler.config.k8s.io/v1, which the args types
// join.
var SchemeGroupVersion = schema.GroupVersion{Group: schedconfigv1.GroupName, Version: "v1"}

var (
	// SchemeBuilder registers the v1 args types, their defaults and their
	// conversions to and from the internal types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes, RegisterDefaults, RegisterConversions)

	// AddToScheme adds the v1 args types, defaults and conversions (and
	// nothing else) to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func init() {
	// kube-scheduler builds its plugin-args conversion and defaulting scheme
	// from this SchemeBuilder, lazily, so registering there is enough for a
	// pluginConfig to be decoded, defaulted and converted.
	schedconfigv1.SchemeBuilder.Register(addKnownTypes, RegisterDefaults, RegisterConversions)
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&ProxyArgs{},
		&CandidateArgs{},
	)
	return nil
}
