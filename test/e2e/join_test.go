package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/join"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// joinCluster is a side of a join as the sandbox's kubeconfig (one context
// per cluster) reaches it.
func joinCluster(t *testing.T, kubeconfig, context string) *join.Cluster {
	t.Helper()
	c, err := join.ClusterFromKubeconfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, context)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// joinNames are names of this run's own, so that a reused sandbox (where
// a fleet may have made flotilla-system/source) does not get in the way.
func joinNames() join.Options {
	suffix := rand.String(5)
	return join.Options{Name: "join-" + suffix, SourceName: "join-src-" + suffix}
}

// actions maps "cluster Object" to what join or unjoin did to it.
func actions(res *join.Result) map[string]string {
	m := map[string]string{}
	for _, c := range res.Changes {
		m[c.Cluster+" "+c.Object] = c.Action
	}
	return m
}

// absent asserts that objects are gone from a cluster.
func absent(g Gomega, c *framework.Cluster, objs ...client.Object) {
	for _, o := range objs {
		err := c.Client.Get(t0(), client.ObjectKeyFromObject(o), o)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s in %s: %v", o, client.ObjectKeyFromObject(o), c.Name, err)
	}
}

// Join makes, in a target, an identity for the source that Flotilla grants
// the protocol's permissions and, in the source, a ClusterTarget with a
// kubeconfig that works as that identity; the source connects and status
// shows it. Joining twice changes nothing; unjoin removes everything, and
// unjoining twice is fine.
func TestJoin(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := cluster(t, framework.SourceCluster)
	t1 := cluster(t, framework.TargetName(1))
	g.Expect(src.InstallCRDs(ctx)).To(Succeed())
	g.Expect(t1.InstallCRDs(ctx)).To(Succeed())
	// Flotilla in both clusters: the target's Source permissions and
	// summary, the source's connections and virtual nodes.
	framework.StartComponent(t, "controller-manager", "--kubeconfig="+t1.Kubeconfig, "--controllers=summary,source",
		"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", framework.FreePort(t)))
	startTargetController(t, src)

	source := joinCluster(t, sandbox.Kubeconfig, src.Name)
	target := joinCluster(t, sandbox.Kubeconfig, t1.Name)
	g.Expect(target.Name).To(Equal(t1.Name), "the default name: the kubeconfig's cluster name")
	opts := joinNames()
	t.Cleanup(func() { _, _ = join.Unjoin(t0(), source, target, opts) })

	res, err := join.Join(ctx, source, target, opts)
	g.Expect(err).NotTo(HaveOccurred())
	ns := join.SystemNamespace
	g.Expect(actions(res)).To(HaveKeyWithValue("target ServiceAccount "+ns+"/"+opts.SourceName, join.Created))
	g.Expect(actions(res)).To(HaveKeyWithValue("target ClusterSource "+opts.SourceName, join.Created))
	g.Expect(actions(res)).To(HaveKeyWithValue("target Secret "+ns+"/"+opts.SourceName+"-token", join.Created))
	g.Expect(actions(res)).To(HaveKeyWithValue("source Secret "+ns+"/"+opts.Name, join.Created))
	g.Expect(actions(res)).To(HaveKeyWithValue("source ClusterTarget "+opts.Name, join.Created))
	g.Expect(res.VirtualNode).To(Equal("admiralty-" + opts.Name))

	// In the target.
	managed := HaveKeyWithValue(join.ManagedByLabel, join.FieldManager)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: opts.SourceName}}
	g.Expect(t1.Client.Get(ctx, client.ObjectKeyFromObject(sa), sa)).To(Succeed())
	g.Expect(sa.Labels).To(managed)
	cs := &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: opts.SourceName}}
	g.Expect(t1.Client.Get(ctx, client.ObjectKeyFromObject(cs), cs)).To(Succeed())
	g.Expect(cs.Spec.ServiceAccount).To(Equal(&multiclusterv1alpha1.ServiceAccountReference{Namespace: ns, Name: opts.SourceName}))
	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: opts.SourceName + "-token"}}
	g.Expect(t1.Client.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
	g.Expect(token.Type).To(Equal(corev1.SecretTypeServiceAccountToken))
	g.Expect(token.Annotations).To(HaveKeyWithValue(corev1.ServiceAccountNameKey, opts.SourceName))
	g.Expect(token.Annotations).To(HaveKeyWithValue(corev1.ServiceAccountUIDKey, string(sa.UID)))
	g.Expect(token.Data[corev1.ServiceAccountTokenKey]).NotTo(BeEmpty())

	// In the source.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: opts.Name}}
	g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	g.Expect(secret.Labels).To(managed)
	ct := &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: opts.Name}}
	g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(ct), ct)).To(Succeed())
	g.Expect(ct.Spec.KubeconfigSecret).To(Equal(&multiclusterv1alpha1.ClusterKubeconfigSecret{Namespace: ns, Name: opts.Name, Key: "config"}))

	t.Run("the kubeconfig reaches the target as the source's service account", func(t *testing.T) {
		g := NewWithT(t)
		kc, err := clientcmd.Load(secret.Data["config"])
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(kc.CurrentContext).To(Equal(opts.Name))
		g.Expect(kc.Clusters[opts.Name].Server).To(Equal(t1.Server))
		g.Expect(kc.AuthInfos[opts.Name].Token).To(Equal(string(token.Data[corev1.ServiceAccountTokenKey])))
		cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
		g.Expect(err).NotTo(HaveOccurred())
		cs, err := kubernetes.NewForConfig(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(review.Status.UserInfo.Username).To(Equal("system:serviceaccount:" + ns + ":" + opts.SourceName))
		// With the permissions that the ClusterSource grants, and no more.
		cl, err := client.New(cfg, client.Options{Scheme: framework.Scheme})
		g.Expect(err).NotTo(HaveOccurred())
		g.Eventually(func() error {
			return cl.List(ctx, &multiclusterv1alpha1.PodChaperonList{}, client.InNamespace(metav1.NamespaceDefault))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
		err = cl.List(ctx, &corev1.SecretList{}, client.InNamespace(metav1.NamespaceDefault))
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "listing Secrets: %v", err)
	})

	t.Run("the source connects and status shows it", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func(g Gomega) {
			g.Expect(readyCondition(g, src, ct).Reason).To(Equal(multiclusterv1alpha1.ReasonConnected))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
		// A proxy pod bound to the virtual node (bound by hand: no
		// scheduler runs here); nothing runs it, so it stays Pending.
		podNS := src.CreateNamespace(t, nil)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: podNS, Name: "proxy"},
			Spec: framework.PodSpec()}
		pod.Spec.NodeName = res.VirtualNode
		pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
		pod.Spec.Tolerations = []corev1.Toleration{{Key: protocol.VirtualKubeletProviderKey, Operator: corev1.TolerationOpExists}}
		g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
		t.Cleanup(func() { _ = src.Client.Delete(t0(), pod, client.GracePeriodSeconds(0)) })

		var row join.TargetStatus
		g.Eventually(func(g Gomega) {
			rows, err := join.Status(ctx, source)
			g.Expect(err).NotTo(HaveOccurred())
			found := false
			for _, r := range rows {
				if r.Kind == "ClusterTarget" && r.Name == opts.Name {
					row, found = r, true
				}
			}
			g.Expect(found).To(BeTrue(), "no row for ClusterTarget %s in %+v", opts.Name, rows)
			g.Expect(row.NodeReady).To(Equal(corev1.ConditionTrue))
		}, framework.ShortTimeout, framework.Interval).Should(Succeed())
		g.Expect(row.Ready).NotTo(BeNil())
		g.Expect(row.Ready.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(row.Ready.Reason).To(Equal(multiclusterv1alpha1.ReasonConnected))
		g.Expect(row.Node).To(Equal(res.VirtualNode))
		g.Expect(row.Pods).To(Equal(map[corev1.PodPhase]int{corev1.PodPending: 1}))
		var table bytes.Buffer
		g.Expect(join.WriteStatus(&table, []join.TargetStatus{row})).To(Succeed())
		g.Expect(table.String()).To(MatchRegexp(`ClusterTarget +- +%s +True +Connected +%s +True +1 \(1 Pending\) +connected to %s`,
			opts.Name, res.VirtualNode, t1.Server))
		g.Expect(src.Client.Delete(ctx, pod, client.GracePeriodSeconds(0))).To(Succeed())
	})

	t.Run("joining again changes nothing", func(t *testing.T) {
		g := NewWithT(t)
		again, err := join.Join(ctx, source, target, opts)
		g.Expect(err).NotTo(HaveOccurred())
		for _, c := range again.Changes {
			g.Expect(c.Action).To(Equal(join.Unchanged), "%s %s", c.Cluster, c.Object)
		}
		g.Expect(again.Changes).To(HaveLen(5))
		sameToken := &corev1.Secret{}
		g.Expect(t1.Client.Get(ctx, client.ObjectKeyFromObject(token), sameToken)).To(Succeed())
		g.Expect(sameToken.UID).To(Equal(token.UID))
		g.Expect(sameToken.Data).To(Equal(token.Data))
		sameSecret := &corev1.Secret{}
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(secret), sameSecret)).To(Succeed())
		g.Expect(sameSecret.Data).To(Equal(secret.Data))
	})

	t.Run("a changed flag updates in place", func(t *testing.T) {
		g := NewWithT(t)
		// The source reaches the target at another address of it.
		moved := opts
		moved.TargetServer = strings.Replace(t1.Server, "127.0.0.1", "localhost", 1)
		g.Expect(moved.TargetServer).NotTo(Equal(t1.Server))
		res, err := join.Join(ctx, source, target, moved)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(actions(res)).To(HaveKeyWithValue("source Secret "+ns+"/"+opts.Name, join.Configured))
		g.Expect(actions(res)).To(HaveKeyWithValue("target Secret "+ns+"/"+opts.SourceName+"-token", join.Unchanged))
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
		kc, err := clientcmd.Load(secret.Data["config"])
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(kc.Clusters[opts.Name].Server).To(Equal(moved.TargetServer))
		_, err = join.Join(ctx, source, target, opts)
		g.Expect(err).NotTo(HaveOccurred())
	})

	t.Run("unjoin removes everything, twice is fine", func(t *testing.T) {
		g := NewWithT(t)
		res, err := join.Unjoin(ctx, source, target, opts)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Notes).To(BeEmpty())
		for _, c := range res.Changes {
			g.Expect(c.Action).To(Equal(join.Deleted), "%s %s", c.Cluster, c.Object)
		}
		g.Expect(res.Changes).To(HaveLen(5))
		// Unjoin waited for the source to release the target.
		absent(g, src, ct, secret, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: res.VirtualNode}})
		g.Eventually(func(g Gomega) { absent(g, t1, cs, token, sa) }, framework.ShortTimeout, framework.Interval).Should(Succeed())

		again, err := join.Unjoin(ctx, source, target, opts)
		g.Expect(err).NotTo(HaveOccurred())
		for _, c := range again.Changes {
			g.Expect(c.Action).To(Equal(join.NotFound), "%s %s", c.Cluster, c.Object)
		}
	})
}

