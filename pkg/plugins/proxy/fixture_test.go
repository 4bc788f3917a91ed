package proxy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedulerconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedulermetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
	"github.com/flotilla-io/flotilla/pkg/vk"
	"github.com/flotilla-io/flotilla/pkg/webhook"
)

// Timeouts of the waits on other goroutines (dispatch workers, PreBind):
// generous, since they only bound how long a failing test takes.
const (
	eventuallyTimeout    = 10 * time.Second
	pollInterval         = 5 * time.Millisecond
	consistentlyDuration = 300 * time.Millisecond
)

const (
	namespace   = "team-a"
	regionLabel = corev1.LabelTopologyRegion
	// unschedulableMessage is a candidate scheduler's reason.
	unschedulableMessage = "0/3 nodes are available: 3 Insufficient cpu."
)

var (
	keyTarget1  = remote.Key{Namespace: namespace, Name: "target-1"}
	keyCluster2 = remote.Key{Name: "cluster-2"}
	t0          = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
)

// defaultArgs are long timeouts: tests that cross one move the plugin's
// clock or shorten them.
func defaultArgs() config.ProxyArgs {
	return config.ProxyArgs{
		CandidateVerdictTimeout: metav1.Duration{Duration: time.Minute},
		DelegateBindTimeout:     metav1.Duration{Duration: time.Minute},
	}
}

// --- the fleet ---

// fakeCluster is a connected target: a controller-runtime fake client and
// no cache. What the plugin writes through GetClient reaches the plugin
// back as an informer event would (observe, observeDeleted); the
// candidate scheduler's side (the test) writes through raw and delivers
// the result with fixture.deliver.
type fakeCluster struct {
	key    remote.Key
	client client.Client
	raw    client.WithWatch

	creates         atomic.Int32
	patches         atomic.Int32
	deleteCalls     atomic.Int32
	deletes         atomic.Int32
	deleteConflicts atomic.Int32

	mu      sync.Mutex
	health  remote.Health
	summary *multiclusterv1alpha1.ClusterSummary
	// failCreate is what creating a PodChaperon returns (nil: it works).
	failCreate error
}

func (c *fakeCluster) createError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failCreate
}

// setFailCreate makes creating a PodChaperon return err from now on.
func (c *fakeCluster) setFailCreate(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failCreate = err
}

var _ remote.Cluster = &fakeCluster{}

func (c *fakeCluster) Key() remote.Key             { return c.key }
func (c *fakeCluster) GetClient() client.Client    { return c.client }
func (c *fakeCluster) GetCache() cache.Cache       { return nil }
func (c *fakeCluster) GetAPIReader() client.Reader { return c.client }
func (c *fakeCluster) GetConfig() *rest.Config     { return &rest.Config{} }

func (c *fakeCluster) Health() remote.Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

func (c *fakeCluster) Summary() *multiclusterv1alpha1.ClusterSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.summary.DeepCopy()
}

// fakeFleet serves its clusters with stable identities, as pkg/remote's
// connector does.
type fakeFleet struct {
	mu          sync.Mutex
	clusters    map[remote.Key]*fakeCluster
	subscribers []func(remote.Key)
}

var _ Fleet = &fakeFleet{}

func (f *fakeFleet) Get(key remote.Key) (remote.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clusters[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, remote.ErrClusterNotConnected)
	}
	return c, nil
}

func (f *fakeFleet) Keys() []remote.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]remote.Key, 0, len(f.clusters))
	for k := range f.clusters {
		keys = append(keys, k)
	}
	return keys
}

func (f *fakeFleet) Subscribe(fn func(remote.Key)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subscribers = append(f.subscribers, fn)
}

func (f *fakeFleet) cluster(key remote.Key) *fakeCluster {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clusters[key]
}

// --- what the plugin tells the scheduler ---

// recordedEvent is an Event the plugin recorded.
type recordedEvent struct {
	Regarding string
	Type      string
	Reason    string
	Action    string
	Note      string
}

// eventRecorder keeps the events.k8s.io events the plugin records.
type eventRecorder struct {
	mu     sync.Mutex
	events []recordedEvent
}

var _ events.EventRecorderLogger = &eventRecorder{}

