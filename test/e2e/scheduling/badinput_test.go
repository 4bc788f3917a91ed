package scheduling

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/controllers/follow"
	"github.com/flotilla-io/flotilla/pkg/plugins/proxy"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/webhook"
	"github.com/flotilla-io/flotilla/test/framework"
)

// badInput is one case of the catalogue: do makes the mistake and returns
// what must come of it, checked until it holds (within
// framework.PodTimeout).
type badInput struct {
	name string
	do   func(t *testing.T, g Gomega, ctx context.Context, ns string) (expect func(g Gomega))
}

// rejected: the API server refuses the object with a message containing
// every one of want.
func rejected(err error, want ...string) func(g Gomega) {
	return func(g Gomega) {
		g.Expect(err).To(HaveOccurred())
		for _, w := range want {
			g.Expect(err.Error()).To(ContainSubstring(w))
		}
	}
}

// eventOn: the object has an Event of reason whose message contains every
// one of want.
func eventOn(c *framework.Cluster, obj client.Object, reason string, want ...string) func(g Gomega) {
	return func(g Gomega) {
		msgs := events(g, context.Background(), c, obj, reason)
		ms := []types.GomegaMatcher{Not(BeEmpty())}
		for _, w := range want {
			ms = append(ms, ContainSubstring(w))
		}
		g.Expect(msgs).To(ContainElement(SatisfyAll(ms...)), "%s events", reason)
	}
}

// constrained is an elected pod with proxy scheduling constraints.
func constrained(ns, name, constraints string) *corev1.Pod {
	return elected(ns, name, "100m", map[string]string{protocol.ProxyPodSchedulingConstraintsAnnotation: constraints})
}

// targetCondition: the Target's Ready condition has reason and a message
// containing want.
func targetCondition(tgt *multiclusterv1alpha1.Target, reason, want string) func(g Gomega) {
	return func(g Gomega) {
		g.Expect(fleet.Source.Client.Get(context.Background(), client.ObjectKeyFromObject(tgt), tgt)).To(Succeed())
		c := meta.FindStatusCondition(tgt.Status.Conditions, multiclusterv1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(reason))
		g.Expect(c.Message).To(ContainSubstring(want))
	}
}

// serviceAccountNotFound: the (Cluster)Source obj in c, whose conditions
// conditions reads, is not Ready because its ServiceAccount "ghost" is
// missing.
func serviceAccountNotFound(c *framework.Cluster, obj client.Object, conditions func() []metav1.Condition) func(g Gomega) {
	return func(g Gomega) {
		g.Expect(c.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		cond := meta.FindStatusCondition(conditions(), multiclusterv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(multiclusterv1alpha1.ReasonServiceAccountNotFound))
		g.Expect(cond.Message).To(ContainSubstring("ghost"))
	}
}

// badTarget makes, in ns, a Target whose kubeconfig Secret holds data
// under key "config" (no Secret if data is nil), for key and context.
func badTarget(g Gomega, ctx context.Context, ns, name string, data []byte, key, kubeContext string) *multiclusterv1alpha1.Target {
	if data != nil {
		g.Expect(fleet.Source.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Data: map[string][]byte{"config": data}})).To(Succeed())
	}
	tgt := &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: name, Key: key, Context: kubeContext}}}
	g.Expect(fleet.Source.Client.Create(ctx, tgt)).To(Succeed())
	return tgt
}

// editKubeconfig returns kubeconfig data changed by edit (on every
// cluster and user).
func editKubeconfig(g Gomega, data []byte, edit func(*clientcmdapi.Cluster, *clientcmdapi.AuthInfo)) []byte {
	kc, err := clientcmd.Load(data)
	g.Expect(err).NotTo(HaveOccurred())
	for name, cluster := range kc.Clusters {
		for _, user := range kc.AuthInfos {
			edit(cluster, user)
		}
		kc.Clusters[name] = cluster
	}
	out, err := clientcmd.Write(*kc)
	g.Expect(err).NotTo(HaveOccurred())
	return out
}

