package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodChaperon carries a candidate pod from a source into a target: the
// source creates it in the target, the target makes a pod of its spec and
// reports that pod's status back in the chaperon's status.
//
// Its spec and status are a PodSpec and a PodStatus. Their schema is not
// repeated in the CRD (the pod made from the spec is validated when it is
// created), which keeps every chaperon write cheap for the API server.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=multicluster,shortName=chap
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PodChaperon struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Spec corev1.PodSpec `json:"spec,omitempty"`
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Status corev1.PodStatus `json:"status,omitempty"`
}

// PodChaperonList is a list of PodChaperons.
//
// +kubebuilder:object:root=true
type PodChaperonList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PodChaperon `json:"items"`
}
