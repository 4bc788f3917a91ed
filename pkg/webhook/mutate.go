package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

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

// AnnotationHeadroom is the room, in bytes, that an elected pod must leave
// in its annotations (whose total the API server limits to
// apivalidation.TotalAnnotationSizeLimitB) for what Flotilla writes on the
// proxy pod later: its decision record and the annotations fed back from
// the delegate. A pod that would leave less is denied at creation rather
// than accepted and then stuck, its decision impossible to record.
const AnnotationHeadroom = 4 * 1024

// MaxProxyAnnotationsSize is the most an elected pod's annotations may
// take, its saved manifest included.
const MaxProxyAnnotationsSize = apivalidation.TotalAnnotationSizeLimitB - AnnotationHeadroom

// MutateToProxy turns an elected pod into a proxy pod, in place. It is
// idempotent: a proxy pod is left as it is. Errors name the annotation or
// field and the problem, for the admission response.
func MutateToProxy(pod *corev1.Pod) error {
	if !Elected(pod) || IsProxy(pod) {
		return nil
	}
	if err := checkConflicts(pod); err != nil {
		return err
	}
	var constraints SchedulingConstraints
	if raw, ok := pod.Annotations[protocol.ProxyPodSchedulingConstraintsAnnotation]; ok {
		c, err := ParseConstraints(raw)
		if err != nil {
			return err
		}
		constraints = *c
	}

	largest, largestSize := largestAnnotation(pod.Annotations)
	manifest, err := json.Marshal(pod)
	if err != nil {
		return fmt.Errorf("saving the pod manifest: %w", err)
	}
	pod.Annotations[protocol.SourcePodManifestAnnotation] = string(manifest)
	if size := annotationsSize(pod.Annotations); size > MaxProxyAnnotationsSize {
		culprit := ""
		// Name an annotation when it is most of the problem: it counts
		// twice, on the pod and in the saved manifest.
		if 2*largestSize > size/2 {
			culprit = fmt.Sprintf("; the largest is %s (%d bytes, counted twice)", largest, largestSize)
		}
		return fmt.Errorf("the pod is too large to elect: with the pod saved in annotation %s, its annotations would take %d bytes, "+
			"more than the %d a proxy pod may use (the API server's limit of %d, less %d for Flotilla's own annotations)%s; make the pod or its annotations smaller",
			protocol.SourcePodManifestAnnotation, size, MaxProxyAnnotationsSize, apivalidation.TotalAnnotationSizeLimitB, AnnotationHeadroom, culprit)
	}

	spec := &pod.Spec
	spec.SchedulerName = protocol.ProxySchedulerName
	// Constraints on real nodes and pods are the candidates' business.
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

// checkConflicts denies an elected pod that also asks for what election
// takes away: another scheduler, or a node of this cluster. Neither would
// have any effect, in the source or in a target.
func checkConflicts(pod *corev1.Pod) error {
	switch name := pod.Spec.SchedulerName; name {
	case "", corev1.DefaultSchedulerName, protocol.ProxySchedulerName:
	default:
		return fmt.Errorf("annotation %s hands the pod to Flotilla's scheduler (%s; its delegate in the target to %s), but the pod sets schedulerName %s: remove one or the other",
			protocol.ElectAnnotation, protocol.ProxySchedulerName, protocol.CandidateSchedulerName, strconv.Quote(name))
	}
	if pod.Spec.NodeName != "" {
		return fmt.Errorf("annotation %s asks Flotilla to place the pod, but the pod sets spec.nodeName %s, which skips scheduling: remove spec.nodeName "+
			"(to choose a target, set annotation %s to a nodeSelector on %s)",
			protocol.ElectAnnotation, strconv.Quote(pod.Spec.NodeName), protocol.ProxyPodSchedulingConstraintsAnnotation, protocol.ClusterNameLabel)
	}
	return nil
}

// annotationsSize is the size of annotations as the API server counts it
// against apivalidation.TotalAnnotationSizeLimitB.
func annotationsSize(annotations map[string]string) int {
	size := 0
	for k, v := range annotations {
		size += len(k) + len(v)
	}
	return size
}

// largestAnnotation is the key of the largest annotation and its size.
func largestAnnotation(annotations map[string]string) (string, int) {
	key, size := "", 0
	for k, v := range annotations {
		if n := len(k) + len(v); n > size || (n == size && k < key) {
			key, size = k, n
		}
	}
	return key, size
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
