package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// TestPreEnqueueSendsCandidates: a new proxy pod is gated while the
// dispatch workers create its candidates (PodChaperons) in the targets that
// can take it, and only there; the pod gets the finalizer first.
func TestPreEnqueueSendsCandidates(t *testing.T) {
	spot := corev1.Toleration{Key: "flavor", Operator: corev1.TolerationOpEqual, Value: "spot", Effect: corev1.TaintEffectNoSchedule}
	cases := []struct {
		name    string
		pod     *corev1.Pod
		targets []targetSpec
		// want is PreEnqueue's first answer.
		want listResult
		// wantChaperons are the targets that get a candidate.
		wantChaperons []string
		// wantTolerations are the candidates' (the user's).
		wantTolerations []corev1.Toleration
		// wantFinalizerPatch: the pod had to be given the finalizer.
		wantFinalizerPatch bool
	}{
		{
			name: "eligible targets only",
			pod: makeProxyPod(t, "web-0", func(p *corev1.Pod) {
				p.Spec.Tolerations = []corev1.Toleration{spot}
			}),
			targets: []targetSpec{
				tgt(keyTarget1),
				tgt(keyCluster2),
				tgt(remote.Key{Name: "spot"}, tainted(corev1.Taint{Key: "flavor", Value: "spot", Effect: corev1.TaintEffectNoSchedule})),
				tgt(remote.Key{Name: "soft"}, tainted(corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectPreferNoSchedule})),
				tgt(remote.Key{Namespace: "team-b", Name: "target-3"}),
				tgt(remote.Key{Name: "not-ready"}, notReady("Unreachable", "dial tcp: connection refused")),
				tgt(remote.Key{Name: "cordoned"}, cordoned()),
				tgt(remote.Key{Name: "tainted"}, tainted(corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule})),
				tgt(remote.Key{Name: "in-us"}, inRegion("us")),
			},
			want: listResult{
				Code: fwk.UnschedulableAndUnresolvable, Prefix: sendingPrefix,
				Items: []string{"cluster-2", "soft", "spot", "team-a/target-1"},
			},
			wantChaperons:      []string{"cluster-2", "soft", "spot", "team-a/target-1"},
			wantTolerations:    []corev1.Toleration{spot},
			wantFinalizerPatch: true,
		},
		{
			name:               "pod with the finalizer",
			pod:                finalized(makeProxyPod(t, "web-0")),
			targets:            []targetSpec{tgt(keyTarget1)},
			want:               listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: sendingPrefix, Items: []string{"team-a/target-1"}},
			wantChaperons:      []string{"team-a/target-1"},
			wantFinalizerPatch: false,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t, defaultArgs(), tc.targets, tc.pod)

			if diff := cmp.Diff(tc.want, listResultOf(f.preEnqueue(tc.pod), sendingPrefix)); diff != "" {
				t.Errorf("PreEnqueue (-want,+got):\n%s", diff)
			}
			// Once the workers are done, the pod waits for the verdicts
			// of exactly the targets that got a candidate.
			g.Eventually(func() listResult { return listResultOf(f.preEnqueue(tc.pod), sendingPrefix, waitingPrefix) }).
				WithTimeout(eventuallyTimeout).WithPolling(pollInterval).
				Should(Equal(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: waitingPrefix, Items: tc.wantChaperons}))
			if diff := cmp.Diff(tc.wantChaperons, f.chaperonKeys(tc.pod)); diff != "" {
				t.Errorf("targets with a chaperon (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantChaperons, f.storeKeys(tc.pod)); diff != "" {
				t.Errorf("chaperons known to the plugin (-want,+got):\n%s", diff)
			}
			if f.activator.count(tc.pod.Name) == 0 {
				t.Errorf("pod %s was not activated after its candidates were sent", tc.pod.Name)
			}

			// The candidate is the pod as the user wrote it, for the
			// candidate scheduler.
			want := chaperonContent{
				Name: protocol.ChaperonName(tc.pod), Namespace: namespace,
				Labels:      map[string]string{"app": "web", protocol.ProxyPodUIDLabel: string(tc.pod.UID), protocol.SourceClusterLabel: sourceID},
				Annotations: map[string]string{"team": "a", protocol.ProxyPodNameAnnotation: tc.pod.Name},
				Spec: corev1.PodSpec{
					SchedulerName: protocol.CandidateSchedulerName,
					NodeSelector:  map[string]string{"disktype": "ssd"},
					Containers: []corev1.Container{{
						Name: "web", Image: "nginx",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi"),
						}},
					}},
					Tolerations: tc.wantTolerations,
				},
			}
			for _, k := range tc.wantChaperons {
				ch := f.getChaperon(remote.ParseKey(k), tc.pod)
				// Each chaperon names the target that made it.
				want.Annotations[protocol.TargetAnnotation] = k
				if diff := cmp.Diff(want, contentOf(ch)); diff != "" {
					t.Errorf("chaperon in %s (-want,+got):\n%s", k, diff)
				}
			}

			pod, err := f.cs.CoreV1().Pods(namespace).Get(context.Background(), tc.pod.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{protocol.ProxyPodFinalizer}, pod.Finalizers); diff != "" {
				t.Errorf("finalizers of the proxy pod (-want,+got):\n%s", diff)
			}
			if got := podPatches(f) > 0; got != tc.wantFinalizerPatch {
				t.Errorf("pod patched: %v, want %v", got, tc.wantFinalizerPatch)
			}
		})
	}
}

