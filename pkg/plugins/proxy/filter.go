package proxy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

var virtualNodeSelector = labels.SelectorFromSet(labels.Set{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider})

// preFilterState is the snapshot of a pod's verdicts for one cycle.
type preFilterState struct {
	verdicts map[remote.Key]protocol.Verdict
	failures map[remote.Key]string
	// decided is the target the pod is committed to, if any.
	decided  *remote.Key
	requests corev1.ResourceList
}

// Clone shares the snapshot: it is never modified after PreFilter.
func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter snapshots the pod's verdicts; a pod committed to a target (an
// allowed, binding or bound chaperon, or its decision record) may only go
// there.
func (pl *Proxy) PreFilter(_ context.Context, cs fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if _, err := protocol.SourceManifest(pod); err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	s := &preFilterState{verdicts: map[remote.Key]protocol.Verdict{}, failures: map[remote.Key]string{}, requests: podRequests(pod)}
	chs := pl.store.get(pod.UID)
	for key, ch := range chs {
		s.verdicts[key] = protocol.VerdictOf(ch)
	}
	pl.mu.Lock()
	if st := pl.pods[pod.UID]; st != nil {
		for k, v := range st.failures {
			s.failures[k] = v
		}
	}
	pl.mu.Unlock()
	cs.Write(preFilterStateKey, s)
	if key, _, c := pl.decision(pod, chs); c != undecided {
		s.decided = &key
		return &fwk.PreFilterResult{NodeNames: nodeNames(pl.virtualNodes(), key)}, nil
	}
	return nil, nil
}

// PreFilterExtensions is nil: other pods do not change verdicts.
func (pl *Proxy) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

func getPreFilterState(cs fwk.CycleState) (*preFilterState, error) {
	c, err := cs.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", preFilterStateKey, err)
	}
	s, ok := c.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("%+v convert to proxy.preFilterState error", c)
	}
	return s, nil
}

// Filter passes a virtual node only if its target reserved a real node for
// the pod's candidate. It reads the PreFilter snapshot and memory only.
func (pl *Proxy) Filter(_ context.Context, cs fwk.CycleState, pod *corev1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	node := nodeInfo.Node()
	key, ok := remote.KeyOfVirtualNode(node)
	if !ok {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonNotVirtual)
	}
	s, err := getPreFilterState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	unresolvable := func(why string) *fwk.Status {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, key.String()+": "+why)
	}
	if s.decided != nil && *s.decided != key {
		return unresolvable(ErrReasonOtherChoice)
	}
	if why := pl.ineligible(pod, key, node); why != "" {
		return unresolvable(why)
	}
	v, ok := s.verdicts[key]
	if !ok {
		if why, failed := s.failures[key]; failed {
			return unresolvable(why)
		}
		return unresolvable(ErrReasonNoVerdict)
	}
	switch v.State {
	case protocol.StateReserved, protocol.StateBinding, protocol.StateBound:
		return nil
	case protocol.StateUnschedulable:
		return unresolvable(strings.TrimSuffix(v.Message, "."))
	default:
		return unresolvable(ErrReasonNoVerdict)
	}
}

// PostFilter records an Event saying, per cluster, why none can take the
// pod. It nominates nothing: there is no preemption across clusters.
func (pl *Proxy) PostFilter(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, statuses fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	msg := pl.explain(statuses)
	klog.FromContext(ctx).V(2).Info("No target for proxy pod", "pod", klog.KObj(pod), "reasons", msg)
	pl.handle.EventRecorder().Eventf(pod, nil, corev1.EventTypeWarning, EventReasonNoTarget, "Scheduling", "%s", msg)
	return nil, fwk.NewStatus(fwk.Unschedulable)
}

// explain is "0/N clusters available: <target>: <why>; ...".
func (pl *Proxy) explain(statuses fwk.NodeToStatusReader) string {
	nodes := pl.virtualNodes()
	var reasons []string
	for key, node := range nodes {
		why := key.String() + ": " + ErrReasonNotEligible
		if st := statuses.Get(node.Name); st != nil && st.Message() != "" {
			why = st.Message()
			if !strings.HasPrefix(why, key.String()+": ") {
				// A status from another plugin, or the framework's own
				// (e.g. for a node left out by PreFilter).
				why = key.String() + ": " + why
			}
		}
		reasons = append(reasons, why)
	}
	sort.Strings(reasons)
	if len(reasons) == 0 {
		return "0/0 clusters available: no virtual node (create a Target or ClusterTarget)"
	}
	return fmt.Sprintf("0/%d clusters available: %s", len(nodes), strings.Join(reasons, "; "))
}

// Score prefers the target with the most free capacity left after the
// pod, by its ClusterSummary.
func (pl *Proxy) Score(_ context.Context, cs fwk.CycleState, _ *corev1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	key, ok := remote.KeyOfVirtualNode(nodeInfo.Node())
	if !ok {
		return 0, nil
	}
	s, err := getPreFilterState(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	return pl.freeScore(key, s.requests), nil
}

// ScoreExtensions is nil: scores are already 0–100.
func (pl *Proxy) ScoreExtensions() fwk.ScoreExtensions { return nil }

// EventsToRegister: changes of virtual nodes (added, relabelled, tainted,
// ready or not) may make a proxy pod schedulable. Chaperon verdicts and
// target changes activate pods directly (Handle.Activate).
func (pl *Proxy) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{{
		Event:          fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel | fwk.UpdateNodeTaint | fwk.UpdateNodeCondition | fwk.UpdateNodeAnnotation},
		QueueingHintFn: isVirtualNodeEvent,
	}}, nil
}

func isVirtualNodeEvent(_ klog.Logger, _ *corev1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	node, ok := newObj.(*corev1.Node)
	if !ok {
		return fwk.QueueSkip, fmt.Errorf("unexpected object %T", newObj)
	}
	if _, ok := remote.KeyOfVirtualNode(node); ok {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}
