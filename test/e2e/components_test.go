package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/test/framework"
)

// Both schedulers are kube-scheduler commands: they start against a sandbox
// cluster, answer on their health endpoints and, with a profile that does
// not enable their Flotilla plugin, schedule like the stock scheduler. (The
// plugins are tested end to end in test/e2e/scheduling.)
func TestSchedulersStartAndServeHealth(t *testing.T) {
	cases := []struct {
		binary, schedulerName, cluster string
	}{
		{"proxy-scheduler", "admiralty-proxy", framework.SourceCluster},
		{"candidate-scheduler", "admiralty-candidate", framework.TargetName(1)},
	}
	for _, tc := range cases {
		t.Run(tc.binary, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ctx := t.Context()
			c := cluster(t, tc.cluster)
			config := filepath.Join(t.TempDir(), "config.yaml")
			g.Expect(os.WriteFile(config, fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %s
leaderElection:
  leaderElect: false
profiles:
- schedulerName: %s
`, c.Kubeconfig, tc.schedulerName), 0o644)).To(Succeed())
			port := framework.FreePort(t)
			sched := framework.StartComponent(t, tc.binary,
				"--config="+config, "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port))
			base := fmt.Sprintf("https://127.0.0.1:%d", port)
			for _, path := range []string{"/healthz", "/readyz", "/livez"} {
				g.Eventually(func() error { return sched.Healthy(ctx, base+path) },
					framework.LongTimeout, framework.Interval).Should(Succeed(), path)
			}

			ns := c.CreateNamespace(t, nil)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scheduled"},
				Spec:       framework.PodSpec(),
			}
			pod.Spec.SchedulerName = tc.schedulerName
			g.Expect(c.Client.Create(ctx, pod)).To(Succeed())
			g.Eventually(func(g Gomega) {
				g.Expect(c.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
				g.Expect(c.Nodes).To(ContainElement(pod.Spec.NodeName))
			}, framework.PodTimeout, framework.Interval).Should(Succeed())
		})
	}
}

// The controller-manager is a controller-runtime manager: health probes,
// leader election, and metrics over HTTPS that only authorized callers read.
func TestControllerManagerStartsAndServesHealthAndMetrics(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := cluster(t, framework.SourceCluster)
	g.Expect(c.InstallCRDs(ctx)).To(Succeed())
	ns := c.CreateNamespace(t, nil)
	metricsPort, probePort := framework.FreePort(t), framework.FreePort(t)
	mgr := framework.StartComponent(t, "controller-manager",
		"--kubeconfig="+c.Kubeconfig,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		"--leader-elect", "--leader-election-namespace="+ns,
		// The webhook's certificate Secret is made in the test's namespace.
		"--webhook-secret="+ns+"/flotilla-webhook-cert", "--webhook-cert-from-secret", "--webhook-dns-names=localhost",
		"--webhook-bind-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", framework.FreePort(t)), "--webhook-cert-dir="+t.TempDir())

	probes := fmt.Sprintf("http://127.0.0.1:%d", probePort)
	for _, path := range []string{"/healthz", "/readyz"} {
		g.Eventually(func() error { return mgr.Healthy(ctx, probes+path) },
			framework.LongTimeout, framework.Interval).Should(Succeed(), path)
	}

	g.Eventually(func(g Gomega) {
		var lease coordinationv1.Lease
		g.Expect(c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "controller-manager.flotilla.multicluster.admiralty.io"}, &lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		g.Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	metrics := fmt.Sprintf("https://127.0.0.1:%d/metrics", metricsPort)
	g.Eventually(func(g Gomega) {
		code, _, err := mgr.Get(ctx, metrics, "")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusUnauthorized), "anonymous metrics scrape")
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	// A service account allowed to GET /metrics can scrape; one that is not,
	// cannot.
	allowed := serviceAccountToken(t, c, ns, "scraper", true)
	denied := serviceAccountToken(t, c, ns, "stranger", false)
	g.Eventually(func(g Gomega) {
		code, body, err := mgr.Get(ctx, metrics, allowed)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusOK), body)
		g.Expect(body).To(ContainSubstring("leader_election_master_status"))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())
	code, _, err := mgr.Get(ctx, metrics, denied)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusForbidden))
}

// serviceAccountToken makes a service account in ns (allowed to GET /metrics
// when allowMetrics) and returns a token for it.
func serviceAccountToken(t *testing.T, c *framework.Cluster, ns, name string, allowMetrics bool) string {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	g.Expect(c.Client.Create(ctx, sa)).To(Succeed())
	if allowMetrics {
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
			Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}
		g.Expect(c.Client.Create(ctx, role)).To(Succeed())
		g.Expect(c.Client.Create(ctx, binding)).To(Succeed())
		t.Cleanup(func() {
			// t.Context() is already cancelled when cleanups run.
			_ = c.Client.Delete(context.Background(), binding)
			_ = c.Client.Delete(context.Background(), role)
		})
	}
	tr, err := c.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}
