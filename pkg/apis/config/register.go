package config

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
)

// SchemeGroupVersion is kube-scheduler's configuration group at the internal
// version, which the args types join.
var SchemeGroupVersion = schema.GroupVersion{Group: schedconfig.GroupName, Version: runtime.APIVersionInternal}

var (
	// SchemeBuilder registers the internal args types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the internal args types (and nothing else) to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func init() {
	// kube-scheduler builds its plugin-args conversion scheme from its own
	// SchemeBuilder, lazily, so registering there makes the args known to it.
	schedconfig.SchemeBuilder.Register(addKnownTypes)
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&ProxyArgs{},
		&CandidateArgs{},
	)
	return nil
}
