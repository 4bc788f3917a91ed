// Package v1 holds the versioned arguments of Flotilla's kube-scheduler
// plugins as they are written in a KubeSchedulerConfiguration of apiVersion
// kubescheduler.config.k8s.io/v1 (profiles[].pluginConfig[].args of the plugins
// Proxy and Candidate), with their defaults and their conversion to the
// internal types of package config. The types are registered into
// kube-scheduler's own v1 SchemeBuilder (k8s.io/kube-scheduler/config/v1).
//
// +kubebuilder:object:generate=true
package v1
