package proxy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/component-helpers/resource"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
	"github.com/flotilla-io/flotilla/pkg/apis/config/validation"
	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// Name is the plugin's name in the scheduler configuration.
const Name = "Proxy"

const preFilterStateKey = "PreFilter" + Name

// Reasons, in Filter statuses and events.
const (
	ErrReasonNotVirtual   = "node(s) are not virtual nodes of targets"
	ErrReasonNoVerdict    = "no verdict yet from the target"
	ErrReasonNotConnected = "not connected"
	ErrReasonNotEligible  = "not eligible for this pod"
	ErrReasonOtherChoice  = "the pod is committed to another target"

	// EventReasonNoTarget is the reason of the Event listing, per cluster,
	// why no target can take the pod.
	EventReasonNoTarget = "NoTargetAvailable"
	// EventReasonDelegated is the reason of the Event saying where the pod runs.
	EventReasonDelegated = "Delegated"
	// EventReasonWaitingForTarget is the reason of the Event saying that
	// the pod waits for the target it was committed to, which is not
	// connected or not listed yet.
	EventReasonWaitingForTarget = "WaitingForChosenTarget"
)

// Fleet is the plugin's view of the targets: pkg/remote's connections
// (kept by the target controller) and their changes.
type Fleet interface {
	Get(remote.Key) (remote.Cluster, error)
	Keys() []remote.Key
	// Subscribe registers f, called from any goroutine when a target is
	// connected or disconnected, or its health or ClusterSummary changes.
	Subscribe(f func(remote.Key))
}

// FleetStarter returns the fleet, started once per process, with the
// scheduler's client configuration.
type FleetStarter func(ctx context.Context, h fwk.Handle) (Fleet, error)

// Proxy is the proxy plugin.
type Proxy struct {
	// sourceID is this cluster's ID, which labels the chaperons it makes.
	sourceID string
	handle   fwk.Handle
	args     config.ProxyArgs
	fleet    Fleet
	nodes    corelisters.NodeLister
	store    *store
	queue    workqueue.TypedRateLimitingInterface[types.UID]
	now      func() time.Time

	mu sync.Mutex
	// pods are the proxy pods waiting to be scheduled, by UID.
	pods map[types.UID]*podState
	// watched is the connection whose chaperon informer feeds the store,
	// by target.
	watched map[remote.Key]remote.Cluster
	// summaries are the free capacities last seen, by target, to requeue
	// pods when a target gains room.
	free map[remote.Key]corev1.ResourceList
	// synced tells whether a target's chaperon informer has synced.
	synced map[remote.Key]func() bool
	// ready is each target's readiness last seen.
	ready map[remote.Key]bool
}

// podState is what the plugin remembers of a pending proxy pod.
type podState struct {
	pod *corev1.Pod
	// roundStart is when the latest fan-out began; verdicts are awaited
	// until roundStart + candidateVerdictTimeout.
	roundStart time.Time
	timer      *time.Timer
	// verdictsRecorded is set once the round's verdict latency is observed.
	verdictsRecorded bool
	// failures are targets where the candidate could not be created, and why.
	failures map[remote.Key]string
	// heldOff are targets where the pod cannot start (see cannotStart),
	// not sent a candidate again before the time given.
	heldOff map[remote.Key]time.Time
	// waitingFor is the chosen target the pod was last said to wait for
	// (one Event per wait).
	waitingFor remote.Key
}

// forgetFailure forgets the failure to create the pod's candidate in key,
// unless the pod cannot start there (held off until then).
func (st *podState) forgetFailure(key remote.Key, now time.Time) {
	if !now.Before(st.heldOff[key]) {
		delete(st.failures, key)
	}
}

var (
	_ fwk.PreEnqueuePlugin  = &Proxy{}
	_ fwk.PreFilterPlugin   = &Proxy{}
	_ fwk.FilterPlugin      = &Proxy{}
	_ fwk.PostFilterPlugin  = &Proxy{}
	_ fwk.ScorePlugin       = &Proxy{}
	_ fwk.ReservePlugin     = &Proxy{}
	_ fwk.PreBindPlugin     = &Proxy{}
	_ fwk.PostBindPlugin    = &Proxy{}
	_ fwk.EnqueueExtensions = &Proxy{}
)

