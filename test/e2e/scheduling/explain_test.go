package scheduling

import (
	"context"
	"regexp"
	"strconv"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// A target that lacks the pod's namespace cannot take a candidate: the
// proxy pod says so in an Event and runs in the other target.
func TestTargetWithoutTheNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := "e2e-" + utilrand.String(6)
	for _, c := range []*framework.Cluster{fleet.Source, fleet.Targets[1]} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{protocol.NamespaceEnabledLabel: protocol.NamespaceEnabledLabelValue}}}
		g.Expect(c.Client.Create(ctx, obj)).To(Succeed())
		t.Cleanup(func() { _ = c.Client.Delete(context.Background(), obj) })
		g.Expect(c.WaitDefaultServiceAccount(ctx, ns)).To(Succeed())
	}
	pod := elected(ns, "lonely", "100m", nil)
	g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(expectDelegated(g, ctx, pod)).To(Equal(framework.TargetName(2)))
		g.Expect(events(g, ctx, fleet.Source, pod, "CandidateNotCreated")).To(ContainElement(
			And(HavePrefix(framework.TargetName(1)+": cannot create the candidate"), ContainSubstring(`namespaces "`+ns+`" not found`))))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
}

// Each phase of the protocol is measured: the schedulers' /metrics serve
// Flotilla's histograms and counters.
func TestPhaseMetrics(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	pod := elected(ns, "measured", "100m", nil)
	g.Expect(fleet.Source.Client.Create(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) { expectDelegated(g, ctx, pod) }, framework.PodTimeout, framework.Interval).Should(Succeed())

	proxy, err := fleet.Metrics(ctx, "proxy-scheduler")
	g.Expect(err).NotTo(HaveOccurred())
	for _, name := range []string{
		"flotilla_proxy_dispatch_duration_seconds_count",
		"flotilla_proxy_verdict_duration_seconds_count",
		"flotilla_proxy_decision_duration_seconds_count",
		"flotilla_proxy_delegate_bind_duration_seconds_count",
		`flotilla_proxy_verdicts_total{result="Reserved"}`,
		`flotilla_proxy_decisions_total{result="bound"}`,
	} {
		g.Expect(sample(proxy, name)).To(BeNumerically(">=", 1), name)
	}
	var delegateTarget string
	g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
	delegateTarget = targetCluster(pod.Spec.NodeName).Name
	candidate, err := fleet.Metrics(ctx, "candidate-scheduler/"+delegateTarget)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sample(candidate, "flotilla_candidate_permit_wait_duration_seconds_count")).To(BeNumerically(">=", 1))
	g.Expect(sample(candidate, `flotilla_candidate_permit_outcomes_total{result="allowed"}`)).To(BeNumerically(">=", 1))
}

// sample reads one sample's value from a Prometheus text exposition, -1 if
// it is absent.
func sample(exposition, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`).FindStringSubmatch(exposition)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}