func (r *eventRecorder) Eventf(regarding, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	about := fmt.Sprintf("%T", regarding)
	if pod, ok := regarding.(*corev1.Pod); ok {
		about = "Pod " + klog.KObj(pod).String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, recordedEvent{Regarding: about, Type: eventtype, Reason: reason, Action: action, Note: fmt.Sprintf(note, args...)})
}

func (r *eventRecorder) WithLogger(klog.Logger) events.EventRecorderLogger { return r }

// withReason are the events of one reason, in order.
func (r *eventRecorder) withReason(reason string) []recordedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recordedEvent
	for _, e := range r.events {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// podActivator records which pods the plugin activates, by name.
type podActivator struct {
	mu          sync.Mutex
	activations []activation
}

type activation struct {
	pod string
	at  time.Time
}

var _ fwk.PodActivator = &podActivator{}

func (a *podActivator) Activate(_ klog.Logger, pods map[string]*corev1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, pod := range pods {
		a.activations = append(a.activations, activation{pod: pod.Name, at: time.Now()})
	}
}

// count is how many times pod was activated.
func (a *podActivator) count(pod string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, act := range a.activations {
		if act.pod == pod {
			n++
		}
	}
	return n
}

// activatedSince reports whether pod was activated at or after t.
func (a *podActivator) activatedSince(pod string, t time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, act := range a.activations {
		if act.pod == pod && !act.at.Before(t) {
			return true
		}
	}
	return false
}

// --- builders ---

// targetSpec describes one target of a fixture.
type targetSpec struct {
	key     remote.Key
	region  string
	health  remote.Health
	summary *multiclusterv1alpha1.ClusterSummary
	node    func(*corev1.Node)
	// failCreate is what creating a PodChaperon in the target returns.
	failCreate error
	// disconnected: the target has a virtual node but no connection.
	disconnected bool
	// unsynced: the target is connected, but its chaperon informer has
	// not listed them yet (the store does not hold them all).
	unsynced bool
	// afterCreate runs once the plugin's Create succeeded and its result
	// was delivered, before Create returns.
	afterCreate func(f *fixture, cl *fakeCluster, obj client.Object)
}

type targetOpt func(*targetSpec)

// tgt is a ready target in region eu, with no ClusterSummary.
func tgt(key remote.Key, opts ...targetOpt) targetSpec {
	s := targetSpec{key: key, region: "eu", health: remote.Health{Ready: true, Reason: "Ready", Message: "connected", Since: t0}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func inRegion(r string) targetOpt { return func(s *targetSpec) { s.region = r } }

func notReady(reason, message string) targetOpt {
	return func(s *targetSpec) { s.health = remote.Health{Reason: reason, Message: message, Since: t0} }
}

func cordoned() targetOpt {
	return func(s *targetSpec) {
		s.node = func(n *corev1.Node) { n.Spec.Unschedulable = true }
	}
}

func tainted(t corev1.Taint) targetOpt {
	return func(s *targetSpec) {
		s.node = func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, t) }
	}
}

func failingCreate(err error) targetOpt { return func(s *targetSpec) { s.failCreate = err } }

func disconnected() targetOpt { return func(s *targetSpec) { s.disconnected = true } }

func unsynced() targetOpt { return func(s *targetSpec) { s.unsynced = true } }

func afterCreate(fn func(f *fixture, cl *fakeCluster, obj client.Object)) targetOpt {
	return func(s *targetSpec) { s.afterCreate = fn }
}

// withSummary gives the target a ClusterSummary of CPU and memory
// (allocatable and free).
func withSummary(allocCPU, freeCPU, allocMem, freeMem string) targetOpt {
	return func(s *targetSpec) {
		s.summary = &multiclusterv1alpha1.ClusterSummary{
			ObjectMeta: metav1.ObjectMeta{Name: protocol.ClusterSummaryName},
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(allocCPU), corev1.ResourceMemory: resource.MustParse(allocMem),
			},
			Free: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(freeCPU), corev1.ResourceMemory: resource.MustParse(freeMem),
			},
		}
	}
}

// virtualNode is the virtual node of a target, as pkg/vk makes it.
func virtualNode(s targetSpec) *corev1.Node {
	summary := &multiclusterv1alpha1.ClusterSummary{NodeLabels: map[string]string{regionLabel: s.region}}
	if s.summary != nil {
		summary.Allocatable = s.summary.Allocatable
		summary.Capacity = s.summary.Allocatable
	}
	n := vk.Desired(s.key, summary, s.health, nil)
	if s.node != nil {
		s.node(n)
	}
	return n
}

