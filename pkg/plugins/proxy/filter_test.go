package proxy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
	"github.com/flotilla-io/flotilla/pkg/vk"
)

var (
	nodeTarget1  = vk.NodeName(keyTarget1)
	nodeCluster2 = vk.NodeName(keyCluster2)
)

// preFilterResult is what tests compare of PreFilter's answer.
type preFilterResult struct {
	Status statusResult
	// NodeNames is nil for all nodes.
	NodeNames []string
}

// runFilters runs PreFilter, then Filter on every node (also those that
// PreFilter's result leaves out), through the framework.
func (f *fixture) runFilters(pod *corev1.Pod) (fwk.CycleState, preFilterResult, map[string]statusResult) {
	f.t.Helper()
	state := framework.NewCycleState()
	res, s, _ := f.fw.RunPreFilterPlugins(f.ctx, state, pod)
	pre := preFilterResult{Status: resultOf(s)}
	if !res.AllNodes() {
		pre.NodeNames = sets.List(res.NodeNames)
	}
	if !s.IsSuccess() {
		return state, pre, nil
	}
	infos, err := f.snapshot.NodeInfos().List()
	if err != nil {
		f.t.Fatal(err)
	}
	filtered := map[string]statusResult{}
	for _, ni := range infos {
		filtered[ni.Node().Name] = resultOf(f.fw.RunFilterPlugins(f.ctx, state, pod, ni))
	}
	return state, pre, filtered
}

func unresolvable(msg string) statusResult {
	return statusResult{Code: fwk.UnschedulableAndUnresolvable, Message: msg}
}

var (
	passes     = statusResult{Code: fwk.Success}
	notVirtual = unresolvable(ErrReasonNotVirtual)
)

