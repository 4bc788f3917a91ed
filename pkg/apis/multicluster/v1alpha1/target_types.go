package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TargetSpec says how a source reaches one target cluster: either itself
// (self: true) or through a kubeconfig stored in a Secret.
//
// +kubebuilder:validation:XValidation:rule="(has(self.self) && self.self) != has(self.kubeconfigSecret)",message="set exactly one of self: true or kubeconfigSecret"
type TargetSpec struct {
	// Self makes the source cluster a target of its own.
	// +optional
	Self bool `json:"self,omitempty"`
	// KubeconfigSecret names the Secret, in the Target's namespace, that holds
	// a kubeconfig for the target cluster.
	// +optional
	KubeconfigSecret *KubeconfigSecret `json:"kubeconfigSecret,omitempty"`
	// ExcludedLabelsRegexp is a regular expression (RE2); node labels of the
	// target that match it are not copied to its virtual node.
	// +optional
	ExcludedLabelsRegexp *string `json:"excludedLabelsRegexp,omitempty"`
}

// KubeconfigSecret names a Secret in the same namespace and what to use in it.
type KubeconfigSecret struct {
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

// TargetStatus is what Flotilla observes of a target.
type TargetStatus struct {
	// Conditions: Ready says whether the target answers with the credentials
	// given and, if not, why.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Target is a cluster that this namespace's pods may be scheduled to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=multicluster
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Target struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec TargetSpec `json:"spec,omitempty"`
	// +optional
	Status TargetStatus `json:"status,omitempty"`
}

// TargetList is a list of Targets.
//
// +kubebuilder:object:root=true
type TargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Target `json:"items"`
}
