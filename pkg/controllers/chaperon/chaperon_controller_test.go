package chaperon

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

const (
	namespace = "team-a"
	name      = "web-0-1a2b3c4d"
	chUID     = types.UID("chaperon-uid")
	proxyUID  = "proxy-uid"
)

var (
	now     = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	earlier = metav1.NewTime(now.Add(-time.Minute))
	yes     = true
)

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := multiclusterv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

type chaperonOpt func(*multiclusterv1alpha1.PodChaperon)

// makeChaperon is a chaperon as a source creates it, reserved on node-a
// (which changes nothing to whether its pod is made).
func makeChaperon(opts ...chaperonOpt) *multiclusterv1alpha1.PodChaperon {
	ch := &multiclusterv1alpha1.PodChaperon{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name, UID: chUID,
			Labels: map[string]string{"app": "web", protocol.ProxyPodUIDLabel: proxyUID},
			Annotations: map[string]string{
				"team":                          "a",
				protocol.ProxyPodNameAnnotation: "web-0",
				protocol.ReservationAnnotation:  protocol.ReservationMark(1, "node-a"),
			},
		},
		Spec: corev1.PodSpec{
			SchedulerName: protocol.CandidateSchedulerName,
			Containers:    []corev1.Container{{Name: "web", Image: "nginx"}},
		},
	}
	for _, o := range opts {
		o(ch)
	}
	return ch
}

func withPriorityClass(class string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) { ch.Spec.PriorityClassName = class }
}

func withStatus(s corev1.PodStatus) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) { ch.Status = s }
}

// binding marks the chaperon allowed and committed to bind to node-a.
func binding(ch *multiclusterv1alpha1.PodChaperon) {
	ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 1)
	ch.Annotations[protocol.BindingAnnotation] = protocol.BindingMark(1, "node-a")
}

func deleting(ch *multiclusterv1alpha1.PodChaperon) {
	ch.DeletionTimestamp = &earlier
	ch.Finalizers = []string{"test.flotilla.io/keep"}
}

// wantCandidate is the candidate pod of makeChaperon(), spelled out.
func wantCandidate() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels:      map[string]string{"app": "web", protocol.ProxyPodUIDLabel: proxyUID},
			Annotations: map[string]string{"team": "a", protocol.ProxyPodNameAnnotation: "web-0", protocol.PushedAnnotationsAnnotation: "team"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: name, UID: chUID,
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: corev1.PodSpec{
			SchedulerName: protocol.CandidateSchedulerName,
			Containers:    []corev1.Container{{Name: "web", Image: "nginx"}},
		},
	}
}

// candidateOf is the candidate pod of ch, in status s.
func candidateOf(ch *multiclusterv1alpha1.PodChaperon, s corev1.PodStatus) *corev1.Pod {
	pod := protocol.CandidatePod(ch)
	pod.Status = s
	return pod
}

// foreignPod is a user's pod with the candidate pod's name.
func foreignPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": "mine"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "mine", Image: "busybox"}}},
	}
}

// previousCandidate is the candidate pod of a previous chaperon of the
// same name.
func previousCandidate() *corev1.Pod {
	ch := makeChaperon()
	ch.UID = "previous-chaperon-uid"
	return candidateOf(ch, corev1.PodStatus{Phase: corev1.PodPending})
}

func running() corev1.PodStatus {
	return corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: earlier},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: earlier},
		},
		HostIP: "10.0.0.1", PodIP: "10.1.0.7",
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "web", Image: "nginx", Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: earlier}},
		}},
	}
}

func unschedulable(message string, since metav1.Time) corev1.PodStatus {
	return corev1.PodStatus{
		Phase: corev1.PodPending,
		Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: message, LastTransitionTime: since,
		}},
	}
}

func delegateDeleted(s corev1.PodStatus) corev1.PodStatus {
	s.Phase = corev1.PodFailed
	s.Reason = ReasonDelegateDeleted
	s.Message = "the delegate pod, bound to node node-a, was deleted; it is not recreated (a proxy pod has at most one delegate)"
	return s
}

// goingPod is pod, deleted and held by a finalizer.
func goingPod(pod *corev1.Pod) *corev1.Pod {
	pod.DeletionTimestamp = &earlier
	pod.Finalizers = []string{"test.flotilla.io/keep"}
	return pod
}

const (
	createPod   = "create pod"
	deletePod   = "delete pod"
	patchStatus = "patch podchaperon/status"
)