// chaperonContent is what the source decides of a chaperon.
type chaperonContent struct {
	Name, Namespace     string
	Labels, Annotations map[string]string
	Spec                corev1.PodSpec
}

func contentOf(ch *multiclusterv1alpha1.PodChaperon) chaperonContent {
	if ch == nil {
		return chaperonContent{}
	}
	return chaperonContent{Name: ch.Name, Namespace: ch.Namespace, Labels: ch.Labels, Annotations: ch.Annotations, Spec: ch.Spec}
}

// podPatches counts the PATCH requests on pods in the source.
func podPatches(f *fixture) int {
	n := 0
	for _, a := range f.cs.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "pods" {
			n++
		}
	}
	return n
}

// TestPreEnqueueLetsThrough: pods that are not proxies, or that no target
// can take, are not gated (the scheduling cycle, Filter and PostFilter,
// explains the latter) and no candidate is sent. Nor is one sent for a pod
// with scheduling gates: the SchedulingGates plugin holds it, and
// candidates would reserve room in the targets.
func TestPreEnqueueLetsThrough(t *testing.T) {
	notProxy := makeProxyPod(t, "plain")
	notProxy.Spec.SchedulerName = corev1.DefaultSchedulerName
	cases := []struct {
		name    string
		pod     *corev1.Pod
		targets []targetSpec
	}{
		{name: "not a proxy pod", pod: notProxy, targets: []targetSpec{tgt(keyTarget1)}},
		{
			name: "no eligible target",
			pod:  makeProxyPod(t, "web-0"),
			targets: []targetSpec{
				tgt(remote.Key{Name: "in-us"}, inRegion("us")),
				tgt(remote.Key{Name: "not-ready"}, notReady("Unreachable", "dial tcp: connection refused")),
			},
		},
		{name: "no target at all", pod: makeProxyPod(t, "web-0")},
		{
			name: "scheduling gates",
			pod: makeProxyPod(t, "web-0", func(p *corev1.Pod) {
				p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/quota"}}
			}),
			targets: []targetSpec{tgt(keyTarget1), tgt(keyCluster2)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t, defaultArgs(), tc.targets, tc.pod)
			if diff := cmp.Diff(statusResult{Code: fwk.Success}, resultOf(f.preEnqueue(tc.pod))); diff != "" {
				t.Errorf("PreEnqueue (-want,+got):\n%s", diff)
			}
			g.Consistently(func() []string { return f.chaperonKeys(tc.pod) }).
				WithTimeout(consistentlyDuration).WithPolling(pollInterval).Should(BeEmpty())
			if n := podPatches(f); n != 0 {
				t.Errorf("the pod was patched %d times, want none", n)
			}
		})
	}
}

