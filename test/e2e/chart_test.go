package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	configv1 "github.com/flotilla-io/flotilla/pkg/apis/config/v1"
	"github.com/flotilla-io/flotilla/pkg/controllers/source"
	"github.com/flotilla-io/flotilla/test/framework"
)

// chartTools returns the repository root and bin/helm.
func chartTools(t *testing.T) (root, helm string) {
	t.Helper()
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := framework.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	helm = filepath.Join(bin, "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("%s: %v (make tools builds it)", helm, err)
	}
	return root, helm
}

// rendered is a rendering of the chart, by kind and name.
type rendered map[string]*unstructured.Unstructured

func renderChart(t *testing.T, args ...string) rendered {
	t.Helper()
	root, helm := chartTools(t)
	data, err := framework.RenderChart(t.Context(), helm, root, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := framework.SplitManifests(data)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{}
	for _, o := range objs {
		key := o.GetKind() + "/" + o.GetName()
		if _, dup := r[key]; dup {
			t.Errorf("the chart renders %s twice", key)
		}
		r[key] = o
	}
	return r
}

// get decodes the object kind/name into obj, failing when absent.
func (r rendered) get(t *testing.T, key string, obj any) {
	t.Helper()
	o, ok := r[key]
	if !ok {
		t.Fatalf("the chart renders no %s; it renders %v", key, r.keys())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, obj); err != nil {
		t.Fatalf("decoding %s: %v", key, err)
	}
}

func (r rendered) keys() []string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (r rendered) count(kind string) int {
	n := 0
	for k := range r {
		if strings.HasPrefix(k, kind+"/") {
			n++
		}
	}
	return n
}

func containerArgs(t *testing.T, r rendered, deployment string) (corev1.Container, appsv1.Deployment) {
	t.Helper()
	var d appsv1.Deployment
	r.get(t, "Deployment/"+deployment, &d)
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", deployment, n)
	}
	return d.Spec.Template.Spec.Containers[0], d
}

// generatedRules reads the rules of a role controller-gen generated.
func generatedRules(t *testing.T, file string) []rbacv1.PolicyRule {
	t.Helper()
	root, _ := chartTools(t)
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	return role.Rules
}