func TestReconcile(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, name,
		errors.New(`exceeded quota: compute, requested: cpu=2, used: cpu=9, limited: cpu=10`))
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, name, field.ErrorList{
		field.NotFound(field.NewPath("spec", "serviceAccountName"), "builder"),
	})
	stamp := metav1.NewTime(now)

	cases := []struct {
		name    string
		objs    []client.Object
		reader  []client.Object // what the API reader sees; nil: the client
		created error           // the API server's answer to creating a pod
		// readerErr, if set, is the API reader's answer to every read.
		readerErr error
		// wantPod is the pod of the chaperon's name afterwards, nil for none.
		wantPod *corev1.Pod
		// wantStatus is the chaperon's status afterwards.
		wantStatus corev1.PodStatus
		wantEvents []string
		wantWrites []string
		wantErr    bool
	}{
		{
			name:       "creates the candidate pod",
			objs:       []client.Object{makeChaperon()},
			wantPod:    wantCandidate(),
			wantWrites: []string{createPod},
		},
		{
			name: "creates the candidate pod without the allow mark",
			objs: []client.Object{makeChaperon(func(ch *multiclusterv1alpha1.PodChaperon) {
				ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxyUID, 1)
			})},
			wantPod:    wantCandidate(),
			wantWrites: []string{createPod},
		},
		{
			name:       "missing priority class cleared",
			objs:       []client.Object{makeChaperon(withPriorityClass("high"))},
			wantPod:    wantCandidate(),
			wantWrites: []string{createPod},
			wantEvents: []string{`Warning PriorityClassNotFound PriorityClass "high" does not exist in this cluster; the pod runs at the default priority`},
		},
		{
			name: "existing priority class kept",
			objs: []client.Object{
				makeChaperon(withPriorityClass("high")),
				&schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000},
			},
			wantPod: func() *corev1.Pod {
				p := wantCandidate()
				p.Spec.PriorityClassName = "high"
				return p
			}(),
			wantWrites: []string{createPod},
		},
		{
			name:       "status mirrored",
			objs:       []client.Object{makeChaperon(), candidateOf(makeChaperon(), running())},
			wantPod:    candidateOf(makeChaperon(), running()),
			wantStatus: running(),
			wantWrites: []string{patchStatus},
		},
		{
			name: "status mirrored over a create failure",
			objs: []client.Object{
				makeChaperon(withStatus(unschedulable("cannot create the candidate pod: quota", earlier))),
				candidateOf(makeChaperon(), corev1.PodStatus{}),
			},
			wantPod:    candidateOf(makeChaperon(), corev1.PodStatus{}),
			wantStatus: corev1.PodStatus{},
			wantWrites: []string{patchStatus},
		},
		{
			name:    "new candidate, nothing to report yet: no write",
			objs:    []client.Object{makeChaperon(), candidateOf(makeChaperon(), corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort})},
			wantPod: candidateOf(makeChaperon(), corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort}),
		},
		{
			name:       "new candidate found unschedulable: reported",
			objs:       []client.Object{makeChaperon(), candidateOf(makeChaperon(), unschedulable("0/3 nodes are available", earlier))},
			wantPod:    candidateOf(makeChaperon(), unschedulable("0/3 nodes are available", earlier)),
			wantStatus: unschedulable("0/3 nodes are available", earlier),
			wantWrites: []string{patchStatus},
		},
		{
			name: "pending candidate after an earlier report: reported",
			objs: []client.Object{
				makeChaperon(withStatus(unschedulable("0/3 nodes are available", earlier))),
				candidateOf(makeChaperon(), corev1.PodStatus{Phase: corev1.PodPending}),
			},
			wantPod:    candidateOf(makeChaperon(), corev1.PodStatus{Phase: corev1.PodPending}),
			wantStatus: corev1.PodStatus{Phase: corev1.PodPending},
			wantWrites: []string{patchStatus},
		},
		{
			name:       "no write when equal",
			objs:       []client.Object{makeChaperon(withStatus(running())), candidateOf(makeChaperon(), running())},
			wantPod:    candidateOf(makeChaperon(), running()),
			wantStatus: running(),
		},
		{
			name:       "pod deleted while binding: not recreated, failed",
			objs:       []client.Object{makeChaperon(binding)},
			wantStatus: delegateDeleted(corev1.PodStatus{}),
			wantEvents: []string{"Warning DelegateDeleted " + delegateDeleted(corev1.PodStatus{}).Message},
			wantWrites: []string{patchStatus},
		},
		{
			name:       "pod deleted once bound: not recreated, failed",
			objs:       []client.Object{makeChaperon(binding, withStatus(running()))},
			wantStatus: delegateDeleted(running()),
			wantEvents: []string{"Warning DelegateDeleted " + delegateDeleted(running()).Message},
			wantWrites: []string{patchStatus},
		},
		{
			name:       "pod deleted once bound, name since taken: not recreated, failed",
			objs:       []client.Object{makeChaperon(binding, withStatus(running())), foreignPod()},
			wantPod:    foreignPod(),
			wantStatus: delegateDeleted(running()),
			wantEvents: []string{"Warning DelegateDeleted " + delegateDeleted(running()).Message},
			wantWrites: []string{patchStatus},
		},
		{
			name:       "delegate deleted, already failed: no write, no event",
			objs:       []client.Object{makeChaperon(binding, withStatus(delegateDeleted(running())))},
			wantStatus: delegateDeleted(running()),
		},
		{
			name: "delegate deleted after it succeeded: status kept",
			objs: []client.Object{makeChaperon(binding, withStatus(corev1.PodStatus{
				Phase:      corev1.PodSucceeded,
				Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: earlier}},
			}))},
			wantStatus: corev1.PodStatus{
				Phase:      corev1.PodSucceeded,
				Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: earlier}},
			},
		},
		{
			name:       "delegate missing from the cache only: not failed",
			objs:       []client.Object{makeChaperon(binding, withStatus(running()))},
			reader:     []client.Object{candidateOf(makeChaperon(binding), running())},
			wantStatus: running(),
		},
		{
			name:       "name taken by a foreign pod: not touched, unschedulable",
			objs:       []client.Object{makeChaperon(), foreignPod()},
			wantPod:    foreignPod(),
			wantStatus: unschedulable("cannot create the candidate pod: its name is taken by pod team-a/web-0-1a2b3c4d, which this chaperon does not control", stamp),
			wantEvents: []string{"Warning NameTaken Pod team-a/web-0-1a2b3c4d exists and this chaperon does not control it; the candidate pod is created once it is gone"},
			wantWrites: []string{patchStatus},
		},
		{
			name: "name taken, already reported: no write, no event",
			objs: []client.Object{
				makeChaperon(withStatus(unschedulable("cannot create the candidate pod: its name is taken by pod team-a/web-0-1a2b3c4d, which this chaperon does not control", earlier))),
				foreignPod(),
			},
			wantPod:    foreignPod(),
			wantStatus: unschedulable("cannot create the candidate pod: its name is taken by pod team-a/web-0-1a2b3c4d, which this chaperon does not control", earlier),
		},
		{
			name:    "name held by a previous chaperon's candidate: wait",
			objs:    []client.Object{makeChaperon(), previousCandidate()},
			wantPod: previousCandidate(),
		},
		{
			name:       "creation forbidden: unschedulable, event",
			objs:       []client.Object{makeChaperon()},
			created:    forbidden,
			wantStatus: unschedulable(`cannot create the candidate pod: pods "web-0-1a2b3c4d" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=9, limited: cpu=10`, stamp),
			wantEvents: []string{`Warning CreateFailed pods "web-0-1a2b3c4d" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=9, limited: cpu=10`},
			wantWrites: []string{createPod, patchStatus},
			wantErr:    true,
		},
		{
			name:       "creation invalid: unschedulable, event",
			objs:       []client.Object{makeChaperon()},
			created:    invalid,
			wantStatus: unschedulable(`cannot create the candidate pod: Pod "web-0-1a2b3c4d" is invalid: spec.serviceAccountName: Not found: "builder"`, stamp),
			wantEvents: []string{`Warning CreateFailed Pod "web-0-1a2b3c4d" is invalid: spec.serviceAccountName: Not found: "builder"`},
			wantWrites: []string{createPod, patchStatus},
			wantErr:    true,
		},
		{
			name: "creation forbidden again: transition time kept",
			objs: []client.Object{makeChaperon(withStatus(unschedulable(
				"cannot create the candidate pod: quota", earlier)))},
			created: forbidden,
			wantStatus: unschedulable(`cannot create the candidate pod: pods "web-0-1a2b3c4d" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=9, limited: cpu=10`,
				earlier),
			wantEvents: []string{`Warning CreateFailed pods "web-0-1a2b3c4d" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=9, limited: cpu=10`},
			wantWrites: []string{createPod, patchStatus},
			wantErr:    true,
		},
		{
			name:       "pod already exists (cache behind): retried, nothing reported",
			objs:       []client.Object{makeChaperon()},
			created:    apierrors.NewAlreadyExists(schema.GroupResource{Resource: "pods"}, name),
			wantWrites: []string{createPod},
			wantErr:    true,
		},
		{
			name: "chaperon gone: nothing to do",
		},
		{
			name: "chaperon being deleted: nothing to do",
			objs: []client.Object{makeChaperon(deleting)},
		},
		{
			name:       "chaperon gone: its candidate pod deleted at once",
			objs:       []client.Object{candidateOf(makeChaperon(), running())},
			wantWrites: []string{deletePod},
		},
		{
			name:    "chaperon gone from the cache only: its candidate pod kept",
			objs:    []client.Object{candidateOf(makeChaperon(), running())},
			reader:  []client.Object{makeChaperon()},
			wantPod: candidateOf(makeChaperon(), running()),
		},
		{
			name:       "chaperon replaced (cache behind): the previous chaperon's candidate pod deleted",
			objs:       []client.Object{previousCandidate()},
			reader:     []client.Object{makeChaperon()},
			wantWrites: []string{deletePod},
		},
		{
			name:       "chaperon gone, gone around the cache too: its candidate pod deleted",
			objs:       []client.Object{candidateOf(makeChaperon(), running())},
			reader:     []client.Object{},
			wantWrites: []string{deletePod},
		},
		{
			name:      "chaperon gone, the API reader fails: candidate pod kept, retried",
			objs:      []client.Object{candidateOf(makeChaperon(), running())},
			readerErr: apierrors.NewServiceUnavailable("etcd is sad"),
			wantPod:   candidateOf(makeChaperon(), running()),
			wantErr:   true,
		},
		{
			name:    "chaperon gone, foreign pod of its name: untouched",
			objs:    []client.Object{foreignPod()},
			wantPod: foreignPod(),
		},
		{
			name:    "chaperon gone, candidate pod already going: not deleted again",
			objs:    []client.Object{goingPod(candidateOf(makeChaperon(), running()))},
			wantPod: goingPod(candidateOf(makeChaperon(), running())),
		},
		{
			name:       "chaperon being deleted: its candidate pod deleted at once",
			objs:       []client.Object{makeChaperon(deleting), candidateOf(makeChaperon(), running())},
			wantWrites: []string{deletePod},
		},
		{
			name:       "chaperon being deleted, once bound: its delegate pod deleted at once",
			objs:       []client.Object{makeChaperon(binding, withStatus(running()), deleting), candidateOf(makeChaperon(binding), running())},
			wantStatus: running(),
			wantWrites: []string{deletePod},
		},
		{
			name:    "chaperon being deleted, a previous chaperon's candidate pod: left to garbage collection",
			objs:    []client.Object{makeChaperon(deleting), previousCandidate()},
			wantPod: previousCandidate(),
		},
		{
			name:    "chaperon being deleted, foreign pod of its name: untouched",
			objs:    []client.Object{makeChaperon(deleting), foreignPod()},
			wantPod: foreignPod(),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			s := newScheme(t)
			var writes []string
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(tc.objs...).
				WithStatusSubresource(&multiclusterv1alpha1.PodChaperon{}, &corev1.Pod{}).
				WithInterceptorFuncs(recordWrites(&writes, tc.created)).Build()
			var reader client.Reader = c
			if tc.reader != nil {
				reader = fake.NewClientBuilder().WithScheme(s).WithObjects(tc.reader...).Build()
			}
			if tc.readerErr != nil {
				reader = interceptor.NewClient(fake.NewClientBuilder().WithScheme(s).Build(), interceptor.Funcs{
					Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
						return tc.readerErr
					},
				})
			}
			recorder := events.NewFakeRecorder(10)
			r := &Reconciler{Client: c, APIReader: reader, Recorder: recorder, Clock: clocktesting.NewFakePassiveClock(now)}

			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}})
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Errorf("Reconcile() error = %v, want error: %t", err, tc.wantErr)
			}

			if diff := cmp.Diff(tc.wantWrites, writes); diff != "" {
				t.Errorf("writes (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEvents, drain(recorder)); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}
			key := types.NamespacedName{Namespace: namespace, Name: name}
			var pod *corev1.Pod
			if got := (&corev1.Pod{}); c.Get(ctx, key, got) == nil {
				pod = got
			}
			ignore := cmp.Options{
				cmpopts.IgnoreFields(corev1.Pod{}, "TypeMeta"),
				cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ResourceVersion"),
			}
			if diff := cmp.Diff(tc.wantPod, pod, ignore); diff != "" {
				t.Errorf("pod (-want,+got):\n%s", diff)
			}
			var ch multiclusterv1alpha1.PodChaperon
			if err := c.Get(ctx, key, &ch); err != nil {
				if !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.wantStatus, ch.Status); diff != "" {
				t.Errorf("chaperon status (-want,+got):\n%s", diff)
			}
		})
	}
}