// TestPreEnqueueVerdicts: once its candidates are out, a pod stays gated
// until every target has given a verdict, or candidateVerdictTimeout has
// passed since they were sent, or the pod is committed to a target.
func TestPreEnqueueVerdicts(t *testing.T) {
	forbidden := errors.New(`podchaperons.multicluster.admiralty.io is forbidden: User "system:serviceaccount:team-a:source" cannot create resource "podchaperons"`)
	waitingFor := func(items ...string) listResult {
		return listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: waitingPrefix, Items: items}
	}
	success := listResult{Code: fwk.Success}
	cases := []struct {
		name    string
		targets []targetSpec
		// verdicts are the targets' writes on their chaperons.
		verdicts map[remote.Key][]chaperonOpt
		// after is how long after the candidates were sent PreEnqueue runs.
		after time.Duration
		want  listResult
		// then checks what follows.
		then func(g *WithT, f *fixture, pod *corev1.Pod)
	}{
		{
			name: "no verdict yet",
			want: waitingFor("cluster-2", "team-a/target-1"),
		},
		{
			name: "every verdict in",
			verdicts: map[remote.Key][]chaperonOpt{
				keyTarget1:  {reserved(1, "node-a")},
				keyCluster2: {unschedulable(unschedulableMessage)},
			},
			want: success,
		},
		{
			name:     "one verdict, just before the timeout",
			verdicts: map[remote.Key][]chaperonOpt{keyTarget1: {reserved(1, "node-a")}},
			after:    time.Minute - time.Millisecond,
			want:     waitingFor("cluster-2"),
		},
		{
			name:     "one verdict, at the timeout",
			verdicts: map[remote.Key][]chaperonOpt{keyTarget1: {reserved(1, "node-a")}},
			after:    time.Minute,
			want:     success,
		},
		{
			name:  "no verdict, after the timeout",
			after: 2 * time.Minute,
			want:  success,
		},
		{
			name:     "committed to a target that holds its reservation",
			verdicts: map[remote.Key][]chaperonOpt{keyTarget1: {reserved(1, "node-a"), allowed(1)}},
			want:     success,
		},
		{
			name:     "committed to a target that is binding",
			verdicts: map[remote.Key][]chaperonOpt{keyTarget1: {reserved(1, "node-a"), allowed(1), binding(1, "node-a")}},
			want:     success,
		},
		{
			name:     "committed to a target that has bound",
			verdicts: map[remote.Key][]chaperonOpt{keyTarget1: {reserved(1, "node-a"), allowed(1), bound(1, "node-a")}},
			want:     success,
		},
		{
			name:     "committed to a target that released its reservation",
			verdicts: map[remote.Key][]chaperonOpt{keyTarget1: {allowed(1), released(1)}},
			after:    2 * time.Minute,
			want:     listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: "waiting for team-a/target-1, the chosen target, to reserve a node"},
		},
		{
			name: "committed to a target that can no longer fit the pod",
			verdicts: map[remote.Key][]chaperonOpt{
				keyTarget1:  {allowed(1), released(1), unschedulable(unschedulableMessage)},
				keyCluster2: {reserved(1, "node-b")},
			},
			want: listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: "withdrawing the choice of team-a/target-1, which can no longer fit the pod"},
			then: func(g *WithT, f *fixture, pod *corev1.Pod) {
				// A worker revokes the choice (deletes the chaperon); the
				// pod is free again and a new candidate goes to the target.
				g.Eventually(func() int32 { return f.cluster(keyTarget1).deletes.Load() }).
					WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Equal(int32(1)))
				g.Eventually(func() listResult { return listResultOf(f.preEnqueue(pod), sendingPrefix, waitingPrefix) }).
					WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Equal(waitingFor("team-a/target-1")))
				g.Expect(f.getChaperon(keyTarget1, pod).Annotations).NotTo(HaveKey(protocol.AllowedAnnotation))
			},
		},
		{
			name:    "a target where the candidate could not be created",
			targets: []targetSpec{tgt(keyTarget1), tgt(keyCluster2, failingCreate(forbidden))},
			want:    waitingFor("team-a/target-1"),
		},
		{
			name:     "a target where the candidate could not be created, and the other's verdict",
			targets:  []targetSpec{tgt(keyTarget1), tgt(keyCluster2, failingCreate(forbidden))},
			verdicts: map[remote.Key][]chaperonOpt{keyTarget1: {reserved(1, "node-a")}},
			want:     success,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pod := makeProxyPod(t, "web-0")
			targets := tc.targets
			if targets == nil {
				targets = []targetSpec{tgt(keyTarget1), tgt(keyCluster2)}
			}
			f := newFixture(t, defaultArgs(), targets, pod)
			created, failed := []string{"cluster-2", "team-a/target-1"}, 0
			if tc.targets != nil { // cluster-2 fails
				created, failed = []string{"team-a/target-1"}, 1
			}
			f.sendCandidates(pod, created, failed)

			for key, opts := range tc.verdicts {
				f.updateChaperon(key, pod, opts...)
			}
			f.clock.Step(tc.after)
			if diff := cmp.Diff(tc.want, listResultOf(f.preEnqueue(pod), waitingPrefix)); diff != "" {
				t.Errorf("PreEnqueue (-want,+got):\n%s", diff)
			}
			if tc.then != nil {
				tc.then(g, f, pod)
			}
		})
	}
}

