package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterSummary is what a target cluster tells its sources about its nodes,
// summed over the nodes that pods can be scheduled to. Capacity and
// allocatable are Admiralty's fields; free, nodeLabels and nodes are Flotilla's.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=multicluster
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.nodes`
// +kubebuilder:printcolumn:name="CPU",type=string,JSONPath=`.allocatable.cpu`
// +kubebuilder:printcolumn:name="Free CPU",type=string,JSONPath=`.free.cpu`
// +kubebuilder:printcolumn:name="Memory",type=string,JSONPath=`.allocatable.memory`
// +kubebuilder:printcolumn:name="Free Memory",type=string,JSONPath=`.free.memory`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterSummary struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Capacity is the sum of the nodes' capacities.
	// +optional
	Capacity corev1.ResourceList `json:"capacity,omitempty"`
	// Allocatable is the sum of the nodes' allocatable resources.
	// +optional
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`
	// Free is allocatable minus the requests of the pods bound to the nodes.
	// +optional
	Free corev1.ResourceList `json:"free,omitempty"`
	// NodeLabels are the labels that every node has, with the same value.
	// +optional
	NodeLabels map[string]string `json:"nodeLabels,omitempty"`
	// Nodes is the number of nodes summed.
	// +optional
	Nodes int32 `json:"nodes,omitempty"`
}

// ClusterSummaryList is a list of ClusterSummaries.
//
// +kubebuilder:object:root=true
type ClusterSummaryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterSummary `json:"items"`
}
