package e2e

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// clientAs is a client of cluster c that authenticates as a service account.
func clientAs(g Gomega, c *framework.Cluster, ns, sa string) client.Client {
	token, err := c.ServiceAccountToken(t0(), ns, sa)
	g.Expect(err).NotTo(HaveOccurred())
	cfg := rest.AnonymousClientConfig(c.RESTConfig)
	cfg.BearerToken = token
	cl, err := client.New(cfg, client.Options{Scheme: framework.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	return cl
}

func chaperon(ns, name string) *multiclusterv1alpha1.PodChaperon {
	return &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: framework.PodSpec()}
}

// A Source grants its identity the protocol's permissions in its namespace
// and nothing in another source's; a ClusterSource grants them everywhere.
func TestSourcePermissions(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := cluster(t, framework.TargetName(2))
	g.Expect(c.InstallCRDs(ctx)).To(Succeed())
	framework.StartComponent(t, "controller-manager", "--kubeconfig="+c.Kubeconfig, "--controllers=source",
		"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", framework.FreePort(t)))

	nsA, nsB := c.CreateNamespace(t, nil), c.CreateNamespace(t, nil)
	srcA := &multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "src"},
		Spec: multiclusterv1alpha1.SourceSpec{ServiceAccountName: "source-a"}}
	srcB := &multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: "src"},
		Spec: multiclusterv1alpha1.SourceSpec{ServiceAccountName: "source-b"}}
	g.Expect(c.Client.Create(ctx, srcA)).To(Succeed())
	g.Expect(c.Client.Create(ctx, srcB)).To(Succeed())

	// Source A names a service account that does not exist yet.
	g.Eventually(func(g Gomega) {
		cond := readyCondition(g, c, srcA)
		g.Expect(cond.Reason).To(Equal(multiclusterv1alpha1.ReasonServiceAccountNotFound))
		g.Expect(cond.Message).To(ContainSubstring("service account " + nsA + "/source-a does not exist"))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	asA := clientAs(g, c, nsA, "source-a") // creates the account
	asB := clientAs(g, c, nsB, "source-b")
	for _, s := range []*multiclusterv1alpha1.Source{srcA, srcB} {
		g.Eventually(func(g Gomega) {
			g.Expect(readyCondition(g, c, s).Reason).To(Equal(multiclusterv1alpha1.ReasonPermissionsGranted))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	}
	// Permissions propagate through the authorizer's cache: wait for one.
	g.Eventually(func() error { return asA.Create(ctx, chaperon(nsA, "first")) }, framework.ShortTimeout, framework.Interval).Should(Succeed())

	forbidden := func(err error) bool { return apierrors.IsForbidden(err) }
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "followed"}, StringData: map[string]string{"k": "v"}}
	cases := []struct {
		name    string
		call    func() error
		allowed bool
	}{
		{"A creates a chaperon in its namespace", func() error { return asA.Create(ctx, chaperon(nsA, "mine")) }, true},
		{"A lists chaperons in its namespace", func() error {
			return asA.List(ctx, &multiclusterv1alpha1.PodChaperonList{}, client.InNamespace(nsA))
		}, true},
		{"A reads pods in its namespace", func() error { return asA.List(ctx, &corev1.PodList{}, client.InNamespace(nsA)) }, true},
		{"A writes a followed secret in its namespace", func() error { return asA.Create(ctx, secret) }, true},
		{"A reads the summary", func() error {
			err := asA.Get(ctx, client.ObjectKey{Name: protocol.ClusterSummaryName}, &multiclusterv1alpha1.ClusterSummary{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}, true},
		{"A lists nodes", func() error { return asA.List(ctx, &corev1.NodeList{}) }, true},
		{"A creates a chaperon in B's namespace", func() error { return asA.Create(ctx, chaperon(nsB, "intruder")) }, false},
		{"A lists B's chaperons", func() error {
			return asA.List(ctx, &multiclusterv1alpha1.PodChaperonList{}, client.InNamespace(nsB))
		}, false},
		{"A watches all chaperons", func() error {
			return asA.List(ctx, &multiclusterv1alpha1.PodChaperonList{})
		}, false},
		{"A reads B's pods", func() error { return asA.List(ctx, &corev1.PodList{}, client.InNamespace(nsB)) }, false},
		{"A deletes B's chaperon", func() error { return asA.Delete(ctx, chaperon(nsB, "b-owned")) }, false},
		{"A reads secrets, even in its namespace", func() error {
			return asA.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{})
		}, false},
		{"A creates pods directly", func() error {
			return asA.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "direct"}, Spec: framework.PodSpec()})
		}, false},
		{"A edits Sources", func() error { return asA.Delete(ctx, srcB) }, false},
		{"B creates a chaperon in its namespace", func() error { return asB.Create(ctx, chaperon(nsB, "b-owned")) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.allowed {
				NewWithT(t).Expect(err).NotTo(HaveOccurred())
			} else {
				NewWithT(t).Expect(forbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
			}
		})
	}

	t.Run("deleting the Source revokes its permissions", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(c.Client.Delete(ctx, srcA)).To(Succeed())
		g.Eventually(func() bool {
			return forbidden(asA.Create(ctx, chaperon(nsA, "after")))
		}, framework.ShortTimeout, framework.Interval).Should(BeTrue())
		g.Eventually(func() bool {
			return forbidden(asA.List(ctx, &corev1.NodeList{}))
		}, framework.ShortTimeout, framework.Interval).Should(BeTrue())
	})

	t.Run("a ClusterSource is granted every namespace", func(t *testing.T) {
		g := NewWithT(t)
		nsC := c.CreateNamespace(t, nil)
		asC := clientAs(g, c, nsC, "central")
		cs := &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: nsC + "-central"},
			Spec: multiclusterv1alpha1.ClusterSourceSpec{ServiceAccount: &multiclusterv1alpha1.ServiceAccountReference{Namespace: nsC, Name: "central"}}}
		g.Expect(c.Client.Create(ctx, cs)).To(Succeed())
		t.Cleanup(func() { _ = c.Client.Delete(t0(), cs) })
		for _, ns := range []string{nsA, nsB} {
			g.Eventually(func() error { return asC.Create(ctx, chaperon(ns, "central")) },
				framework.ShortTimeout, framework.Interval).Should(Succeed())
		}
		g.Expect(forbidden(asC.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}))).To(BeTrue())
	})
}
