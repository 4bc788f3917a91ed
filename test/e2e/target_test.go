package e2e

import (
	"fmt"
	"net/http"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/test/framework"
)

// readSummaries is what a Source grants a source for health probes.
var readSummaries = rbacv1.PolicyRule{
	APIGroups: []string{multiclusterv1alpha1.GroupVersion.Group}, Resources: []string{"clustersummaries"},
	Verbs: []string{"get", "list", "watch"},
}

// startTargetController runs the source's controller-manager with the
// target controller, probing targets every second; it returns the process
// and its (plain HTTP) metrics URL.
func startTargetController(t *testing.T, src *framework.Cluster) (*framework.Component, string) {
	t.Helper()
	port := framework.FreePort(t)
	c := framework.StartComponent(t, "controller-manager",
		"--kubeconfig="+src.Kubeconfig, "--controllers=target", "--target-probe-interval=1s",
		"--metrics-secure=false", fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", framework.FreePort(t)))
	return c, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
}

// readyCondition returns the Ready condition of a Target, ClusterTarget,
// Source or ClusterSource.
func readyCondition(g Gomega, c *framework.Cluster, obj client.Object) *metav1.Condition {
	g.Expect(c.Client.Get(t0(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	var conds []metav1.Condition
	switch o := obj.(type) {
	case *multiclusterv1alpha1.Target:
		conds = o.Status.Conditions
	case *multiclusterv1alpha1.ClusterTarget:
		conds = o.Status.Conditions
	case *multiclusterv1alpha1.Source:
		conds = o.Status.Conditions
	case *multiclusterv1alpha1.ClusterSource:
		conds = o.Status.Conditions
	default:
		g.Expect(obj).To(BeNil(), "no Ready condition on %T", obj)
	}
	cond := meta.FindStatusCondition(conds, multiclusterv1alpha1.ConditionReady)
	g.Expect(cond).NotTo(BeNil(), "no Ready condition yet")
	return cond
}

// A source connects to its targets as Targets and their Secrets say, without
// restarts, and every way it can go wrong shows in the Ready condition.
func TestTargetConnections(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := cluster(t, framework.SourceCluster)
	t1 := cluster(t, framework.TargetName(1))
	t2 := cluster(t, framework.TargetName(2))
	g.Expect(src.InstallCRDs(ctx)).To(Succeed())
	g.Expect(t1.InstallCRDs(ctx)).To(Succeed())

	// Identities in target-1: one allowed to read summaries, one not.
	idNS := t1.CreateNamespace(t, nil)
	allowedToken, err := t1.ServiceAccountToken(ctx, idNS, "source")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(t1.Grant(ctx, idNS, "source", readSummaries)).To(Succeed())
	strangerToken, err := t1.ServiceAccountToken(ctx, idNS, "stranger")
	g.Expect(err).NotTo(HaveOccurred())
	good, err := t1.KubeconfigFor(allowedToken, "target-1")
	g.Expect(err).NotTo(HaveOccurred())
	stranger, err := t1.KubeconfigFor(strangerToken, "target-1")
	g.Expect(err).NotTo(HaveOccurred())
	badToken, err := t1.KubeconfigFor("not-a-token", "target-1")
	g.Expect(err).NotTo(HaveOccurred())
	// The right address with another cluster's CA, and an address where nothing listens.
	wrongCA, err := (&framework.Cluster{Name: "t1", Server: t1.Server, RESTConfig: t2.RESTConfig}).KubeconfigFor(allowedToken, "target-1")
	g.Expect(err).NotTo(HaveOccurred())
	nowhere, err := (&framework.Cluster{Name: "gone", Server: fmt.Sprintf("https://127.0.0.1:%d", framework.FreePort(t)), RESTConfig: t1.RESTConfig}).KubeconfigFor(allowedToken, "target-1")
	g.Expect(err).NotTo(HaveOccurred())

	mgr, metricsURL := startTargetController(t, src)
	ns := src.CreateNamespace(t, nil)
	secret := func(name string, data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
	}
	targetFor := func(name, secretName, key, context string) *multiclusterv1alpha1.Target {
		return &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: secretName, Key: key, Context: context}}}
	}
	cases := []struct {
		name        string
		secret      *corev1.Secret
		target      *multiclusterv1alpha1.Target
		wantReady   metav1.ConditionStatus
		wantReason  string
		wantMessage string
	}{
		{"valid", secret("good", map[string][]byte{"config": good}), targetFor("valid", "good", "", ""),
			metav1.ConditionTrue, multiclusterv1alpha1.ReasonConnected, "connected to " + t1.Server},
		{"self", nil, &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "self"}, Spec: multiclusterv1alpha1.TargetSpec{Self: true}},
			metav1.ConditionTrue, multiclusterv1alpha1.ReasonConnected, "connected to"},
		{"secret missing", nil, targetFor("no-secret", "absent", "", ""),
			metav1.ConditionFalse, multiclusterv1alpha1.ReasonSecretNotFound, "secret " + ns + "/absent does not exist"},
		{"key missing", secret("other-key", map[string][]byte{"kubeconfig": good}), targetFor("no-key", "other-key", "", ""),
			metav1.ConditionFalse, multiclusterv1alpha1.ReasonSecretKeyNotFound, `has no key "config" (it has: [kubeconfig])`},
		{"named key", secret("named-key", map[string][]byte{"kubeconfig": good}), targetFor("named-key", "named-key", "kubeconfig", ""),
			metav1.ConditionTrue, multiclusterv1alpha1.ReasonConnected, "connected to"},
		{"not a kubeconfig", secret("garbage", map[string][]byte{"config": []byte("{{ nope")}), targetFor("garbage", "garbage", "", ""),
			metav1.ConditionFalse, multiclusterv1alpha1.ReasonKubeconfigInvalid, "is not a valid kubeconfig"},
		{"context missing", secret("ctx", map[string][]byte{"config": good}), targetFor("no-context", "ctx", "", "elsewhere"),
			metav1.ConditionFalse, multiclusterv1alpha1.ReasonContextNotFound, `no context "elsewhere" (it has: target-1)`},
		{"rejected token", secret("bad-token", map[string][]byte{"config": badToken}), targetFor("bad-token", "bad-token", "", ""),
			metav1.ConditionFalse, multiclusterv1alpha1.ReasonUnauthorized, "rejected the credentials"},
		{"no permission", secret("stranger", map[string][]byte{"config": stranger}), targetFor("stranger", "stranger", "", ""),
			metav1.ConditionFalse, multiclusterv1alpha1.ReasonForbidden, "create a Source (or ClusterSource)"},
		{"wrong CA", secret("wrong-ca", map[string][]byte{"config": wrongCA}), targetFor("wrong-ca", "wrong-ca", "", ""),
			metav1.ConditionFalse, multiclusterv1alpha1.ReasonUnreachable, "certificate"},
		{"unreachable", secret("nowhere", map[string][]byte{"config": nowhere}), targetFor("nowhere", "nowhere", "", ""),
			metav1.ConditionFalse, multiclusterv1alpha1.ReasonUnreachable, "connection refused"},
	}
	for _, tc := range cases {
		if tc.secret != nil {
			g.Expect(src.Client.Create(ctx, tc.secret)).To(Succeed())
		}
		g.Expect(src.Client.Create(ctx, tc.target)).To(Succeed(), tc.name)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Eventually(func(g Gomega) {
				cond := readyCondition(g, src, tc.target)
				g.Expect(cond.Status).To(Equal(tc.wantReady))
				g.Expect(cond.Reason).To(Equal(tc.wantReason))
				g.Expect(cond.Message).To(ContainSubstring(tc.wantMessage))
			}, framework.ShortTimeout, framework.Interval).Should(Succeed())
		})
	}

	t.Run("fixing the secret connects without restarts", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(src.Client.Create(ctx, secret("absent", map[string][]byte{"config": good}))).To(Succeed())
		fixed := targetFor("no-secret", "absent", "", "")
		g.Eventually(func(g Gomega) {
			g.Expect(readyCondition(g, src, fixed).Reason).To(Equal(multiclusterv1alpha1.ReasonConnected))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())

		// Rotating the Secret to a rejected token is noticed too.
		var s corev1.Secret
		g.Expect(src.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "absent"}, &s)).To(Succeed())
		s.Data["config"] = badToken
		g.Expect(src.Client.Update(ctx, &s)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(readyCondition(g, src, fixed).Reason).To(Equal(multiclusterv1alpha1.ReasonUnauthorized))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	})

	t.Run("deleting a target closes its connection", func(t *testing.T) {
		g := NewWithT(t)
		series := fmt.Sprintf(`flotilla_remote_target_ready{reason="Connected",target="%s/valid"} 1`, ns)
		scrape := func(g Gomega) string {
			code, body, err := mgr.Get(ctx, metricsURL, "")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
			return body
		}
		g.Eventually(func(g Gomega) { g.Expect(scrape(g)).To(ContainSubstring(series)) },
			framework.ShortTimeout, framework.Interval).Should(Succeed())
		g.Expect(src.Client.Delete(ctx, targetFor("valid", "good", "", ""))).To(Succeed())
		g.Eventually(func(g Gomega) { g.Expect(scrape(g)).NotTo(ContainSubstring(fmt.Sprintf(`target="%s/valid"`, ns))) },
			framework.ShortTimeout, framework.Interval).Should(Succeed())
	})

	t.Run("events explain the condition", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func(g Gomega) {
			var evs corev1.EventList
			g.Expect(src.Client.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
			var reasons []string
			for _, e := range evs.Items {
				if e.InvolvedObject.Name == "stranger" {
					reasons = append(reasons, e.Reason)
				}
			}
			g.Expect(reasons).To(ContainElement(multiclusterv1alpha1.ReasonForbidden))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	})
}

