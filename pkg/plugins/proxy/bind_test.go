package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
	"github.com/flotilla-io/flotilla/pkg/vk"
)

// shortTimeout is delegateBindTimeout in tests that cross it.
const shortTimeout = 200 * time.Millisecond

// allowMark is the allow mark on pod's chaperon in a target ("" if none,
// or no chaperon).
func (f *fixture) allowMark(key remote.Key, pod *corev1.Pod) string {
	ch := f.getChaperon(key, pod)
	if ch == nil {
		return ""
	}
	return ch.Annotations[protocol.AllowedAnnotation]
}

// startPreBind runs the framework's PreBind plugins for pod on node in a
// goroutine, as the binding cycle does; the channel gets the status.
func (f *fixture) startPreBind(pod *corev1.Pod, node string) <-chan *fwk.Status {
	done := make(chan *fwk.Status, 1)
	go func() {
		done <- f.fw.RunPreBindPlugins(f.ctx, framework.NewCycleState(), pod, node)
	}()
	return done
}

// TestPreBind: PreBind writes the decision on the chosen candidate (the
// allow mark, fenced by the pod's UID and the reservation attempt),
// releases the others, and waits for the delegate to be bound; it
// withdraws the choice (deletes the candidate, unless it committed to
// bind) when the candidate fails or does not bind in time.
func TestPreBind(t *testing.T) {
	eventually := func(g *WithT, f func() any) AsyncAssertion {
		return g.Eventually(f).WithTimeout(eventuallyTimeout).WithPolling(pollInterval)
	}
	cases := []struct {
		name string
		// finalized: the pod has its finalizer already (the decision
		// record and the finalizer are written together).
		finalized   bool
		bindTimeout time.Duration
		node        string
		// before are the targets' changes to the candidates (reserved in
		// both) before PreBind.
		before map[remote.Key][]chaperonOpt
		// silently are changes that the plugin has not seen yet.
		silently map[remote.Key][]chaperonOpt
		// during plays the target's part while PreBind waits.
		during func(g *WithT, f *fixture, pod *corev1.Pod, done <-chan *fwk.Status)
		want   statusResult
		// wantChaperons are the targets where the pod's chaperon remains.
		wantChaperons []string
		wantAllowMark string
		// wantAllows is how many allow marks PreBind wrote.
		wantAllows int32
		wantEvents []recordedEvent
	}{
		{
			name: "allowed, others released, then bound",
			during: func(g *WithT, f *fixture, pod *corev1.Pod, done <-chan *fwk.Status) {
				eventually(g, func() any { return f.allowMark(keyTarget1, pod) }).Should(Equal("web-0-uid/1"))
				eventually(g, func() any { return f.chaperonKeys(pod) }).Should(Equal([]string{"team-a/target-1"}))
				g.Consistently(done).WithTimeout(consistentlyDuration).ShouldNot(Receive(), "PreBind returned before the delegate was bound")
				f.updateChaperon(keyTarget1, pod, bound(1, "node-a"))
			},
			want:          statusResult{Code: fwk.Success},
			wantAllows:    1,
			wantChaperons: []string{"team-a/target-1"},
			wantAllowMark: "web-0-uid/1",
			wantEvents: []recordedEvent{{
				Regarding: "Pod team-a/web-0", Type: corev1.EventTypeNormal, Reason: EventReasonDelegated, Action: "Binding",
				Note: "Delegate team-a/" + protocol.ChaperonName(makeProxyPod(t, "web-0")) + " bound to node node-a in target team-a/target-1",
			}},
		},
		{
			name: "allowed, then committed to bind: bound without waiting for the binding to be reported",
			during: func(g *WithT, f *fixture, pod *corev1.Pod, done <-chan *fwk.Status) {
				eventually(g, func() any { return f.allowMark(keyTarget1, pod) }).Should(Equal("web-0-uid/1"))
				g.Consistently(done).WithTimeout(consistentlyDuration).ShouldNot(Receive(), "PreBind returned before the candidate committed")
				f.updateChaperon(keyTarget1, pod, binding(1, "node-a"))
			},
			want:          statusResult{Code: fwk.Success},
			wantAllows:    1,
			wantChaperons: []string{"team-a/target-1"},
			wantAllowMark: "web-0-uid/1",
			wantEvents: []recordedEvent{{
				Regarding: "Pod team-a/web-0", Type: corev1.EventTypeNormal, Reason: EventReasonDelegated, Action: "Binding",
				Note: "Delegate team-a/" + protocol.ChaperonName(makeProxyPod(t, "web-0")) + " bound to node node-a in target team-a/target-1",
			}},
		},
		{
			name:      "a pod with its finalizer",
			finalized: true,
			during: func(g *WithT, f *fixture, pod *corev1.Pod, _ <-chan *fwk.Status) {
				eventually(g, func() any { return f.allowMark(keyTarget1, pod) }).Should(Equal("web-0-uid/1"))
				f.updateChaperon(keyTarget1, pod, bound(1, "node-a"))
			},
			want:          statusResult{Code: fwk.Success},
			wantAllows:    1,
			wantChaperons: []string{"team-a/target-1"},
			wantAllowMark: "web-0-uid/1",
			wantEvents: []recordedEvent{{
				Regarding: "Pod team-a/web-0", Type: corev1.EventTypeNormal, Reason: EventReasonDelegated, Action: "Binding",
				Note: "Delegate team-a/" + protocol.ChaperonName(makeProxyPod(t, "web-0")) + " bound to node node-a in target team-a/target-1",
			}},
		},
		{
			name: "reserved again under a new attempt while PreBind waits",
			node: nodeCluster2,
			during: func(g *WithT, f *fixture, pod *corev1.Pod, _ <-chan *fwk.Status) {
				eventually(g, func() any { return f.allowMark(keyCluster2, pod) }).Should(Equal("web-0-uid/1"))
				// The candidate's Permit timed out; it reserved again.
				f.updateChaperon(keyCluster2, pod, released(1))
				f.updateChaperon(keyCluster2, pod, reserved(2, "node-c"))
				eventually(g, func() any { return f.allowMark(keyCluster2, pod) }).Should(Equal("web-0-uid/2"))
				f.updateChaperon(keyCluster2, pod, bound(2, "node-c"))
			},
			want:          statusResult{Code: fwk.Success},
			wantAllows:    2,
			wantChaperons: []string{"cluster-2"},
			wantAllowMark: "web-0-uid/2",
			wantEvents: []recordedEvent{{
				Regarding: "Pod team-a/web-0", Type: corev1.EventTypeNormal, Reason: EventReasonDelegated, Action: "Binding",
				Note: "Delegate team-a/" + protocol.ChaperonName(makeProxyPod(t, "web-0")) + " bound to node node-c in target cluster-2",
			}},
		},
		{
			name:        "not bound in time: revoked",
			bindTimeout: shortTimeout,
			want:        statusResult{Code: fwk.Unschedulable, Message: "team-a/target-1 did not bind the delegate within 200ms"},
			wantAllows:  1,
		},
		{
			name:        "already committed to bind: adopted at once",
			bindTimeout: shortTimeout,
			before: map[remote.Key][]chaperonOpt{
				keyTarget1: {allowed(1), binding(1, "node-a")},
			},
			want:          statusResult{Code: fwk.Success},
			wantAllows:    0,
			wantChaperons: []string{"team-a/target-1"},
			wantAllowMark: "web-0-uid/1",
			wantEvents: []recordedEvent{{
				Regarding: "Pod team-a/web-0", Type: corev1.EventTypeNormal, Reason: EventReasonDelegated, Action: "Binding",
				Note: "Delegate team-a/" + protocol.ChaperonName(makeProxyPod(t, "web-0")) + " bound to node node-a in target team-a/target-1",
			}},
		},
		{
			name:        "committed to bind while being revoked: adopted",
			bindTimeout: shortTimeout,
			before:      map[remote.Key][]chaperonOpt{keyTarget1: {allowed(1)}},
			// The candidate commits; the plugin has not seen it when the
			// timeout comes: its conditional delete must fail.
			silently: map[remote.Key][]chaperonOpt{keyTarget1: {binding(1, "node-a")}},
			during: func(g *WithT, f *fixture, pod *corev1.Pod, done <-chan *fwk.Status) {
				eventually(g, func() any { return f.cluster(keyTarget1).deleteConflicts.Load() }).Should(BeNumerically(">=", 1))
				// Seeing the commitment, PreBind binds the proxy pod.
				f.deliver(keyTarget1, pod)
			},
			want:          statusResult{Code: fwk.Success},
			wantAllows:    0,
			wantChaperons: []string{"team-a/target-1"},
			wantAllowMark: "web-0-uid/1",
			wantEvents: []recordedEvent{{
				Regarding: "Pod team-a/web-0", Type: corev1.EventTypeNormal, Reason: EventReasonDelegated, Action: "Binding",
				Note: "Delegate team-a/" + protocol.ChaperonName(makeProxyPod(t, "web-0")) + " bound to node node-a in target team-a/target-1",
			}},
		},
		{
			name: "unschedulable after the allow: revoked",
			during: func(g *WithT, f *fixture, pod *corev1.Pod, _ <-chan *fwk.Status) {
				eventually(g, func() any { return f.allowMark(keyTarget1, pod) }).Should(Equal("web-0-uid/1"))
				f.updateChaperon(keyTarget1, pod, released(1), unschedulable(unschedulableMessage))
			},
			want:       statusResult{Code: fwk.Unschedulable, Message: "team-a/target-1: " + unschedulableMessage},
			wantAllows: 1,
		},
		{
			name: "its source cannot copy a dependency there: revoked, left out",
			during: func(g *WithT, f *fixture, pod *corev1.Pod, _ <-chan *fwk.Status) {
				eventually(g, func() any { return f.allowMark(keyTarget1, pod) }).Should(Equal("web-0-uid/1"))
				f.updateChaperon(keyTarget1, pod, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.FollowConflictAnnotation] = "ConfigMap config already exists"
				})
			},
			want:       statusResult{Code: fwk.Unschedulable, Message: "team-a/target-1: ConfigMap config already exists"},
			wantAllows: 1,
		},
		{
			name: "the candidate is deleted",
			during: func(g *WithT, f *fixture, pod *corev1.Pod, _ <-chan *fwk.Status) {
				// Seen by the plugin, not only written: the fake client's
				// write returns before the fixture delivers it, which
				// could bring the chaperon back after its deletion.
				eventually(g, func() any {
					if ch := f.pl.store.get(pod.UID)[keyTarget1]; ch != nil {
						return ch.Annotations[protocol.AllowedAnnotation]
					}
					return ""
				}).Should(Equal("web-0-uid/1"))
				last := f.deleteChaperonSilently(keyTarget1, pod)
				f.pl.observeDeleted(keyTarget1, f.cluster(keyTarget1), last)
			},
			want:       statusResult{Code: fwk.Unschedulable, Message: "team-a/target-1: the candidate is gone"},
			wantAllows: 1,
		},
		{
			name: "bound already (adopted after a restart)",
			before: map[remote.Key][]chaperonOpt{
				keyTarget1: {reserved(1, "node-a"), allowed(1), bound(1, "node-a")},
			},
			want:          statusResult{Code: fwk.Success},
			wantAllows:    0,
			wantChaperons: []string{"team-a/target-1"},
			wantAllowMark: "web-0-uid/1",
			wantEvents: []recordedEvent{{
				Regarding: "Pod team-a/web-0", Type: corev1.EventTypeNormal, Reason: EventReasonDelegated, Action: "Binding",
				Note: "Delegate team-a/" + protocol.ChaperonName(makeProxyPod(t, "web-0")) + " bound to node node-a in target team-a/target-1",
			}},
		},
		{
			name:          "not a virtual node",
			node:          "node-1",
			want:          statusResult{Code: fwk.Error, Message: `running PreBind plugin "Proxy": node node-1 is not a virtual node`},
			wantAllows:    0,
			wantChaperons: []string{"cluster-2", "team-a/target-1"},
		},
		{
			name:          "a target that is not connected",
			node:          vk.NodeName(remote.Key{Name: "gone"}),
			want:          statusResult{Code: fwk.Error, Message: `running PreBind plugin "Proxy": gone: cluster not connected`},
			wantAllows:    0,
			wantChaperons: []string{"cluster-2", "team-a/target-1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pod := makeProxyPod(t, "web-0")
			if tc.finalized {
				pod = finalized(pod)
			}
			args := defaultArgs()
			if tc.bindTimeout != 0 {
				args.DelegateBindTimeout.Duration = tc.bindTimeout
			}
			otherNS := remote.Key{Namespace: "team-b", Name: "target-3"}
			f := newFixture(t, args, []targetSpec{
				tgt(keyTarget1), tgt(keyCluster2), tgt(otherNS), tgt(remote.Key{Name: "gone"}, disconnected()),
			}, pod)
			f.putChaperon(keyTarget1, pod, reserved(1, "node-a"))
			f.putChaperon(keyCluster2, pod, reserved(1, "node-b"))
			for key, opts := range tc.before {
				f.updateChaperon(key, pod, opts...)
			}
			for key, opts := range tc.silently {
				f.updateChaperonSilently(key, pod, opts...)
			}
			node := tc.node
			if node == "" {
				node = nodeTarget1
			}

			done := f.startPreBind(pod, node)
			if tc.during != nil {
				tc.during(g, f, pod, done)
			}
			var got *fwk.Status
			g.Eventually(done).WithTimeout(eventuallyTimeout).Should(Receive(&got))
			if diff := cmp.Diff(tc.want, resultOf(got)); diff != "" {
				t.Errorf("PreBind (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantChaperons, f.chaperonKeys(pod)); diff != "" {
				t.Errorf("targets with a chaperon (-want,+got):\n%s", diff)
			}
			if tc.wantAllowMark != "" {
				if got := f.allowMark(remote.ParseKey(tc.wantChaperons[0]), pod); got != tc.wantAllowMark {
					t.Errorf("allow mark: %q, want %q", got, tc.wantAllowMark)
				}
			}
			if n := f.cluster(keyTarget1).patches.Load() + f.cluster(keyCluster2).patches.Load(); n != tc.wantAllows {
				t.Errorf("PreBind wrote %d allow marks, want %d", n, tc.wantAllows)
			}
			if n := f.cluster(otherNS).deleteCalls.Load(); n != 0 {
				t.Errorf("%d deletions in a target of another namespace, want none", n)
			}
			if diff := cmp.Diff(tc.wantEvents, f.events.withReason(EventReasonDelegated)); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}

			if got.Code() == fwk.Error {
				return
			}
			// The proxy pod cannot go before its delegate.
			stored, err := f.cs.CoreV1().Pods(namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{protocol.ProxyPodFinalizer}, stored.Finalizers); diff != "" {
				t.Errorf("finalizers (-want,+got):\n%s", diff)
			}
			// The choice is recorded on the pod (with the finalizer, if
			// it lacked it) in one write.
			if n := podPatches(f); n != 1 {
				t.Errorf("the pod was patched %d times, want 1", n)
			}
			chosenKey := keyTarget1
			if node == nodeCluster2 {
				chosenKey = keyCluster2
			}
			wantRecord := protocol.DecisionMark(chosenKey.String(), types.UID(chosenKey.String()+"/"+protocol.ChaperonName(pod)))
			if got := stored.Annotations[protocol.DecisionAnnotation]; got != wantRecord {
				t.Errorf("decision record %q, want %q", got, wantRecord)
			}
		})
	}
}

