package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterSourceSpec names the identity a source cluster uses in this target
// cluster: a user, or a service account of any namespace.
//
// +kubebuilder:validation:XValidation:rule="has(self.userName) != has(self.serviceAccount)",message="set exactly one of userName or serviceAccount"
type ClusterSourceSpec struct {
	// UserName is the name of a user (e.g. from a client certificate).
	// +optional
	UserName string `json:"userName,omitempty"`
	// ServiceAccount is a service account of any namespace.
	// +optional
	ServiceAccount *ServiceAccountReference `json:"serviceAccount,omitempty"`
}

// ServiceAccountReference names a service account.
type ServiceAccountReference struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
}

// ClusterSourceStatus is what Flotilla observes of a source.
type ClusterSourceStatus struct {
	// Conditions: Ready says whether the source's identity has been granted
	// its permissions and, if not, why.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterSource is a cluster whose pods may be scheduled to every namespace
// of this cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=multicluster
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ClusterSourceSpec `json:"spec,omitempty"`
	// +optional
	Status ClusterSourceStatus `json:"status,omitempty"`
}

// ClusterSourceList is a list of ClusterSources.
//
// +kubebuilder:object:root=true
type ClusterSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterSource `json:"items"`
}