func TestChartLints(t *testing.T) {
	root, helm := chartTools(t)
	chart := filepath.Join(root, "charts", "flotilla")
	for _, values := range []string{"", "ci/custom-values.yaml", "ci/cert-manager-values.yaml"} {
		t.Run("values="+values, func(t *testing.T) {
			args := []string{"lint", "--strict", chart}
			if values != "" {
				args = append(args, "-f", filepath.Join(chart, values))
			}
			out, err := exec.CommandContext(t.Context(), helm, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// TestChartRefusesBadValues: values.schema.json turns typos and wrong
// types into an error naming the value, instead of a broken manifest.
func TestChartRefusesBadValues(t *testing.T) {
	root, helm := chartTools(t)
	for _, tc := range []struct{ set, want string }{
		{"controllerManager.replicas=two", "/controllerManager/replicas"},
		{"controllerManger.replicas=1", "controllerManger"},
		{"controllerManager.orphanGracePeriod=15", "/controllerManager/orphanGracePeriod"},
		{"controllerManager.sourceLeaseDuration=soon", "/controllerManager/sourceLeaseDuration"},
		{"webhook.failurePolicy=Sometimes", "/webhook/failurePolicy"},
		{"proxyScheduler.maxTargets=-1", "/proxyScheduler/maxTargets"},
		{"controllerManager.controllers=summary;source", "/controllerManager/controllers"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			_, err := framework.RenderChart(t.Context(), helm, root, "--set", tc.set)
			if err == nil {
				t.Fatalf("rendering with --set %s succeeded, want an error", tc.set)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

// TestChartDefaults checks what the default values render: the generated
// roles, the three components with leader election, probes, security
// context, PodDisruptionBudgets, the profiles and the webhook.
func TestChartDefaults(t *testing.T) {
	g := NewWithT(t)
	r := renderChart(t)

	for _, kind := range []string{"CustomResourceDefinition"} {
		g.Expect(r.count(kind)).To(Equal(6), kind)
	}
	// Roles: exactly the generated rules, and the source roles from the code.
	for name, file := range map[string]string{
		"flotilla-controller-manager":  "role.yaml",
		"flotilla-proxy-scheduler":     "proxy-scheduler/role.yaml",
		"flotilla-candidate-scheduler": "candidate-scheduler/role.yaml",
	} {
		var role rbacv1.ClusterRole
		r.get(t, "ClusterRole/"+name, &role)
		g.Expect(apiequality.Semantic.DeepEqual(role.Rules, generatedRules(t, file))).To(BeTrue(), "rules of %s differ from config/rbac/%s", name, file)
	}
	for _, want := range source.Roles() {
		var role rbacv1.ClusterRole
		r.get(t, "ClusterRole/"+want.Name, &role)
		g.Expect(apiequality.Semantic.DeepEqual(role.Rules, want.Rules)).To(BeTrue(), "rules of %s differ from pkg/controllers/source", want.Name)
	}
	var reader rbacv1.RoleBinding
	r.get(t, "RoleBinding/flotilla-controller-manager-authentication-reader", &reader)
	g.Expect(reader.Namespace).To(Equal("kube-system"))
	g.Expect(reader.RoleRef.Name).To(Equal("extension-apiserver-authentication-reader"))
	var sched rbacv1.ClusterRoleBinding
	r.get(t, "ClusterRoleBinding/flotilla-proxy-scheduler-kube-scheduler", &sched)
	g.Expect(sched.RoleRef.Name).To(Equal("system:kube-scheduler"))

	// The controller-manager.
	c, d := containerArgs(t, r, "flotilla-controller-manager")
	g.Expect(*d.Spec.Replicas).To(BeEquivalentTo(2))
	g.Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal("flotilla-controller-manager"))
	g.Expect(d.Spec.Template.Spec.PriorityClassName).To(Equal("system-cluster-critical"))
	g.Expect(*d.Spec.Template.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(c.Image).To(Equal("ghcr.io/flotilla-io/flotilla:0.1.0"))
	g.Expect(c.Command).To(Equal([]string{"/controller-manager"}))
	g.Expect(c.Args).To(ContainElements("--controllers=*", "--leader-elect=true",
		"--leader-election-namespace=flotilla-system", "--webhook-cert-rotation=true",
		"--webhook-secret=flotilla-system/flotilla-webhook-cert", "--webhook-configuration=flotilla-elect",
		"--webhook-dns-names=flotilla-webhook.flotilla-system.svc,flotilla-webhook.flotilla-system.svc.cluster.local",
		"--kubelet-port=10250", "--orphan-grace-period=15m", "--source-lease-duration=1m",
		"--kube-api-qps=50", "--kube-api-burst=100", "--target-api-qps=100", "--target-api-burst=200",
		"--concurrent-chaperon-syncs=8"))
	g.Expect(c.Env).To(ContainElement(HaveField("Name", "POD_IP")))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.Ports).To(ContainElement(HaveField("ContainerPort", BeEquivalentTo(10250))))
	for _, name := range []string{"flotilla-controller-manager", "flotilla-proxy-scheduler", "flotilla-candidate-scheduler"} {
		g.Expect(r).To(HaveKey("PodDisruptionBudget/"+name), "replicas > 1 get a PDB")
	}
	g.Expect(r).To(HaveKey("Service/flotilla-controller-manager-metrics"))
	g.Expect(r).To(HaveKey("Service/flotilla-proxy-scheduler-metrics"))
	g.Expect(r).To(HaveKey("Secret/flotilla-webhook-cert"))

	// The schedulers' profiles parse as KubeSchedulerConfiguration with the
	// plugin args from values.
	for _, s := range []struct{ name, scheduler, plugin string }{
		{"flotilla-proxy-scheduler", "admiralty-proxy", "Proxy"},
		{"flotilla-candidate-scheduler", "admiralty-candidate", "Candidate"},
	} {
		var cm corev1.ConfigMap
		r.get(t, "ConfigMap/"+s.name, &cm)
		cfg := struct {
			LeaderElection struct {
				LeaderElect       bool   `json:"leaderElect"`
				ResourceName      string `json:"resourceName"`
				ResourceNamespace string `json:"resourceNamespace"`
			} `json:"leaderElection"`
			Profiles []struct {
				SchedulerName string `json:"schedulerName"`
				PluginConfig  []struct {
					Name string         `json:"name"`
					Args map[string]any `json:"args"`
				} `json:"pluginConfig"`
			} `json:"profiles"`
		}{}
		g.Expect(yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg)).To(Succeed(), s.name)
		g.Expect(cm.Data["config.yaml"]).To(ContainSubstring("qps: 50"))
		g.Expect(cfg.LeaderElection.LeaderElect).To(BeTrue())
		g.Expect(cfg.LeaderElection.ResourceNamespace).To(Equal("flotilla-system"))
		g.Expect(cfg.Profiles).To(HaveLen(1))
		g.Expect(cfg.Profiles[0].SchedulerName).To(Equal(s.scheduler))
		g.Expect(cfg.Profiles[0].PluginConfig).To(HaveLen(1))
		g.Expect(cfg.Profiles[0].PluginConfig[0].Name).To(Equal(s.plugin))
		args, err := yaml.Marshal(cfg.Profiles[0].PluginConfig[0].Args)
		g.Expect(err).NotTo(HaveOccurred())
		if s.plugin == "Proxy" {
			var pa configv1.ProxyArgs
			g.Expect(yaml.UnmarshalStrict(args, &pa)).To(Succeed())
			g.Expect(pa.CandidateVerdictTimeout.Duration.String()).To(Equal("5s"))
			g.Expect(pa.DelegateBindTimeout.Duration.String()).To(Equal("30s"))
			g.Expect(*pa.MaxTargets).To(BeEquivalentTo(0))
		} else {
			var ca configv1.CandidateArgs
			g.Expect(yaml.UnmarshalStrict(args, &ca)).To(Succeed())
			g.Expect(ca.PermitWaitTimeout.Duration.String()).To(Equal("30s"))
		}
		sc, _ := containerArgs(t, r, s.name)
		g.Expect(sc.Args).To(ContainElement("--config=/etc/flotilla/config.yaml"))
		g.Expect(sc.LivenessProbe.HTTPGet.Scheme).To(Equal(corev1.URISchemeHTTPS))
	}

	// The webhook: the generated rules, the chart's Service, namespaces
	// labelled multicluster-scheduler=enabled only.
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	r.get(t, "MutatingWebhookConfiguration/flotilla-elect", &mwc)
	g.Expect(mwc.Webhooks).To(HaveLen(1))
	w := mwc.Webhooks[0]
	g.Expect(w.ClientConfig.Service.Name).To(Equal("flotilla-webhook"))
	g.Expect(w.ClientConfig.Service.Namespace).To(Equal("flotilla-system"))
	g.Expect(*w.ClientConfig.Service.Path).To(Equal("/mutate-v1-pod"))
	g.Expect(w.NamespaceSelector.MatchLabels).To(Equal(map[string]string{"multicluster-scheduler": "enabled"}))
	g.Expect(*w.FailurePolicy).To(Equal(admissionregistrationv1.Fail))
	g.Expect(w.Rules).To(HaveLen(1))
	g.Expect(w.Rules[0].Resources).To(Equal([]string{"pods"}))
	g.Expect(r).To(HaveKey("Service/flotilla-webhook"))
	g.Expect(r).NotTo(HaveKey("Certificate/flotilla-webhook-cert"))

	// The uninstall hook: a pre-delete Job running flotillactl uninstall as
	// its own account, with the rules generated from pkg/uninstall.
	var job batchv1.Job
	r.get(t, "Job/flotilla-uninstall", &job)
	g.Expect(job.Annotations).To(HaveKeyWithValue("helm.sh/hook", "pre-delete"))
	g.Expect(job.Annotations).To(HaveKeyWithValue("helm.sh/hook-delete-policy", "before-hook-creation,hook-succeeded"))
	uc := job.Spec.Template.Spec.Containers[0]
	g.Expect(uc.Command).To(Equal([]string{"/flotillactl"}))
	g.Expect(uc.Args).To(Equal([]string{"uninstall", "--webhook-configuration=flotilla-elect", "--timeout=2m"}))
	g.Expect(job.Spec.Template.Spec.ServiceAccountName).To(Equal("flotilla-uninstall"))
	g.Expect(*uc.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	var uninstallRole rbacv1.ClusterRole
	r.get(t, "ClusterRole/flotilla-uninstall", &uninstallRole)
	g.Expect(apiequality.Semantic.DeepEqual(uninstallRole.Rules, generatedRules(t, "uninstall/role.yaml"))).To(BeTrue(),
		"rules of flotilla-uninstall differ from config/rbac/uninstall/role.yaml")
	for _, key := range []string{"ServiceAccount/flotilla-uninstall", "ClusterRole/flotilla-uninstall", "ClusterRoleBinding/flotilla-uninstall"} {
		var o metav1.PartialObjectMetadata
		r.get(t, key, &o)
		g.Expect(o.Annotations).To(HaveKeyWithValue("helm.sh/hook", "pre-delete"), key)
		g.Expect(o.Annotations).To(HaveKeyWithValue("helm.sh/hook-weight", "-1"), "%s comes before the Job", key)
	}
}

// TestChartCustomValues checks that non-default values reach the manifests.
func TestChartCustomValues(t *testing.T) {
	g := NewWithT(t)
	root, _ := chartTools(t)
	r := renderChart(t, "-f", filepath.Join(root, "charts", "flotilla", "ci", "custom-values.yaml"))

	g.Expect(r).NotTo(HaveKey("Deployment/fleet-proxy-scheduler"), "proxyScheduler.enabled=false")
	g.Expect(r).NotTo(HaveKey("ClusterRole/fleet-proxy-scheduler"))
	g.Expect(r.count("PodDisruptionBudget")).To(BeZero(), "single replicas get no PDB")
	c, d := containerArgs(t, r, "fleet-controller-manager")
	g.Expect(*d.Spec.Replicas).To(BeEquivalentTo(1))
	g.Expect(d.Labels).To(HaveKeyWithValue("team", "platform"))
	g.Expect(d.Spec.Template.Spec.ImagePullSecrets).To(Equal([]corev1.LocalObjectReference{{Name: "regcred"}}))
	g.Expect(d.Spec.Template.Spec.PriorityClassName).To(BeEmpty())
	g.Expect(d.Spec.Template.Spec.NodeSelector).To(HaveKeyWithValue("kubernetes.io/os", "linux"))
	g.Expect(d.Spec.Template.Spec.Tolerations).To(HaveLen(1))
	g.Expect(c.Image).To(Equal("registry.example.com/flotilla:v0.1.0-custom"))
	g.Expect(c.Args).To(ContainElements("--controllers=summary,source,chaperon,cleanup", "--orphan-grace-period=1h",
		"--kubelet-port=10255", "--kubelet-tls-cert-file=/etc/flotilla/kubelet-serving/tls.crt", "-v=4",
		"--webhook-configuration=fleet-elect", "--webhook-secret=flotilla-system/fleet-webhook-cert"))
	g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "flotilla-kubelet-serving")))
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap/fleet-candidate-scheduler", &cm)
	g.Expect(cm.Data["config.yaml"]).To(ContainSubstring("permitWaitTimeout: 45s"))
	g.Expect(cm.Data["config.yaml"]).To(MatchRegexp(`leaderElect: false`), "one replica needs no election")
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	r.get(t, "MutatingWebhookConfiguration/fleet-elect", &mwc)
	g.Expect(*mwc.Webhooks[0].FailurePolicy).To(Equal(admissionregistrationv1.Ignore))
	g.Expect(*mwc.Webhooks[0].TimeoutSeconds).To(BeEquivalentTo(3))
	g.Expect(mwc.Webhooks[0].NamespaceSelector.MatchExpressions).To(HaveLen(1))
	g.Expect(mwc.Webhooks[0].ClientConfig.Service.Name).To(Equal("fleet-webhook"))
	g.Expect(r).NotTo(HaveKey("Job/fleet-uninstall"), "uninstall.hook=false")
}

// TestChartCertManager checks the cert-manager variant: a Certificate and
// CA injection instead of the controller-manager's rotation.
func TestChartCertManager(t *testing.T) {
	g := NewWithT(t)
	root, _ := chartTools(t)
	r := renderChart(t, "-f", filepath.Join(root, "charts", "flotilla", "ci", "cert-manager-values.yaml"))
	c, _ := containerArgs(t, r, "flotilla-controller-manager")
	g.Expect(c.Args).To(ContainElement("--webhook-cert-rotation=false"))
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	r.get(t, "MutatingWebhookConfiguration/flotilla-elect", &mwc)
	g.Expect(mwc.Annotations).To(HaveKeyWithValue("cert-manager.io/inject-ca-from", "flotilla-system/flotilla-webhook-cert"))
	cert := r["Certificate/flotilla-webhook-cert"]
	g.Expect(cert).NotTo(BeNil())
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	g.Expect(secretName).To(Equal("flotilla-webhook-cert"))
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	g.Expect(dns).To(ContainElement("flotilla-webhook.flotilla-system.svc"))
	g.Expect(r).To(HaveKey("Issuer/flotilla-selfsigned"))
	g.Expect(r).NotTo(HaveKey("Secret/flotilla-webhook-cert"), "cert-manager makes the Secret")
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap/flotilla-proxy-scheduler", &cm)
	g.Expect(cm.Data["config.yaml"]).To(ContainSubstring("maxTargets: 3"))
	g.Expect(cm.Data["config.yaml"]).To(ContainSubstring("candidateVerdictTimeout: 2s"))
}

// TestChartAppliesToAnAPIServer applies the default and custom renderings
// server-side, as a dry run, to a sandbox API server: every object is valid
// for Kubernetes itself (schemas, RBAC escalation checks, CRDs).
func TestChartAppliesToAnAPIServer(t *testing.T) {
	root, helm := chartTools(t)
	src := cluster(t, framework.SourceCluster)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: framework.ChartNamespace}}
	if err := src.Client.Create(t.Context(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, values := range []string{"", "ci/custom-values.yaml"} {
		t.Run("values="+values, func(t *testing.T) {
			var args []string
			if values != "" {
				args = []string{"-f", filepath.Join(root, "charts", "flotilla", values)}
			}
			data, err := framework.RenderChart(t.Context(), helm, root, args...)
			if err != nil {
				t.Fatal(err)
			}
			out, err := src.ApplyServerSide(t.Context(), data, "--dry-run=server")
			if err != nil {
				t.Fatal(err)
			}
			objs, err := framework.SplitManifests(data)
			if err != nil {
				t.Fatal(err)
			}
			// kubectl reports one line per object.
			lines := regexp.MustCompile(`(?m)^\S+ (serverside-applied|created|configured|unchanged).*\(server dry run\)$`).FindAllString(out, -1)
			if len(lines) != len(objs) {
				t.Fatalf("kubectl applied %d of %d objects:\n%s", len(lines), len(objs), out)
			}
		})
	}
}

// TestKustomizeDefault renders config/default (CRDs, roles, webhook,
// profiles) with kubectl kustomize and applies it to a sandbox API server
// as a dry run.
func TestKustomizeDefault(t *testing.T) {
	g := NewWithT(t)
	root, _ := chartTools(t)
	src := cluster(t, framework.SourceCluster)
	data, err := src.Kubectl(t.Context(), "kustomize", filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := framework.SplitManifests([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{}
	for _, o := range objs {
		r[o.GetKind()+"/"+o.GetName()] = o
	}
	bases, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	g.Expect(r.count("CustomResourceDefinition")).To(Equal(len(bases)), "every generated CRD")
	var role rbacv1.ClusterRole
	r.get(t, "ClusterRole/flotilla-controller-manager", &role)
	g.Expect(apiequality.Semantic.DeepEqual(role.Rules, generatedRules(t, "role.yaml"))).To(BeTrue())
	for _, want := range source.Roles() {
		g.Expect(r).To(HaveKey("ClusterRole/" + want.Name))
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	r.get(t, "MutatingWebhookConfiguration/flotilla-elect", &mwc)
	g.Expect(mwc.Webhooks[0].ClientConfig.Service.Name).To(Equal("flotilla-webhook"))
	g.Expect(mwc.Webhooks[0].NamespaceSelector.MatchLabels).To(HaveKeyWithValue("multicluster-scheduler", "enabled"))
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap/flotilla-proxy-scheduler", &cm)
	g.Expect(cm.Data["config.yaml"]).To(ContainSubstring("candidateVerdictTimeout"))

	out, err := src.ApplyServerSide(t.Context(), []byte(data), "--dry-run=server")
	if err != nil {
		t.Fatal(err)
	}
	g.Expect(strings.Count(out, "(server dry run)")).To(Equal(len(objs)), out)
}

// TestChartREADMEDocumentsEveryValue: each key of values.yaml has a row in
// the chart README's values table (grouped rows list siblings as `.key`).
func TestChartREADMEDocumentsEveryValue(t *testing.T) {
	root, _ := chartTools(t)
	data, err := os.ReadFile(filepath.Join(root, "charts", "flotilla", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "charts", "flotilla", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	// Maps documented as one value rather than key by key.
	opaque := map[string]bool{"resources": true, "podSecurityContext": true, "securityContext": true,
		"namespaceSelector": true, "issuerRef": true, "nodeSelector": true, "affinity": true,
		"podAnnotations": true, "podLabels": true, "commonLabels": true}
	text := string(readme)
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + k
			if sub, ok := v.(map[string]any); ok && !opaque[k] && len(sub) > 0 {
				walk(path+".", sub)
				continue
			}
			parent := strings.TrimSuffix(prefix, ".")
			grouped := parent != "" && strings.Contains(text, "`"+parent+".") && strings.Contains(text, "`."+k+"`")
			if !strings.Contains(text, "`"+path+"`") && !grouped {
				t.Errorf("charts/flotilla/README.md does not document %s", path)
			}
		}
	}
	walk("", values)
}