// paddedConstraints are proxy scheduling constraints, in YAML, that admit
// every target, padded with n names of no cluster: each adds 12 bytes to
// the annotation and 12 to the saved manifest (nothing to escape in JSON).
func paddedConstraints(n int) string {
	var b strings.Builder
	b.WriteString("affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms:\n" +
		"      - matchExpressions:\n        - key: " + protocol.ClusterNameLabel + "\n          operator: In\n" +
		"          values: [" + framework.TargetName(1) + ", " + framework.TargetName(2))
	for i := range n {
		fmt.Fprintf(&b, ", pad-%06d", i)
	}
	b.WriteString("]\n")
	return b.String()
}

// annotationsSize is the size of a pod's annotations as the API server
// counts it.
func annotationsSize(pod *corev1.Pod) int {
	size := 0
	for k, v := range pod.Annotations {
		size += len(k) + len(v)
	}
	return size
}

// constrainedAtLimit is an elected pod whose padded constraints bring its
// annotations, saved manifest included, to within 24 bytes of the most the
// webhook accepts (over it by as much if over), measured by a server-side
// dry run of the same pod.
func constrainedAtLimit(g Gomega, ctx context.Context, ns, name string, over bool) *corev1.Pod {
	probe := constrained(ns, name, paddedConstraints(0))
	g.Expect(fleet.Source.Client.Create(ctx, probe, client.DryRunAll)).To(Succeed())
	g.Expect(probe.Annotations).To(HaveKey(protocol.SourcePodManifestAnnotation), "the dry run went through the webhook")
	n := (webhook.MaxProxyAnnotationsSize - annotationsSize(probe)) / 24
	if over {
		n++
	}
	return constrained(ns, name, paddedConstraints(n))
}

// chaperonUID is the UID of the one chaperon of pod in the target named
// target.
func chaperonUID(g Gomega, ctx context.Context, pod *corev1.Pod, target string) k8stypes.UID {
	for _, c := range fleet.Targets {
		if c.Name != target {
			continue
		}
		var list multiclusterv1alpha1.PodChaperonList
		g.Expect(c.Client.List(ctx, &list, client.InNamespace(pod.Namespace), client.MatchingLabels{protocol.ProxyPodUIDLabel: string(pod.UID)})).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		return list.Items[0].UID
	}
	g.Expect(target).To(BeEmpty(), "no such target")
	return ""
}

