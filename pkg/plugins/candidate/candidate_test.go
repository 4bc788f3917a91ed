package candidate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedulermetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

const (
	namespace    = "team-a"
	chaperonName = "web-0-1a2b3c4d"
	proxyUID     = types.UID("proxy-uid")
	podUID       = types.UID("candidate-uid")
	nodeA        = "node-a"
	nodeB        = "node-b"

	// eventually bounds every wait for the plugin's asynchronous work.
	eventually = 10 * time.Second
	// permitWaitTimeout is the plugin's wait in Permit, unless a test needs
	// the timeout to pass.
	permitWaitTimeout = 42 * time.Second
)

var chaperonNN = types.NamespacedName{Namespace: namespace, Name: chaperonName}

// makeChaperon is a chaperon as its source creates it, with marks (key,
// value pairs) on it.
func makeChaperon(marks ...string) *multiclusterv1alpha1.PodChaperon {
	ch := &multiclusterv1alpha1.PodChaperon{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: chaperonName, UID: "chaperon-uid",
			Labels:      map[string]string{protocol.ProxyPodUIDLabel: string(proxyUID)},
			Annotations: map[string]string{protocol.ProxyPodNameAnnotation: "web-0"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
	}
	for i := 0; i+1 < len(marks); i += 2 {
		ch.Annotations[marks[i]] = marks[i+1]
	}
	return ch
}

func reserved(attempt int64, node string) []string {
	return []string{protocol.ReservationAnnotation, protocol.ReservationMark(attempt, node)}
}

func allowed(uid types.UID, attempt int64) []string {
	return []string{protocol.AllowedAnnotation, protocol.AllowMark(uid, attempt)}
}

func committed(attempt int64, node string) []string {
	return []string{protocol.BindingAnnotation, protocol.BindingMark(attempt, node)}
}

func marks(groups ...[]string) []string { return slices.Concat(groups...) }

// followed is the source's mark that the pod's ConfigMaps and Secrets are
// in the target.
func followed() []string { return []string{protocol.FollowedAnnotation, "true"} }

// dependent makes ch's pod reference a ConfigMap (as a volume): its
// candidate may bind only once the chaperon is marked followed.
func dependent(ch *multiclusterv1alpha1.PodChaperon) *multiclusterv1alpha1.PodChaperon {
	ch.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"},
	}}}}
	ch.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}}
	return ch
}

// candidatePod is the candidate pod of makeChaperon().
func candidatePod() *corev1.Pod {
	pod := protocol.CandidatePod(makeChaperon())
	pod.UID = podUID
	return pod
}

// status is what a test compares of a *fwk.Status.
type status struct {
	Code    fwk.Code
	Reasons []string
	Plugin  string
}

func statusOf(s *fwk.Status) status {
	if s.IsSuccess() {
		return status{Code: fwk.Success}
	}
	return status{Code: s.Code(), Reasons: s.Reasons(), Plugin: s.Plugin()}
}

var success = status{Code: fwk.Success}

// waiting is RunPermitPlugins' status when the plugin waits.
var waiting = status{Code: fwk.Wait, Reasons: []string{
	"waiting for the proxy scheduler's decision", "one or more plugins asked to wait and no plugin rejected pod",
}}

// activator records the pods the plugin activates.
type activator struct {
	mu   sync.Mutex
	pods []string
}

func (a *activator) Activate(_ klog.Logger, pods map[string]*corev1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, pod := range pods {
		a.pods = append(a.pods, key+"="+klog.KObj(pod).String())
	}
}

func (a *activator) activated() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.pods)
}

// env is a scheduler framework running the Candidate plugin (and the in-tree
// queue sort and binder) over a fake API server holding chaperons.
type env struct {
	ctx context.Context
	fw  framework.Framework
	pl  *Candidate
	// api is the fake API server, as the test sees it (the plugin's client
	// goes through the interceptors of newEnv's options).
	api       client.WithWatch
	activator *activator
	// pods is the scheduler's pod informer.
	pods toolscache.Indexer

	mu     sync.Mutex
	writes []string
}

type envOptions struct {
	timeout time.Duration
	// update, if set, answers the plugin's n-th (from 1) Update.
	update func(ctx context.Context, c client.WithWatch, obj client.Object, n int) error
	// gate, if set, holds the plugin's patches until it is closed.
	gate chan struct{}
}

func newEnv(t *testing.T, opts envOptions, objs ...client.Object) *env {
	t.Helper()
	// The framework records its own metrics, as in a scheduler.
	schedulermetrics.Register()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if opts.timeout == 0 {
		opts.timeout = permitWaitTimeout
	}
	api := fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(objs...).
		WithStatusSubresource(&multiclusterv1alpha1.PodChaperon{}).Build()
	e := &env{ctx: ctx, api: api, activator: &activator{}}
	updates := 0
	c := interceptor.NewClient(api, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, popts ...client.PatchOption) error {
			data, err := patch.Data(obj)
			if err != nil {
				return err
			}
			if opts.gate != nil {
				select {
				case <-opts.gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			e.record(fmt.Sprintf("patch %s %s", obj.GetName(), data))
			return c.Patch(ctx, obj, patch, popts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, uopts ...client.UpdateOption) error {
			e.record(fmt.Sprintf("update %s %s=%s", obj.GetName(), protocol.BindingAnnotation, obj.GetAnnotations()[protocol.BindingAnnotation]))
			updates++
			if opts.update != nil {
				return opts.update(ctx, c, obj, updates)
			}
			return c.Update(ctx, obj, uopts...)
		},
	})

	cs := clientsetfake.NewClientset()
	factory := informers.NewSharedInformerFactory(cs, 0)
	e.pods = factory.Core().V1().Pods().Informer().GetIndexer()
	registry := frameworkruntime.Registry{
		queuesort.Name:     queuesort.New,
		defaultbinder.Name: defaultbinder.New,
		Name: func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
			args, ok := obj.(*config.CandidateArgs)
			if !ok {
				return nil, fmt.Errorf("want args of type CandidateArgs, got %T", obj)
			}
			e.pl = newCandidate(h, args, c, c)
			e.pl.Start(ctx)
			return e.pl, nil
		},
	}
	enabled := func(name string) schedulerapi.PluginSet {
		return schedulerapi.PluginSet{Enabled: []schedulerapi.Plugin{{Name: name}}}
	}
	profile := &schedulerapi.KubeSchedulerProfile{
		SchedulerName: protocol.CandidateSchedulerName,
		Plugins: &schedulerapi.Plugins{
			QueueSort:  enabled(queuesort.Name),
			PostFilter: enabled(Name),
			Reserve:    enabled(Name),
			Permit:     enabled(Name),
			PreBind:    enabled(Name),
			PostBind:   enabled(Name),
			Bind:       enabled(defaultbinder.Name),
		},
		PluginConfig: []schedulerapi.PluginConfig{{
			Name: Name, Args: &config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: opts.timeout}},
		}},
	}
	fw, err := frameworkruntime.NewFramework(ctx, registry, profile,
		frameworkruntime.WithClientSet(cs),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithPodActivator(e.activator),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
	)
	if err != nil {
		t.Fatalf("NewFramework: %v", err)
	}
	t.Cleanup(func() { _ = fw.Close() })
	e.fw = fw
	return e
}

