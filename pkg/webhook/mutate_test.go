package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

func userPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Annotations: annotations, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			Containers:   []corev1.Container{{Name: "main", Image: "nginx"}},
			NodeSelector: map[string]string{"disktype": "ssd"},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: corev1.LabelHostname}},
			}},
			Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrInt64(30)}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.DoNotSchedule}},
		},
	}
}

func ptrInt64(i int64) *int64 { return &i }

func TestMutateToProxy(t *testing.T) {
	elect := map[string]string{protocol.ElectAnnotation: ""}
	cases := []struct {
		name        string
		pod         *corev1.Pod
		wantProxy   bool
		wantErr     string
		wantSpec    func(*corev1.PodSpec) // extra checks
		wantSelNode map[string]string
	}{
		{name: "not elected: untouched", pod: userPod(nil)},
		{name: "elected", pod: userPod(elect), wantProxy: true,
			wantSelNode: map[string]string{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider}},
		{name: "elected with cluster-level constraints", wantProxy: true,
			pod: userPod(map[string]string{protocol.ElectAnnotation: "", protocol.ProxyPodSchedulingConstraintsAnnotation: `
nodeSelector:
  topology.kubernetes.io/region: eu-west
tolerations:
- key: example.com/spot
  operator: Exists
`}),
			wantSelNode: map[string]string{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider, "topology.kubernetes.io/region": "eu-west"},
			wantSpec: func(s *corev1.PodSpec) {
				if !containsToleration(s.Tolerations, "example.com/spot") {
					t.Errorf("constraint toleration missing: %v", s.Tolerations)
				}
			}},
		{name: "constraints in JSON with cluster affinity", wantProxy: true,
			pod:         userPod(map[string]string{protocol.ElectAnnotation: "", protocol.ProxyPodSchedulingConstraintsAnnotation: `{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"multicluster.admiralty.io/cluster-name","operator":"In","values":["eu"]}]}]}}}}`}),
			wantSelNode: map[string]string{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider},
			wantSpec: func(s *corev1.PodSpec) {
				if s.Affinity == nil || s.Affinity.NodeAffinity == nil {
					t.Errorf("cluster affinity missing")
				}
			}},
		{name: "malformed constraints", wantErr: "annotation multicluster.admiralty.io/proxy-pod-scheduling-constraints is not valid YAML or JSON",
			pod: userPod(map[string]string{protocol.ElectAnnotation: "", protocol.ProxyPodSchedulingConstraintsAnnotation: "nodeSelector: [unclosed"})},
		{name: "misspelt constraint field", wantErr: `unknown field "nodeSelecter"`,
			pod: userPod(map[string]string{protocol.ElectAnnotation: "", protocol.ProxyPodSchedulingConstraintsAnnotation: `{"nodeSelecter":{"a":"b"}}`})},
		{name: "wrong type", wantErr: "annotation multicluster.admiralty.io/proxy-pod-scheduling-constraints",
			pod: userPod(map[string]string{protocol.ElectAnnotation: "", protocol.ProxyPodSchedulingConstraintsAnnotation: `{"tolerations":"all"}`})},
		{name: "pod affinity in constraints", wantErr: "pod affinity and anti-affinity apply to pods in the target",
			pod: userPod(map[string]string{protocol.ElectAnnotation: "", protocol.ProxyPodSchedulingConstraintsAnnotation: `{"affinity":{"podAffinity":{}}}`})},
		{name: "too large to save", wantErr: "too large to elect",
			pod: userPod(map[string]string{protocol.ElectAnnotation: "", "big": strings.Repeat("x", 200*1024)})},
		{name: "too large to save: the annotation to blame is named", wantErr: "the largest is big (204803 bytes, counted twice)",
			pod: userPod(map[string]string{protocol.ElectAnnotation: "", "big": strings.Repeat("x", 200*1024)})},
		{name: "too large to save, in the spec: no annotation blamed", wantErr: "annotations would take",
			pod: withSpec(userPod(elect), func(s *corev1.PodSpec) {
				s.Containers[0].Env = []corev1.EnvVar{{Name: "BIG", Value: strings.Repeat("x", 300*1024)}}
			})},
		{name: "another scheduler", wantErr: `annotation multicluster.admiralty.io/elect hands the pod to Flotilla's scheduler (admiralty-proxy; its delegate in the target to admiralty-candidate), but the pod sets schedulerName "my-scheduler"`,
			pod: withSpec(userPod(elect), func(s *corev1.PodSpec) { s.SchedulerName = "my-scheduler" })},
		{name: "the candidate scheduler", wantErr: `sets schedulerName "admiralty-candidate"`,
			pod: withSpec(userPod(elect), func(s *corev1.PodSpec) { s.SchedulerName = protocol.CandidateSchedulerName })},
		{name: "the default scheduler named, as API defaulting does", pod: withSpec(userPod(elect), func(s *corev1.PodSpec) { s.SchedulerName = corev1.DefaultSchedulerName }),
			wantProxy: true, wantSelNode: map[string]string{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider}},
		{name: "a node name", wantErr: `annotation multicluster.admiralty.io/elect asks Flotilla to place the pod, but the pod sets spec.nodeName "admiralty-eu", which skips scheduling`,
			pod: withSpec(userPod(elect), func(s *corev1.PodSpec) { s.NodeName = "admiralty-eu" })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			original := tc.pod.DeepCopy()
			pod := tc.pod.DeepCopy()
			err := MutateToProxy(pod)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("MutateToProxy() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("MutateToProxy(): %v", err)
			}
			if !tc.wantProxy {
				if diff := cmp.Diff(original, pod); diff != "" {
					t.Errorf("pod changed (-before,+after):\n%s", diff)
				}
				return
			}
			// The saved manifest is the pod as the user wrote it.
			var saved corev1.Pod
			if err := json.Unmarshal([]byte(pod.Annotations[protocol.SourcePodManifestAnnotation]), &saved); err != nil {
				t.Fatalf("saved manifest: %v", err)
			}
			if diff := cmp.Diff(original, &saved); diff != "" {
				t.Errorf("saved manifest differs from the user's pod (-user,+saved):\n%s", diff)
			}
			s := pod.Spec
			if s.SchedulerName != protocol.ProxySchedulerName {
				t.Errorf("schedulerName = %q", s.SchedulerName)
			}
			if diff := cmp.Diff(tc.wantSelNode, s.NodeSelector); diff != "" {
				t.Errorf("nodeSelector (-want,+got):\n%s", diff)
			}
			if s.Affinity != nil && (s.Affinity.PodAntiAffinity != nil || s.Affinity.PodAffinity != nil) {
				t.Errorf("pod (anti-)affinity kept on the proxy: %+v", s.Affinity)
			}
			if len(s.TopologySpreadConstraints) != 0 {
				t.Errorf("topology spread on real nodes kept on the proxy: %v", s.TopologySpreadConstraints)
			}
			if !containsToleration(s.Tolerations, protocol.VirtualKubeletProviderKey) || !containsToleration(s.Tolerations, corev1.TaintNodeUnreachable) {
				t.Errorf("tolerations = %v, want the virtual-node one and the user's unreachable one", s.Tolerations)
			}
			if !contains(pod.Finalizers, protocol.ProxyPodFinalizer) {
				t.Errorf("finalizers = %v", pod.Finalizers)
			}
			if tc.wantSpec != nil {
				tc.wantSpec(&s)
			}
			// Idempotent: a second pass changes nothing.
			again := pod.DeepCopy()
			if err := MutateToProxy(again); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(pod, again); diff != "" {
				t.Errorf("second mutation changed the proxy (-first,+second):\n%s", diff)
			}
		})
	}
}