// TestFilter: a virtual node passes only if its target reserved a node for
// the pod; otherwise the status says, per target, why not.
func TestFilter(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "multicluster.admiralty.io", Resource: "podchaperons"},
		"", errors.New(`User "system:serviceaccount:team-a:source" cannot create resource "podchaperons"`))
	otherNS := remote.Key{Namespace: "team-b", Name: "target-3"}
	cases := []struct {
		name    string
		pod     func(*corev1.Pod)
		targets []targetSpec
		// chaperons are the candidates in the targets, and their states.
		chaperons map[remote.Key][]chaperonOpt
		// dispatch: the candidates are sent by PreEnqueue and its workers.
		dispatch      bool
		wantPreFilter preFilterResult
		wantFilter    map[string]statusResult
		then          func(t *testing.T, f *fixture, pod *corev1.Pod)
	}{
		{
			name: "reserved and unschedulable",
			chaperons: map[remote.Key][]chaperonOpt{
				keyTarget1:  {reserved(1, "node-a")},
				keyCluster2: {unschedulable(unschedulableMessage)},
			},
			wantPreFilter: preFilterResult{Status: passes},
			wantFilter: map[string]statusResult{
				"node-1":     notVirtual,
				nodeTarget1:  passes,
				nodeCluster2: unresolvable("cluster-2: 0/3 nodes are available: 3 Insufficient cpu"),
			},
		},
		{
			name:          "no verdict yet, no candidate",
			chaperons:     map[remote.Key][]chaperonOpt{keyTarget1: nil},
			wantPreFilter: preFilterResult{Status: passes},
			wantFilter: map[string]statusResult{
				"node-1":     notVirtual,
				nodeTarget1:  unresolvable("team-a/target-1: " + ErrReasonNoVerdict),
				nodeCluster2: unresolvable("cluster-2: " + ErrReasonNoVerdict),
			},
		},
		{
			name: "a verdict without a reservation attempt's node",
			chaperons: map[remote.Key][]chaperonOpt{
				keyTarget1:  {released(1)},
				keyCluster2: {reserved(2, "node-b")},
			},
			wantPreFilter: preFilterResult{Status: passes},
			wantFilter: map[string]statusResult{
				"node-1":     notVirtual,
				nodeTarget1:  unresolvable("team-a/target-1: " + ErrReasonNoVerdict),
				nodeCluster2: passes,
			},
		},
		{
			name: "committed to a target",
			chaperons: map[remote.Key][]chaperonOpt{
				keyTarget1:  {reserved(1, "node-a"), allowed(1)},
				keyCluster2: {reserved(1, "node-b")},
			},
			wantPreFilter: preFilterResult{Status: passes, NodeNames: []string{nodeTarget1}},
			wantFilter: map[string]statusResult{
				"node-1":     notVirtual,
				nodeTarget1:  passes,
				nodeCluster2: unresolvable("cluster-2: " + ErrReasonOtherChoice),
			},
		},
		{
			name: "committed to a target that is binding",
			chaperons: map[remote.Key][]chaperonOpt{
				keyTarget1:  {reserved(1, "node-b")},
				keyCluster2: {reserved(1, "node-a"), allowed(1), binding(1, "node-a")},
			},
			wantPreFilter: preFilterResult{Status: passes, NodeNames: []string{nodeCluster2}},
			wantFilter: map[string]statusResult{
				"node-1":     notVirtual,
				nodeTarget1:  unresolvable("team-a/target-1: " + ErrReasonOtherChoice),
				nodeCluster2: passes,
			},
		},
		{
			name: "committed to a target that released its reservation",
			chaperons: map[remote.Key][]chaperonOpt{
				keyTarget1:  {allowed(1), released(1)},
				keyCluster2: {reserved(1, "node-b")},
			},
			wantPreFilter: preFilterResult{Status: passes, NodeNames: []string{nodeTarget1}},
			wantFilter: map[string]statusResult{
				"node-1":     notVirtual,
				nodeTarget1:  unresolvable("team-a/target-1: " + ErrReasonNoVerdict),
				nodeCluster2: unresolvable("cluster-2: " + ErrReasonOtherChoice),
			},
		},
		{
			name: "targets that cannot take the pod, whatever their verdict",
			targets: []targetSpec{
				tgt(otherNS),
				tgt(remote.Key{Name: "not-ready"}, notReady("Unreachable", "dial tcp: connection refused")),
				tgt(remote.Key{Name: "cordoned"}, cordoned()),
				tgt(remote.Key{Name: "tainted"}, tainted(corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoExecute})),
				tgt(remote.Key{Name: "in-us"}, inRegion("us")),
			},
			chaperons: map[remote.Key][]chaperonOpt{
				otherNS:             {reserved(1, "node-a")},
				{Name: "not-ready"}: {reserved(1, "node-a")},
				{Name: "cordoned"}:  {reserved(1, "node-a")},
				{Name: "tainted"}:   {reserved(1, "node-a")},
				{Name: "in-us"}:     {reserved(1, "node-a")},
			},
			wantPreFilter: preFilterResult{Status: passes},
			wantFilter: map[string]statusResult{
				"node-1":              notVirtual,
				vk.NodeName(otherNS):  unresolvable("team-b/target-3: target team-b/target-3 serves namespace team-b only"),
				"admiralty-not-ready": unresolvable("not-ready: not ready (Unreachable: dial tcp: connection refused)"),
				"admiralty-cordoned":  unresolvable("cordoned: virtual node cordoned"),
				"admiralty-tainted":   unresolvable("tainted: virtual node has a taint the pod does not tolerate: dedicated=gpu:NoExecute"),
				"admiralty-in-us":     unresolvable("in-us: virtual node does not match the pod's cluster-level node selector/affinity"),
			},
		},
		{
			name:     "a candidate that could not be created",
			targets:  []targetSpec{tgt(keyTarget1), tgt(keyCluster2, failingCreate(forbidden))},
			dispatch: true,
			chaperons: map[remote.Key][]chaperonOpt{
				keyTarget1: {reserved(1, "node-a")},
			},
			wantPreFilter: preFilterResult{Status: passes},
			wantFilter: map[string]statusResult{
				"node-1":     notVirtual,
				nodeTarget1:  passes,
				nodeCluster2: unresolvable("cluster-2: cannot create the candidate: " + forbidden.Error()),
			},
			then: func(t *testing.T, f *fixture, pod *corev1.Pod) {
				// The workers try again; the event is not repeated.
				NewWithT(t).Eventually(func() int32 { return f.cluster(keyCluster2).creates.Load() }).
					WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(BeNumerically(">=", 3))
				want := []recordedEvent{{
					Regarding: "Pod team-a/web-0", Type: corev1.EventTypeWarning, Reason: EventReasonDispatchFailed, Action: "Dispatch",
					Note: "cluster-2: cannot create the candidate: " + forbidden.Error(),
				}}
				if diff := cmp.Diff(want, f.events.withReason(EventReasonDispatchFailed)); diff != "" {
					t.Errorf("events (-want,+got):\n%s", diff)
				}
			},
		},
		{
			name: "an unreadable saved manifest",
			pod: func(p *corev1.Pod) {
				p.Annotations[protocol.SourcePodManifestAnnotation] = `{"metadata":`
			},
			wantPreFilter: preFilterResult{Status: unresolvable(
				"annotation multicluster.admiralty.io/sourcepod-manifest of pod team-a/web-0: unexpected end of JSON input")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := makeProxyPod(t, "web-0")
			if tc.pod != nil {
				tc.pod(pod)
			}
			targets := tc.targets
			if targets == nil {
				targets = []targetSpec{tgt(keyTarget1), tgt(keyCluster2)}
			}
			f := newFixture(t, defaultArgs(), targets, pod)
			if tc.dispatch {
				f.sendCandidates(pod, []string{"team-a/target-1"}, 1)
				for key, opts := range tc.chaperons {
					f.updateChaperon(key, pod, opts...)
				}
			} else {
				for key, opts := range tc.chaperons {
					f.putChaperon(key, pod, opts...)
				}
			}

			_, pre, filtered := f.runFilters(pod)
			if diff := cmp.Diff(tc.wantPreFilter, pre); diff != "" {
				t.Errorf("PreFilter (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFilter, filtered); diff != "" {
				t.Errorf("Filter by node (-want,+got):\n%s", diff)
			}
			if tc.then != nil {
				tc.then(t, f, pod)
			}
		})
	}
}