// realNode is an ordinary node of the source cluster.
func realNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{regionLabel: "eu", corev1.LabelHostname: name}}}
}

// euOnly is the cluster-level constraint of the test pods: required
// affinity for virtual nodes in region eu.
const euOnly = `{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"topology.kubernetes.io/region","operator":"In","values":["eu"]}]}]}}}}`

type podOpt func(*corev1.Pod)

// makeProxyPod is an elected pod turned into a proxy pod by the webhook;
// it requests 1 CPU and 1Gi, wants SSD nodes in the target and virtual
// nodes in region eu. It has not got the webhook's finalizer (see
// finalized), like a pod that named admiralty-proxy itself.
func makeProxyPod(t *testing.T, name string, opts ...podOpt) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name, UID: types.UID(name + "-uid"),
			Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{
				protocol.ElectAnnotation:                         "",
				protocol.ProxyPodSchedulingConstraintsAnnotation: euOnly,
				"team": "a",
			},
		},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"disktype": "ssd"},
			Containers: []corev1.Container{{
				Name: "web", Image: "nginx",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi"),
				}},
			}},
		},
	}
	for _, o := range opts {
		o(pod)
	}
	if err := webhook.MutateToProxy(pod); err != nil {
		t.Fatalf("MutateToProxy: %v", err)
	}
	pod.Finalizers = nil
	return pod
}

// finalized is pod with the proxy pod finalizer.
func finalized(pod *corev1.Pod) *corev1.Pod {
	pod = pod.DeepCopy()
	pod.Finalizers = []string{protocol.ProxyPodFinalizer}
	return pod
}

// --- chaperon states, as the targets write them ---

type chaperonOpt func(*multiclusterv1alpha1.PodChaperon)

func reserved(attempt int64, node string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) {
		ch.Annotations[protocol.ReservationAnnotation] = protocol.ReservationMark(attempt, node)
	}
}

// released: the candidate gave up reservation attempt.
func released(attempt int64) chaperonOpt { return reserved(attempt, "") }

func unschedulable(message string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) {
		setScheduled(ch, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: message})
	}
}

// allowed is the proxy's mark, as PreBind writes it.
func allowed(attempt int64) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) {
		ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(types.UID(ch.Labels[protocol.ProxyPodUIDLabel]), attempt)
	}
}

func binding(attempt int64, node string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) {
		ch.Annotations[protocol.BindingAnnotation] = protocol.BindingMark(attempt, node)
	}
}

func bound(attempt int64, node string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) {
		binding(attempt, node)(ch)
		ch.Spec.NodeName = node
		setScheduled(ch, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
	}
}

func annotated(k, v string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) { ch.Annotations[k] = v }
}

func setScheduled(ch *multiclusterv1alpha1.PodChaperon, c corev1.PodCondition) {
	for i := range ch.Status.Conditions {
		if ch.Status.Conditions[i].Type == c.Type {
			ch.Status.Conditions[i] = c
			return
		}
	}
	ch.Status.Conditions = append(ch.Status.Conditions, c)
}

// --- the fixture ---

// fixture is a scheduler framework (PrioritySort, Proxy, DefaultBinder)
// on a fake source cluster and a fleet of fake targets.
type fixture struct {
	t         *testing.T
	ctx       context.Context
	pl        *Proxy
	fw        framework.Framework
	cs        *k8sfake.Clientset
	fleet     *fakeFleet
	events    *eventRecorder
	activator *podActivator
	clock     *clocktesting.FakeClock
	snapshot  *internalcache.Snapshot
	nodes     map[remote.Key]*corev1.Node
}