// TestPreEnqueueAfterFailedDispatch: when no candidate could be created,
// the pod is activated and let through, so that Filter and PostFilter
// explain why; the workers keep trying.
func TestPreEnqueueAfterFailedDispatch(t *testing.T) {
	g := NewWithT(t)
	pod := makeProxyPod(t, "web-0")
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyCluster2, failingCreate(errors.New("connection reset by peer")))}, pod)
	if diff := cmp.Diff(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: sendingPrefix, Items: []string{"cluster-2"}},
		listResultOf(f.preEnqueue(pod), sendingPrefix)); diff != "" {
		t.Errorf("PreEnqueue (-want,+got):\n%s", diff)
	}
	g.Eventually(func() int { return f.activator.count(pod.Name) }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(BeNumerically(">=", 1), "activations")
	if diff := cmp.Diff(statusResult{Code: fwk.Success}, resultOf(f.preEnqueue(pod))); diff != "" {
		t.Errorf("PreEnqueue after the failure (-want,+got):\n%s", diff)
	}
	g.Eventually(func() int32 { return f.cluster(keyCluster2).creates.Load() }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(BeNumerically(">=", 2), "attempts to create the candidate")
}

// TestFailedDispatchForgottenWhileTheTargetIsAway: a candidate that could
// not be created (the target stopped answering before its probe said so)
// is not held against the target once it is out of the question, and when
// it is back the pod is sent there at once, not let through with the old
// failure (which nothing would retry any more).
func TestFailedDispatchForgottenWhileTheTargetIsAway(t *testing.T) {
	g := NewWithT(t)
	pod := makeProxyPod(t, "web-0")
	refused := errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyCluster2, failingCreate(refused))}, pod)
	f.sendCandidates(pod, nil, 1)
	failures := func() []string {
		f.pl.mu.Lock()
		defer f.pl.mu.Unlock()
		var out []string
		if st := f.pl.pods[pod.UID]; st != nil {
			for k := range st.failures {
				out = append(out, k.String())
			}
		}
		return out
	}
	g.Expect(failures()).To(Equal([]string{"cluster-2"}))

	// The probe notices: the workers' next try forgets the failure.
	f.setHealth(keyCluster2, remote.Health{Reason: "Unreachable", Message: refused.Error(), Since: t0})
	g.Eventually(failures).WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(BeEmpty(), "failures kept")

	// Back: the pod is activated and sends its candidate.
	f.cluster(keyCluster2).setFailCreate(nil)
	before := f.activator.count(pod.Name)
	f.setHealth(keyCluster2, remote.Health{Ready: true, Reason: "Ready", Message: "connected", Since: t0})
	g.Expect(f.activator.count(pod.Name)).To(BeNumerically(">", before), "activations")
	if diff := cmp.Diff(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: sendingPrefix, Items: []string{"cluster-2"}},
		listResultOf(f.preEnqueue(pod), sendingPrefix)); diff != "" {
		t.Errorf("PreEnqueue once the target is back (-want,+got):\n%s", diff)
	}
	g.Eventually(func() []string { return f.storeKeys(pod) }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Equal([]string{"cluster-2"}), "candidates")
}

