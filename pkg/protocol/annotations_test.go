package protocol

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

func str(s string) *string { return &s }

func podWith(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
}

func chaperonWith(annotations map[string]string) *multiclusterv1alpha1.PodChaperon {
	return &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
}

func TestChaperonAnnotationsPatch(t *testing.T) {
	cases := []struct {
		name     string
		proxy    map[string]string
		chaperon map[string]string
		want     AnnotationPatch
	}{{
		name:     "in sync",
		proxy:    map[string]string{"team": "a", ElectAnnotation: "", SourcePodManifestAnnotation: "{}"},
		chaperon: map[string]string{"team": "a", ProxyPodNameAnnotation: "p", AllowedAnnotation: "u/1"},
		want:     AnnotationPatch{},
	}, {
		name:     "new and changed keys come down, source-only keys do not",
		proxy:    map[string]string{"team": "b", "argo": "stop", ElectAnnotation: "", ProxyPodSchedulingConstraintsAnnotation: "{}"},
		chaperon: map[string]string{"team": "a", ProxyPodNameAnnotation: "p"},
		want:     AnnotationPatch{"team": str("b"), "argo": str("stop")},
	}, {
		name:     "a key removed from the proxy goes, protocol marks stay",
		proxy:    map[string]string{},
		chaperon: map[string]string{"team": "a", ReservationAnnotation: "1/n", TargetAnnotation: "t", FollowedAnnotation: "true"},
		want:     AnnotationPatch{"team": nil},
	}, {
		name:  "keys that came up do not go down",
		proxy: map[string]string{"seen": "yes", "old": "x", FedBackAnnotationsAnnotation: "old,seen"},
		chaperon: map[string]string{
			DelegateAnnotationsAnnotation: `{"seen":"yes"}`,
		},
		want: AnnotationPatch{},
	}, {
		name:     "a delegate's own key wins over the proxy's value before it is fed back",
		proxy:    map[string]string{"seen": "proxy"},
		chaperon: map[string]string{DelegateAnnotationsAnnotation: `{"seen":"delegate"}`},
		want:     AnnotationPatch{},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ChaperonAnnotationsPatch(podWith(tc.proxy), chaperonWith(tc.chaperon))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("patch (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestProxyAnnotationsPatch(t *testing.T) {
	cases := []struct {
		name     string
		proxy    map[string]string
		chaperon map[string]string
		want     AnnotationPatch
	}{{
		name:     "nothing from the delegate",
		proxy:    map[string]string{"team": "a"},
		chaperon: map[string]string{"team": "a"},
		want:     AnnotationPatch{},
	}, {
		name:     "the delegate's own keys come up and are listed",
		proxy:    map[string]string{"team": "a"},
		chaperon: map[string]string{DelegateAnnotationsAnnotation: `{"seen":"yes","ip":"10.0.0.1"}`},
		want:     AnnotationPatch{"seen": str("yes"), "ip": str("10.0.0.1"), FedBackAnnotationsAnnotation: str("ip,seen")},
	}, {
		name:     "a key the delegate dropped goes, and the list with it",
		proxy:    map[string]string{"team": "a", "seen": "yes", FedBackAnnotationsAnnotation: "seen"},
		chaperon: map[string]string{},
		want:     AnnotationPatch{"seen": nil, FedBackAnnotationsAnnotation: nil},
	}, {
		name:     "in sync",
		proxy:    map[string]string{"seen": "yes", FedBackAnnotationsAnnotation: "seen"},
		chaperon: map[string]string{DelegateAnnotationsAnnotation: `{"seen":"yes"}`},
		want:     AnnotationPatch{},
	}, {
		name:     "protocol keys never come up",
		proxy:    map[string]string{},
		chaperon: map[string]string{DelegateAnnotationsAnnotation: `{"` + SourcePodManifestAnnotation + `":"{}"}`},
		want:     AnnotationPatch{FedBackAnnotationsAnnotation: str(SourcePodManifestAnnotation)},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ProxyAnnotationsPatch(podWith(tc.proxy), chaperonWith(tc.chaperon))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("patch (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestDelegateAnnotationsPatch(t *testing.T) {
	cases := []struct {
		name         string
		chaperon     map[string]string
		delegate     map[string]string
		wantPod      AnnotationPatch
		wantChaperon AnnotationPatch
	}{{
		name:         "in sync",
		chaperon:     map[string]string{"team": "a", ProxyPodNameAnnotation: "p", AllowedAnnotation: "u/1"},
		delegate:     map[string]string{"team": "a", ProxyPodNameAnnotation: "p", PushedAnnotationsAnnotation: "team"},
		wantPod:      AnnotationPatch{},
		wantChaperon: AnnotationPatch{},
	}, {
		name:         "a new key comes down",
		chaperon:     map[string]string{"team": "a", "argo": "stop"},
		delegate:     map[string]string{"team": "a", PushedAnnotationsAnnotation: "team"},
		wantPod:      AnnotationPatch{"argo": str("stop"), PushedAnnotationsAnnotation: str("argo,team")},
		wantChaperon: AnnotationPatch{},
	}, {
		name:         "a key removed up there goes, and is not taken for the delegate's own",
		chaperon:     map[string]string{},
		delegate:     map[string]string{"team": "a", PushedAnnotationsAnnotation: "team"},
		wantPod:      AnnotationPatch{"team": nil, PushedAnnotationsAnnotation: nil},
		wantChaperon: AnnotationPatch{},
	}, {
		name:         "the delegate's own keys are recorded",
		chaperon:     map[string]string{"team": "a"},
		delegate:     map[string]string{"team": "a", "seen": "yes", PushedAnnotationsAnnotation: "team"},
		wantPod:      AnnotationPatch{},
		wantChaperon: AnnotationPatch{DelegateAnnotationsAnnotation: str(`{"seen":"yes"}`)},
	}, {
		name:         "the record goes when the delegate drops its own keys",
		chaperon:     map[string]string{DelegateAnnotationsAnnotation: `{"seen":"yes"}`},
		delegate:     map[string]string{},
		wantPod:      AnnotationPatch{},
		wantChaperon: AnnotationPatch{DelegateAnnotationsAnnotation: nil},
	}, {
		name:         "the proxy's value wins on a key that came down",
		chaperon:     map[string]string{"team": "a"},
		delegate:     map[string]string{"team": "changed-here", PushedAnnotationsAnnotation: "team"},
		wantPod:      AnnotationPatch{"team": str("a")},
		wantChaperon: AnnotationPatch{},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod, ch := DelegateAnnotationsPatch(chaperonWith(tc.chaperon), podWith(tc.delegate))
			if diff := cmp.Diff(tc.wantPod, pod); diff != "" {
				t.Errorf("pod patch (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantChaperon, ch); diff != "" {
				t.Errorf("chaperon patch (-want,+got):\n%s", diff)
			}
		})
	}
}

// The three patches, applied in turn until nothing changes, converge with
// each key owned by one side, whatever the starting point.
func TestAnnotationsConverge(t *testing.T) {
	proxy := podWith(map[string]string{"team": "a", "argo": "stop", ElectAnnotation: ""})
	ch := chaperonWith(map[string]string{"team": "a", ProxyPodNameAnnotation: "p"})
	delegate := podWith(map[string]string{"team": "a", "seen": "yes", PushedAnnotationsAnnotation: "team"})
	for round := range 10 {
		changed := false
		if p := ProxyAnnotationsPatch(proxy, ch); len(p) > 0 {
			proxy.Annotations, changed = p.Apply(proxy.Annotations), true
		}
		if p := ChaperonAnnotationsPatch(proxy, ch); len(p) > 0 {
			ch.Annotations, changed = p.Apply(ch.Annotations), true
		}
		podPatch, chPatch := DelegateAnnotationsPatch(ch, delegate)
		if len(podPatch) > 0 {
			delegate.Annotations, changed = podPatch.Apply(delegate.Annotations), true
		}
		if len(chPatch) > 0 {
			ch.Annotations, changed = chPatch.Apply(ch.Annotations), true
		}
		if !changed {
			if round > 3 {
				t.Errorf("took %d rounds to settle", round)
			}
			break
		}
	}
	if proxy.Annotations["seen"] != "yes" || delegate.Annotations["argo"] != "stop" {
		t.Errorf("not converged: proxy %v, delegate %v", proxy.Annotations, delegate.Annotations)
	}
	if _, ok := delegate.Annotations[ElectAnnotation]; ok {
		t.Errorf("a source-only key came down: %v", delegate.Annotations)
	}
}
