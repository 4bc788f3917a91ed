package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterTargetSpec is a TargetSpec for a target that pods of every
// namespace may be scheduled to; its kubeconfig Secret names its namespace.
//
// +kubebuilder:validation:XValidation:rule="(has(self.self) && self.self) != has(self.kubeconfigSecret)",message="set exactly one of self: true or kubeconfigSecret"
type ClusterTargetSpec struct {
	// Self makes the source cluster a target of its own.
	// +optional
	Self bool `json:"self,omitempty"`
	// KubeconfigSecret names the Secret that holds a kubeconfig for the
	// target cluster.
	// +optional
	KubeconfigSecret *ClusterKubeconfigSecret `json:"kubeconfigSecret,omitempty"`
	// ExcludedLabelsRegexp is a regular expression (RE2); node labels of the
	// target that match it are not copied to its virtual node.
	// +optional
	ExcludedLabelsRegexp *string `json:"excludedLabelsRegexp,omitempty"`
}

// ClusterKubeconfigSecret names a Secret in any namespace and what to use in it.
type ClusterKubeconfigSecret struct {
	// Namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key of the kubeconfig in the Secret's data.
	// +kubebuilder:default=config
	// +optional
	Key string `json:"key,omitempty"`
	// Context of the kubeconfig to use; its current context if empty.
	// +optional
	Context string `json:"context,omitempty"`
}

// ClusterTargetStatus is what Flotilla observes of a target.
type ClusterTargetStatus struct {
	// Conditions: Ready says whether the target answers with the credentials
	// given and, if not, why.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterTarget is a cluster that pods of every namespace may be scheduled to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=multicluster
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ClusterTargetSpec `json:"spec,omitempty"`
	// +optional
	Status ClusterTargetStatus `json:"status,omitempty"`
}

// ClusterTargetList is a list of ClusterTargets.
//
// +kubebuilder:object:root=true
type ClusterTargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterTarget `json:"items"`
}
