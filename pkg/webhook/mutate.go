package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// SchedulingConstraints is the value of the
// multicluster.admiralty.io/proxy-pod-scheduling-constraints annotation
// (JSON or YAML): cluster-level constraints for the proxy pod, on the
// labels of virtual nodes (e.g. multicluster.admiralty.io/cluster-name or a
// region label common to a target's nodes).
type SchedulingConstraints struct {
	NodeSelector              map[string]string                 `json:"nodeSelector,omitempty"`
	Affinity                  *corev1.Affinity                  `json:"affinity,omitempty"`
	Tolerations               []corev1.Toleration               `json:"tolerations,omitempty"`
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
}

// Elected reports whether the pod asks for multi-cluster scheduling.
func Elected(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[protocol.ElectAnnotation]
	return ok
}

// IsProxy reports whether the pod already is a proxy pod.
func IsProxy(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[protocol.SourcePodManifestAnnotation]
	return ok && pod.Spec.SchedulerName == protocol.ProxySchedulerName
}

// ProxyToleration lets proxy pods onto virtual nodes.
var ProxyToleration = corev1.Toleration{
	Key: protocol.VirtualKubeletProviderKey, Operator: corev1.TolerationOpEqual,
	Value: protocol.VirtualKubeletProvider, Effect: corev1.TaintEffectNoSchedule,
}

// MutateToProxy turns an elected pod into a proxy pod, in place. It is
// idempotent: a proxy pod is left as it is. Errors name the annotation and
// the problem, for the admission response.
func MutateToProxy(pod *corev1.Pod) error {
	if !Elected(pod) || IsProxy(pod) {
		return nil
	}
	var constraints SchedulingConstraints
	if raw, ok := pod.Annotations[protocol.ProxyPodSchedulingConstraintsAnnotation]; ok {
		c, err := ParseConstraints(raw)
		if err != nil {
			return err
		}
		constraints = *c
	}

	manifest, err := json.Marshal(pod)
	if err != nil {
		return fmt.Errorf("saving the pod manifest: %w", err)
	}
	pod.Annotations[protocol.SourcePodManifestAnnotation] = string(manifest)
	if err := apivalidation.ValidateAnnotationsSize(pod.Annotations); err != nil {
		return fmt.Errorf("the pod is too large to elect: saved in annotation %s, its annotations would exceed %d bytes; make the pod (or its annotations) smaller",
			protocol.SourcePodManifestAnnotation, apivalidation.TotalAnnotationSizeLimitB)
	}

	spec := &pod.Spec
	spec.SchedulerName = protocol.ProxySchedulerName
	// Constraints on real nodes and pods are the candidates' business.
	spec.NodeName = ""
	spec.NodeSelector = map[string]string{}
	for k, v := range constraints.NodeSelector {
		spec.NodeSelector[k] = v
	}
	spec.NodeSelector[protocol.VirtualKubeletProviderKey] = protocol.VirtualKubeletProvider
	spec.Affinity = constraints.Affinity
	spec.TopologySpreadConstraints = constraints.TopologySpreadConstraints
	// Tolerations stay: virtual nodes only carry Flotilla's taint and the
	// node lifecycle's not-ready/unreachable ones, whose tolerations decide
	// how fast a proxy leaves a lost target.
	spec.Tolerations = append(spec.Tolerations, constraints.Tolerations...)
	if !slices.ContainsFunc(spec.Tolerations, func(t corev1.Toleration) bool { return t.MatchToleration(&ProxyToleration) }) {
		spec.Tolerations = append(spec.Tolerations, ProxyToleration)
	}
	if !slices.Contains(pod.Finalizers, protocol.ProxyPodFinalizer) {
		pod.Finalizers = append(pod.Finalizers, protocol.ProxyPodFinalizer)
	}
	return nil
}

// ParseConstraints parses the proxy-pod-scheduling-constraints annotation
// strictly: unknown fields are errors, so that a typo is not silently ignored.
func ParseConstraints(raw string) (*SchedulingConstraints, error) {
	data, err := utilyaml.ToJSON([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("annotation %s is not valid YAML or JSON: %w", protocol.ProxyPodSchedulingConstraintsAnnotation, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c SchedulingConstraints
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("annotation %s: %w (want an object with nodeSelector, affinity, tolerations and/or topologySpreadConstraints)",
			protocol.ProxyPodSchedulingConstraintsAnnotation, err)
	}
	if c.Affinity != nil && (c.Affinity.PodAffinity != nil || c.Affinity.PodAntiAffinity != nil) {
		return nil, fmt.Errorf("annotation %s: pod affinity and anti-affinity apply to pods in the target; keep them in the pod spec",
			protocol.ProxyPodSchedulingConstraintsAnnotation)
	}
	return &c, nil
}