// TestFailedDispatchForgottenWhenTheTargetIsBack: a failure recorded while
// the target looked ready goes as soon as the target becomes ready again,
// however its workers' retries stand.
func TestFailedDispatchForgottenWhenTheTargetIsBack(t *testing.T) {
	pod := makeProxyPod(t, "web-0")
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyCluster2)}, pod)
	f.pl.mu.Lock()
	f.pl.pods[pod.UID] = &podState{pod: pod, failures: map[remote.Key]string{keyCluster2: "cannot create the candidate: connection refused"}}
	f.pl.mu.Unlock()
	f.setHealth(keyCluster2, remote.Health{Reason: "Unreachable", Message: "connection refused", Since: t0})
	f.setHealth(keyCluster2, remote.Health{Ready: true, Reason: "Ready", Message: "connected", Since: t0})
	if diff := cmp.Diff(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: sendingPrefix, Items: []string{"cluster-2"}},
		listResultOf(f.preEnqueue(pod), sendingPrefix)); diff != "" {
		t.Errorf("PreEnqueue once the target is back (-want,+got):\n%s", diff)
	}
}

// TestPreEnqueueVerdictTimeoutWakesPod: when candidateVerdictTimeout
// passes without every verdict, the pod is activated (nothing else would
// bring it back) and goes through.
func TestPreEnqueueVerdictTimeoutWakesPod(t *testing.T) {
	g := NewWithT(t)
	pod := makeProxyPod(t, "web-0")
	args := defaultArgs()
	args.CandidateVerdictTimeout.Duration = time.Second
	f := newFixture(t, args, []targetSpec{tgt(keyTarget1), tgt(keyCluster2)}, pod)
	f.pl.now = time.Now // a real clock, as the timer's

	start := time.Now()
	if diff := cmp.Diff(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: sendingPrefix, Items: []string{"cluster-2", "team-a/target-1"}},
		listResultOf(f.preEnqueue(pod), sendingPrefix)); diff != "" {
		t.Errorf("PreEnqueue (-want,+got):\n%s", diff)
	}
	g.Eventually(func() []string { return f.storeKeys(pod) }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Equal([]string{"cluster-2", "team-a/target-1"}))
	f.updateChaperon(keyTarget1, pod, reserved(1, "node-a"))

	g.Eventually(func() bool { return f.activator.activatedSince(pod.Name, start.Add(time.Second)) }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(BeTrue(), "pod activated at the verdict timeout")
	g.Eventually(func() statusResult { return resultOf(f.preEnqueue(pod)) }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Equal(statusResult{Code: fwk.Success}), "PreEnqueue after the timeout")
}