// NewFactory returns the plugin's factory; start gives it the fleet.
// (kube-scheduler's PluginFactory has no room for other dependencies.)
func NewFactory(start FleetStarter) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		args, ok := obj.(*config.ProxyArgs)
		if !ok || args == nil {
			return nil, fmt.Errorf("want args of type ProxyArgs, got %T", obj)
		}
		if err := validation.ValidateProxyArgs(nil, args); err != nil {
			return nil, err
		}
		fleet, err := start(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("starting the connections to targets: %w", err)
		}
		return New(ctx, args, h, fleet)
	}
}

// New builds the plugin on a fleet and starts its dispatch workers, which
// stop with ctx.
func New(ctx context.Context, args *config.ProxyArgs, h fwk.Handle, fleet Fleet) (*Proxy, error) {
	registerMetrics()
	sourceID, err := protocol.ClusterID(ctx, h.ClientSet())
	if err != nil {
		return nil, err
	}
	pl := &Proxy{
		sourceID: sourceID,
		handle:   h,
		args:     *args,
		fleet:    fleet,
		nodes:    h.SharedInformerFactory().Core().V1().Nodes().Lister(),
		store:    newStore(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.UID](100*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "flotilla-proxy-dispatch"}),
		now:     time.Now,
		pods:    map[types.UID]*podState{},
		watched: map[remote.Key]remote.Cluster{},
		free:    map[remote.Key]corev1.ResourceList{},
		synced:  map[remote.Key]func() bool{},
		ready:   map[remote.Key]bool{},
	}
	if _, err := h.SharedInformerFactory().Core().V1().Pods().Informer().AddEventHandler(podHandler(pl)); err != nil {
		return nil, fmt.Errorf("watching pods: %w", err)
	}
	fleet.Subscribe(func(key remote.Key) { pl.targetChanged(ctx, key) })
	for _, key := range fleet.Keys() {
		pl.targetChanged(ctx, key)
	}
	for range dispatchWorkers {
		go pl.runDispatch(ctx)
	}
	go func() {
		<-ctx.Done()
		pl.queue.ShutDown()
	}()
	return pl, nil
}

// Name returns the plugin's name.
func (pl *Proxy) Name() string { return Name }

// isProxy tells proxy pods from others (the profile only schedules
// proxies; this guards pods handed to it by mistake).
func isProxy(pod *corev1.Pod) bool {
	return pod.Spec.SchedulerName == protocol.ProxySchedulerName
}

