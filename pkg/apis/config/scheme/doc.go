// Package scheme registers the args of Flotilla's kube-scheduler plugins
// (internal and v1) into kube-scheduler's configuration scheme,
// k8s.io/kubernetes/pkg/scheduler/apis/config/scheme.Scheme, when it is
// imported. A scheduler binary blank-imports it,
//
//	import _ "github.com/flotilla-io/flotilla/pkg/apis/config/scheme"
//
// so that the pluginConfig args of the Proxy and Candidate plugins in a
// KubeSchedulerConfiguration decode strictly (unknown fields are errors), are
// defaulted and reach the plugins as *config.ProxyArgs and
// *config.CandidateArgs.
package scheme