// TestObserveActivates: a chaperon event wakes its pod when the verdict
// changes (state or reservation attempt), and only then.
func TestObserveActivates(t *testing.T) {
	pod := makeProxyPod(t, "web-0")
	other := makeProxyPod(t, "web-1")
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyTarget1), tgt(keyCluster2)}, pod, other)
	// Candidates exist already: PreEnqueue registers the pods and sends nothing.
	for _, p := range []*corev1.Pod{pod, other} {
		f.putChaperon(keyTarget1, p)
		f.putChaperon(keyCluster2, p)
		f.preEnqueue(p)
	}
	steps := []struct {
		name          string
		change        func()
		wantActivated bool
	}{
		{
			name:   "an annotation unrelated to the protocol",
			change: func() { f.updateChaperon(keyTarget1, pod, annotated("example.com/note", "x")) },
		},
		{
			name:          "reserved",
			change:        func() { f.updateChaperon(keyTarget1, pod, reserved(1, "node-a")) },
			wantActivated: true,
		},
		{
			name:   "the same verdict delivered again",
			change: func() { f.deliver(keyTarget1, pod) },
		},
		{
			name:   "the same reservation, another annotation",
			change: func() { f.updateChaperon(keyTarget1, pod, annotated("example.com/note", "y")) },
		},
		{
			name:          "reserved again under a new attempt",
			change:        func() { f.updateChaperon(keyTarget1, pod, reserved(2, "node-b")) },
			wantActivated: true,
		},
		{
			name:          "unschedulable",
			change:        func() { f.updateChaperon(keyCluster2, pod, unschedulable(unschedulableMessage)) },
			wantActivated: true,
		},
		{
			name: "another message, the same verdict",
			change: func() {
				f.updateChaperon(keyCluster2, pod, unschedulable("0/3 nodes are available: 3 Insufficient memory."))
			},
		},
		{
			name: "deleted",
			change: func() {
				last := f.deleteChaperonSilently(keyCluster2, pod)
				f.pl.observeDeleted(keyCluster2, f.cluster(keyCluster2), last)
			},
			wantActivated: true,
		},
		{
			name: "deleted, seen by a connection that was replaced",
			change: func() {
				last := f.deleteChaperonSilently(keyTarget1, pod)
				f.pl.observeDeleted(keyTarget1, &fakeCluster{key: keyTarget1}, last)
			},
		},
		{
			name: "after the pod is bound",
			change: func() {
				f.fw.RunPostBindPlugins(f.ctx, framework.NewCycleState(), pod, nodeTarget1)
				f.putChaperon(keyCluster2, pod, reserved(3, "node-c"))
			},
		},
	}
	for _, s := range steps {
		before, otherBefore := f.activator.count(pod.Name), f.activator.count(other.Name)
		s.change()
		if got := f.activator.count(pod.Name) > before; got != s.wantActivated {
			t.Errorf("%s: pod activated: %v, want %v", s.name, got, s.wantActivated)
		}
		if f.activator.count(other.Name) != otherBefore {
			t.Errorf("%s: another pod was activated", s.name)
		}
	}
}

// TestPreEnqueueMaxTargets: with maxTargets, candidates go to the targets
// with the most free capacity, keeping those that have one already.
func TestPreEnqueueMaxTargets(t *testing.T) {
	big := remote.Key{Name: "big"}
	medium := remote.Key{Name: "medium"}
	small := remote.Key{Name: "small"}
	targets := []targetSpec{
		tgt(small, withSummary("8", "2", "8Gi", "2Gi")),
		tgt(big, withSummary("8", "7", "8Gi", "7Gi")),
		tgt(medium, withSummary("8", "4", "8Gi", "4Gi")),
	}
	cases := []struct {
		name       string
		maxTargets int32
		existing   []remote.Key
		wantSent   []string
		wantAll    []string
	}{
		{name: "the most free capacity", maxTargets: 2, wantSent: []string{"big", "medium"}, wantAll: []string{"big", "medium"}},
		{name: "a target with a candidate is kept", maxTargets: 2, existing: []remote.Key{small}, wantSent: []string{"big"}, wantAll: []string{"big", "small"}},
		{name: "one", maxTargets: 1, wantSent: []string{"big"}, wantAll: []string{"big"}},
		{name: "no limit", maxTargets: 0, wantSent: []string{"big", "medium", "small"}, wantAll: []string{"big", "medium", "small"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pod := makeProxyPod(t, "web-0")
			args := defaultArgs()
			args.MaxTargets = tc.maxTargets
			f := newFixture(t, args, targets, pod)
			for _, k := range tc.existing {
				f.putChaperon(k, pod)
			}
			if diff := cmp.Diff(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: sendingPrefix, Items: tc.wantSent},
				listResultOf(f.preEnqueue(pod), sendingPrefix)); diff != "" {
				t.Errorf("PreEnqueue (-want,+got):\n%s", diff)
			}
			g.Eventually(func() listResult { return listResultOf(f.preEnqueue(pod), sendingPrefix, waitingPrefix) }).
				WithTimeout(eventuallyTimeout).WithPolling(pollInterval).
				Should(Equal(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: waitingPrefix, Items: tc.wantAll}))
			if diff := cmp.Diff(tc.wantAll, f.chaperonKeys(pod)); diff != "" {
				t.Errorf("targets with a chaperon (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestPreEnqueueAdoptedCandidatesAwaitVerdicts: a restarted proxy
// scheduler finds a pod's candidates already in the targets (its
// informers deliver them before the pod reaches PreEnqueue). The pod
// should wait for their verdicts (up to candidateVerdictTimeout) as it
// would have before the restart.
func TestPreEnqueueAdoptedCandidatesAwaitVerdicts(t *testing.T) {
	g := NewWithT(t)
	pod := makeProxyPod(t, "web-0")
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyTarget1), tgt(keyCluster2)}, pod)
	f.putChaperon(keyTarget1, pod)
	f.putChaperon(keyCluster2, pod, reserved(1, "node-b"))

	if diff := cmp.Diff(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: waitingPrefix, Items: []string{"team-a/target-1"}},
		listResultOf(f.preEnqueue(pod), waitingPrefix)); diff != "" {
		t.Errorf("PreEnqueue (-want,+got):\n%s", diff)
	}
	f.clock.Step(time.Minute)
	g.Expect(resultOf(f.preEnqueue(pod))).To(Equal(statusResult{Code: fwk.Success}), "after the verdict timeout")
}