// With a namespace, join makes a Source and a Target in it, whose virtual
// node is admiralty-<namespace>-<name>.
func TestJoinNamespaced(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := cluster(t, framework.SourceCluster)
	t1 := cluster(t, framework.TargetName(1))
	g.Expect(src.InstallCRDs(ctx)).To(Succeed())
	g.Expect(t1.InstallCRDs(ctx)).To(Succeed())
	source := joinCluster(t, sandbox.Kubeconfig, src.Name)
	target := joinCluster(t, sandbox.Kubeconfig, t1.Name)
	opts := joinNames()
	opts.Namespace = src.CreateNamespace(t, nil)

	_, err := join.Join(ctx, source, target, opts)
	g.Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf(`in the target cluster (context "target-1"): namespace %q does not exist there: create it first`, opts.Namespace))))

	g.Expect(t1.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace}})).To(Succeed())
	t.Cleanup(func() {
		_ = t1.Client.Delete(t0(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace}})
	})

	// A namespace missing only in the source: refused before the target is
	// touched.
	onlyInTarget := opts
	onlyInTarget.Namespace = t1.CreateNamespace(t, nil)
	_, err = join.Join(ctx, source, target, onlyInTarget)
	g.Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf(`in the source cluster (context "source"): namespace %q does not exist there: create it first (nothing was changed)`, onlyInTarget.Namespace))))
	absent(g, t1,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: onlyInTarget.Namespace, Name: opts.SourceName}},
		&multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: onlyInTarget.Namespace, Name: opts.SourceName}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: onlyInTarget.Namespace, Name: opts.SourceName + "-token"}})

	res, err := join.Join(ctx, source, target, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.VirtualNode).To(Equal("admiralty-" + opts.Namespace + "-" + opts.Name))
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.SourceName}}
	s := &multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.SourceName}}
	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.SourceName + "-token"}}
	for _, o := range []client.Object{sa, s, token} {
		g.Expect(t1.Client.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
	}
	g.Expect(s.Spec.ServiceAccountName).To(Equal(opts.SourceName))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name}}
	tgt := &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name}}
	for _, o := range []client.Object{secret, tgt} {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
	}
	g.Expect(tgt.Spec.KubeconfigSecret).To(Equal(&multiclusterv1alpha1.KubeconfigSecret{Name: opts.Name, Key: "config"}))
	// Nothing cluster-scoped.
	absent(g, t1, &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: opts.SourceName}})
	absent(g, src, &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: opts.Name}})

	_, err = join.Unjoin(ctx, source, target, opts)
	g.Expect(err).NotTo(HaveOccurred())
	absent(g, src, tgt, secret)
	g.Eventually(func(g Gomega) { absent(g, t1, s, token, sa) }, framework.ShortTimeout, framework.Interval).Should(Succeed())
}

