package e2e

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/test/framework"
)

// The generated CRDs install on a real API server and their validation
// rejects what cannot work, with a message that says what to fix.
func TestCRDValidation(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := cluster(t, framework.SourceCluster)
	g.Expect(c.InstallCRDs(ctx)).To(Succeed())
	ns := c.CreateNamespace(t, nil)
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	clusterMeta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: ns + "-" + name} }

	cases := []struct {
		name    string
		obj     client.Object
		wantErr string // empty: accepted
	}{
		{"target with secret", &multiclusterv1alpha1.Target{ObjectMeta: meta("secret"),
			Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: "kc"}}}, ""},
		{"target self", &multiclusterv1alpha1.Target{ObjectMeta: meta("self"),
			Spec: multiclusterv1alpha1.TargetSpec{Self: true}}, ""},
		{"target with both", &multiclusterv1alpha1.Target{ObjectMeta: meta("both"),
			Spec: multiclusterv1alpha1.TargetSpec{Self: true, KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: "kc"}}},
			"set exactly one of self: true or kubeconfigSecret"},
		{"target with neither", &multiclusterv1alpha1.Target{ObjectMeta: meta("neither")},
			"set exactly one of self: true or kubeconfigSecret"},
		{"target with empty secret name", &multiclusterv1alpha1.Target{ObjectMeta: meta("noname"),
			Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{}}},
			"spec.kubeconfigSecret.name"},
		{"cluster target with secret", &multiclusterv1alpha1.ClusterTarget{ObjectMeta: clusterMeta("secret"),
			Spec: multiclusterv1alpha1.ClusterTargetSpec{KubeconfigSecret: &multiclusterv1alpha1.ClusterKubeconfigSecret{Namespace: ns, Name: "kc"}}}, ""},
		{"cluster target without secret namespace", &multiclusterv1alpha1.ClusterTarget{ObjectMeta: clusterMeta("nons"),
			Spec: multiclusterv1alpha1.ClusterTargetSpec{KubeconfigSecret: &multiclusterv1alpha1.ClusterKubeconfigSecret{Name: "kc"}}},
			"spec.kubeconfigSecret.namespace"},
		{"cluster target with both", &multiclusterv1alpha1.ClusterTarget{ObjectMeta: clusterMeta("both"),
			Spec: multiclusterv1alpha1.ClusterTargetSpec{Self: true, KubeconfigSecret: &multiclusterv1alpha1.ClusterKubeconfigSecret{Namespace: ns, Name: "kc"}}},
			"set exactly one of self: true or kubeconfigSecret"},
		{"source with service account", &multiclusterv1alpha1.Source{ObjectMeta: meta("sa"),
			Spec: multiclusterv1alpha1.SourceSpec{ServiceAccountName: "src"}}, ""},
		{"source with user", &multiclusterv1alpha1.Source{ObjectMeta: meta("user"),
			Spec: multiclusterv1alpha1.SourceSpec{UserName: "alice"}}, ""},
		{"source with both", &multiclusterv1alpha1.Source{ObjectMeta: meta("both"),
			Spec: multiclusterv1alpha1.SourceSpec{UserName: "alice", ServiceAccountName: "src"}},
			"set exactly one of userName or serviceAccountName"},
		{"source with neither", &multiclusterv1alpha1.Source{ObjectMeta: meta("neither")},
			"set exactly one of userName or serviceAccountName"},
		{"cluster source with service account", &multiclusterv1alpha1.ClusterSource{ObjectMeta: clusterMeta("sa"),
			Spec: multiclusterv1alpha1.ClusterSourceSpec{ServiceAccount: &multiclusterv1alpha1.ServiceAccountReference{Namespace: ns, Name: "src"}}}, ""},
		{"cluster source with neither", &multiclusterv1alpha1.ClusterSource{ObjectMeta: clusterMeta("neither")},
			"set exactly one of userName or serviceAccount"},
		{"cluster summary", &multiclusterv1alpha1.ClusterSummary{ObjectMeta: clusterMeta("summary"),
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := c.Client.Create(ctx, tc.obj)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				if tc.obj.GetNamespace() == "" { // namespaced ones go with the namespace
					t.Cleanup(func() { _ = c.Client.Delete(context.Background(), tc.obj) })
				}
				return
			}
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tc.wantErr))
		})
	}

	// The kubeconfig key defaults to "config", as in Admiralty.
	var target multiclusterv1alpha1.Target
	g.Expect(c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "secret"}, &target)).To(Succeed())
	g.Expect(target.Spec.KubeconfigSecret.Key).To(Equal("config"))

	// READY, REASON and AGE columns.
	out, err := c.Kubectl(ctx, "get", "targets", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Fields(strings.SplitN(out, "\n", 2)[0])).To(Equal([]string{"NAME", "READY", "REASON", "AGE"}))
}

// Manifests written for Admiralty apply unchanged.
func TestAdmiraltyManifestsApply(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := cluster(t, framework.SourceCluster)
	g.Expect(c.InstallCRDs(ctx)).To(Succeed())
	ns := c.CreateNamespace(t, nil)
	manifests := strings.ReplaceAll(`apiVersion: multicluster.admiralty.io/v1alpha1
kind: Target
metadata:
  name: c1
  namespace: NS
spec:
  kubeconfigSecret:
    name: c1
---
apiVersion: multicluster.admiralty.io/v1alpha1
kind: Target
metadata:
  name: c2
  namespace: NS
spec:
  kubeconfigSecret:
    name: c2
    key: kubeconfig
    context: cluster2
  excludedLabelsRegexp: ^node\.kubernetes\.io/
---
apiVersion: multicluster.admiralty.io/v1alpha1
kind: Target
metadata:
  name: this-cluster
  namespace: NS
spec:
  self: true
---
apiVersion: multicluster.admiralty.io/v1alpha1
kind: Source
metadata:
  name: cd
  namespace: NS
spec:
  serviceAccountName: cd
---
apiVersion: multicluster.admiralty.io/v1alpha1
kind: PodChaperon
metadata:
  name: chap
  namespace: NS
spec:
  containers:
  - name: main
    image: nginx
    resources:
      requests:
        cpu: 100m
`, "NS", ns)
	_, err := c.KubectlWithInput(ctx, manifests, "apply", "-f", "-")
	g.Expect(err).NotTo(HaveOccurred())

	var chap multiclusterv1alpha1.PodChaperon
	g.Expect(c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "chap"}, &chap)).To(Succeed())
	g.Expect(chap.Spec.Containers).To(HaveLen(1))
	g.Expect(chap.Spec.Containers[0].Resources.Requests.Cpu().String()).To(Equal("100m"))

	var c2 multiclusterv1alpha1.Target
	g.Expect(c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c2"}, &c2)).To(Succeed())
	g.Expect(c2.Spec.ExcludedLabelsRegexp).To(Equal(ptr.To(`^node\.kubernetes\.io/`)))
	g.Expect(c2.Spec.KubeconfigSecret.Context).To(Equal("cluster2"))
}