// A target whose API server stops answering is reported unreachable, and
// connected again when it comes back; a cluster without Flotilla's API says so.
func TestTargetOutageAndNotInstalled(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := cluster(t, framework.SourceCluster)
	t2 := cluster(t, framework.TargetName(2))
	g.Expect(src.InstallCRDs(ctx)).To(Succeed())
	idNS := t2.CreateNamespace(t, nil)
	token, err := t2.ServiceAccountToken(ctx, idNS, "source")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(t2.Grant(ctx, idNS, "source", readSummaries)).To(Succeed())
	kc, err := t2.KubeconfigFor(token, "target-2")
	g.Expect(err).NotTo(HaveOccurred())

	startTargetController(t, src)
	ns := src.CreateNamespace(t, nil)
	g.Expect(src.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "t2"}, Data: map[string][]byte{"config": kc}})).To(Succeed())
	ct := &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: ns + "-t2"},
		Spec: multiclusterv1alpha1.ClusterTargetSpec{KubeconfigSecret: &multiclusterv1alpha1.ClusterKubeconfigSecret{Namespace: ns, Name: "t2"}}}
	g.Expect(src.Client.Create(ctx, ct)).To(Succeed())
	t.Cleanup(func() { _ = src.Client.Delete(t0(), ct) })

	err = t2.Client.Get(ctx, client.ObjectKey{Name: "clustersummaries.multicluster.admiralty.io"}, &apiextensionsv1.CustomResourceDefinition{})
	if apierrors.IsNotFound(err) {
		g.Eventually(func(g Gomega) {
			cond := readyCondition(g, src, ct)
			g.Expect(cond.Reason).To(Equal(multiclusterv1alpha1.ReasonNotInstalled), "%+v", cond)
			g.Expect(cond.Message).To(ContainSubstring("install Flotilla in the target cluster"))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	} else {
		t.Logf("target-2 already serves Flotilla's API (a reused sandbox?): not checking NotInstalled")
	}
	g.Expect(t2.InstallCRDs(ctx)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyCondition(g, src, ct).Reason).To(Equal(multiclusterv1alpha1.ReasonConnected))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	g.Expect(sandbox.KillProcess(t2.Name, "kube-apiserver")).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := readyCondition(g, src, ct)
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(cond.Reason).To(Equal(multiclusterv1alpha1.ReasonUnreachable))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	g.Expect(sandbox.StartProcess(ctx, t2.Name, "kube-apiserver")).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readyCondition(g, src, ct).Status).To(Equal(metav1.ConditionTrue))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
}