// Join says what is wrong before it writes anything: a context the
// kubeconfig lacks, a cluster without Flotilla, a name taken by an object
// it did not make, a user without the permissions, an invalid name.
func TestJoinErrors(t *testing.T) {
	ctx := t.Context()
	src := cluster(t, framework.SourceCluster)
	t1 := cluster(t, framework.TargetName(1))
	t2 := cluster(t, framework.TargetName(2))
	NewWithT(t).Expect(src.InstallCRDs(ctx)).To(Succeed())
	NewWithT(t).Expect(t1.InstallCRDs(ctx)).To(Succeed())
	source := joinCluster(t, sandbox.Kubeconfig, src.Name)
	target := joinCluster(t, sandbox.Kubeconfig, t1.Name)

	t.Run("unknown context", func(t *testing.T) {
		g := NewWithT(t)
		_, err := join.ClusterFromKubeconfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: sandbox.Kubeconfig}, "nowhere")
		var notFound *join.ContextNotFoundError
		g.Expect(errors.As(err, &notFound)).To(BeTrue(), "%v", err)
		g.Expect(err).To(MatchError(`context "nowhere" not found in the kubeconfig (it has: source, target-1, target-2)`))
	})

	t.Run("Flotilla not installed in the target", func(t *testing.T) {
		g := NewWithT(t)
		err := t2.Client.Get(ctx, client.ObjectKey{Name: "clustersources.multicluster.admiralty.io"}, &apiextensionsv1.CustomResourceDefinition{})
		if !apierrors.IsNotFound(err) {
			t.Skipf("target-2 serves Flotilla's API already (a reused sandbox, or a test installed it): %v", err)
		}
		opts := joinNames()
		_, err = join.Join(ctx, source, joinCluster(t, sandbox.Kubeconfig, t2.Name), opts)
		var notInstalled *join.NotInstalledError
		g.Expect(errors.As(err, &notInstalled)).To(BeTrue(), "%v", err)
		g.Expect(err).To(MatchError(`Flotilla is not installed in the target cluster (context "target-2"): it does not serve ` +
			`multicluster.admiralty.io/v1alpha1 clustersources: install Flotilla in the target cluster first`))
		absent(g, t2, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: join.SystemNamespace, Name: opts.SourceName}})
		absent(g, src, &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: opts.Name}})
	})

	t.Run("a name taken by an object flotillactl did not make", func(t *testing.T) {
		g := NewWithT(t)
		opts := joinNames()
		g.Expect(t1.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: join.SystemNamespace}})).
			To(Or(Succeed(), WithTransform(apierrors.IsAlreadyExists, BeTrue())))
		theirs := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: join.SystemNamespace, Name: opts.SourceName}}
		g.Expect(t1.Client.Create(ctx, theirs)).To(Succeed())
		t.Cleanup(func() { _ = t1.Client.Delete(t0(), theirs) })
		_, err := join.Join(ctx, source, target, opts)
		g.Expect(err).To(MatchError(fmt.Sprintf(`ServiceAccount %s/%s already exists in the target cluster (context "target-1") and was not made by flotillactl `+
			`(no label app.kubernetes.io/managed-by=flotillactl): choose another --source-name, or delete it`, join.SystemNamespace, opts.SourceName)))
		absent(g, t1, &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: opts.SourceName}})
		absent(g, src, &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: opts.Name}})
		// Unjoin leaves it alone too.
		res, err := join.Unjoin(ctx, source, target, opts)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(actions(res)).To(HaveKeyWithValue("target ServiceAccount "+join.SystemNamespace+"/"+opts.SourceName, join.LeftAlone))
		g.Expect(t1.Client.Get(ctx, client.ObjectKeyFromObject(theirs), theirs)).To(Succeed())
	})

	t.Run("no permission", func(t *testing.T) {
		g := NewWithT(t)
		// A user of target-1 who may do nothing but discovery.
		idNS := t1.CreateNamespace(t, nil)
		tok, err := t1.ServiceAccountToken(ctx, idNS, "nobody")
		g.Expect(err).NotTo(HaveOccurred())
		kc, err := clientcmd.LoadFromFile(sandbox.Kubeconfig)
		g.Expect(err).NotTo(HaveOccurred())
		kc.AuthInfos["nobody"] = &clientcmdapi.AuthInfo{Token: tok}
		kc.Contexts["nobody"] = &clientcmdapi.Context{Cluster: t1.Name, AuthInfo: "nobody"}
		path := filepath.Join(t.TempDir(), "kubeconfig")
		g.Expect(clientcmd.WriteToFile(*kc, path)).To(Succeed())
		_, err = join.Join(ctx, source, joinCluster(t, path, "nobody"), joinNames())
		g.Expect(err).To(MatchError(And(
			ContainSubstring(`in the target cluster (context "nobody"): permission denied`),
			ContainSubstring(fmt.Sprintf(`User "system:serviceaccount:%s:nobody" cannot get resource "serviceaccounts"`, idNS)))))
	})

	t.Run("invalid name", func(t *testing.T) {
		g := NewWithT(t)
		_, err := join.Join(ctx, source, target, join.Options{Name: "EU_west"})
		g.Expect(err).To(MatchError(ContainSubstring(`invalid --name "EU_west": a lowercase RFC 1123 label`)))
	})
}