// recordWrites records the client's writes in writes; pods are created
// with answer, nil to create them.
func recordWrites(writes *[]string, answer error) interceptor.Funcs {
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			*writes = append(*writes, "create "+kind(obj))
			if _, ok := obj.(*corev1.Pod); ok && answer != nil {
				return answer
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			*writes = append(*writes, "update "+kind(obj))
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			*writes = append(*writes, "patch "+kind(obj))
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			*writes = append(*writes, "delete "+kind(obj))
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			*writes = append(*writes, "update "+kind(obj)+"/"+sub)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			*writes = append(*writes, "patch "+kind(obj)+"/"+sub)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}
}

func kind(obj client.Object) string {
	switch obj.(type) {
	case *corev1.Pod:
		return "pod"
	case *multiclusterv1alpha1.PodChaperon:
		return "podchaperon"
	}
	return "other"
}

func drain(r *events.FakeRecorder) []string {
	var got []string
	for {
		select {
		case e := <-r.Events:
			got = append(got, e)
		default:
			return got
		}
	}
}

func TestNameFreed(t *testing.T) {
	ownedBy := func(chaperon string) *corev1.Pod {
		pod := foreignPod()
		pod.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: chaperon, UID: "u", Controller: &yes,
		}}
		return pod
	}
	cases := []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"foreign pod", foreignPod(), true},
		{"candidate pod (watched as owned)", ownedBy(name), false},
		{"pod of another chaperon", ownedBy("other"), true},
	}
	p := nameFreed()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Delete(event.DeleteEvent{Object: tc.pod}); got != tc.want {
				t.Errorf("Delete() = %t, want %t", got, tc.want)
			}
			if p.Create(event.CreateEvent{Object: tc.pod}) || p.Update(event.UpdateEvent{ObjectOld: tc.pod, ObjectNew: tc.pod}) {
				t.Error("creations and updates pass, want only deletions")
			}
		})
	}
}

