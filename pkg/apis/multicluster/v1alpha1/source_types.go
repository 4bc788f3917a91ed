package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SourceSpec names the identity a source cluster uses in this target
// cluster, in the Source's namespace: a user, or a service account of that
// namespace.
//
// +kubebuilder:validation:XValidation:rule="has(self.userName) != has(self.serviceAccountName)",message="set exactly one of userName or serviceAccountName"
type SourceSpec struct {
	// UserName is the name of a user (e.g. from a client certificate).
	// +optional
	UserName string `json:"userName,omitempty"`
	// ServiceAccountName is a service account in the Source's namespace.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// SourceStatus is what Flotilla observes of a source.
type SourceStatus struct {
	// Conditions: Ready says whether the source's identity has been granted
	// its permissions and, if not, why.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Source is a cluster whose pods may be scheduled to this namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=multicluster
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Source struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec SourceSpec `json:"spec,omitempty"`
	// +optional
	Status SourceStatus `json:"status,omitempty"`
}

// SourceList is a list of Sources.
//
// +kubebuilder:object:root=true
type SourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Source `json:"items"`
}