// newFixture builds the framework with the Proxy plugin from NewFactory;
// the source has the targets' virtual nodes, one real node (node-1) and
// pods. The plugin's clock is f.clock.
func newFixture(t *testing.T, args config.ProxyArgs, targets []targetSpec, pods ...*corev1.Pod) *fixture {
	t.Helper()
	schedulermetrics.Register() // the framework's instrumented plugins need them
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	f := &fixture{
		t: t, ctx: ctx,
		fleet:     &fakeFleet{clusters: map[remote.Key]*fakeCluster{}},
		events:    &eventRecorder{},
		activator: &podActivator{},
		clock:     clocktesting.NewFakeClock(t0),
		nodes:     map[remote.Key]*corev1.Node{},
	}
	nodes := []*corev1.Node{realNode("node-1")}
	for _, s := range targets {
		n := virtualNode(s)
		f.nodes[s.key] = n
		nodes = append(nodes, n)
		if !s.disconnected {
			f.fleet.clusters[s.key] = f.newCluster(s)
		}
	}
	objs := []runtime.Object{kubeSystem()}
	for _, n := range nodes {
		objs = append(objs, n)
	}
	for _, p := range pods {
		objs = append(objs, p)
	}
	f.cs = k8sfake.NewClientset(objs...)
	informerFactory := informers.NewSharedInformerFactory(f.cs, 0)
	f.snapshot = internalcache.NewSnapshot(nil, nodes)

	factory := NewFactory(func(context.Context, fwk.Handle) (Fleet, error) { return f.fleet, nil })
	registry := frameworkruntime.Registry{
		queuesort.Name:     queuesort.New,
		defaultbinder.Name: defaultbinder.New,
		Name: func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
			p, err := factory(ctx, obj, h)
			if err == nil {
				f.pl = p.(*Proxy)
			}
			return p, err
		},
	}
	profile := &schedulerconfig.KubeSchedulerProfile{
		SchedulerName: protocol.ProxySchedulerName,
		Plugins: &schedulerconfig.Plugins{MultiPoint: schedulerconfig.PluginSet{Enabled: []schedulerconfig.Plugin{
			{Name: Name, Weight: 1}, {Name: queuesort.Name}, {Name: defaultbinder.Name},
		}}},
		PluginConfig: []schedulerconfig.PluginConfig{{Name: Name, Args: &args}},
	}
	fw, err := frameworkruntime.NewFramework(ctx, registry, profile,
		frameworkruntime.WithClientSet(f.cs),
		frameworkruntime.WithInformerFactory(informerFactory),
		frameworkruntime.WithEventRecorder(f.events),
		frameworkruntime.WithPodActivator(f.activator),
		frameworkruntime.WithSnapshotSharedLister(f.snapshot),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
		frameworkruntime.WithPodsInPreBind(frameworkruntime.NewPodsInPreBindMap()),
	)
	if err != nil {
		cancel()
		t.Fatalf("NewFramework: %v", err)
	}
	f.fw = fw
	// Before any pod reaches the plugin, hence before its workers run.
	f.pl.now = f.clock.Now
	// A fake connection has no informer: its store is complete (what the
	// test delivers) unless the target says otherwise.
	f.pl.mu.Lock()
	for _, s := range targets {
		if !s.disconnected && !s.unsynced {
			f.pl.synced[s.key] = func() bool { return true }
		}
	}
	f.pl.mu.Unlock()
	informerFactory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		informerFactory.Shutdown()
		f.pl.mu.Lock()
		defer f.pl.mu.Unlock()
		for _, st := range f.pl.pods {
			if st.timer != nil {
				st.timer.Stop()
			}
		}
	})
	for typ, ok := range informerFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer of %v did not sync", typ)
		}
	}
	return f
}

func (f *fixture) newCluster(s targetSpec) *fakeCluster {
	raw := fake.NewClientBuilder().WithScheme(protocol.Scheme).WithStatusSubresource(&multiclusterv1alpha1.PodChaperon{}).Build()
	cl := &fakeCluster{key: s.key, raw: raw, health: s.health, summary: s.summary, failCreate: s.failCreate}
	cl.client = interceptor.NewClient(raw, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			cl.creates.Add(1)
			if err := cl.createError(); err != nil {
				return err
			}
			if obj.GetUID() == "" {
				obj.SetUID(types.UID(s.key.String() + "/" + obj.GetName()))
			}
			if err := c.Create(ctx, obj, opts...); err != nil {
				return err
			}
			f.deliverObject(cl, obj)
			if s.afterCreate != nil {
				s.afterCreate(f, cl, obj)
			}
			return nil
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := c.Update(ctx, obj, opts...); err != nil {
				return err
			}
			f.deliverObject(cl, obj)
			return nil
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			cl.patches.Add(1)
			if err := c.Patch(ctx, obj, patch, opts...); err != nil {
				return err
			}
			f.deliverObject(cl, obj)
			return nil
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			cl.deleteCalls.Add(1)
			last := &multiclusterv1alpha1.PodChaperon{}
			getErr := c.Get(ctx, client.ObjectKeyFromObject(obj), last)
			err := c.Delete(ctx, obj, opts...)
			if apierrors.IsConflict(err) {
				cl.deleteConflicts.Add(1)
			}
			if err != nil {
				return err
			}
			cl.deletes.Add(1)
			if _, ok := obj.(*multiclusterv1alpha1.PodChaperon); ok && getErr == nil {
				f.pl.observeDeleted(cl.key, cl, last)
			}
			return nil
		},
	})
	return cl
}