// TestDeleteCandidateSafely: the candidate pod of a deleted chaperon is
// deleted only if it is still the pod that was read (a new candidate of the
// same name is not), and an answer saying it is gone or replaced is fine.
func TestDeleteCandidateSafely(t *testing.T) {
	gone := apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
	replaced := apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, name, errors.New("Precondition failed: UID in precondition: candidate-pod-uid, UID in object meta: new-uid"))
	cases := []struct {
		name    string
		answer  error
		wantErr bool
	}{
		{name: "deleted"},
		{name: "gone already", answer: gone},
		{name: "replaced by a new pod of the same name", answer: replaced},
		{name: "API server error", answer: apierrors.NewServiceUnavailable("etcd is sad"), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pod := candidateOf(makeChaperon(), running())
			pod.UID = "candidate-pod-uid"
			var deletes []string
			c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(pod).
				WithInterceptorFuncs(interceptor.Funcs{
					Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
						o := client.DeleteOptions{}
						o.ApplyOptions(opts)
						uid := "<none>"
						if o.Preconditions != nil && o.Preconditions.UID != nil {
							uid = string(*o.Preconditions.UID)
						}
						deletes = append(deletes, fmt.Sprintf("%s uid=%s", obj.GetName(), uid))
						if tc.answer != nil {
							return tc.answer
						}
						return c.Delete(ctx, obj, opts...)
					},
				}).Build()
			r := &Reconciler{Client: c}

			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}})
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Errorf("Reconcile() error = %v, want error: %t", err, tc.wantErr)
			}
			if diff := cmp.Diff([]string{name + " uid=candidate-pod-uid"}, deletes); diff != "" {
				t.Errorf("deletes (-want,+got):\n%s", diff)
			}
		})
	}
}
