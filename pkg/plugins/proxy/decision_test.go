package proxy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// chaperonUID is the UID the fixture gives a pod's chaperon in key.
func chaperonUID(key remote.Key, pod *corev1.Pod) types.UID {
	return types.UID(key.String() + "/" + protocol.ChaperonName(pod))
}

// withDecision gives the pod the proxy's decision record.
func withDecision(target string, chaperon types.UID) podOpt {
	return func(p *corev1.Pod) {
		p.Annotations[protocol.DecisionAnnotation] = protocol.DecisionMark(target, chaperon)
	}
}

// TestDecisionRecord: a proxy scheduler that (re)starts, or reconnects to a
// target, learns where a pod may go from the pod's decision record before
// it sees the chaperons of every target. A pod whose record names a target
// whose chaperons are not known yet waits (an allow mark, even a binding
// delegate, may be there); a record whose chaperon is gone, or whose target
// left the fleet, is void.
func TestDecisionRecord(t *testing.T) {
	gone := remote.Key{Name: "gone"}
	waitingToSee := unresolvable("waiting to see the candidates in team-a/target-1, the chosen target (not connected, or not listed yet)")
	cases := []struct {
		name string
		// target1 are team-a/target-1's options; cluster-2 is connected,
		// listed, and holds a reserved candidate.
		target1 []targetOpt
		// chaperon1: team-a/target-1 holds a reserved candidate.
		chaperon1 bool
		// record is the pod's decision record: target and chaperon UID
		// ("" for the fixture's UID of the pod's chaperon there).
		record         *[2]string
		want           statusResult
		wantPreFilter  []string
		wantDispatched bool
	}{
		{
			name:      "no record",
			chaperon1: true,
			want:      passes,
		},
		{
			name:    "the chosen target is not connected",
			target1: []targetOpt{disconnected()},
			record:  &[2]string{"team-a/target-1", ""},
			want:    waitingToSee,
			// Were it let through, it could only go there.
			wantPreFilter: []string{nodeTarget1},
		},
		{
			name:          "the chosen target's chaperons are not listed yet",
			target1:       []targetOpt{unsynced()},
			record:        &[2]string{"team-a/target-1", ""},
			want:          waitingToSee,
			wantPreFilter: []string{nodeTarget1},
		},
		{
			name:      "the chosen candidate holds its reservation",
			chaperon1: true,
			record:    &[2]string{"team-a/target-1", ""},
			want:      passes,
			// The record was written, the allow mark perhaps not yet: the
			// pod goes there only.
			wantPreFilter: []string{nodeTarget1},
		},
		{
			name:           "the chosen candidate is gone",
			record:         &[2]string{"team-a/target-1", ""},
			want:           listStatus(sendingPrefix, "team-a/target-1"),
			wantDispatched: true,
		},
		{
			name:      "the chosen candidate was replaced",
			chaperon1: true,
			record:    &[2]string{"team-a/target-1", "an-older-chaperon"},
			want:      passes,
		},
		{
			name:      "the chosen target left the fleet",
			chaperon1: true,
			record:    &[2]string{gone.String(), "uid"},
			want:      passes,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var opts []podOpt
			probe := makeProxyPod(t, "web-0")
			if tc.record != nil {
				uid := types.UID(tc.record[1])
				if uid == "" {
					uid = chaperonUID(remote.ParseKey(tc.record[0]), probe)
				}
				opts = append(opts, withDecision(tc.record[0], uid))
			}
			pod := makeProxyPod(t, "web-0", opts...)
			f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyTarget1, tc.target1...), tgt(keyCluster2)}, pod)
			f.putChaperon(keyCluster2, pod, reserved(1, "node-b"))
			if tc.chaperon1 {
				f.putChaperon(keyTarget1, pod, reserved(1, "node-a"))
			}

			got := resultOf(f.preEnqueue(pod))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PreEnqueue (-want,+got):\n%s", diff)
			}
			// A pod that waits for its chosen target says so, once.
			f.preEnqueue(pod)
			f.preEnqueue(pod)
			waiting := f.events.withReason(EventReasonWaitingForTarget)
			if tc.want == waitingToSee {
				g.Expect(waiting).To(HaveLen(1))
				g.Expect(waiting[0].Note).To(ContainSubstring("Committed to team-a/target-1"))
			} else {
				g.Expect(waiting).To(BeEmpty())
			}
			_, pre, _ := f.runFilters(pod)
			if diff := cmp.Diff(tc.wantPreFilter, pre.NodeNames); diff != "" {
				t.Errorf("PreFilter's nodes (-want,+got):\n%s", diff)
			}
			if tc.wantDispatched {
				g.Eventually(func() []string { return f.storeKeys(pod) }).
					WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(ConsistOf("cluster-2", "team-a/target-1"))
				return
			}
			// Nothing is sent anywhere while the pod waits, nor when its
			// candidates exist.
			g.Consistently(func() int32 { return f.cluster(keyCluster2).creates.Load() }).
				WithTimeout(consistentlyDuration).WithPolling(pollInterval).Should(BeZero())
		})
	}
}

// listStatus is the status whose message is prefix then items.
func listStatus(prefix string, items ...string) statusResult {
	msg := prefix
	for i, it := range items {
		if i > 0 {
			msg += ", "
		}
		msg += it
	}
	return statusResult{Code: fwk.UnschedulableAndUnresolvable, Message: msg}
}

// TestPreBindRecordsDecisionFirst: no allow mark is written unless the
// proxy pod records the choice first; when the record cannot be written,
// the candidate is not allowed.
func TestPreBindRecordsDecisionFirst(t *testing.T) {
	g := NewWithT(t)
	pod := makeProxyPod(t, "web-0")
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyTarget1), tgt(keyCluster2)}, pod)
	f.putChaperon(keyTarget1, pod, reserved(1, "node-a"))
	f.putChaperon(keyCluster2, pod, reserved(1, "node-b"))
	f.cs.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcdserver: request timed out")
	})
	var got *fwk.Status
	g.Eventually(f.startPreBind(pod, nodeTarget1)).WithTimeout(eventuallyTimeout).Should(Receive(&got))
	want := statusResult{Code: fwk.Error, Message: `running PreBind plugin "Proxy": recording the choice of team-a/target-1: etcdserver: request timed out`}
	if diff := cmp.Diff(want, resultOf(got)); diff != "" {
		t.Errorf("PreBind (-want,+got):\n%s", diff)
	}
	if n := f.cluster(keyTarget1).patches.Load(); n != 0 {
		t.Errorf("%d allow marks written, want none", n)
	}
	if diff := cmp.Diff([]string{"cluster-2", "team-a/target-1"}, f.chaperonKeys(pod)); diff != "" {
		t.Errorf("targets with a chaperon (-want,+got):\n%s", diff)
	}
}