// TestFilterSnapshotsVerdicts: Filter reads the verdicts of PreFilter's
// cycle, not those that arrive during it.
func TestFilterSnapshotsVerdicts(t *testing.T) {
	pod := makeProxyPod(t, "web-0")
	f := newFixture(t, defaultArgs(), []targetSpec{tgt(keyTarget1)}, pod)
	f.putChaperon(keyTarget1, pod, reserved(1, "node-a"))
	state := framework.NewCycleState()
	if _, s, _ := f.fw.RunPreFilterPlugins(f.ctx, state, pod); !s.IsSuccess() {
		t.Fatalf("PreFilter: %v", s)
	}
	f.updateChaperon(keyTarget1, pod, released(1), unschedulable(unschedulableMessage))
	ni, err := f.snapshot.NodeInfos().Get(nodeTarget1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(passes, resultOf(f.fw.RunFilterPlugins(f.ctx, state, pod, ni))); diff != "" {
		t.Errorf("Filter (-want,+got):\n%s", diff)
	}
	// The next cycle sees the new verdict.
	_, _, filtered := f.runFilters(pod)
	if diff := cmp.Diff(unresolvable("team-a/target-1: 0/3 nodes are available: 3 Insufficient cpu"), filtered[nodeTarget1]); diff != "" {
		t.Errorf("Filter in the next cycle (-want,+got):\n%s", diff)
	}
}

// TestPostFilter: when no virtual node passes, the pod gets an Event that
// says, per cluster and in a stable order, why.
func TestPostFilter(t *testing.T) {
	cases := []struct {
		name      string
		targets   []targetSpec
		chaperons map[remote.Key][]chaperonOpt
		// forget are nodes left out of the statuses (e.g. filtered out by
		// another plugin's PreFilter).
		forget   []string
		wantNote string
	}{
		{
			name: "every cluster says why",
			targets: []targetSpec{
				tgt(keyTarget1), tgt(keyCluster2),
				tgt(remote.Key{Name: "alpha"}, notReady("Unreachable", "dial tcp: connection refused")),
			},
			chaperons: map[remote.Key][]chaperonOpt{
				keyTarget1:  {unschedulable(unschedulableMessage)},
				keyCluster2: nil,
			},
			wantNote: "0/3 clusters available: alpha: not ready (Unreachable: dial tcp: connection refused); " +
				"cluster-2: no verdict yet from the target; team-a/target-1: 0/3 nodes are available: 3 Insufficient cpu",
		},
		{
			name:      "a cluster without a status",
			targets:   []targetSpec{tgt(keyTarget1), tgt(keyCluster2)},
			chaperons: map[remote.Key][]chaperonOpt{keyTarget1: {unschedulable(unschedulableMessage)}},
			forget:    []string{nodeCluster2},
			wantNote:  "0/2 clusters available: cluster-2: not eligible for this pod; team-a/target-1: 0/3 nodes are available: 3 Insufficient cpu",
		},
		{
			name:     "no virtual node",
			wantNote: "0/0 clusters available: no virtual node (create a Target or ClusterTarget)",
		},
	}
	// The clusters come from a map: run PostFilter enough times that an
	// unstable order would show.
	const runs = 8
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := makeProxyPod(t, "web-0")
			f := newFixture(t, defaultArgs(), tc.targets, pod)
			for key, opts := range tc.chaperons {
				f.putChaperon(key, pod, opts...)
			}
			state, _, filtered := f.runFilters(pod)
			statuses := framework.NewDefaultNodeToStatus()
			for name := range filtered {
				if !contains(tc.forget, name) {
					statuses.Set(name, fwk.NewStatus(filtered[name].Code, filtered[name].Message))
				}
			}
			for range runs {
				res, s := f.fw.RunPostFilterPlugins(f.ctx, state, pod, statuses)
				if res != nil {
					t.Errorf("PostFilter nominated %v, want nothing", res)
				}
				if s.Code() != fwk.Unschedulable {
					t.Errorf("PostFilter status: %v, want Unschedulable", s)
				}
			}
			var want []recordedEvent
			for range runs {
				want = append(want, recordedEvent{
					Regarding: "Pod team-a/web-0", Type: corev1.EventTypeWarning, Reason: EventReasonNoTarget, Action: "Scheduling", Note: tc.wantNote,
				})
			}
			if diff := cmp.Diff(want, f.events.withReason(EventReasonNoTarget)); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestScore: the target left with the most free CPU and memory after the
// pod (1 CPU, 1Gi), by its ClusterSummary, scores higher; scores stay
// within [0, MaxScore].
func TestScore(t *testing.T) {
	roomy := remote.Key{Name: "roomy"}
	tight := remote.Key{Name: "tight"}
	full := remote.Key{Name: "full"}
	unknown := remote.Key{Name: "unknown"}
	stale := remote.Key{Name: "stale"}
	pod := makeProxyPod(t, "web-0")
	f := newFixture(t, defaultArgs(), []targetSpec{
		tgt(roomy, withSummary("8", "5", "8Gi", "7Gi")),     // (4/8 + 6/8) / 2
		tgt(tight, withSummary("8", "3", "8Gi", "3Gi")),     // (2/8 + 2/8) / 2
		tgt(full, withSummary("8", "500m", "8Gi", "512Mi")), // less than the pod: 0
		tgt(unknown), // no ClusterSummary
		tgt(stale, withSummary("4", "8", "4Gi", "8Gi")),      // more free than allocatable: at most 1
		tgt(keyTarget1, withSummary("0", "0", "8Gi", "5Gi")), // no CPU counted: (0 + 4/8) / 2
	}, pod)
	state, pre, _ := f.runFilters(pod)
	if pre.Status.Code != fwk.Success {
		t.Fatalf("PreFilter: %+v", pre)
	}
	infos, err := f.snapshot.NodeInfos().List()
	if err != nil {
		t.Fatal(err)
	}
	scores, s := f.fw.RunScorePlugins(f.ctx, state, pod, infos)
	if !s.IsSuccess() {
		t.Fatalf("Score: %v", s)
	}
	got := map[string]int64{}
	for _, ns := range scores {
		got[ns.Name] = ns.TotalScore
	}
	want := map[string]int64{
		"node-1":                0,
		vk.NodeName(roomy):      62,
		vk.NodeName(tight):      25,
		vk.NodeName(full):       0,
		vk.NodeName(unknown):    0,
		vk.NodeName(stale):      fwk.MaxScore,
		vk.NodeName(keyTarget1): 25,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scores (-want,+got):\n%s", diff)
	}
}

// TestEventsToRegister: the pod is requeued on changes of virtual nodes,
// not of other nodes.
func TestEventsToRegister(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pl := &Proxy{}
	events, err := pl.EventsToRegister(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("got %d events, want 1", len(events))
	}
	wantEvent := fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel | fwk.UpdateNodeTaint | fwk.UpdateNodeCondition | fwk.UpdateNodeAnnotation}
	if diff := cmp.Diff(wantEvent, events[0].Event); diff != "" {
		t.Errorf("event (-want,+got):\n%s", diff)
	}
	hint := events[0].QueueingHintFn

	virtual := vk.Desired(keyTarget1, nil, remote.Health{Ready: true}, nil)
	noTarget := virtual.DeepCopy()
	delete(noTarget.Annotations, protocol.TargetAnnotation)
	otherProvider := virtual.DeepCopy()
	otherProvider.Labels[protocol.VirtualKubeletProviderKey] = "other"
	cases := []struct {
		name    string
		oldObj  any
		newObj  any
		want    fwk.QueueingHint
		wantErr bool
	}{
		{name: "virtual node added", newObj: virtual, want: fwk.Queue},
		{name: "virtual node updated", oldObj: noTarget, newObj: virtual, want: fwk.Queue},
		{name: "ordinary node", newObj: realNode("node-1"), want: fwk.QueueSkip},
		{name: "virtual node of another provider", newObj: otherProvider, want: fwk.QueueSkip},
		{name: "virtual node without a target", newObj: noTarget, want: fwk.QueueSkip},
		{name: "not a node", newObj: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, want: fwk.QueueSkip, wantErr: true},
		{name: "nothing", want: fwk.QueueSkip, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			got, err := hint(logger, makeProxyPod(t, "web-0"), tc.oldObj, tc.newObj)
			if (err != nil) != tc.wantErr {
				t.Errorf("error: %v, want error: %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("hint: %v, want %v", got, tc.want)
			}
		})
	}
}
