package feedback

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

const (
	namespace = "team-a"
	podName   = "web-0"
	proxyUID  = types.UID("proxy-uid")
	// keepFinalizer keeps a deleted pod in the fake API server, so that the
	// test can read what the reconciler left of it.
	keepFinalizer = "test.flotilla.io/keep"
)

// The targets: a Target in the proxy pod's namespace, ClusterTargets, and a
// Target in another namespace (which the proxy pod never uses).
var (
	keyA     = remote.Key{Namespace: namespace, Name: "a"}
	keyB     = remote.Key{Name: "b"}
	keyC     = remote.Key{Name: "c"}
	keyOther = remote.Key{Namespace: "team-z", Name: "z"}
	// keyDown does not answer.
	keyDown = remote.Key{Name: "down"}
	allKeys = []remote.Key{keyA, keyB, keyC, keyOther, keyDown}
)

var (
	now       = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	scheduled = metav1.NewTime(now.Add(-2 * time.Minute))
	started   = metav1.NewTime(now.Add(-time.Minute))
)

// virtualNode is the virtual node of target key.
func virtualNode(key remote.Key) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        "admiralty-" + strings.ReplaceAll(key.String(), "/", "-"),
		Labels:      map[string]string{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider},
		Annotations: map[string]string{protocol.TargetAnnotation: key.String()},
	}}
}

// proxyScheduled is the proxy pod's own PodScheduled condition (bound to a
// virtual node), distinct from its delegate's.
func proxyScheduled() corev1.PodCondition {
	return corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: scheduled}
}

type podOpt func(*corev1.Pod)

// proxyPod is a proxy pod bound to target A's virtual node, pending.
func proxyPod(opts ...podOpt) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: podName, UID: proxyUID},
		Spec: corev1.PodSpec{
			SchedulerName: protocol.ProxySchedulerName,
			NodeName:      virtualNode(keyA).Name,
			Containers:    []corev1.Container{{Name: "web", Image: "nginx"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{proxyScheduled()}},
	}
	for _, o := range opts {
		o(pod)
	}
	return pod
}

func withStatus(s corev1.PodStatus) podOpt { return func(p *corev1.Pod) { p.Status = s } }

func unbound(p *corev1.Pod) { p.Spec.NodeName = "" }

func boundTo(node string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = node } }

func notProxy(p *corev1.Pod) { p.Spec.SchedulerName = corev1.DefaultSchedulerName }

// deleted marks the pod deleted, with the given finalizers.
func deleted(finalizers ...string) podOpt {
	return func(p *corev1.Pod) {
		p.DeletionTimestamp = &started
		p.Finalizers = finalizers
	}
}

type chaperonOpt func(*multiclusterv1alpha1.PodChaperon)

// chaperonOf is a chaperon of the proxy pod in a target; uid is its own.
func chaperonOf(uid types.UID, opts ...chaperonOpt) *multiclusterv1alpha1.PodChaperon {
	proxy := proxyPod()
	ch := &multiclusterv1alpha1.PodChaperon{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: protocol.ChaperonName(proxy), UID: uid,
			Labels:      map[string]string{protocol.ProxyPodUIDLabel: string(proxy.UID)},
			Annotations: map[string]string{protocol.ProxyPodNameAnnotation: proxy.Name},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
	}
	for _, o := range opts {
		o(ch)
	}
	return ch
}

func reporting(s corev1.PodStatus) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) { ch.Status = s }
}

// ofProxy makes the chaperon another proxy pod's: same name, another UID.
func ofProxy(uid types.UID) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) { ch.Labels[protocol.ProxyPodUIDLabel] = string(uid) }
}

// otherPodsChaperon is the chaperon of another proxy pod (web-1).
func otherPodsChaperon(uid types.UID) *multiclusterv1alpha1.PodChaperon {
	other := proxyPod()
	other.Name, other.UID = "web-1", "other-proxy-uid"
	ch := chaperonOf(uid, ofProxy(other.UID))
	ch.Name = protocol.ChaperonName(other)
	ch.Annotations[protocol.ProxyPodNameAnnotation] = other.Name
	return ch
}

func going(ch *multiclusterv1alpha1.PodChaperon) {
	ch.DeletionTimestamp = &started
	ch.Finalizers = []string{keepFinalizer}
}