// deliverObject hands a chaperon that was just written, as the write
// returned it, to the plugin, as the target's informer would.
func (f *fixture) deliverObject(cl *fakeCluster, obj client.Object) {
	if ch, ok := obj.(*multiclusterv1alpha1.PodChaperon); ok {
		f.pl.observe(cl.key, cl, ch.DeepCopy())
	}
}

// setHealth changes a target's health and tells the plugin, as the
// connector does when a probe finds a change.
func (f *fixture) setHealth(key remote.Key, h remote.Health) {
	cl := f.cluster(key)
	cl.mu.Lock()
	cl.health = h
	cl.mu.Unlock()
	f.fleet.mu.Lock()
	subs := slices.Clone(f.fleet.subscribers)
	f.fleet.mu.Unlock()
	for _, fn := range subs {
		fn(key)
	}
}

func (f *fixture) cluster(key remote.Key) *fakeCluster {
	f.t.Helper()
	cl := f.fleet.cluster(key)
	if cl == nil {
		f.t.Fatalf("no target %s", key)
	}
	return cl
}

// getChaperon reads pod's chaperon in a target (nil if there is none).
func (f *fixture) getChaperon(key remote.Key, pod *corev1.Pod) *multiclusterv1alpha1.PodChaperon {
	f.t.Helper()
	ch := &multiclusterv1alpha1.PodChaperon{}
	err := f.cluster(key).raw.Get(context.Background(), client.ObjectKey{Namespace: pod.Namespace, Name: protocol.ChaperonName(pod)}, ch)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		f.t.Fatalf("reading the chaperon in %s: %v", key, err)
	}
	return ch
}

// chaperonKeys lists the targets where pod has a chaperon, sorted.
func (f *fixture) chaperonKeys(pod *corev1.Pod) []string {
	var out []string
	for _, key := range f.fleet.Keys() {
		ch := &multiclusterv1alpha1.PodChaperon{}
		err := f.fleet.cluster(key).raw.Get(context.Background(), client.ObjectKey{Namespace: pod.Namespace, Name: protocol.ChaperonName(pod)}, ch)
		if err == nil {
			out = append(out, key.String())
		}
	}
	sort.Strings(out)
	return out
}

// putChaperon creates pod's chaperon in a target as the plugin would,
// then as the target changed it, and delivers it.
func (f *fixture) putChaperon(key remote.Key, pod *corev1.Pod, opts ...chaperonOpt) *multiclusterv1alpha1.PodChaperon {
	f.t.Helper()
	ch, err := protocol.NewChaperon(pod)
	if err != nil {
		f.t.Fatalf("NewChaperon: %v", err)
	}
	ch.UID = types.UID(key.String() + "/" + ch.Name)
	if err := f.cluster(key).raw.Create(context.Background(), ch); err != nil {
		f.t.Fatalf("creating the chaperon in %s: %v", key, err)
	}
	return f.updateChaperon(key, pod, opts...)
}

// updateChaperon changes pod's chaperon in a target, as the target does
// (annotations, then status), and delivers the result once.
func (f *fixture) updateChaperon(key remote.Key, pod *corev1.Pod, opts ...chaperonOpt) *multiclusterv1alpha1.PodChaperon {
	f.t.Helper()
	f.updateChaperonSilently(key, pod, opts...)
	return f.deliver(key, pod)
}