// TestBadInput is the catalogue of mistakes users make: each gets a clear
// admission error, condition or event naming the problem; no component
// crashes, and a pod placed before keeps running with its one delegate.
func TestBadInput(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	canaryNS := namespace(t)
	canary := elected(canaryNS, "canary", "100m", nil)
	g.Expect(fleet.Source.Client.Create(ctx, canary)).To(Succeed())
	var canaryTarget string
	g.Eventually(func(g Gomega) { canaryTarget = expectDelegated(g, ctx, canary) }, framework.PodTimeout, framework.Interval).Should(Succeed())
	t1 := fleet.Targets[0]
	token, err := t1.ServiceAccountToken(ctx, framework.FleetNamespace, framework.SourceCluster)
	g.Expect(err).NotTo(HaveOccurred())
	good, err := t1.KubeconfigFor(token, t1.Name)
	g.Expect(err).NotTo(HaveOccurred())

	cases := []badInput{
		// Proxy scheduling constraints (the elect webhook).
		{name: "constraints that are not YAML or JSON", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			err := fleet.Source.Client.Create(ctx, constrained(ns, "p", "nodeSelector: [unclosed"))
			return rejected(err, protocol.ProxyPodSchedulingConstraintsAnnotation, "is not valid YAML or JSON")
		}},
		{name: "constraints with a misspelt field", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			err := fleet.Source.Client.Create(ctx, constrained(ns, "p", `{"nodeSelecter":{"a":"b"}}`))
			return rejected(err, protocol.ProxyPodSchedulingConstraintsAnnotation, `unknown field "nodeSelecter"`)
		}},
		{name: "constraints that are a list", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			err := fleet.Source.Client.Create(ctx, constrained(ns, "p", `[{"nodeSelector":{"a":"b"}}]`))
			return rejected(err, protocol.ProxyPodSchedulingConstraintsAnnotation)
		}},
		{name: "pod affinity in the constraints", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			err := fleet.Source.Client.Create(ctx, constrained(ns, "p", `{"affinity":{"podAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[`+
				`{"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchLabels":{"a":"b"}}}]}}}`))
			return rejected(err, "pod affinity and anti-affinity apply to pods in the target")
		}},
		{name: "a pod too large to elect", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			pod := elected(ns, "p", "100m", map[string]string{"example.com/blob": strings.Repeat("x", 200*1024)})
			err := fleet.Source.Client.Create(ctx, pod)
			return rejected(err, "too large to elect", protocol.SourcePodManifestAnnotation)
		}},
		{name: "an unknown priority class", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			pod := elected(ns, "p", "100m", nil)
			pod.Spec.PriorityClassName = "no-such-class"
			err := fleet.Source.Client.Create(ctx, pod)
			return rejected(err, "no-such-class")
		}},
		{name: "constraints that fill the annotations just below the limit", do: func(t *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			// Accepted, and there is room left for the decision record.
			pod := constrainedAtLimit(g, ctx, ns, "just-below", false)
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			t.Logf("annotations: %d bytes (the webhook's limit: %d)", annotationsSize(pod), webhook.MaxProxyAnnotationsSize)
			g.Expect(annotationsSize(pod)).To(BeNumerically(">", webhook.MaxProxyAnnotationsSize-24))
			return func(g Gomega) {
				target := expectDelegated(g, ctx, pod)
				g.Expect(pod.Annotations).To(HaveKeyWithValue(protocol.DecisionAnnotation, protocol.DecisionMark(target, chaperonUID(g, ctx, pod, target))))
			}
		}},
		{name: "constraints that fill the annotations just above the limit", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			err := fleet.Source.Client.Create(ctx, constrainedAtLimit(g, ctx, ns, "just-above", true))
			return rejected(err, "too large to elect", "the largest is "+protocol.ProxyPodSchedulingConstraintsAnnotation)
		}},
		// Fields that election overrides.
		{name: "the elect annotation on a pod naming another scheduler", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			pod := elected(ns, "p", "100m", nil)
			pod.Spec.SchedulerName = "my-scheduler"
			err := fleet.Source.Client.Create(ctx, pod)
			return rejected(err, protocol.ElectAnnotation, `sets schedulerName "my-scheduler"`, "remove one or the other")
		}},
		{name: "the elect annotation on a pod with a node name", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			pod := elected(ns, "p", "100m", nil)
			pod.Spec.NodeName = "admiralty-" + framework.TargetName(1)
			err := fleet.Source.Client.Create(ctx, pod)
			return rejected(err, protocol.ElectAnnotation, `sets spec.nodeName "admiralty-`+framework.TargetName(1)+`"`, protocol.ClusterNameLabel)
		}},
		// Pods that cannot go anywhere say why, per cluster.
		{name: "a pod that fits no target", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			pod := elected(ns, "huge", "1000", nil)
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			return eventOn(fleet.Source, pod, proxy.EventReasonNoTarget, framework.TargetName(1)+": ", framework.TargetName(2)+": ", "Insufficient cpu")
		}},
		{name: "a cluster node selector no target matches", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			pod := constrained(ns, "nowhere", `{"nodeSelector":{"`+protocol.ClusterNameLabel+`":"no-such-cluster"}}`)
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			return eventOn(fleet.Source, pod, proxy.EventReasonNoTarget, "cluster-level node selector")
		}},
		{name: "a pod whose ConfigMap does not exist", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			pod := elected(ns, "no-config", "100m", nil)
			pod.Spec.Volumes = []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing-config"}}}}}
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			return eventOn(fleet.Source, pod, follow.ReasonDependencyNotFound, "ConfigMap missing-config")
		}},
		{name: "a pod whose Secret does not exist", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			pod := elected(ns, "no-secret", "100m", nil)
			pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "missing-secret"}}}}
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			return eventOn(fleet.Source, pod, follow.ReasonDependencyNotFound, "Secret missing-secret")
		}},
		{name: "a forged decision record", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			// It names a chaperon that does not exist: void, the pod goes
			// wherever it fits.
			pod := elected(ns, "forged", "100m", map[string]string{
				protocol.DecisionAnnotation:                      protocol.DecisionMark(framework.TargetName(1), "not-a-chaperon"),
				protocol.ProxyPodSchedulingConstraintsAnnotation: `{"nodeSelector":{"` + protocol.ClusterNameLabel + `":"` + framework.TargetName(2) + `"}}`,
			})
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			return func(g Gomega) { g.Expect(expectDelegated(g, ctx, pod)).To(Equal(framework.TargetName(2))) }
		}},
		{name: "a garbled decision record", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			// Not "<target>@<chaperon UID>": void, and replaced by the
			// proxy scheduler's own record once it decides.
			pod := elected(ns, "garbled", "100m", map[string]string{protocol.DecisionAnnotation: "{{ not a <target>@<uid> record"})
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			return func(g Gomega) {
				target := expectDelegated(g, ctx, pod)
				g.Expect(pod.Annotations).To(HaveKeyWithValue(protocol.DecisionAnnotation, protocol.DecisionMark(target, chaperonUID(g, ctx, pod, target))))
			}
		}},
		{name: "the elect annotation in a namespace not enabled", do: func(t *testing.T, g Gomega, ctx context.Context, _ string) func(Gomega) {
			plain := fleet.Source.CreateNamespace(t, nil)
			pod := elected(plain, "local", "100m", nil)
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			return func(g Gomega) {
				g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
				g.Expect(pod.Spec.SchedulerName).To(Equal(corev1.DefaultSchedulerName), "a pod outside enabled namespaces is not elected")
				g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
			}
		}},
		// Targets (the source's target controller).
		{name: "a Target without its Secret", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			tgt := badTarget(g, ctx, ns, "no-secret", nil, "", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonSecretNotFound, "does not exist")
		}},
		{name: "a Target's Secret without the key", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			tgt := badTarget(g, ctx, ns, "no-key", good, "kubeconfig", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonSecretKeyNotFound, `has no key "kubeconfig"`)
		}},
		{name: "a Target whose kubeconfig is not one", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			tgt := badTarget(g, ctx, ns, "garbage", []byte("{{not yaml"), "", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonKubeconfigInvalid, "is not a valid kubeconfig")
		}},
		{name: "a Target naming a missing context", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			tgt := badTarget(g, ctx, ns, "no-context", good, "", "elsewhere")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonContextNotFound, `no context "elsewhere"`)
		}},
		{name: "a Target with a rejected token", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			bad, err := t1.KubeconfigFor("not-a-token", t1.Name)
			g.Expect(err).NotTo(HaveOccurred())
			tgt := badTarget(g, ctx, ns, "bad-token", bad, "", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonUnauthorized, "rejected the credentials")
		}},
		{name: "a Target with another cluster's CA", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			wrong, err := (&framework.Cluster{Name: t1.Name, Server: t1.Server, RESTConfig: fleet.Source.RESTConfig}).KubeconfigFor(token, t1.Name)
			g.Expect(err).NotTo(HaveOccurred())
			tgt := badTarget(g, ctx, ns, "wrong-ca", wrong, "", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonUnreachable, "certificate")
		}},
		{name: "a Target where nothing listens", do: func(t *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			nowhere, err := (&framework.Cluster{Name: t1.Name, Server: "https://127.0.0.1:" + strconv.Itoa(framework.FreePort(t)), RESTConfig: t1.RESTConfig}).KubeconfigFor(token, t1.Name)
			g.Expect(err).NotTo(HaveOccurred())
			tgt := badTarget(g, ctx, ns, "nowhere", nowhere, "", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonUnreachable, "connection refused")
		}},
		{name: "a Target to a cluster that does not let this identity in", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			stranger, err := t1.ServiceAccountToken(ctx, framework.FleetNamespace, "stranger-"+utilrand.String(4))
			g.Expect(err).NotTo(HaveOccurred())
			cfg, err := t1.KubeconfigFor(stranger, t1.Name)
			g.Expect(err).NotTo(HaveOccurred())
			tgt := badTarget(g, ctx, ns, "stranger", cfg, "", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonForbidden, "create a Source (or ClusterSource)")
		}},
		{name: "a Target whose kubeconfig runs an exec plugin", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			// A kubeconfig copied from a laptop, as for a managed cluster.
			cfg := editKubeconfig(g, good, func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
				u.Token = ""
				u.Exec = &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1beta1", Command: "aws",
					Args: []string{"eks", "get-token", "--cluster-name", "prod"}}
			})
			tgt := badTarget(g, ctx, ns, "exec", cfg, "", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonKubeconfigInvalid, "uses an exec credential plugin, which is not allowed")
		}},
		{name: "a Target whose kubeconfig refers to a CA file", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			cfg := editKubeconfig(g, good, func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) {
				c.CertificateAuthorityData = nil
				c.CertificateAuthority = "/home/me/.minikube/ca.crt"
			})
			tgt := badTarget(g, ctx, ns, "ca-file", cfg, "", "")
			return targetCondition(tgt, multiclusterv1alpha1.ReasonKubeconfigInvalid, `refers to the file "/home/me/.minikube/ca.crt": embed it as certificate-authority-data`)
		}},
		{name: "a Target with an invalid excluded-labels regexp", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			g.Expect(fleet.Source.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-regexp"},
				Data: map[string][]byte{"config": good}})).To(Succeed())
			tgt := &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-regexp"},
				Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: "bad-regexp"},
					ExcludedLabelsRegexp: ptr.To(`^node\.kubernetes\.io/(`)}}
			g.Expect(fleet.Source.Client.Create(ctx, tgt)).To(Succeed())
			return targetCondition(tgt, multiclusterv1alpha1.ReasonInvalidSpec, "spec.excludedLabelsRegexp")
		}},
		{name: "a Target both self and with a Secret", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			err := fleet.Source.Client.Create(ctx, &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "both"},
				Spec: multiclusterv1alpha1.TargetSpec{Self: true, KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: "both"}}})
			return rejected(err, "set exactly one of self: true or kubeconfigSecret")
		}},
		{name: "a Target with an empty Secret name", do: func(_ *testing.T, _ Gomega, ctx context.Context, ns string) func(Gomega) {
			err := fleet.Source.Client.Create(ctx, &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unnamed"},
				Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{}}})
			return rejected(err, "spec.kubeconfigSecret.name")
		}},
		{name: "a Target's Secret broken while a pod runs through it", do: func(t *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			// A Target of this namespace, so that the fleet's stay as they are.
			tgt, virtualNode := teamTarget(t, ns)
			pod := pinned(ns, "through-team", virtualNode)
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			var delegate k8stypes.UID
			untouched := func(g Gomega) {
				g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
				g.Expect(pod.Spec.NodeName).To(Equal(virtualNode))
				g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
				g.Expect(pod.DeletionTimestamp).To(BeNil())
				candidates := candidatesOf(g, ctx, ns, pod.UID)
				g.Expect(keys(candidates)).To(Equal([]string{t1.Name}))
				g.Expect(candidates[t1.Name]).To(HaveLen(1))
				d := candidates[t1.Name][0]
				g.Expect(d.Status.Phase).To(Equal(corev1.PodRunning))
				g.Expect(d.DeletionTimestamp).To(BeNil())
				if delegate == "" {
					delegate = d.UID
				}
				g.Expect(d.UID).To(Equal(delegate), "the delegate was replaced")
			}
			g.Eventually(untouched, framework.PodTimeout, framework.Interval).Should(Succeed())

			secret := &corev1.Secret{}
			key := client.ObjectKey{Namespace: ns, Name: tgt.Spec.KubeconfigSecret.Name}
			g.Expect(fleet.Source.Client.Get(ctx, key, secret)).To(Succeed())
			kubeconfig := secret.Data["config"]
			secret.Data["config"] = []byte("{{not yaml")
			g.Expect(fleet.Source.Client.Update(ctx, secret)).To(Succeed())
			g.Eventually(targetCondition(tgt, multiclusterv1alpha1.ReasonKubeconfigInvalid, "is not a valid kubeconfig"),
				framework.ShortTimeout, framework.Interval).Should(Succeed())
			untouched(g)

			// Restored before the target collects what the source no
			// longer renews (3 s + 8 s here, 1 min + 15 min by default).
			g.Expect(fleet.Source.Client.Get(ctx, key, secret)).To(Succeed())
			secret.Data["config"] = kubeconfig
			g.Expect(fleet.Source.Client.Update(ctx, secret)).To(Succeed())
			g.Eventually(func(g Gomega) {
				g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(tgt), tgt)).To(Succeed())
				g.Expect(meta.IsStatusConditionTrue(tgt.Status.Conditions, multiclusterv1alpha1.ConditionReady)).To(BeTrue(), "%v", tgt.Status.Conditions)
			}, framework.ShortTimeout, framework.Interval).Should(Succeed())
			// Past the time the target would have collected the delegate.
			g.Consistently(untouched, 12*time.Second, framework.Interval).Should(Succeed())
			return untouched
		}},
		{name: "two Targets to one cluster", do: func(t *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			// The fleet's ClusterTarget target-1 and a Target of this
			// namespace both reach target-1: the pod's candidate there can
			// only be made once, through whichever Target comes first.
			_, teamNode := teamTarget(t, ns)
			// Both virtual nodes ready, so that the pod's candidates go
			// to both Targets.
			g.Eventually(func(g Gomega) {
				node := &corev1.Node{}
				g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKey{Name: teamNode}, node)).To(Succeed())
				ready := false
				for _, c := range node.Status.Conditions {
					ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
				}
				g.Expect(ready).To(BeTrue())
			}, framework.PodTimeout, framework.Interval).Should(Succeed())
			pod := elected(ns, "twice", "100m", map[string]string{protocol.ProxyPodSchedulingConstraintsAnnotation: `{"affinity":{"nodeAffinity":` +
				`{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":` +
				`[{"key":"` + protocol.ClusterNameLabel + `","operator":"NotIn","values":["` + framework.TargetName(2) + `"]}]}]}}}}`})
			g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
			return func(g Gomega) {
				g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
				g.Expect(pod.Spec.NodeName).To(BeElementOf("admiralty-"+t1.Name, teamNode))
				g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
				candidates := candidatesOf(g, ctx, ns, pod.UID)
				g.Expect(keys(candidates)).To(Equal([]string{t1.Name}))
				g.Expect(candidates[t1.Name]).To(HaveLen(1), "one delegate")
				g.Expect(candidates[t1.Name][0].Status.Phase).To(Equal(corev1.PodRunning))
				eventOn(fleet.Source, pod, proxy.EventReasonDispatchFailed, "this cluster has the pod's candidate already, through target")(g)
			}
		}},
		// Sources (a target's source controller).
		{name: "a Source naming a missing ServiceAccount", do: func(_ *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			src := &multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost"},
				Spec: multiclusterv1alpha1.SourceSpec{ServiceAccountName: "ghost"}}
			g.Expect(t1.Client.Create(ctx, src)).To(Succeed())
			return serviceAccountNotFound(t1, src, func() []metav1.Condition { return src.Status.Conditions })
		}},
		{name: "a ClusterSource naming a missing ServiceAccount", do: func(t *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			cs := &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: "ghost-" + ns},
				Spec: multiclusterv1alpha1.ClusterSourceSpec{ServiceAccount: &multiclusterv1alpha1.ServiceAccountReference{Namespace: ns, Name: "ghost"}}}
			g.Expect(t1.Client.Create(ctx, cs)).To(Succeed())
			t.Cleanup(func() { _ = t1.Client.Delete(context.Background(), cs) })
			return serviceAccountNotFound(t1, cs, func() []metav1.Condition { return cs.Status.Conditions })
		}},
		// The webhook down.
		{name: "the webhook down: namespaces not enabled are unaffected", do: func(t *testing.T, g Gomega, ctx context.Context, ns string) func(Gomega) {
			plain := fleet.Source.CreateNamespace(t, nil)
			g.Expect(fleet.Freeze("source-controller-manager")).To(Succeed())
			defer func() { g.Expect(fleet.Thaw("source-controller-manager")).To(Succeed()) }()
			start := time.Now()
			errPlain := fleet.Source.Client.Create(ctx, elected(plain, "while-down", "100m", nil))
			errEnabled := fleet.Source.Client.Create(ctx, elected(ns, "while-down", "100m", nil))
			t.Logf("both creations answered in %s", time.Since(start).Round(time.Millisecond))
			return func(g Gomega) {
				g.Expect(errPlain).NotTo(HaveOccurred())
				rejected(errEnabled, "elect.multicluster.admiralty.io")(g)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := t.Context()
			ns := namespace(t)
			expect := tc.do(t, g, ctx, ns)
			g.Eventually(expect, framework.PodTimeout, framework.Interval).Should(Succeed())
			g.Expect(fleet.Crashed()).To(Succeed())
			g.Expect(expectDelegated(g, ctx, canary)).To(Equal(canaryTarget), "the canary was disturbed")
		})
	}
}