// running is a delegate's status.
func running() corev1.PodStatus {
	return corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
		},
		HostIP: "10.0.0.1", PodIP: "10.1.0.7", PodIPs: []corev1.PodIP{{IP: "10.1.0.7"}},
		StartTime: &started,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "web", Image: "nginx", ImageID: "docker.io/library/nginx@sha256:0123", Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}},
		QOSClass: corev1.PodQOSBestEffort,
	}
}

// runningAsProxy is running() as the proxy pod shows it: its own
// PodScheduled condition instead of the delegate's.
func runningAsProxy() corev1.PodStatus {
	s := running()
	s.Conditions[0] = proxyScheduled()
	return s
}

func succeeded() corev1.PodStatus {
	s := running()
	s.Phase = corev1.PodSucceeded
	s.Conditions[1].Status = corev1.ConditionFalse
	s.ContainerStatuses[0].Ready = false
	s.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}
	return s
}

func TestDesiredStatus(t *testing.T) {
	cases := []struct {
		name     string
		pod      *corev1.Pod
		chaperon *multiclusterv1alpha1.PodChaperon
		want     corev1.PodStatus
	}{
		{
			name:     "delegate running: its status, with the proxy's PodScheduled",
			pod:      proxyPod(),
			chaperon: chaperonOf("ch", reporting(running())),
			want:     runningAsProxy(),
		},
		{
			name: "delegate without PodScheduled: the proxy's added",
			pod:  proxyPod(),
			chaperon: chaperonOf("ch", reporting(func() corev1.PodStatus {
				s := running()
				s.Conditions = s.Conditions[1:]
				return s
			}())),
			want: func() corev1.PodStatus {
				s := running()
				s.Conditions = []corev1.PodCondition{s.Conditions[1], proxyScheduled()}
				return s
			}(),
		},
		{
			name:     "proxy without PodScheduled: the delegate's",
			pod:      proxyPod(withStatus(corev1.PodStatus{Phase: corev1.PodPending})),
			chaperon: chaperonOf("ch", reporting(running())),
			want:     running(),
		},
		{
			name:     "delegate succeeded: the proxy pod ends",
			pod:      proxyPod(withStatus(runningAsProxy())),
			chaperon: chaperonOf("ch", reporting(succeeded())),
			want: func() corev1.PodStatus {
				s := succeeded()
				s.Conditions[0] = proxyScheduled()
				return s
			}(),
		},
		{
			name: "proxy pod succeeded: never regresses",
			pod: proxyPod(withStatus(corev1.PodStatus{
				Phase: corev1.PodSucceeded, Conditions: []corev1.PodCondition{proxyScheduled()},
			})),
			chaperon: chaperonOf("ch", reporting(running())),
			want:     corev1.PodStatus{Phase: corev1.PodSucceeded, Conditions: []corev1.PodCondition{proxyScheduled()}},
		},
		{
			name:     "proxy pod failed: never regresses",
			pod:      proxyPod(withStatus(corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DelegateDeleted"})),
			chaperon: chaperonOf("ch", reporting(running())),
			want:     corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DelegateDeleted"},
		},
		{
			name:     "chaperon without status: nothing changes",
			pod:      proxyPod(),
			chaperon: chaperonOf("ch"),
			want:     proxyPod().Status,
		},
		{
			name: "chaperon with conditions but no phase: nothing changes",
			pod:  proxyPod(),
			chaperon: chaperonOf("ch", reporting(corev1.PodStatus{Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable},
			}})),
			want: proxyPod().Status,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod, ch := tc.pod.DeepCopy(), tc.chaperon.DeepCopy()
			got := desiredStatus(pod, ch)
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("desiredStatus() (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.pod, pod); diff != "" {
				t.Errorf("desiredStatus() changed the pod (-before,+after):\n%s", diff)
			}
			if diff := cmp.Diff(tc.chaperon, ch); diff != "" {
				t.Errorf("desiredStatus() changed the chaperon (-before,+after):\n%s", diff)
			}
			// The result is the reconciler's to change: it shares nothing.
			if len(got.Conditions) > 0 {
				got.Conditions[0].Reason = "changed"
				if diff := cmp.Diff(tc.pod, pod); diff != "" {
					t.Errorf("the result shares the pod's conditions (-before,+after):\n%s", diff)
				}
				if diff := cmp.Diff(tc.chaperon, ch); diff != "" {
					t.Errorf("the result shares the chaperon's conditions (-before,+after):\n%s", diff)
				}
			}
		})
	}
}

