package protocol

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// Annotations flow both ways between a proxy pod and its delegate, through
// the chaperon. The rule: an annotation belongs to the side where it first
// appeared, and flows from there only.
//
//   - Down: the proxy's annotations (except the protocol's own keys) are the
//     chaperon's, and the chaperon's are set on the delegate. An annotation
//     removed from the proxy is removed from the delegate.
//   - Up: annotations that appear on the delegate and did not come down
//     (e.g. set by a controller in the target) are recorded on the chaperon
//     (DelegateAnnotationsAnnotation) and set on the proxy. An annotation
//     removed from the delegate is removed from the proxy.
//
// So a key has one writer at a time and nothing loops: the delegate records
// which keys came down (PushedAnnotationsAnnotation), the proxy which came
// up (FedBackAnnotationsAnnotation). If both sides set the same new key, the
// proxy's value wins once it has come down.
const (
	// DelegateAnnotationsAnnotation, on a chaperon, is the JSON map of the
	// delegate's own annotations (those that did not come down), written
	// by the target's chaperon controller.
	DelegateAnnotationsAnnotation = "multicluster.admiralty.io/delegate-annotations"
	// PushedAnnotationsAnnotation, on a delegate, lists (comma-separated)
	// the keys that came down from the proxy.
	PushedAnnotationsAnnotation = "multicluster.admiralty.io/pushed-annotations"
	// FedBackAnnotationsAnnotation, on a proxy pod, lists (comma-separated)
	// the keys that came up from the delegate.
	FedBackAnnotationsAnnotation = "multicluster.admiralty.io/fed-back-annotations"
)

// AnnotationPatch is a JSON merge patch of metadata.annotations: a nil
// value removes the key. An empty patch changes nothing.
type AnnotationPatch map[string]*string

// Apply applies p to annotations (a copy).
func (p AnnotationPatch) Apply(annotations map[string]string) map[string]string {
	out := maps.Clone(annotations)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	return out
}

// Body is the merge patch document.
func (p AnnotationPatch) Body() ([]byte, error) {
	return json.Marshal(map[string]any{"metadata": map[string]any{"annotations": p}})
}

// flows reports whether annotation key k is a user's, which flows between
// proxy and delegate (and not the protocol's, nor a source-only key).
func flows(k string) bool {
	switch k {
	case ProxyPodNameAnnotation, DelegateAnnotationsAnnotation, PushedAnnotationsAnnotation, FedBackAnnotationsAnnotation:
		return false
	}
	return !slices.Contains(sourceOnlyAnnotations, k) && !slices.Contains(protocolMarks, k)
}

func keyList(v string) map[string]bool {
	out := map[string]bool{}
	for k := range strings.SplitSeq(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out[k] = true
		}
	}
	return out
}

func joinKeys[V any](m map[string]V) string {
	keys := slices.Sorted(maps.Keys(m))
	return strings.Join(keys, ",")
}

// setList makes key hold list in p, relative to current ("" removes it).
func setList(p AnnotationPatch, current map[string]string, key, list string) {
	old, ok := current[key]
	switch {
	case list == "" && ok:
		p[key] = nil
	case list != "" && old != list:
		p[key] = &list
	}
}

// DelegateOwn is the delegate's own annotations as its chaperon records
// them (nil if none or unreadable).
func DelegateOwn(ch *multiclusterv1alpha1.PodChaperon) map[string]string {
	var own map[string]string
	if v := ch.Annotations[DelegateAnnotationsAnnotation]; v != "" {
		if err := json.Unmarshal([]byte(v), &own); err != nil {
			return nil
		}
	}
	return own
}

// ProxyAnnotationsPatch feeds the delegate's own annotations (as ch records
// them) back to the proxy pod: set, or removed when the delegate dropped
// them.
func ProxyAnnotationsPatch(proxy *corev1.Pod, ch *multiclusterv1alpha1.PodChaperon) AnnotationPatch {
	up := DelegateOwn(ch)
	p := AnnotationPatch{}
	for k := range keyList(proxy.Annotations[FedBackAnnotationsAnnotation]) {
		if _, still := up[k]; !still && flows(k) {
			if _, ok := proxy.Annotations[k]; ok {
				p[k] = nil
			}
		}
	}
	for k, v := range up {
		if !flows(k) {
			continue
		}
		if old, ok := proxy.Annotations[k]; !ok || old != v {
			p[k] = &v
		}
	}
	setList(p, proxy.Annotations, FedBackAnnotationsAnnotation, joinKeys(up))
	return p
}

// ChaperonAnnotationsPatch brings the proxy's annotations down to its
// chaperon: those that did not come up from the delegate.
func ChaperonAnnotationsPatch(proxy *corev1.Pod, ch *multiclusterv1alpha1.PodChaperon) AnnotationPatch {
	up := keyList(proxy.Annotations[FedBackAnnotationsAnnotation])
	for k := range DelegateOwn(ch) {
		up[k] = true
	}
	want := map[string]string{}
	for k, v := range proxy.Annotations {
		if flows(k) && !up[k] {
			want[k] = v
		}
	}
	p := AnnotationPatch{}
	for k, v := range want {
		if old, ok := ch.Annotations[k]; !ok || old != v {
			p[k] = &v
		}
	}
	for k := range ch.Annotations {
		if _, ok := want[k]; !ok && flows(k) {
			p[k] = nil
		}
	}
	return p
}

// DelegateAnnotationsPatch brings the chaperon's annotations down to the
// delegate (removing those that came down before and are gone), and
// returns the patch of the chaperon that records the delegate's own
// annotations.
func DelegateAnnotationsPatch(ch *multiclusterv1alpha1.PodChaperon, delegate *corev1.Pod) (pod, chaperon AnnotationPatch) {
	down := map[string]string{}
	for k, v := range ch.Annotations {
		if flows(k) {
			down[k] = v
		}
	}
	pushed := keyList(delegate.Annotations[PushedAnnotationsAnnotation])
	pod = AnnotationPatch{}
	for k := range pushed {
		if _, still := down[k]; !still && flows(k) {
			if _, ok := delegate.Annotations[k]; ok {
				pod[k] = nil
			}
		}
	}
	for k, v := range down {
		if old, ok := delegate.Annotations[k]; !ok || old != v {
			pod[k] = &v
		}
	}
	setList(pod, delegate.Annotations, PushedAnnotationsAnnotation, joinKeys(down))

	own := map[string]string{}
	for k, v := range delegate.Annotations {
		if _, isDown := down[k]; flows(k) && !isDown && !pushed[k] {
			own[k] = v
		}
	}
	chaperon = AnnotationPatch{}
	if len(own) == 0 {
		if _, ok := ch.Annotations[DelegateAnnotationsAnnotation]; ok {
			chaperon[DelegateAnnotationsAnnotation] = nil
		}
	} else if !maps.Equal(own, DelegateOwn(ch)) {
		raw, _ := json.Marshal(own) // a map of strings always marshals
		s := string(raw)
		chaperon[DelegateAnnotationsAnnotation] = &s
	}
	return pod, chaperon
}