// PreEnqueue gates a proxy pod until its candidates have verdicts. It only
// reads memory; dispatching happens in workers.
func (pl *Proxy) PreEnqueue(ctx context.Context, pod *corev1.Pod) *fwk.Status {
	if !isProxy(pod) {
		return nil
	}
	if len(pod.Spec.SchedulingGates) > 0 {
		// The SchedulingGates plugin holds the pod; candidates sent now
		// would reserve room in the targets for a pod that may wait long.
		return nil
	}
	now := pl.now()
	pl.mu.Lock()
	st := pl.pods[pod.UID]
	if st == nil {
		st = &podState{failures: map[remote.Key]string{}}
		pl.pods[pod.UID] = st
	}
	st.pod = pod
	pl.mu.Unlock()

	chs := pl.store.get(pod.UID)
	switch key, ch, c := pl.decision(pod, chs); c {
	case chosenUnseen:
		msg := fmt.Sprintf("waiting to see the candidates in %s, the chosen target (not connected, or not listed yet)", key)
		pl.mu.Lock()
		first := st.waitingFor != key
		st.waitingFor = key
		pl.mu.Unlock()
		if first {
			// The pod may already be bound there: it waits rather than risk
			// running twice. Say so where users look.
			pl.handle.EventRecorder().Eventf(pod, nil, corev1.EventTypeWarning, EventReasonWaitingForTarget, "Scheduling",
				"Committed to %s (annotation %s), which is not connected or not listed yet: the pod waits for it, "+
					"since its delegate may already run there; deleting the pod releases it", key, protocol.DecisionAnnotation)
		}
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
	case chosen:
		switch protocol.VerdictOf(ch).State {
		case protocol.StateReserved, protocol.StateBinding, protocol.StateBound:
			return nil
		case protocol.StateUnschedulable:
			// The chosen candidate lost its room: the workers revoke the
			// choice (or learn that it is binding after all).
			pl.queue.Add(pod.UID)
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("withdrawing the choice of %s, which can no longer fit the pod", key))
		default:
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("waiting for %s, the chosen target, to reserve a node", key))
		}
	}

	targets := pl.eligible(pod, chs)
	if len(targets) == 0 {
		// Let the scheduling cycle fail, so that Filter explains why.
		return nil
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var missing, waiting []string
	for _, t := range targets {
		ch, ok := chs[t.key]
		_, failed := st.failures[t.key]
		switch {
		case !ok && !failed:
			missing = append(missing, t.key.String())
		case ok && protocol.VerdictOf(ch).State == protocol.StatePending:
			waiting = append(waiting, t.key.String())
		}
	}
	if len(missing) > 0 {
		if st.roundStart.IsZero() || len(missing) == len(targets) {
			pl.startRoundLocked(pod.UID, st, now)
		}
		pl.queue.Add(pod.UID)
		slices.Sort(missing)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "sending candidates to "+strings.Join(missing, ", "))
	}
	if len(waiting) > 0 && st.roundStart.IsZero() {
		// Candidates that exist already (adopted after a restart) are
		// awaited like new ones.
		pl.startRoundLocked(pod.UID, st, now)
	}
	deadline := st.roundStart.Add(pl.args.CandidateVerdictTimeout.Duration)
	if len(waiting) > 0 && now.Before(deadline) {
		slices.Sort(waiting)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "waiting for the verdicts of "+strings.Join(waiting, ", "))
	}
	if !st.verdictsRecorded && !st.roundStart.IsZero() {
		st.verdictsRecorded = true
		verdictDuration.Observe(now.Sub(st.roundStart).Seconds())
	}
	return nil
}

// startRoundLocked starts a fan-out round: verdicts are awaited until the
// timeout, when a timer brings the pod back.
func (pl *Proxy) startRoundLocked(uid types.UID, st *podState, now time.Time) {
	st.roundStart = now
	st.verdictsRecorded = false
	if st.timer != nil {
		st.timer.Stop()
	}
	st.timer = time.AfterFunc(pl.args.CandidateVerdictTimeout.Duration, func() { pl.activate(uid) })
}

// activate brings a pending proxy pod back to PreEnqueue.
func (pl *Proxy) activate(uids ...types.UID) {
	pods := map[string]*corev1.Pod{}
	pl.mu.Lock()
	for _, uid := range uids {
		if st := pl.pods[uid]; st != nil && st.pod != nil {
			pods[string(uid)] = st.pod
		}
	}
	pl.mu.Unlock()
	if len(pods) > 0 {
		pl.handle.Activate(klog.Background(), pods)
	}
}

// forget drops a pod that was bound or deleted.
func (pl *Proxy) forget(uid types.UID) {
	pl.mu.Lock()
	if st := pl.pods[uid]; st != nil && st.timer != nil {
		st.timer.Stop()
	}
	delete(pl.pods, uid)
	pl.mu.Unlock()
	pl.store.release(uid)
}

// target is a target that a pod may be sent to.
type target struct {
	key  remote.Key
	node *corev1.Node
}

// virtualNodes lists the virtual nodes by target.
func (pl *Proxy) virtualNodes() map[remote.Key]*corev1.Node {
	nodes, err := pl.nodes.List(virtualNodeSelector)
	if err != nil {
		return nil
	}
	out := map[remote.Key]*corev1.Node{}
	for _, n := range nodes {
		if key, ok := remote.KeyOfVirtualNode(n); ok {
			out[key] = n
		}
	}
	return out
}