// env is a source cluster (a fake API server holding proxy pods and virtual
// nodes) and its targets (fake API servers holding chaperons).
type env struct {
	local    client.WithWatch
	targets  map[remote.Key]client.WithWatch
	recorder *events.FakeRecorder
	r        *Reconciler
	writes   []string
	// behind holds the targets whose cache has no chaperon yet: the
	// cluster's client answers NotFound, its API reader answers.
	behind map[remote.Key]bool
}

// newEnv starts a source with objs and the targets of allKeys with theirs;
// keyDown, connected but not Ready, only if targets has it.
func newEnv(t *testing.T, objs []client.Object, targets map[remote.Key][]client.Object) *env {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	e := &env{
		local: fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).
			WithStatusSubresource(&corev1.Pod{}).Build(),
		targets:  map[remote.Key]client.WithWatch{},
		recorder: events.NewFakeRecorder(10),
	}
	fleet := &remote.Fake{
		Clients: map[remote.Key]client.Client{},
		Readers: map[remote.Key]client.Reader{},
		Healths: map[remote.Key]remote.Health{keyDown: {Ready: false, Reason: "Unreachable", Message: "no answer"}},
	}
	for _, key := range allKeys {
		if _, ok := targets[key]; key == keyDown && !ok {
			continue
		}
		e.targets[key] = fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(targets[key]...).
			WithStatusSubresource(&multiclusterv1alpha1.PodChaperon{}).Build()
		fleet.Readers[key] = e.targets[key]
		fleet.Clients[key] = interceptor.NewClient(e.targets[key], interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, nn client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*multiclusterv1alpha1.PodChaperon); ok && e.behind[key] {
					return apierrors.NewNotFound(multiclusterv1alpha1.GroupVersion.WithResource("podchaperons").GroupResource(), nn.Name)
				}
				return c.Get(ctx, nn, obj, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				e.writes = append(e.writes, deletion(key.String(), obj, opts))
				return c.Delete(ctx, obj, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				e.writes = append(e.writes, fmt.Sprintf("update %s %s", key, obj.GetName()))
				return c.Update(ctx, obj, opts...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				e.writes = append(e.writes, fmt.Sprintf("patch %s %s", key, obj.GetName()))
				return c.Patch(ctx, obj, patch, opts...)
			},
		})
		if _, err := fleet.Connect(ctx, key, nil, "test"); err != nil {
			t.Fatal(err)
		}
	}
	local := interceptor.NewClient(e.local, interceptor.Funcs{
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			e.writes = append(e.writes, deletion("source", obj, opts))
			return c.Delete(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			e.writes = append(e.writes, "update source "+obj.GetName())
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			data, err := patch.Data(obj)
			if err != nil {
				return err
			}
			e.writes = append(e.writes, fmt.Sprintf("patch source %s %s", obj.GetName(), data))
			return c.Patch(ctx, obj, patch, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			e.writes = append(e.writes, fmt.Sprintf("update source %s/%s", obj.GetName(), sub))
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			e.writes = append(e.writes, fmt.Sprintf("patch source %s/%s", obj.GetName(), sub))
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	e.r = &Reconciler{Client: local, Fleet: fleet, Recorder: e.recorder}
	return e
}

// deletion spells out a deletion and the options that make it safe.
func deletion(cluster string, obj client.Object, opts []client.DeleteOption) string {
	o := client.DeleteOptions{}
	o.ApplyOptions(opts)
	s := fmt.Sprintf("delete %s %s", cluster, obj.GetName())
	if o.GracePeriodSeconds != nil {
		s += fmt.Sprintf(" grace=%d", *o.GracePeriodSeconds)
	}
	if o.Preconditions != nil && o.Preconditions.UID != nil {
		s += fmt.Sprintf(" uid=%s", *o.Preconditions.UID)
	}
	if o.PropagationPolicy != nil {
		s += fmt.Sprintf(" propagation=%s", *o.PropagationPolicy)
	}
	return s
}

func (e *env) reconcile(t *testing.T) (ctrl.Result, error) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	return e.r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: podName}})
}