func (e *env) record(w string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writes = append(e.writes, w)
}

// recorded is the plugin's writes so far.
func (e *env) recorded() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.writes)
}

// markPatch is the plugin's patch writing reservation mark.
func markPatch(mark string) string {
	return fmt.Sprintf(`patch %s {"metadata":{"annotations":{%q:%q}}}`, chaperonName, protocol.ReservationAnnotation, mark)
}

// noMarkPending reports whether the plugin neither wants nor wrote a
// reservation mark: a mark stays desired until it is written, so a mark
// asked for since the env started is seen one way or the other.
func (e *env) noMarkPending(t *testing.T) {
	t.Helper()
	e.pl.mu.Lock()
	desired := len(e.pl.desired)
	e.pl.mu.Unlock()
	if desired != 0 {
		t.Errorf("the plugin wants %d reservation marks written, want none", desired)
	}
	if got := e.recorded(); len(got) != 0 {
		t.Errorf("writes = %q, want none", got)
	}
}

// chaperon is the chaperon as the API server has it, nil if it is gone.
func (e *env) chaperon(t *testing.T) *multiclusterv1alpha1.PodChaperon {
	t.Helper()
	ch := &multiclusterv1alpha1.PodChaperon{}
	if err := e.api.Get(e.ctx, chaperonNN, ch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return ch
}

// annotation reads an annotation of the chaperon, for Eventually.
func (e *env) annotation(t *testing.T, key string) func() string {
	return func() string {
		if ch := e.chaperon(t); ch != nil {
			return ch.Annotations[key]
		}
		return "<chaperon gone>"
	}
}

// change applies f to the chaperon in the API server and tells the plugin,
// as its informer would.
func (e *env) change(t *testing.T, f func(*multiclusterv1alpha1.PodChaperon)) {
	t.Helper()
	var ch *multiclusterv1alpha1.PodChaperon
	// The plugin's mark workers write concurrently.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ch = e.chaperon(t)
		f(ch)
		return e.api.Update(e.ctx, ch)
	}); err != nil {
		t.Fatal(err)
	}
	e.pl.chaperonChanged(ch, false)
}

// remove deletes the chaperon from the API server and tells the plugin.
func (e *env) remove(t *testing.T, tombstone bool) {
	t.Helper()
	ch := e.chaperon(t)
	if err := e.api.Delete(e.ctx, ch); err != nil {
		t.Fatal(err)
	}
	var obj any = ch
	if tombstone {
		obj = toolscache.DeletedFinalStateUnknown{Key: chaperonNN.String(), Obj: ch}
	}
	e.pl.chaperonChanged(obj, true)
}

func (e *env) reserve(pod *corev1.Pod, node string) *fwk.Status {
	return e.fw.RunReservePluginsReserve(e.ctx, framework.NewCycleState(), pod, node)
}

func (e *env) unreserve(pod *corev1.Pod, node string) {
	e.fw.RunReservePluginsUnreserve(e.ctx, framework.NewCycleState(), pod, node)
}

// wait runs Permit as the scheduler does: a pod told to wait is added to
// the waiting pods, and WaitOnPermit's result comes on the channel.
func (e *env) wait(t *testing.T, pod *corev1.Pod, node string) <-chan *fwk.Status {
	t.Helper()
	waits, s := e.fw.RunPermitPlugins(e.ctx, framework.NewCycleState(), pod, node)
	if diff := cmp.Diff(waiting, statusOf(s)); diff != "" {
		t.Fatalf("RunPermitPlugins() status (-want,+got):\n%s", diff)
	}
	e.fw.AddWaitingPod(pod, waits)
	return e.waitOnPermit(pod)
}

func (e *env) waitOnPermit(pod *corev1.Pod) <-chan *fwk.Status {
	done := make(chan *fwk.Status, 1)
	go func() { done <- e.fw.WaitOnPermit(e.ctx, pod) }()
	return done
}

// result is WaitOnPermit's result.
func result(t *testing.T, done <-chan *fwk.Status) status {
	t.Helper()
	select {
	case s := <-done:
		return statusOf(s)
	case <-time.After(eventually):
		t.Fatalf("WaitOnPermit did not return within %s", eventually)
		return status{}
	}
}

// stopWaiting rejects the waiting pod in the test's name: a result with
// this status shows that nothing else ended the wait before.
func (e *env) stopWaiting(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	wp := e.fw.GetWaitingPod(pod.UID)
	if wp == nil {
		t.Fatal("the pod is not waiting in Permit any more")
	}
	wp.Reject("test", "stopped by the test")
}

var stoppedByTest = status{Code: fwk.Unschedulable, Reasons: []string{"stopped by the test"}, Plugin: "test"}