// TestPreBindCandidateDeletedBeforeAllow: the chosen candidate was deleted
// in its target (e.g. by its namespace's cleanup) before the allow mark,
// and the informer has not told yet. PreBind must not hammer the target's
// API server; once the deletion is seen, it gives up the choice.
func TestPreBindCandidateDeletedBeforeAllow(t *testing.T) {
	g := NewWithT(t)
	pod := makeProxyPod(t, "web-0")
	args := defaultArgs()
	// Longer than the wait below: the deletion, not the timeout, ends PreBind.
	args.DelegateBindTimeout.Duration = eventuallyTimeout
	f := newFixture(t, args, []targetSpec{tgt(keyTarget1)}, pod)
	f.putChaperon(keyTarget1, pod, reserved(1, "node-a"))
	last := f.deleteChaperonSilently(keyTarget1, pod)

	done := f.startPreBind(pod, nodeTarget1)
	func() {
		// However this ends, deliver the deletion, which ends PreBind.
		defer f.pl.observeDeleted(keyTarget1, f.cluster(keyTarget1), last)
		g.Consistently(func() int32 { return f.cluster(keyTarget1).patches.Load() }).
			WithTimeout(consistentlyDuration).WithPolling(pollInterval).Should(BeNumerically("<=", 2), "PATCH requests to the target")
	}()
	var got *fwk.Status
	g.Eventually(done).WithTimeout(eventuallyTimeout).Should(Receive(&got))
	if diff := cmp.Diff(statusResult{Code: fwk.Unschedulable, Message: "team-a/target-1: the candidate is gone"}, resultOf(got)); diff != "" {
		t.Errorf("PreBind (-want,+got):\n%s", diff)
	}
}
