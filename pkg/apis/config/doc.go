// Package config holds the internal (unversioned) types of the arguments of
// Flotilla's two kube-scheduler plugins, Proxy (scheduler admiralty-proxy, in a
// source cluster) and Candidate (scheduler admiralty-candidate, in a target
// cluster). They are registered into kube-scheduler's own configuration group,
// kubescheduler.config.k8s.io, at the internal version, so that the framework
// hands a plugin its args as *ProxyArgs or *CandidateArgs. The versioned form,
// which a KubeSchedulerConfiguration's pluginConfig is written in, lives in
// package v1; blank-import package scheme to make kube-scheduler understand it.
//
// +kubebuilder:object:generate=true
package config