// eligible lists the targets a pod's candidates go to: connected and
// ready, open to the pod's namespace, whose virtual node passes the pod's
// cluster-level constraints (node selector, required affinity, taints);
// at most maxTargets of them, those that already have a candidate and then
// those with the most free capacity first.
func (pl *Proxy) eligible(pod *corev1.Pod, chs map[remote.Key]*multiclusterv1alpha1.PodChaperon) []target {
	var out []target
	for key, node := range pl.virtualNodes() {
		if pl.ineligible(pod, key, node) != "" {
			continue
		}
		out = append(out, target{key: key, node: node})
	}
	if max := int(pl.args.MaxTargets); max > 0 && len(out) > max {
		reqs := podRequests(pod)
		score := func(t target) int64 {
			if _, ok := chs[t.key]; ok {
				return 1 << 20
			}
			return pl.freeScore(t.key, reqs)
		}
		sort.SliceStable(out, func(i, j int) bool { return score(out[i]) > score(out[j]) })
		out = out[:max]
	}
	return out
}

// ineligible says why a target is out of the question for a pod ("" if it is not).
func (pl *Proxy) ineligible(pod *corev1.Pod, key remote.Key, node *corev1.Node) string {
	if key.Namespace != "" && key.Namespace != pod.Namespace {
		return fmt.Sprintf("target %s serves namespace %s only", key, key.Namespace)
	}
	cl, err := pl.fleet.Get(key)
	if err != nil {
		return ErrReasonNotConnected
	}
	if h := cl.Health(); !h.Ready {
		return fmt.Sprintf("not ready (%s: %s)", h.Reason, h.Message)
	}
	if node.Spec.Unschedulable {
		return "virtual node cordoned"
	}
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		return "virtual node does not match the pod's cluster-level node selector/affinity"
	}
	if taint, ok := untolerated(pod, node); ok {
		return fmt.Sprintf("virtual node has a taint the pod does not tolerate: %s", taint.ToString())
	}
	return ""
}

// untolerated finds a NoSchedule/NoExecute taint of a virtual node that the
// pod does not tolerate; Flotilla's own taint is tolerated implicitly (it
// keeps other schedulers away; a pod sent to admiralty-proxy wants it).
func untolerated(pod *corev1.Pod, node *corev1.Node) (corev1.Taint, bool) {
	return v1helper.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		if t.Key == protocol.VirtualKubeletProviderKey && t.Value == protocol.VirtualKubeletProvider {
			return false
		}
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, false)
}

// podRequests are the resources the delegate asks for.
func podRequests(pod *corev1.Pod) corev1.ResourceList {
	manifest, err := protocol.SourceManifest(pod)
	if err != nil {
		manifest = pod
	}
	return resource.PodRequests(manifest, resource.PodResourcesOptions{})
}

// freeScore (0–100) is how much of the target's allocatable CPU and memory
// stays free once the pod runs there, by its ClusterSummary.
func (pl *Proxy) freeScore(key remote.Key, reqs corev1.ResourceList) int64 {
	cl, err := pl.fleet.Get(key)
	if err != nil {
		return 0
	}
	s := cl.Summary()
	if s == nil {
		return 0
	}
	var total float64
	names := []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}
	for _, name := range names {
		alloc := s.Allocatable[name]
		if alloc.IsZero() {
			continue
		}
		free := s.Free[name]
		req := reqs[name]
		left := float64(free.MilliValue()-req.MilliValue()) / float64(alloc.MilliValue())
		total += min(max(left, 0), 1)
	}
	return int64(total / float64(len(names)) * float64(fwk.MaxScore))
}

// nodeNames of the given targets' virtual nodes.
func nodeNames(nodes map[remote.Key]*corev1.Node, keys ...remote.Key) sets.Set[string] {
	out := sets.New[string]()
	for _, k := range keys {
		if n, ok := nodes[k]; ok {
			out.Insert(n.Name)
		}
	}
	return out
}