// TestCreateKeepsNewerVerdict: the target may reserve, and its informer
// deliver the reserved chaperon, before the plugin's create call returns.
// The plugin then records the object that its create returned, which is
// older; the store's contract (store.set) is to ignore it.
func TestCreateKeepsNewerVerdict(t *testing.T) {
	g := NewWithT(t)
	pod := makeProxyPod(t, "web-0")
	reserveOnCreate := func(f *fixture, cl *fakeCluster, obj client.Object) {
		ch := &multiclusterv1alpha1.PodChaperon{}
		if err := cl.raw.Get(context.Background(), client.ObjectKeyFromObject(obj), ch); err != nil {
			t.Error(err)
			return
		}
		reserved(1, "node-b")(ch)
		if err := cl.raw.Update(context.Background(), ch); err != nil {
			t.Error(err)
			return
		}
		f.deliverObject(cl, ch)
	}
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyTarget1), tgt(keyCluster2, afterCreate(reserveOnCreate))}, pod)
	f.preEnqueue(pod)
	g.Eventually(func() listResult { return listResultOf(f.preEnqueue(pod), sendingPrefix, waitingPrefix) }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).
		Should(Equal(listResult{Code: fwk.UnschedulableAndUnresolvable, Prefix: waitingPrefix, Items: []string{"team-a/target-1"}}))
	g.Expect(protocol.VerdictOf(f.pl.store.get(pod.UID)[keyCluster2]).State).To(Equal(protocol.StateReserved))
}

// TestTwoTargetsToOneCluster: a Target and a ClusterTarget may lead to the
// same cluster; a chaperon counts only for the target that made it, so the
// other one's release or verdicts never touch it.
func TestTwoTargetsToOneCluster(t *testing.T) {
	pod := makeProxyPod(t, "web-0")
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyTarget1), tgt(keyCluster2)}, pod)
	f.putChaperon(keyTarget1, pod, func(ch *multiclusterv1alpha1.PodChaperon) {
		ch.Annotations[protocol.TargetAnnotation] = keyCluster2.String()
	})
	if got := f.storeKeys(pod); len(got) != 0 {
		t.Errorf("the plugin counts a chaperon made through %s as %v's", keyCluster2, got)
	}
	f.putChaperon(keyCluster2, pod, func(ch *multiclusterv1alpha1.PodChaperon) {
		ch.Annotations[protocol.TargetAnnotation] = keyCluster2.String()
	})
	if diff := cmp.Diff([]string{keyCluster2.String()}, f.storeKeys(pod)); diff != "" {
		t.Errorf("chaperons known to the plugin (-want,+got):\n%s", diff)
	}
}