func withSpec(pod *corev1.Pod, mutate func(*corev1.PodSpec)) *corev1.Pod {
	mutate(&pod.Spec)
	return pod
}

// An elected pod must leave AnnotationHeadroom free under the API server's
// limit, for the decision record and the annotations fed back later: one
// that would fit the limit but not the headroom is denied, with its
// largest annotation named.
func TestMutateToProxyAnnotationHeadroom(t *testing.T) {
	padded := func(n int) *corev1.Pod {
		return userPod(map[string]string{protocol.ElectAnnotation: "", "example.com/pad": strings.Repeat("x", n)})
	}
	// Each byte of the pad counts twice: on the pod and in its saved manifest.
	base := padded(0)
	if err := MutateToProxy(base); err != nil {
		t.Fatal(err)
	}
	room := MaxProxyAnnotationsSize - annotationsSize(base.Annotations)
	for _, tc := range []struct {
		name    string
		pad     int
		wantErr string
	}{
		{name: "just within the headroom", pad: room / 2},
		{name: "just over, within the API server's limit", pad: room/2 + 1,
			wantErr: "more than the 258048 a proxy pod may use (the API server's limit of 262144, less 4096 for Flotilla's own annotations); the largest is example.com/pad"},
		{name: "at the API server's limit", pad: (room + AnnotationHeadroom) / 2, wantErr: "too large to elect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := padded(tc.pad)
			err := MutateToProxy(pod)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("MutateToProxy(): %v", err)
				}
				if got := annotationsSize(pod.Annotations); got != MaxProxyAnnotationsSize && got != MaxProxyAnnotationsSize-1 {
					t.Errorf("annotations take %d bytes, want the most allowed, %d (or one less)", got, MaxProxyAnnotationsSize)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("MutateToProxy() error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func containsToleration(ts []corev1.Toleration, key string) bool {
	for _, t := range ts {
		if t.Key == key {
			return true
		}
	}
	return false
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