// pod is the proxy pod now, nil if gone.
func (e *env) pod(t *testing.T) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	if err := e.local.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: podName}, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return pod
}

// chaperons lists each target's chaperons as "name uid", sorted; targets
// without any are left out.
func (e *env) chaperons(t *testing.T) map[remote.Key][]string {
	t.Helper()
	got := map[remote.Key][]string{}
	for key, c := range e.targets {
		list := &multiclusterv1alpha1.PodChaperonList{}
		if err := c.List(context.Background(), list); err != nil {
			t.Fatal(err)
		}
		for _, ch := range list.Items {
			got[key] = append(got[key], ch.Name+" "+string(ch.UID))
		}
		slices.Sort(got[key])
	}
	return got
}

func (e *env) events() []string {
	var got []string
	for {
		select {
		case ev := <-e.recorder.Events:
			got = append(got, ev)
		default:
			return got
		}
	}
}

// names are the chaperons' names, as env.chaperons shows them.
var (
	mine   = protocol.ChaperonName(proxyPod())
	others = func() string {
		other := proxyPod()
		other.Name, other.UID = "web-1", "other-proxy-uid"
		return protocol.ChaperonName(other)
	}()
)

func TestReconcileStatus(t *testing.T) {
	nodes := []client.Object{virtualNode(keyA), virtualNode(keyB)}
	cases := []struct {
		name    string
		pod     *corev1.Pod // nil: none
		nodes   []client.Object
		targets map[remote.Key][]client.Object
		// wantStatus is the pod's status afterwards.
		wantStatus corev1.PodStatus
		// wantGone: the pod is deleted.
		wantGone   bool
		wantWrites []string
		// wantChaperons are the targets' chaperons afterwards; nil: as before.
		wantChaperons map[remote.Key][]string
		// wantEvent is the type and reason of the one event expected,
		// besides DelegateGone when the pod is gone.
		wantEvent string
		// behind: these targets' caches have no chaperon yet.
		behind []remote.Key
	}{
		{
			name:       "status fed back from the delegate",
			pod:        proxyPod(),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}},
			wantStatus: runningAsProxy(),
			wantWrites: []string{"update source web-0/status"},
		},
		{
			name:       "status already fed back: no write",
			pod:        proxyPod(withStatus(runningAsProxy())),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}},
			wantStatus: runningAsProxy(),
		},
		{
			name:       "delegate ended: the proxy pod ends",
			pod:        proxyPod(withStatus(runningAsProxy())),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(succeeded()))}},
			wantStatus: func() corev1.PodStatus { s := succeeded(); s.Conditions[0] = proxyScheduled(); return s }(),
			wantWrites: []string{"update source web-0/status"},
		},
		{
			name:       "proxy pod ended: not regressed",
			pod:        proxyPod(withStatus(corev1.PodStatus{Phase: corev1.PodSucceeded})),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}},
			wantStatus: corev1.PodStatus{Phase: corev1.PodSucceeded},
		},
		{
			name:       "chaperon of another proxy pod of the same name: ignored",
			pod:        proxyPod(),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", ofProxy("previous-proxy-uid"), reporting(running()))}},
			wantStatus: proxyPod().Status,
		},
		{
			name:       "no chaperon in its target: the delegate is gone, so is the proxy pod",
			pod:        proxyPod(),
			targets:    map[remote.Key][]client.Object{keyB: {chaperonOf("b1", ofProxy("previous-proxy-uid"), reporting(running()))}},
			wantGone:   true,
			wantWrites: []string{"delete source web-0 uid=proxy-uid"},
		},
		{
			name:       "chaperon not in the cache yet, in its target: status fed back, the proxy pod stays",
			pod:        proxyPod(),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}},
			behind:     []remote.Key{keyA},
			wantStatus: runningAsProxy(),
			wantWrites: []string{"update source web-0/status"},
		},
		{
			name:       "no chaperon in its target nor its cache: the proxy pod is deleted",
			pod:        proxyPod(),
			targets:    map[remote.Key][]client.Object{keyA: {}},
			behind:     []remote.Key{keyA},
			wantGone:   true,
			wantWrites: []string{"delete source web-0 uid=proxy-uid"},
		},
		{
			name: "delegate deleted in its target: the proxy pod is deleted",
			pod:  proxyPod(),
			targets: map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(corev1.PodStatus{
				Phase: corev1.PodFailed, Reason: protocol.ReasonDelegateDeleted}))}},
			wantGone:   true,
			wantWrites: []string{"delete source web-0 uid=proxy-uid"},
		},
		{
			name: "delegate deleted after the proxy pod ended: it stays",
			pod:  proxyPod(withStatus(corev1.PodStatus{Phase: corev1.PodSucceeded})),
			targets: map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(corev1.PodStatus{
				Phase: corev1.PodFailed, Reason: protocol.ReasonDelegateDeleted}))}},
			wantStatus: corev1.PodStatus{Phase: corev1.PodSucceeded},
		},
		{
			name:       "chaperon without status yet: nothing",
			pod:        proxyPod(),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1")}},
			wantStatus: proxyPod().Status,
		},
		{
			name: "stray chaperons of the proxy pod released, not others'",
			pod:  proxyPod(),
			targets: map[remote.Key][]client.Object{
				keyA:     {chaperonOf("a1", reporting(running())), otherPodsChaperon("a2")},
				keyB:     {chaperonOf("b1"), otherPodsChaperon("b2")},
				keyC:     {chaperonOf("c1", ofProxy("previous-proxy-uid"))},
				keyOther: {chaperonOf("z1")},
				keyDown:  {chaperonOf("d1")},
			},
			wantStatus: runningAsProxy(),
			wantWrites: []string{"delete b " + mine + " uid=b1 propagation=Background", "update source web-0/status"},
			wantChaperons: map[remote.Key][]string{
				keyA:     {mine + " a1", others + " a2"},
				keyB:     {others + " b2"},
				keyC:     {mine + " c1"},
				keyOther: {mine + " z1"},
				keyDown:  {mine + " d1"},
			},
		},
		{
			name: "stray chaperon already going: not deleted again",
			pod:  proxyPod(),
			targets: map[remote.Key][]client.Object{
				keyA: {chaperonOf("a1", reporting(running()))},
				keyB: {chaperonOf("b1", going)},
			},
			wantStatus: runningAsProxy(),
			wantWrites: []string{"update source web-0/status"},
		},
		{
			name: "strays released even before the delegate reports",
			pod:  proxyPod(),
			targets: map[remote.Key][]client.Object{
				keyA: {chaperonOf("a1")},
				keyB: {chaperonOf("b1")},
			},
			wantStatus:    proxyPod().Status,
			wantWrites:    []string{"delete b " + mine + " uid=b1 propagation=Background"},
			wantChaperons: map[remote.Key][]string{keyA: {mine + " a1"}},
		},
		{
			name:       "not bound: nothing",
			pod:        proxyPod(unbound),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}, keyB: {chaperonOf("b1")}},
			wantStatus: proxyPod().Status,
		},
		{
			name:       "bound to a node that is not virtual: nothing",
			pod:        proxyPod(boundTo("real-node")),
			nodes:      []client.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "real-node", Annotations: virtualNode(keyA).Annotations}}},
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}, keyB: {chaperonOf("b1")}},
			wantStatus: proxyPod().Status,
		},
		{
			name:       "bound to a virtual node that is gone: nothing",
			pod:        proxyPod(),
			nodes:      []client.Object{},
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}, keyB: {chaperonOf("b1")}},
			wantStatus: proxyPod().Status,
		},
		{
			name:       "bound to a target not connected: nothing",
			pod:        proxyPod(boundTo(virtualNode(remote.Key{Name: "gone"}).Name)),
			nodes:      []client.Object{virtualNode(remote.Key{Name: "gone"})},
			targets:    map[remote.Key][]client.Object{keyB: {chaperonOf("b1")}},
			wantStatus: proxyPod().Status,
		},
		{
			name:       "not a proxy pod: ignored",
			pod:        proxyPod(notProxy),
			targets:    map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}, keyB: {chaperonOf("b1")}},
			wantStatus: proxyPod().Status,
		},
		{
			name:  "bound by hand to the virtual node of a Target of another namespace: it fails, the target untouched",
			pod:   proxyPod(boundTo(virtualNode(keyOther).Name)),
			nodes: []client.Object{virtualNode(keyOther)},
			targets: map[remote.Key][]client.Object{
				keyOther: {chaperonOf("z1", reporting(running()))},
			},
			wantStatus: func() corev1.PodStatus {
				s := proxyPod().Status
				s.Phase = corev1.PodFailed
				s.Reason = ReasonTargetNamespace
				s.Message = "bound to virtual node " + virtualNode(keyOther).Name + " of Target team-z/z, which serves namespace team-z only: " +
					"no delegate can run for a pod of namespace " + namespace
				return s
			}(),
			wantWrites: []string{"update source web-0/status"},
			wantEvent:  "Warning " + ReasonTargetNamespace,
		},
		{
			name:  "failed for its namespace already: no write",
			pod:   proxyPod(boundTo(virtualNode(keyOther).Name), withStatus(corev1.PodStatus{Phase: corev1.PodFailed, Reason: ReasonTargetNamespace})),
			nodes: []client.Object{virtualNode(keyOther)},
			targets: map[remote.Key][]client.Object{
				keyOther: {chaperonOf("z1", reporting(running()))},
			},
			wantStatus: corev1.PodStatus{Phase: corev1.PodFailed, Reason: ReasonTargetNamespace},
		},
		{name: "no pod: nothing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := nodes
			if tc.nodes != nil {
				objs = tc.nodes
			}
			if tc.pod != nil {
				objs = append(slices.Clone(objs), tc.pod)
			}
			e := newEnv(t, objs, tc.targets)
			before := e.chaperons(t)
			e.behind = map[remote.Key]bool{}
			for _, key := range tc.behind {
				e.behind[key] = true
			}

			res, err := e.reconcile(t)
			if err != nil {
				t.Errorf("Reconcile() error = %v", err)
			}
			if diff := cmp.Diff(ctrl.Result{}, res); diff != "" {
				t.Errorf("Reconcile() result (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantWrites, e.writes); diff != "" {
				t.Errorf("writes (-want,+got):\n%s", diff)
			}
			if got := e.pod(t); tc.pod != nil && (got == nil || !got.DeletionTimestamp.IsZero()) != tc.wantGone {
				t.Errorf("pod deleted: %t, want %t", got == nil || !got.DeletionTimestamp.IsZero(), tc.wantGone)
			} else if tc.pod != nil && !tc.wantGone {
				if diff := cmp.Diff(tc.wantStatus, got.Status); diff != "" {
					t.Errorf("pod status (-want,+got):\n%s", diff)
				}
			}
			want := tc.wantChaperons
			if want == nil {
				want = before
			}
			if diff := cmp.Diff(want, e.chaperons(t)); diff != "" {
				t.Errorf("chaperons (-want,+got):\n%s", diff)
			}
			var wantEvents []string
			if tc.wantGone {
				wantEvents = []string{"Warning " + ReasonDelegateGone}
			}
			if tc.wantEvent != "" {
				wantEvents = append(wantEvents, tc.wantEvent)
			}
			var gotEvents []string
			for _, e := range e.events() {
				gotEvents = append(gotEvents, strings.Join(strings.Fields(e)[:2], " "))
			}
			if diff := cmp.Diff(wantEvents, gotEvents); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestReconcileDelete(t *testing.T) {
	nodes := []client.Object{virtualNode(keyA), virtualNode(keyB)}
	removeFinalizer := fmt.Sprintf(`patch source web-0 {"metadata":{"finalizers":[%q],"resourceVersion":"999"}}`, keepFinalizer)
	cases := []struct {
		name       string
		pod        *corev1.Pod
		targets    map[remote.Key][]client.Object
		wantResult ctrl.Result
		// wantFinalizers are the pod's afterwards.
		wantFinalizers []string
		wantWrites     []string
		wantChaperons  map[remote.Key][]string
		wantEvents     []string
	}{
		{
			name: "chaperons deleted in every target, finalizer kept while they go",
			pod:  proxyPod(deleted(protocol.ProxyPodFinalizer, keepFinalizer)),
			targets: map[remote.Key][]client.Object{
				keyA:     {chaperonOf("a1", reporting(running())), otherPodsChaperon("a2")},
				keyB:     {chaperonOf("b1")},
				keyOther: {chaperonOf("z1")},
			},
			wantResult:     ctrl.Result{RequeueAfter: 10 * time.Second},
			wantFinalizers: []string{protocol.ProxyPodFinalizer, keepFinalizer},
			wantWrites: []string{
				"delete team-a/a " + mine + " uid=a1 propagation=Foreground",
				"delete b " + mine + " uid=b1 propagation=Foreground",
			},
			wantChaperons: map[remote.Key][]string{keyA: {others + " a2"}, keyOther: {mine + " z1"}},
		},
		{
			name: "chaperon of another proxy pod of the same name kept",
			pod:  proxyPod(deleted(protocol.ProxyPodFinalizer, keepFinalizer)),
			targets: map[remote.Key][]client.Object{
				keyC: {chaperonOf("c1", ofProxy("previous-proxy-uid"))},
				keyB: {chaperonOf("b1")},
			},
			wantResult:     ctrl.Result{RequeueAfter: 10 * time.Second},
			wantFinalizers: []string{protocol.ProxyPodFinalizer, keepFinalizer},
			wantWrites:     []string{"delete b " + mine + " uid=b1 propagation=Foreground"},
			wantChaperons:  map[remote.Key][]string{keyC: {mine + " c1"}},
		},
		{
			name: "the grace period of the proxy pod's deletion goes to the target",
			pod: proxyPod(deleted(protocol.ProxyPodFinalizer, keepFinalizer), func(p *corev1.Pod) {
				p.DeletionGracePeriodSeconds = ptr.To(int64(7))
			}),
			targets:        map[remote.Key][]client.Object{keyB: {chaperonOf("b1")}},
			wantResult:     ctrl.Result{RequeueAfter: 10 * time.Second},
			wantFinalizers: []string{protocol.ProxyPodFinalizer, keepFinalizer},
			wantWrites: []string{
				"patch b " + mine, // the grace period (proven by the e2e suite)
				"delete b " + mine + " uid=b1 propagation=Foreground",
			},
		},
		{
			name: "a chaperon whose delegate outlives grace and margin is let go",
			pod:  proxyPod(deleted(protocol.ProxyPodFinalizer, keepFinalizer)),
			targets: map[remote.Key][]client.Object{keyB: {chaperonOf("b1", func(ch *multiclusterv1alpha1.PodChaperon) {
				ch.DeletionTimestamp = &started
				ch.Finalizers = []string{metav1.FinalizerDeleteDependents}
			})}},
			wantResult:     ctrl.Result{RequeueAfter: 10 * time.Second},
			wantFinalizers: []string{protocol.ProxyPodFinalizer, keepFinalizer},
			wantWrites:     []string{"patch b " + mine},
			wantChaperons:  map[remote.Key][]string{},
		},
		{
			name:           "a chaperon still going holds the finalizer",
			pod:            proxyPod(deleted(protocol.ProxyPodFinalizer, keepFinalizer)),
			targets:        map[remote.Key][]client.Object{keyA: {chaperonOf("a1", going)}},
			wantResult:     ctrl.Result{RequeueAfter: 10 * time.Second},
			wantFinalizers: []string{protocol.ProxyPodFinalizer, keepFinalizer},
			wantChaperons:  map[remote.Key][]string{keyA: {mine + " a1"}},
		},
		{
			name:           "none left: finalizer removed, the bound pod deleted at once",
			pod:            proxyPod(deleted(protocol.ProxyPodFinalizer, keepFinalizer)),
			targets:        map[remote.Key][]client.Object{keyA: {otherPodsChaperon("a2")}},
			wantFinalizers: []string{keepFinalizer},
			wantWrites:     []string{removeFinalizer, "delete source web-0 grace=0 uid=proxy-uid"},
			wantChaperons:  map[remote.Key][]string{keyA: {others + " a2"}},
		},
		{
			name:           "none left, pod not bound: finalizer removed",
			pod:            proxyPod(unbound, deleted(protocol.ProxyPodFinalizer, keepFinalizer)),
			wantFinalizers: []string{keepFinalizer},
			wantWrites:     []string{removeFinalizer},
		},
		{
			name:           "target not answering: skipped, said in an event",
			pod:            proxyPod(deleted(protocol.ProxyPodFinalizer, keepFinalizer)),
			targets:        map[remote.Key][]client.Object{keyDown: {chaperonOf("d1")}},
			wantFinalizers: []string{keepFinalizer},
			wantWrites:     []string{removeFinalizer, "delete source web-0 grace=0 uid=proxy-uid"},
			wantChaperons:  map[remote.Key][]string{keyDown: {mine + " d1"}},
			wantEvents:     []string{"Warning CandidatesLeft targets [down] did not answer; candidates of this pod may be left there"},
		},
		{
			name:           "finalizer gone already: nothing",
			pod:            proxyPod(deleted(keepFinalizer)),
			targets:        map[remote.Key][]client.Object{keyA: {chaperonOf("a1")}},
			wantFinalizers: []string{keepFinalizer},
			wantChaperons:  map[remote.Key][]string{keyA: {mine + " a1"}},
		},
		{
			name:           "not a proxy pod: ignored",
			pod:            proxyPod(notProxy, deleted(protocol.ProxyPodFinalizer, keepFinalizer)),
			targets:        map[remote.Key][]client.Object{keyA: {chaperonOf("a1")}},
			wantFinalizers: []string{protocol.ProxyPodFinalizer, keepFinalizer},
			wantChaperons:  map[remote.Key][]string{keyA: {mine + " a1"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := tc.pod.DeepCopy()
			pod.ResourceVersion = "999"
			e := newEnv(t, append(slices.Clone(nodes), pod), tc.targets)

			res, err := e.reconcile(t)
			if err != nil {
				t.Errorf("Reconcile() error = %v", err)
			}
			if diff := cmp.Diff(tc.wantResult, res); diff != "" {
				t.Errorf("Reconcile() result (-want,+got):\n%s", diff)
			}
			slices.Sort(e.writes) // targets are visited in no particular order
			want := slices.Sorted(slices.Values(tc.wantWrites))
			if diff := cmp.Diff(want, e.writes); diff != "" {
				t.Errorf("writes (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFinalizers, e.pod(t).Finalizers); diff != "" {
				t.Errorf("pod finalizers (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantChaperons, e.chaperons(t), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("chaperons (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEvents, e.events()); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestReconcileDeleteGoes follows a deleted proxy pod, holding only its own
// finalizer, to its end: its chaperons go first, then the pod itself.
func TestReconcileDeleteGoes(t *testing.T) {
	e := newEnv(t,
		[]client.Object{virtualNode(keyA), proxyPod(deleted(protocol.ProxyPodFinalizer))},
		map[remote.Key][]client.Object{keyA: {chaperonOf("a1", reporting(running()))}, keyB: {chaperonOf("b1")}},
	)

	res, err := e.reconcile(t)
	if err != nil || res.RequeueAfter <= 0 {
		t.Fatalf("first Reconcile() = %+v, %v, want a requeue", res, err)
	}
	if pod := e.pod(t); pod == nil || !slices.Contains(pod.Finalizers, protocol.ProxyPodFinalizer) {
		t.Fatalf("pod = %v, want it kept by its finalizer while chaperons go", pod)
	}
	if diff := cmp.Diff(map[remote.Key][]string{}, e.chaperons(t)); diff != "" {
		t.Errorf("chaperons after the first reconcile (-want,+got):\n%s", diff)
	}

	e.writes = nil
	res, err = e.reconcile(t)
	if err != nil {
		t.Errorf("second Reconcile() error = %v", err)
	}
	if diff := cmp.Diff(ctrl.Result{}, res); diff != "" {
		t.Errorf("second Reconcile() result (-want,+got):\n%s", diff)
	}
	if pod := e.pod(t); pod != nil {
		t.Errorf("pod = %v, want it gone", pod)
	}
	if len(e.writes) != 2 || e.writes[1] != "delete source web-0 grace=0 uid=proxy-uid" {
		t.Errorf("writes = %q, want the finalizer removed, then the pod deleted at once", e.writes)
	}
}
