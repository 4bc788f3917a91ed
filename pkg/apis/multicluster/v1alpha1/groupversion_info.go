// Package v1alpha1 is the multicluster.admiralty.io/v1alpha1 API: the kinds a
// user creates to join clusters (Target, ClusterTarget in a source; Source,
// ClusterSource in a target) and the kinds Flotilla exchanges between them
// (PodChaperon, ClusterSummary). Field names and shapes are Admiralty's, so
// manifests written for Admiralty apply unchanged; status conditions are
// Flotilla's addition.
//
// +kubebuilder:object:generate=true
// +groupName=multicluster.admiralty.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "multicluster.admiralty.io", Version: "v1alpha1"}

	// SchemeBuilder registers this API's types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Target{}, &TargetList{},
		&ClusterTarget{}, &ClusterTargetList{},
		&Source{}, &SourceList{},
		&ClusterSource{}, &ClusterSourceList{},
		&PodChaperon{}, &PodChaperonList{},
		&ClusterSummary{}, &ClusterSummaryList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