// updateChaperonSilently changes pod's chaperon in a target without
// telling the plugin (its informer has not seen the change yet).
func (f *fixture) updateChaperonSilently(key remote.Key, pod *corev1.Pod, opts ...chaperonOpt) {
	f.t.Helper()
	c := f.cluster(key).raw
	cur := f.getChaperon(key, pod)
	if cur == nil {
		f.t.Fatalf("no chaperon in %s", key)
	}
	want := cur.DeepCopy()
	if want.Annotations == nil {
		want.Annotations = map[string]string{}
	}
	for _, o := range opts {
		o(want)
	}
	if !apiequality.Semantic.DeepEqual(cur.ObjectMeta, want.ObjectMeta) || !apiequality.Semantic.DeepEqual(cur.Spec, want.Spec) {
		upd := want.DeepCopy()
		if err := c.Update(context.Background(), upd); err != nil {
			f.t.Fatalf("updating the chaperon in %s: %v", key, err)
		}
		want.ResourceVersion = upd.ResourceVersion
	}
	if !apiequality.Semantic.DeepEqual(cur.Status, want.Status) {
		if err := c.Status().Update(context.Background(), want); err != nil {
			f.t.Fatalf("updating the chaperon's status in %s: %v", key, err)
		}
	}
}

// deliver hands pod's chaperon in a target to the plugin as the target's
// informer does.
func (f *fixture) deliver(key remote.Key, pod *corev1.Pod) *multiclusterv1alpha1.PodChaperon {
	f.t.Helper()
	ch := f.getChaperon(key, pod)
	if ch == nil {
		f.t.Fatalf("no chaperon in %s", key)
	}
	f.pl.observe(key, f.cluster(key), ch)
	return ch
}

// deleteChaperonSilently deletes pod's chaperon in a target (e.g. by
// another actor) without telling the plugin; it returns the last version.
func (f *fixture) deleteChaperonSilently(key remote.Key, pod *corev1.Pod) *multiclusterv1alpha1.PodChaperon {
	f.t.Helper()
	ch := f.getChaperon(key, pod)
	if err := f.cluster(key).raw.Delete(context.Background(), ch); err != nil {
		f.t.Fatalf("deleting the chaperon in %s: %v", key, err)
	}
	return ch
}

// storeKeys lists the targets where the plugin knows a chaperon of pod,
// sorted.
func (f *fixture) storeKeys(pod *corev1.Pod) []string {
	var out []string
	for k := range f.pl.store.get(pod.UID) {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

// sendCandidates runs PreEnqueue once, as for a new pod, and waits until
// the dispatch workers have created its candidates in created and recorded
// failed failures. It does not run PreEnqueue again, which could start
// another dispatch that races with the test.
func (f *fixture) sendCandidates(pod *corev1.Pod, created []string, failed int) {
	f.t.Helper()
	if s := f.preEnqueue(pod); !strings.HasPrefix(s.Message(), sendingPrefix) {
		f.t.Fatalf("PreEnqueue: %v, want %s...", s, sendingPrefix)
	}
	g := gomega.NewWithT(f.t)
	g.Eventually(func() []string { return f.storeKeys(pod) }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(gomega.Equal(created), "candidates known to the plugin")
	g.Eventually(func() []recordedEvent { return f.events.withReason(EventReasonDispatchFailed) }).
		WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(gomega.HaveLen(failed), "dispatch failures")
}

// preEnqueue runs the profile's PreEnqueue plugins, as the scheduling
// queue does when a pod is added or activated.
func (f *fixture) preEnqueue(pod *corev1.Pod) *fwk.Status {
	for _, p := range f.fw.PreEnqueuePlugins() {
		if s := p.PreEnqueue(f.ctx, pod); !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// statusResult is what tests compare of a status.
type statusResult struct {
	Code    fwk.Code
	Message string
}

func resultOf(s *fwk.Status) statusResult {
	return statusResult{Code: s.Code(), Message: s.Message()}
}

// listResult is a status whose message is "<prefix><comma-separated
// list>" in any order, with the list sorted.
type listResult struct {
	Code   fwk.Code
	Prefix string
	Items  []string
}

func listResultOf(s *fwk.Status, prefixes ...string) listResult {
	msg := s.Message()
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			items := strings.Split(rest, ", ")
			sort.Strings(items)
			return listResult{Code: s.Code(), Prefix: p, Items: items}
		}
	}
	return listResult{Code: s.Code(), Prefix: msg}
}

const (
	sendingPrefix = "sending candidates to "
	waitingPrefix = "waiting for the verdicts of "
)

// sourceID is the fixture's source cluster ID: its kube-system UID.
const sourceID = "source-cluster-uid"

func kubeSystem() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: metav1.NamespaceSystem, UID: sourceID}}
}