func TestNew(t *testing.T) {
	cases := []struct {
		name    string
		args    runtime.Object
		wantErr string
	}{
		{name: "args of another plugin", args: &config.ProxyArgs{}, wantErr: "want args of type CandidateArgs, got *config.ProxyArgs"},
		{name: "no args", wantErr: "want args of type CandidateArgs, got <nil>"},
		{name: "no permit wait timeout", args: &config.CandidateArgs{}, wantErr: "permitWaitTimeout: Invalid value"},
		{
			name:    "negative permit wait timeout",
			args:    &config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: -time.Second}},
			wantErr: `permitWaitTimeout: Invalid value: "-1s"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			// The handle is nil: New must reject bad args before it uses it.
			pl, err := New(ctx, tc.args, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New() error = %v, want one containing %q", err, tc.wantErr)
			}
			if pl != nil {
				t.Errorf("New() = %v, want no plugin", pl)
			}
		})
	}
}

// TestReserveMarks follows the reservation marks of a candidate that
// reserves, is unreserved, and reserves again.
func TestReserveMarks(t *testing.T) {
	cases := []struct {
		name     string
		chaperon *multiclusterv1alpha1.PodChaperon
		// wantFirst is the first attempt.
		wantFirst int64
	}{
		{name: "new chaperon", chaperon: makeChaperon(), wantFirst: 1},
		{
			name:      "attempts of an earlier scheduler continued",
			chaperon:  makeChaperon(reserved(4, nodeB)...),
			wantFirst: 5,
		},
		{
			name:      "released attempts of an earlier scheduler continued",
			chaperon:  makeChaperon(reserved(4, "")...),
			wantFirst: 5,
		},
		{
			name:      "committed attempt continued",
			chaperon:  makeChaperon(marks(reserved(2, ""), allowed(proxyUID, 6), committed(6, nodeB))...),
			wantFirst: 7,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t, envOptions{}, tc.chaperon)
			pod := candidatePod()
			mark := e.annotation(t, protocol.ReservationAnnotation)
			first, second := tc.wantFirst, tc.wantFirst+1

			if diff := cmp.Diff(success, statusOf(e.reserve(pod, nodeA))); diff != "" {
				t.Fatalf("Reserve() status (-want,+got):\n%s", diff)
			}
			g.Eventually(mark).WithTimeout(eventually).Should(Equal(protocol.ReservationMark(first, nodeA)), "reserved")

			e.unreserve(pod, nodeA)
			g.Eventually(mark).WithTimeout(eventually).Should(Equal(protocol.ReservationMark(first, "")), "released")

			if diff := cmp.Diff(success, statusOf(e.reserve(pod, nodeB))); diff != "" {
				t.Fatalf("second Reserve() status (-want,+got):\n%s", diff)
			}
			g.Eventually(mark).WithTimeout(eventually).Should(Equal(protocol.ReservationMark(second, nodeB)), "reserved again")

			e.unreserve(pod, nodeB)
			g.Eventually(mark).WithTimeout(eventually).Should(Equal(protocol.ReservationMark(second, "")), "released again")

			want := []string{
				markPatch(protocol.ReservationMark(first, nodeA)), markPatch(protocol.ReservationMark(first, "")),
				markPatch(protocol.ReservationMark(second, nodeB)), markPatch(protocol.ReservationMark(second, "")),
			}
			if diff := cmp.Diff(want, e.recorded()); diff != "" {
				t.Errorf("writes (-want,+got):\n%s", diff)
			}
			ch := e.chaperon(t)
			if diff := cmp.Diff(tc.chaperon.Annotations[protocol.BindingAnnotation], ch.Annotations[protocol.BindingAnnotation]); diff != "" {
				t.Errorf("binding mark (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestMarksOnlyGrow: a verdict read from a stale cache does not bring back
// an older attempt's mark over a newer one's.
func TestMarksOnlyGrow(t *testing.T) {
	g := NewWithT(t)
	gate := make(chan struct{})
	// An earlier scheduler left attempt 4 reserved.
	e := newEnv(t, envOptions{gate: gate}, makeChaperon(reserved(4, nodeB)...))
	pod := candidatePod()
	if s := e.reserve(pod, nodeA); !s.IsSuccess() {
		t.Fatalf("Reserve() = %v", s)
	}
	e.unreserve(pod, nodeA)
	// The marks of attempt 5 are not written yet: the chaperon still says
	// attempt 4 holds node-b when the candidate next fits no node.
	if _, s := e.fw.RunPostFilterPlugins(e.ctx, framework.NewCycleState(), pod, framework.NewDefaultNodeToStatus()); s.Code() != fwk.Unschedulable {
		t.Fatalf("RunPostFilterPlugins() = %v, want Unschedulable", s)
	}
	close(gate)
	g.Eventually(e.annotation(t, protocol.ReservationAnnotation)).WithTimeout(eventually).Should(Equal(protocol.ReservationMark(5, "")))
	if got := e.recorded(); slices.Contains(got, markPatch(protocol.ReservationMark(4, ""))) {
		t.Errorf("writes = %q, want none of attempt 4", got)
	}
}

// TestReserveNotACandidate: pods that no chaperon controls pass through
// the plugin untouched.
func TestReserveNotACandidate(t *testing.T) {
	cases := []struct {
		name string
		refs []metav1.OwnerReference
	}{
		{name: "no owner"},
		{
			name: "controlled by a ReplicaSet",
			refs: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: chaperonName, UID: "rs", Controller: ptr(true)}},
		},
		{
			name: "owned, not controlled, by a chaperon",
			refs: []metav1.OwnerReference{{APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: chaperonName, UID: "chaperon-uid"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{}, makeChaperon())
			pod := candidatePod()
			pod.OwnerReferences = tc.refs

			if diff := cmp.Diff(success, statusOf(e.reserve(pod, nodeA))); diff != "" {
				t.Errorf("Reserve() status (-want,+got):\n%s", diff)
			}
			if _, s := e.fw.RunPermitPlugins(e.ctx, framework.NewCycleState(), pod, nodeA); !s.IsSuccess() {
				t.Errorf("RunPermitPlugins() = %v, want success", s)
			}
			if s := e.fw.RunPreBindPreFlights(e.ctx, framework.NewCycleState(), pod, nodeA); s.Code() != fwk.Skip {
				t.Errorf("RunPreBindPreFlights() = %v, want Skip", s)
			}
			e.unreserve(pod, nodeA)
			e.noMarkPending(t)
			if diff := cmp.Diff(makeChaperon().Annotations, e.chaperon(t).Annotations); diff != "" {
				t.Errorf("chaperon annotations (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestReserveChaperonMissing(t *testing.T) {
	e := newEnv(t, envOptions{})
	pod := candidatePod()
	want := status{Code: fwk.UnschedulableAndUnresolvable, Reasons: []string{ErrReasonNoChaperon}, Plugin: Name}
	if diff := cmp.Diff(want, statusOf(e.reserve(pod, nodeA))); diff != "" {
		t.Errorf("Reserve() status (-want,+got):\n%s", diff)
	}
	e.noMarkPending(t)
}

func TestPermit(t *testing.T) {
	cases := []struct {
		name     string
		chaperon *multiclusterv1alpha1.PodChaperon
		// between runs between Reserve and Permit.
		between   func(t *testing.T, e *env)
		want      status
		wantWaits map[string]time.Duration
	}{
		{
			name:      "no decision: wait",
			chaperon:  makeChaperon(),
			want:      waiting,
			wantWaits: map[string]time.Duration{Name: permitWaitTimeout},
		},
		{
			name:     "already allowed, this attempt: permitted",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			want:     success,
		},
		{
			name:      "allowed an earlier attempt: wait",
			chaperon:  makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1))...),
			want:      waiting,
			wantWaits: map[string]time.Duration{Name: permitWaitTimeout},
		},
		{
			name:      "allow mark of another proxy pod: wait",
			chaperon:  makeChaperon(allowed("other-proxy-uid", 1)...),
			want:      waiting,
			wantWaits: map[string]time.Duration{Name: permitWaitTimeout},
		},
		{
			name: "allow mark on a chaperon without proxy pod UID: wait",
			chaperon: func() *multiclusterv1alpha1.PodChaperon {
				ch := makeChaperon(allowed(proxyUID, 1)...)
				delete(ch.Labels, protocol.ProxyPodUIDLabel)
				return ch
			}(),
			want:      waiting,
			wantWaits: map[string]time.Duration{Name: permitWaitTimeout},
		},
		{
			name:     "committed by an earlier attempt: permitted",
			chaperon: makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1), committed(1, nodeA))...),
			want:     success,
		},
		{
			name:     "chaperon deleted since Reserve: rejected",
			chaperon: makeChaperon(),
			between:  func(t *testing.T, e *env) { e.remove(t, false) },
			want:     status{Code: fwk.UnschedulableAndUnresolvable, Reasons: []string{ErrReasonWithdrawn}, Plugin: Name},
		},
		{
			name:      "references a ConfigMap, allowed, not followed: wait",
			chaperon:  dependent(makeChaperon(allowed(proxyUID, 1)...)),
			want:      waiting,
			wantWaits: map[string]time.Duration{Name: permitWaitTimeout},
		},
		{
			name:     "references a ConfigMap, allowed, followed: permitted",
			chaperon: dependent(makeChaperon(marks(allowed(proxyUID, 1), followed())...)),
			want:     success,
		},
		{
			name:      "references a ConfigMap, followed, not allowed: wait",
			chaperon:  dependent(makeChaperon(followed()...)),
			want:      waiting,
			wantWaits: map[string]time.Duration{Name: permitWaitTimeout},
		},
		{
			name:      "references a ConfigMap, followed, allowed an earlier attempt: wait",
			chaperon:  dependent(makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1), followed())...)),
			want:      waiting,
			wantWaits: map[string]time.Duration{Name: permitWaitTimeout},
		},
		{
			name:     "references a ConfigMap, committed by an earlier attempt, followed: permitted",
			chaperon: dependent(makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1), committed(1, nodeA), followed())...)),
			want:     success,
		},
		{
			name: "image pull secret only, allowed, not followed: wait",
			chaperon: func() *multiclusterv1alpha1.PodChaperon {
				ch := makeChaperon(allowed(proxyUID, 1)...)
				ch.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
				return ch
			}(),
			want:      waiting,
			wantWaits: map[string]time.Duration{Name: permitWaitTimeout},
		},
		{
			name:     "no references, followed mark anyway: permitted",
			chaperon: makeChaperon(marks(allowed(proxyUID, 1), followed())...),
			want:     success,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{}, tc.chaperon)
			pod := candidatePod()
			if s := e.reserve(pod, nodeA); !s.IsSuccess() {
				t.Fatalf("Reserve() = %v", s)
			}
			if tc.between != nil {
				tc.between(t, e)
			}
			waits, s := e.fw.RunPermitPlugins(e.ctx, framework.NewCycleState(), pod, nodeA)
			if diff := cmp.Diff(tc.want, statusOf(s)); diff != "" {
				t.Errorf("RunPermitPlugins() status (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantWaits, waits); diff != "" {
				t.Errorf("RunPermitPlugins() waits (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestPermitWaiting: informer events on the chaperon end a candidate's wait
// in Permit, or not.
func TestPermitWaiting(t *testing.T) {
	cases := []struct {
		name  string
		event func(t *testing.T, e *env)
		want  status
		// stillWaiting: the event leaves the candidate waiting (the test
		// then stops the wait itself, and want is stoppedByTest).
		stillWaiting bool
	}{
		{
			name: "allowed, this attempt",
			event: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 1)
				})
			},
			want: success,
		},
		{
			name: "allowed, another attempt",
			event: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 2)
				})
			},
			want:         stoppedByTest,
			stillWaiting: true,
		},
		{
			name: "allow mark of another proxy pod",
			event: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark("other-proxy-uid", 1)
				})
			},
			want:         stoppedByTest,
			stillWaiting: true,
		},
		{
			name: "another change",
			event: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) { ch.Annotations["team"] = "b" })
			},
			want:         stoppedByTest,
			stillWaiting: true,
		},
		{
			name: "another chaperon allowed",
			event: func(t *testing.T, e *env) {
				other := makeChaperon(allowed(proxyUID, 1)...)
				other.Name = "web-1-5e6f7a8b"
				e.pl.chaperonChanged(other, false)
			},
			want:         stoppedByTest,
			stillWaiting: true,
		},
		{
			name:  "released",
			event: func(t *testing.T, e *env) { e.remove(t, false) },
			want:  status{Code: fwk.Unschedulable, Reasons: []string{ErrReasonReleased}, Plugin: Name},
		},
		{
			name:  "released, seen late (tombstone)",
			event: func(t *testing.T, e *env) { e.remove(t, true) },
			want:  status{Code: fwk.Unschedulable, Reasons: []string{ErrReasonReleased}, Plugin: Name},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{}, makeChaperon())
			pod := candidatePod()
			// The pod is known to the scheduler: an activation would show.
			if err := e.pods.Add(candidatePod()); err != nil {
				t.Fatal(err)
			}
			if s := e.reserve(pod, nodeA); !s.IsSuccess() {
				t.Fatalf("Reserve() = %v", s)
			}
			done := e.wait(t, pod, nodeA)

			tc.event(t, e)
			if tc.stillWaiting {
				e.stopWaiting(t, pod)
			}
			if diff := cmp.Diff(tc.want, result(t, done)); diff != "" {
				t.Errorf("WaitOnPermit() (-want,+got):\n%s", diff)
			}
			if got := e.activator.activated(); len(got) != 0 {
				t.Errorf("activated %q, want none: the candidate was waiting", got)
			}
		})
	}
}

// TestPreEnqueue: a pod being deleted (a withdrawn candidate) stays out of
// the active queue; any other pod is let in.
func TestPreEnqueue(t *testing.T) {
	now := metav1.Now()
	deleting := candidatePod()
	deleting.DeletionTimestamp = &now
	cases := []struct {
		name string
		pod  *corev1.Pod
		want *fwk.Status
	}{
		{"candidate", candidatePod(), nil},
		{"candidate being deleted", deleting, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonDeleting)},
		{"not a candidate", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "plain"}}, nil},
	}
	pl := &Candidate{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := pl.PreEnqueue(context.Background(), tc.pod)
			if got.Code() != tc.want.Code() || got.Message() != tc.want.Message() {
				t.Errorf("PreEnqueue() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWithdrawn: only the rejection of a waiting candidate whose chaperon
// was deleted is a failure the scheduler keeps quiet about.
func TestWithdrawn(t *testing.T) {
	cases := []struct {
		name   string
		status *fwk.Status
		want   bool
	}{
		{"released while waiting", fwk.NewStatus(fwk.Unschedulable, ErrReasonReleased).WithPlugin(Name), true},
		{"no status", nil, false},
		{"wait timed out", fwk.NewStatus(fwk.Unschedulable, "rejected due to timeout after waiting 1m0s at plugin Candidate").WithPlugin(Name), false},
		{"chaperon not in the cache at Reserve", fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonNoChaperon).WithPlugin(Name), false},
		{"chaperon deleted since Reserve", fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonWithdrawn).WithPlugin(Name), true},
		{"chaperon deleted since Reserve, other code", fwk.NewStatus(fwk.Unschedulable, ErrReasonWithdrawn).WithPlugin(Name), false},
		{"allow revoked", fwk.NewStatus(fwk.Unschedulable, ErrReasonRevoked).WithPlugin(Name), false},
		{"another plugin", fwk.NewStatus(fwk.Unschedulable, ErrReasonReleased).WithPlugin("NodeResourcesFit"), false},
		{"an error", fwk.NewStatus(fwk.Error, ErrReasonReleased).WithPlugin(Name), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Withdrawn(tc.status); got != tc.want {
				t.Errorf("Withdrawn(%v) = %v, want %v", tc.status, got, tc.want)
			}
		})
	}
}

// TestPermitTimeout: a candidate that waits past permitWaitTimeout is
// rejected; its reservation is then released and it offers itself again.
func TestPermitTimeout(t *testing.T) {
	g := NewWithT(t)
	timeout := 200 * time.Millisecond
	e := newEnv(t, envOptions{timeout: timeout}, makeChaperon())
	pod := candidatePod()
	if err := e.pods.Add(candidatePod()); err != nil {
		t.Fatal(err)
	}
	if s := e.reserve(pod, nodeA); !s.IsSuccess() {
		t.Fatalf("Reserve() = %v", s)
	}
	done := e.wait(t, pod, nodeA)
	want := status{Code: fwk.Unschedulable, Reasons: []string{fmt.Sprintf("rejected due to timeout after waiting %v at plugin %s", timeout, Name)}, Plugin: Name}
	if diff := cmp.Diff(want, result(t, done)); diff != "" {
		t.Errorf("WaitOnPermit() (-want,+got):\n%s", diff)
	}

	e.unreserve(pod, nodeA)
	g.Eventually(e.annotation(t, protocol.ReservationAnnotation)).WithTimeout(eventually).
		Should(Equal(protocol.ReservationMark(1, "")), "reservation released")
	g.Eventually(e.activator.activated).WithTimeout(eventually).
		Should(Equal([]string{chaperonNN.String() + "=" + chaperonNN.String()}), "candidate activated again")
}

// TestChaperonChangedActivates: a chaperon allowed while its candidate is
// not waiting in Permit (its wait timed out, or the scheduler restarted)
// brings the candidate back to the active queue.
func TestChaperonChangedActivates(t *testing.T) {
	bound := candidatePod()
	bound.Spec.NodeName = nodeA
	cases := []struct {
		name    string
		obj     any
		deleted bool
		// pod is the candidate pod in the scheduler's informer, if any.
		pod  *corev1.Pod
		want []string
	}{
		{
			name: "allowed, reserved",
			obj:  makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1))...),
			pod:  candidatePod(),
			want: []string{chaperonNN.String() + "=" + chaperonNN.String()},
		},
		{
			name: "allowed, committed",
			obj:  makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1), committed(1, nodeA))...),
			pod:  candidatePod(),
			want: []string{chaperonNN.String() + "=" + chaperonNN.String()},
		},
		{
			name: "allowed, reservation released",
			obj:  makeChaperon(marks(reserved(1, ""), allowed(proxyUID, 1))...),
			pod:  candidatePod(),
		},
		{
			name: "reserved, not allowed",
			obj:  makeChaperon(reserved(1, nodeA)...),
			pod:  candidatePod(),
		},
		{
			name: "never reserved: an update does not bring it back",
			obj:  makeChaperon(),
			pod:  candidatePod(),
		},
		{
			name: "allowed, candidate already bound",
			obj:  makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1), committed(1, nodeA))...),
			pod:  bound,
		},
		{
			name: "allowed, candidate not known to the scheduler",
			obj:  makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1))...),
		},
		{
			name:    "deleted",
			obj:     makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1))...),
			deleted: true,
			pod:     candidatePod(),
		},
		{
			name: "not a chaperon",
			obj:  candidatePod(),
			pod:  candidatePod(),
		},
		{
			name: "references a ConfigMap, allowed, reserved, not followed",
			obj:  dependent(makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1))...)),
			pod:  candidatePod(),
		},
		{
			name: "references a ConfigMap, allowed, reserved, followed",
			obj:  dependent(makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1), followed())...)),
			pod:  candidatePod(),
			want: []string{chaperonNN.String() + "=" + chaperonNN.String()},
		},
		{
			name: "references a ConfigMap, committed, followed",
			obj:  dependent(makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1), committed(1, nodeA), followed())...)),
			pod:  candidatePod(),
			want: []string{chaperonNN.String() + "=" + chaperonNN.String()},
		},
		{
			name: "references a ConfigMap, reserved, followed, not allowed",
			obj:  dependent(makeChaperon(marks(reserved(1, nodeA), followed())...)),
			pod:  candidatePod(),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			if tc.pod != nil {
				if err := e.pods.Add(tc.pod); err != nil {
					t.Fatal(err)
				}
			}
			e.pl.chaperonChanged(tc.obj, tc.deleted)
			if diff := cmp.Diff(tc.want, e.activator.activated()); diff != "" {
				t.Errorf("activated (-want,+got):\n%s", diff)
			}
		})
	}
}

// A chaperon new to the cache brings back its candidate if it never
// reserved: it may have been rejected for want of its chaperon before the
// cache had it.
func TestChaperonAddedActivates(t *testing.T) {
	cases := []struct {
		name string
		obj  any
		pod  *corev1.Pod
		want []string
	}{
		{
			name: "never reserved",
			obj:  makeChaperon(),
			pod:  candidatePod(),
			want: []string{chaperonNN.String() + "=" + chaperonNN.String()},
		},
		{
			name: "never reserved, reported unschedulable",
			obj: func() *multiclusterv1alpha1.PodChaperon {
				ch := makeChaperon()
				ch.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}
				return ch
			}(),
			pod:  candidatePod(),
			want: []string{chaperonNN.String() + "=" + chaperonNN.String()},
		},
		{name: "reserved before", obj: makeChaperon(reserved(1, nodeA)...), pod: candidatePod()},
		{name: "candidate not known to the scheduler", obj: makeChaperon()},
		{name: "not a chaperon", obj: candidatePod(), pod: candidatePod()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			if tc.pod != nil {
				if err := e.pods.Add(tc.pod); err != nil {
					t.Fatal(err)
				}
			}
			e.pl.chaperonAdded(tc.obj)
			if diff := cmp.Diff(tc.want, e.activator.activated()); diff != "" {
				t.Errorf("activated (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestPostFilter(t *testing.T) {
	cases := []struct {
		name     string
		chaperon *multiclusterv1alpha1.PodChaperon
		// wantMark is the reservation mark written, "" for none.
		wantMark string
	}{
		{
			name:     "stale reservation released",
			chaperon: makeChaperon(reserved(3, nodeA)...),
			wantMark: protocol.ReservationMark(3, ""),
		},
		{name: "reservation already released", chaperon: makeChaperon(reserved(3, "")...)},
		{name: "no reservation", chaperon: makeChaperon()},
		{
			name:     "committed chaperon untouched",
			chaperon: makeChaperon(marks(reserved(3, nodeA), allowed(proxyUID, 3), committed(3, nodeA))...),
		},
		{name: "no chaperon"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var objs []client.Object
			if tc.chaperon != nil {
				objs = append(objs, tc.chaperon)
			}
			e := newEnv(t, envOptions{}, objs...)
			_, s := e.fw.RunPostFilterPlugins(e.ctx, framework.NewCycleState(), candidatePod(), framework.NewDefaultNodeToStatus())
			if diff := cmp.Diff(status{Code: fwk.Unschedulable, Plugin: Name}, statusOf(s)); diff != "" {
				t.Errorf("RunPostFilterPlugins() status (-want,+got):\n%s", diff)
			}
			if tc.wantMark == "" {
				e.noMarkPending(t)
				return
			}
			NewWithT(t).Eventually(e.annotation(t, protocol.ReservationAnnotation)).WithTimeout(eventually).Should(Equal(tc.wantMark))
			if diff := cmp.Diff([]string{markPatch(tc.wantMark)}, e.recorded()); diff != "" {
				t.Errorf("writes (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestPreBind: the fence. A candidate commits to bind only under an allow
// mark that is current when its conditional update lands.
func TestPreBind(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Group: multiclusterv1alpha1.GroupVersion.Group, Resource: "podchaperons"},
		chaperonName, errors.New("the object has been modified"))
	// concurrently runs f on the chaperon in the API server, then lets the
	// plugin's update through (a real conflict, if f changed anything).
	concurrently := func(f func(*multiclusterv1alpha1.PodChaperon)) func(context.Context, client.WithWatch, client.Object, int) error {
		return func(ctx context.Context, c client.WithWatch, obj client.Object, n int) error {
			if n == 1 {
				ch := &multiclusterv1alpha1.PodChaperon{}
				if err := c.Get(ctx, chaperonNN, ch); err != nil {
					return err
				}
				f(ch)
				if err := c.Update(ctx, ch); err != nil {
					return err
				}
			}
			return c.Update(ctx, obj)
		}
	}
	revoked := status{Code: fwk.Unschedulable, Reasons: []string{ErrReasonRevoked}, Plugin: Name}
	gone := status{Code: fwk.UnschedulableAndUnresolvable, Reasons: []string{ErrReasonWithdrawn}, Plugin: Name}
	notFollowed := status{Code: fwk.Unschedulable, Reasons: []string{ErrReasonNotFollowed}, Plugin: Name}
	cases := []struct {
		name     string
		chaperon *multiclusterv1alpha1.PodChaperon
		// node is the node reserved and bound to; node-a if empty.
		node string
		// attempt is the candidate's reservation attempt; 1 if 0.
		attempt int64
		// between runs between Reserve and PreBind.
		between func(t *testing.T, e *env)
		update  func(ctx context.Context, c client.WithWatch, obj client.Object, n int) error
		want    status
		// wantAnnotations are the chaperon's afterwards (nil: gone), but the
		// reservation mark (written asynchronously).
		wantAnnotations map[string]string
		wantUpdates     int
	}{
		{
			name:     "allowed: committed",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			want:     success,
			wantAnnotations: makeChaperon(marks(allowed(proxyUID, 1), committed(1, nodeA))...).
				Annotations,
			wantUpdates: 1,
		},
		{
			name:     "allowed while waiting: committed",
			chaperon: makeChaperon(),
			between: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 1)
				})
			},
			want:            success,
			wantAnnotations: makeChaperon(marks(allowed(proxyUID, 1), committed(1, nodeA))...).Annotations,
			wantUpdates:     1,
		},
		{
			name:     "allow mark gone: revoked",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			between: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) { delete(ch.Annotations, protocol.AllowedAnnotation) })
			},
			want:            revoked,
			wantAnnotations: makeChaperon().Annotations,
		},
		{
			name:     "allow mark for another attempt: revoked",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			between: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 2)
				})
			},
			want:            revoked,
			wantAnnotations: makeChaperon(allowed(proxyUID, 2)...).Annotations,
		},
		{
			name:            "allow mark of another proxy pod: revoked",
			chaperon:        makeChaperon(allowed("other-proxy-uid", 1)...),
			want:            revoked,
			wantAnnotations: makeChaperon(allowed("other-proxy-uid", 1)...).Annotations,
		},
		{
			name:     "chaperon deleted: rejected",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			between:  func(t *testing.T, e *env) { e.remove(t, false) },
			want:     gone,
		},
		{
			name:     "chaperon deleted as the update lands: rejected",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			update: func(ctx context.Context, c client.WithWatch, obj client.Object, _ int) error {
				if err := c.Delete(ctx, obj); err != nil {
					return err
				}
				return c.Update(ctx, obj)
			},
			want:        gone,
			wantUpdates: 1,
		},
		{
			name:     "conflict with another change: retried, committed",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			update: concurrently(func(ch *multiclusterv1alpha1.PodChaperon) {
				ch.Annotations["team"] = "b"
			}),
			want: success,
			wantAnnotations: makeChaperon(marks(allowed(proxyUID, 1), committed(1, nodeA), []string{"team", "b"})...).
				Annotations,
			wantUpdates: 2,
		},
		{
			name:     "conflict with a revocation: revoked, not committed",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			update: concurrently(func(ch *multiclusterv1alpha1.PodChaperon) {
				delete(ch.Annotations, protocol.AllowedAnnotation)
			}),
			want:            revoked,
			wantAnnotations: makeChaperon().Annotations,
			wantUpdates:     1,
		},
		{
			name:     "conflicts without end: error",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			update: func(context.Context, client.WithWatch, client.Object, int) error {
				return conflict
			},
			want: status{Code: fwk.Error, Reasons: []string{
				fmt.Sprintf(`running PreBind plugin "Candidate": PodChaperon %s kept changing while committing to bind`, chaperonNN),
			}},
			wantAnnotations: makeChaperon(allowed(proxyUID, 1)...).Annotations,
			wantUpdates:     10,
		},
		{
			name:     "already committed by this attempt (an update whose answer was lost): nothing to write",
			chaperon: makeChaperon(allowed(proxyUID, 1)...),
			between: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.BindingAnnotation] = protocol.BindingMark(1, nodeA)
				})
			},
			want:            success,
			wantAnnotations: makeChaperon(marks(allowed(proxyUID, 1), committed(1, nodeA))...).Annotations,
		},
		{
			name:     "committed by an earlier attempt: a later attempt commits again",
			chaperon: makeChaperon(marks(reserved(1, nodeA), allowed(proxyUID, 1), committed(1, nodeA))...),
			node:     nodeB,
			attempt:  2,
			want:     success,
			wantAnnotations: makeChaperon(marks(allowed(proxyUID, 1), committed(2, nodeB))...).
				Annotations,
			wantUpdates: 1,
		},
		{
			name:            "references a ConfigMap, allowed, not followed: not committed",
			chaperon:        dependent(makeChaperon(allowed(proxyUID, 1)...)),
			want:            notFollowed,
			wantAnnotations: makeChaperon(allowed(proxyUID, 1)...).Annotations,
		},
		{
			name:            "references a ConfigMap, allowed, followed: committed",
			chaperon:        dependent(makeChaperon(marks(allowed(proxyUID, 1), followed())...)),
			want:            success,
			wantAnnotations: makeChaperon(marks(allowed(proxyUID, 1), followed(), committed(1, nodeA))...).Annotations,
			wantUpdates:     1,
		},
		{
			name:     "references a ConfigMap, allowed while waiting, then followed: committed",
			chaperon: dependent(makeChaperon()),
			between: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 1)
				})
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.FollowedAnnotation] = "true"
				})
			},
			want:            success,
			wantAnnotations: makeChaperon(marks(allowed(proxyUID, 1), followed(), committed(1, nodeA))...).Annotations,
			wantUpdates:     1,
		},
		{
			name:            "references a ConfigMap, neither allowed nor followed: revoked",
			chaperon:        dependent(makeChaperon(allowed("other-proxy-uid", 1)...)),
			want:            revoked,
			wantAnnotations: makeChaperon(allowed("other-proxy-uid", 1)...).Annotations,
		},
		{
			name:     "committed by an earlier attempt, allow mark of another proxy pod: revoked",
			chaperon: makeChaperon(marks(reserved(1, nodeA), allowed("other-proxy-uid", 1), committed(1, nodeA))...),
			node:     nodeB,
			attempt:  2,
			want:     revoked,
			wantAnnotations: makeChaperon(marks(allowed("other-proxy-uid", 1), committed(1, nodeA))...).
				Annotations,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{update: tc.update}, tc.chaperon)
			node := tc.node
			if node == "" {
				node = nodeA
			}
			attempt := tc.attempt
			if attempt == 0 {
				attempt = 1
			}
			pod := candidatePod()
			if s := e.reserve(pod, node); !s.IsSuccess() {
				t.Fatalf("Reserve() = %v", s)
			}
			// The reservation mark is written first: its write would
			// otherwise race with (and conflict with) PreBind's update.
			NewWithT(t).Eventually(e.annotation(t, protocol.ReservationAnnotation)).WithTimeout(eventually).
				Should(Equal(protocol.ReservationMark(attempt, node)))
			if tc.between != nil {
				tc.between(t, e)
			}
			state := framework.NewCycleState()
			if s := e.fw.RunPreBindPreFlights(e.ctx, state, pod, node); !s.IsSuccess() {
				t.Errorf("RunPreBindPreFlights() = %v, want success", s)
			}
			got := e.fw.RunPreBindPlugins(e.ctx, state, pod, node)
			if diff := cmp.Diff(tc.want, statusOf(got)); diff != "" {
				t.Errorf("RunPreBindPlugins() status (-want,+got):\n%s", diff)
			}

			var annotations map[string]string
			if ch := e.chaperon(t); ch != nil {
				annotations = ch.Annotations
				delete(annotations, protocol.ReservationAnnotation)
			}
			if diff := cmp.Diff(tc.wantAnnotations, annotations); diff != "" {
				t.Errorf("chaperon annotations but the reservation mark (-want,+got):\n%s", diff)
			}
			var wantUpdates []string
			for range tc.wantUpdates {
				wantUpdates = append(wantUpdates, fmt.Sprintf("update %s %s=%s", chaperonName, protocol.BindingAnnotation, protocol.BindingMark(attempt, node)))
			}
			updates := slices.DeleteFunc(e.recorded(), func(w string) bool { return strings.HasPrefix(w, "patch ") })
			if diff := cmp.Diff(wantUpdates, updates, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("updates (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestPreBindNotReserved: a pod the plugin holds no reservation for is not
// bound by it.
func TestPreBindNotReserved(t *testing.T) {
	e := newEnv(t, envOptions{}, makeChaperon(allowed(proxyUID, 1)...))
	got := e.fw.RunPreBindPlugins(e.ctx, framework.NewCycleState(), candidatePod(), nodeA)
	if diff := cmp.Diff(status{Code: fwk.Unschedulable, Reasons: []string{ErrReasonRevoked}, Plugin: Name}, statusOf(got)); diff != "" {
		t.Errorf("RunPreBindPlugins() status (-want,+got):\n%s", diff)
	}
	e.noMarkPending(t)
}

// TestNothingLeftBehind: once a candidate is bound, or released, the
// plugin forgets it (a long-running scheduler sees many candidates).
func TestNothingLeftBehind(t *testing.T) {
	cases := []struct {
		name string
		life func(t *testing.T, e *env, pod *corev1.Pod)
	}{
		{
			name: "bound",
			life: func(t *testing.T, e *env, pod *corev1.Pod) {
				done := e.wait(t, pod, nodeA)
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 1)
				})
				if got := result(t, done); got.Code != fwk.Success {
					t.Fatalf("WaitOnPermit() = %+v, want success", got)
				}
				state := framework.NewCycleState()
				if s := e.fw.RunPreBindPlugins(e.ctx, state, pod, nodeA); !s.IsSuccess() {
					t.Fatalf("RunPreBindPlugins() = %v", s)
				}
				e.fw.RunPostBindPlugins(e.ctx, state, pod, nodeA)
			},
		},
		{
			name: "released",
			life: func(t *testing.T, e *env, pod *corev1.Pod) {
				done := e.wait(t, pod, nodeA)
				e.remove(t, false)
				if got := result(t, done); got.Code != fwk.Unschedulable {
					t.Fatalf("WaitOnPermit() = %+v, want Unschedulable", got)
				}
				e.unreserve(pod, nodeA)
				// No release mark for a chaperon that is gone (it would be
				// a write answered 404), and no retry.
				NewWithT(t).Consistently(e.recorded).WithTimeout(retryAfterRelease + 200*time.Millisecond).ShouldNot(ContainElement(markPatch(protocol.ReservationMark(1, ""))))
				if got := e.activator.activated(); len(got) != 0 {
					t.Errorf("activated %q, want none: the candidate was withdrawn", got)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{}, makeChaperon())
			pod := candidatePod()
			if s := e.reserve(pod, nodeA); !s.IsSuccess() {
				t.Fatalf("Reserve() = %v", s)
			}
			tc.life(t, e, pod)

			left := func() string {
				e.pl.mu.Lock()
				defer e.pl.mu.Unlock()
				return fmt.Sprintf("reservations=%v byChaperon=%v last=%v desired=%v waitingSince=%d",
					e.pl.reservations, e.pl.byChaperon, e.pl.last, e.pl.desired, len(e.pl.waitingSince))
			}
			const none = "reservations=map[] byChaperon=map[] last=map[] desired=map[] waitingSince=0"
			NewWithT(t).Eventually(left).WithTimeout(2 * time.Second).Should(Equal(none))
		})
	}
}

// TestPermitEventBeforeWaiting: the proxy's decision can arrive between the
// plugin's Permit (which read the chaperon before the decision) and the
// scheduler adding the pod to its waiting pods; it still ends the wait, well
// before permitWaitTimeout.
func TestPermitEventBeforeWaiting(t *testing.T) {
	cases := []struct {
		name  string
		event func(t *testing.T, e *env)
		want  status
	}{
		{
			name: "allowed",
			event: func(t *testing.T, e *env) {
				e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) {
					ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 1)
				})
			},
			want: success,
		},
		{
			name:  "released",
			event: func(t *testing.T, e *env) { e.remove(t, false) },
			want:  status{Code: fwk.Unschedulable, Reasons: []string{ErrReasonReleased}, Plugin: Name},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			timeout := 2 * time.Second
			e := newEnv(t, envOptions{timeout: timeout}, makeChaperon())
			pod := candidatePod()
			if s := e.reserve(pod, nodeA); !s.IsSuccess() {
				t.Fatalf("Reserve() = %v", s)
			}
			waits, s := e.fw.RunPermitPlugins(e.ctx, framework.NewCycleState(), pod, nodeA)
			if !s.IsWait() {
				t.Fatalf("RunPermitPlugins() = %v, want Wait", s)
			}
			tc.event(t, e) // before the scheduler's AddWaitingPod
			e.fw.AddWaitingPod(pod, waits)
			// Not the timeout's rejection: the decision is applied.
			if diff := cmp.Diff(tc.want, result(t, e.waitOnPermit(pod))); diff != "" {
				t.Errorf("WaitOnPermit() (-want,+got):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestPermitWaitingFollow: a candidate whose pod references ConfigMaps or
// Secrets waits in Permit until its chaperon is both allowed (by the proxy
// scheduler) and followed (by the source, once it copied them here), in
// whichever order the two marks arrive.
func TestPermitWaitingFollow(t *testing.T) {
	allow := func(ch *multiclusterv1alpha1.PodChaperon) {
		ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 1)
	}
	follow := func(ch *multiclusterv1alpha1.PodChaperon) { ch.Annotations[protocol.FollowedAnnotation] = "true" }
	both := func(ch *multiclusterv1alpha1.PodChaperon) { allow(ch); follow(ch) }
	cases := []struct {
		name     string
		chaperon *multiclusterv1alpha1.PodChaperon
		// changes are applied one after the other, each seen by the plugin.
		changes []func(*multiclusterv1alpha1.PodChaperon)
		want    status
		// stillWaiting: the changes leave the candidate waiting (the test
		// then stops the wait itself, and want is stoppedByTest).
		stillWaiting bool
	}{
		{
			name:         "allowed, not followed: still waiting",
			chaperon:     dependent(makeChaperon()),
			changes:      []func(*multiclusterv1alpha1.PodChaperon){allow},
			want:         stoppedByTest,
			stillWaiting: true,
		},
		{
			name:         "followed, not allowed: still waiting",
			chaperon:     dependent(makeChaperon()),
			changes:      []func(*multiclusterv1alpha1.PodChaperon){follow},
			want:         stoppedByTest,
			stillWaiting: true,
		},
		{
			name:     "allowed, then followed: allowed",
			chaperon: dependent(makeChaperon()),
			changes:  []func(*multiclusterv1alpha1.PodChaperon){allow, follow},
			want:     success,
		},
		{
			name:     "followed, then allowed: allowed",
			chaperon: dependent(makeChaperon()),
			changes:  []func(*multiclusterv1alpha1.PodChaperon){follow, allow},
			want:     success,
		},
		{
			name:     "allowed and followed at once: allowed",
			chaperon: dependent(makeChaperon()),
			changes:  []func(*multiclusterv1alpha1.PodChaperon){both},
			want:     success,
		},
		{
			name:     "no references, allowed: allowed without the followed mark",
			chaperon: makeChaperon(),
			changes:  []func(*multiclusterv1alpha1.PodChaperon){allow},
			want:     success,
		},
		{
			name:     "followed, then released",
			chaperon: dependent(makeChaperon()),
			changes:  []func(*multiclusterv1alpha1.PodChaperon){follow, nil},
			want:     status{Code: fwk.Unschedulable, Reasons: []string{ErrReasonReleased}, Plugin: Name},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{}, tc.chaperon)
			pod := candidatePod()
			// The pod is known to the scheduler: an activation would show.
			if err := e.pods.Add(candidatePod()); err != nil {
				t.Fatal(err)
			}
			if s := e.reserve(pod, nodeA); !s.IsSuccess() {
				t.Fatalf("Reserve() = %v", s)
			}
			done := e.wait(t, pod, nodeA)
			for _, change := range tc.changes {
				if change == nil {
					e.remove(t, false)
					continue
				}
				e.change(t, change)
			}
			if tc.stillWaiting {
				// A decision that found no waiting pod is retried within
				// 20+40+...+320 ms: give a wrongful Allow time to land.
				time.Sleep(700 * time.Millisecond)
				e.stopWaiting(t, pod)
			}
			if diff := cmp.Diff(tc.want, result(t, done)); diff != "" {
				t.Errorf("WaitOnPermit() (-want,+got):\n%s", diff)
			}
			if got := e.activator.activated(); len(got) != 0 {
				t.Errorf("activated %q, want none: the candidate was waiting", got)
			}
		})
	}
}

// TestPermitEventBeforeWaitingFollow: the followed mark, like the allow
// mark, can arrive between Permit and the scheduler adding the pod to its
// waiting pods; it still ends the wait well before permitWaitTimeout.
func TestPermitEventBeforeWaitingFollow(t *testing.T) {
	timeout := 2 * time.Second
	e := newEnv(t, envOptions{timeout: timeout}, dependent(makeChaperon(allowed(proxyUID, 1)...)))
	pod := candidatePod()
	if s := e.reserve(pod, nodeA); !s.IsSuccess() {
		t.Fatalf("Reserve() = %v", s)
	}
	waits, s := e.fw.RunPermitPlugins(e.ctx, framework.NewCycleState(), pod, nodeA)
	if !s.IsWait() {
		t.Fatalf("RunPermitPlugins() = %v, want Wait: the chaperon is allowed but not followed", s)
	}
	e.change(t, func(ch *multiclusterv1alpha1.PodChaperon) { ch.Annotations[protocol.FollowedAnnotation] = "true" })
	e.fw.AddWaitingPod(pod, waits)
	if diff := cmp.Diff(success, result(t, e.waitOnPermit(pod))); diff != "" {
		t.Errorf("WaitOnPermit() (-want,+got):\n%s", diff)
	}
}