// flotillactl works as a command and as the kubectl plugin "kubectl
// flotilla".
func TestFlotillactl(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := cluster(t, framework.SourceCluster)
	t1 := cluster(t, framework.TargetName(1))
	g.Expect(src.InstallCRDs(ctx)).To(Succeed())
	g.Expect(t1.InstallCRDs(ctx)).To(Succeed())
	root, err := framework.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	binDir, err := framework.BinDir()
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "kubectl-flotilla"), "./cmd/flotillactl")
	build.Dir = root
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "go build: %s", out)

	// kubectl finds the plugin on the PATH; the kubeconfig comes from
	// $KUBECONFIG, as for kubectl itself.
	kubectl := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(ctx, framework.KubectlTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kubectl"), append([]string{"flotilla"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+sandbox.Kubeconfig)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	opts := joinNames()
	flags := []string{"--source-context", src.Name, "--target-context", t1.Name, "--name", opts.Name, "--source-name", opts.SourceName}
	t.Cleanup(func() { _, _, _ = kubectl(append([]string{"unjoin"}, flags...)...) })

	help, _, err := kubectl("join", "--help")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(help).To(ContainSubstring("kubectl flotilla join --target-context B [--source-context A] [flags]"))

	stdout, stderr, err := kubectl(append([]string{"join"}, flags...)...)
	g.Expect(err).NotTo(HaveOccurred(), "stderr: %s", stderr)
	t.Logf("kubectl flotilla join:\n%s", stdout)
	g.Expect(stdout).To(MatchRegexp(`source \(source\) +ClusterTarget %s +created`, opts.Name))
	g.Expect(stdout).To(ContainSubstring(fmt.Sprintf(`joined: source (context "source") -> target-1 (context "target-1") as ClusterTarget %s, virtual node admiralty-%s`, opts.Name, opts.Name)))
	ct := &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: opts.Name}}
	g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(ct), ct)).To(Succeed())

	// No controller-manager runs here: no condition, no virtual node yet.
	stdout, stderr, err = kubectl("status", "--context", src.Name)
	g.Expect(err).NotTo(HaveOccurred(), "stderr: %s", stderr)
	t.Logf("kubectl flotilla status:\n%s", stdout)
	g.Expect(stdout).To(HavePrefix("KIND "))
	g.Expect(stdout).To(MatchRegexp(`ClusterTarget +- +%s +Unknown +- +admiralty-%s +absent +0 +no Ready condition yet`, opts.Name, opts.Name))

	stdout, stderr, err = kubectl("status", "--context", src.Name, "-o", "json")
	g.Expect(err).NotTo(HaveOccurred(), "stderr: %s", stderr)
	var statuses []join.TargetStatus
	g.Expect(json.Unmarshal([]byte(stdout), &statuses)).To(Succeed(), stdout)
	g.Expect(statuses).To(ContainElement(And(HaveField("Kind", "ClusterTarget"), HaveField("Name", opts.Name),
		HaveField("Node", "admiralty-"+opts.Name), HaveField("Ready", BeNil()))))
	_, stderr, err = kubectl("status", "--context", src.Name, "-o", "yaml")
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring(`--output "yaml": want json (or nothing, for a table)`))

	_, stderr, err = kubectl("join", "--source-context", src.Name, "--target-context", "nowhere")
	var exit *exec.ExitError
	g.Expect(errors.As(err, &exit)).To(BeTrue(), "%v", err)
	g.Expect(exit.ExitCode()).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring(`Error: --target-context: context "nowhere" not found in the kubeconfig (it has: source, target-1, target-2)`))

	stdout, stderr, err = kubectl(append([]string{"unjoin"}, flags...)...)
	g.Expect(err).NotTo(HaveOccurred(), "stderr: %s", stderr)
	t.Logf("kubectl flotilla unjoin:\n%s", stdout)
	g.Expect(stdout).To(MatchRegexp(`target \(target-1\) +ServiceAccount %s/%s +deleted`, join.SystemNamespace, opts.SourceName))
	absent(g, src, ct)
}
