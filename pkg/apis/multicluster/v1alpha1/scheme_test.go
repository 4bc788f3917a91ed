package v1alpha1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// Every kind is registered under multicluster.admiralty.io/v1alpha1 with its
// list, and deep copies share nothing with their original.
func TestSchemeAndDeepCopy(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		kind   string
		obj    runtime.Object
		mutate func(runtime.Object)
	}{
		{"Target", &Target{Spec: TargetSpec{KubeconfigSecret: &KubeconfigSecret{Name: "kc"}, ExcludedLabelsRegexp: ptr.To("^a")}},
			func(o runtime.Object) {
				o.(*Target).Spec.KubeconfigSecret.Name = "changed"
				*o.(*Target).Spec.ExcludedLabelsRegexp = "changed"
			}},
		{"ClusterTarget", &ClusterTarget{Spec: ClusterTargetSpec{KubeconfigSecret: &ClusterKubeconfigSecret{Namespace: "ns", Name: "kc"}}},
			func(o runtime.Object) { o.(*ClusterTarget).Spec.KubeconfigSecret.Namespace = "changed" }},
		{"Source", &Source{Spec: SourceSpec{ServiceAccountName: "sa"}},
			func(o runtime.Object) { o.(*Source).Spec.ServiceAccountName = "changed" }},
		{"ClusterSource", &ClusterSource{Spec: ClusterSourceSpec{ServiceAccount: &ServiceAccountReference{Namespace: "ns", Name: "sa"}}},
			func(o runtime.Object) { o.(*ClusterSource).Spec.ServiceAccount.Name = "changed" }},
		{"PodChaperon", &PodChaperon{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}}},
			func(o runtime.Object) { o.(*PodChaperon).Spec.Containers[0].Name = "changed" }},
		{"ClusterSummary", &ClusterSummary{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}, NodeLabels: map[string]string{"a": "b"}},
			func(o runtime.Object) { o.(*ClusterSummary).NodeLabels["a"] = "changed" }},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			for _, kind := range []string{tc.kind, tc.kind + "List"} {
				if !s.Recognizes(GroupVersion.WithKind(kind)) {
					t.Errorf("%s is not registered", GroupVersion.WithKind(kind))
				}
			}
			gvks, _, err := s.ObjectKinds(tc.obj)
			if err != nil || len(gvks) != 1 || gvks[0] != GroupVersion.WithKind(tc.kind) {
				t.Errorf("ObjectKinds() = %v, %v", gvks, err)
			}
			copied := tc.obj.DeepCopyObject()
			if diff := cmp.Diff(tc.obj, copied); diff != "" {
				t.Fatalf("deep copy differs (-original,+copy):\n%s", diff)
			}
			tc.mutate(copied)
			if cmp.Equal(tc.obj, copied) {
				t.Error("mutating the copy changed the original")
			}
		})
	}
}
