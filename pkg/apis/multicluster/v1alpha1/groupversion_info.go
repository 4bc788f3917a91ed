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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "multicluster.admiralty.io", Version: "v1alpha1"}

	// SchemeBuilder registers this API's types.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
