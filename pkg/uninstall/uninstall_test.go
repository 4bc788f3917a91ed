package uninstall

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

const webhookName = "flotilla-elect"

func pod(name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, UID: types.UID("uid-" + name),
		Finalizers: []string{protocol.ProxyPodFinalizer}}}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func boundTo(node string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.NodeName = node } }

func owned(p *corev1.Pod) {
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs", Controller: ptr.To(true)}}
}

func virtualNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels:      map[string]string{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider},
		Annotations: map[string]string{protocol.TargetAnnotation: "target-1"}}}
}

func lease(name string, labels map[string]string) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, Labels: labels}}
}

func TestRun(t *testing.T) {
	sourceObjects := func() []client.Object {
		return []client.Object{
			&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookName}},
			&multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "t"}},
			&multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: "ct"}},
			virtualNode("admiralty-target-1"),
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "real"}},
			pod("bound", boundTo("admiralty-target-1")), // a bare pod: deleted all the same
			pod("pending-owned", owned),
			pod("pending-bare"),
			pod("terminating-bare", func(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.Now()) }),
			pod("ordinary", boundTo("real"), func(p *corev1.Pod) { p.Finalizers = []string{"example.com/keep"} }),
		}
	}
	targetObjects := func() []client.Object {
		return []client.Object{
			&multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "s"}},
			&multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: "cs"}},
			&multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "c1"}},
			&multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "c2"}},
			lease("flotilla-source-abc", map[string]string{protocol.SourceClusterLabel: "abc"}),
			lease("someone-elses", nil),
			&multiclusterv1alpha1.ClusterSummary{ObjectMeta: metav1.ObjectMeta{Name: protocol.ClusterSummaryName}},
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "delegate"}},
		}
	}
	cases := []struct {
		name    string
		objects []client.Object
		want    Report
		gone    []client.Object
		kept    []client.Object
		// pods whose Flotilla finalizer must be gone, if they are kept
		unfinalized []string
	}{
		{name: "nothing installed"},
		{
			name:    "a source: webhook, targets, proxy pods",
			objects: sourceObjects(),
			want:    Report{WebhookDeleted: true, Targets: 2, ForcedReleases: 1, Replaced: 1, LeftPending: []string{"apps/pending-bare"}},
			gone: []client.Object{
				&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookName}},
				&multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "t"}},
				&multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: "ct"}},
				pod("bound"), pod("pending-owned"), pod("terminating-bare"),
			},
			kept:        []client.Object{pod("pending-bare"), pod("ordinary"), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "real"}}},
			unfinalized: []string{"pending-bare"},
		},
		{
			name:    "a target: sources, chaperons, leases, summary",
			objects: targetObjects(),
			want:    Report{Sources: 2, Chaperons: 2, Leases: 1, Summaries: 1},
			gone: []client.Object{
				&multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "s"}},
				&multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: "cs"}},
				&multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "c1"}},
				&multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "c2"}},
				lease("flotilla-source-abc", nil),
				&multiclusterv1alpha1.ClusterSummary{ObjectMeta: metav1.ObjectMeta{Name: protocol.ClusterSummaryName}},
			},
			kept: []client.Object{lease("someone-elses", nil), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "delegate"}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			scheme, err := newScheme()
			g.Expect(err).NotTo(HaveOccurred())
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.objects...).Build()
			var out strings.Builder
			opts := Options{WebhookConfiguration: webhookName, Timeout: 50 * time.Millisecond, Interval: 10 * time.Millisecond, Out: &out}
			r, err := Run(ctx, c, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(*r).To(Equal(tc.want), out.String())
			for _, o := range tc.gone {
				err := c.Get(ctx, client.ObjectKeyFromObject(o), o)
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s: want it gone, got %v", o, client.ObjectKeyFromObject(o), err)
			}
			for _, o := range tc.kept {
				g.Expect(c.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed(), "%T %s", o, client.ObjectKeyFromObject(o))
			}
			for _, name := range tc.unfinalized {
				p := &corev1.Pod{}
				g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: name}, p)).To(Succeed())
				g.Expect(p.Finalizers).NotTo(ContainElement(protocol.ProxyPodFinalizer))
			}
			ordinary := &corev1.Pod{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "ordinary"}, ordinary); err == nil {
				g.Expect(ordinary.Finalizers).To(Equal([]string{"example.com/keep"}), "another's finalizer is not ours to remove")
			}

			// Run again: nothing left to do.
			again, err := Run(ctx, c, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(*again).To(Equal(Report{}))
		})
	}
}

// A virtual node the controller-manager releases in time: nothing is left
// for Run to release itself.
func TestRunWaitsForTheControllerManager(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	scheme, err := newScheme()
	g.Expect(err).NotTo(HaveOccurred())
	node := virtualNode("admiralty-target-1")
	bound := pod("bound", boundTo(node.Name), owned)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: "target-1"}}, node, bound).Build()
	// What the controller-manager does once the ClusterTarget is gone.
	go func() {
		time.Sleep(100 * time.Millisecond)
		p := bound.DeepCopy()
		p.Finalizers = nil
		_ = c.Update(ctx, p)
		_ = c.Delete(ctx, p)
		_ = c.Delete(ctx, node)
	}()
	r, err := Run(ctx, c, Options{Timeout: 10 * time.Second, Interval: 20 * time.Millisecond})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*r).To(Equal(Report{Targets: 1}))
}

// Chaperons that do not go (no garbage collector) make Run fail, saying so.
func TestRunChaperonsStuck(t *testing.T) {
	g := NewWithT(t)
	scheme, err := newScheme()
	g.Expect(err).NotTo(HaveOccurred())
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{
		Namespace: "apps", Name: "c", Finalizers: []string{metav1.FinalizerDeleteDependents}}}).Build()
	_, err = Run(context.Background(), c, Options{Timeout: 50 * time.Millisecond, Interval: 10 * time.Millisecond})
	g.Expect(err).To(MatchError(ContainSubstring("waiting for the PodChaperons to be gone")))
}
