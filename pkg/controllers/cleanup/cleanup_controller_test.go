package cleanup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

const (
	namespace = "team-a"
	// sourceID made the chaperons; otherSourceID is another source of the
	// same target.
	sourceID      = "source-kube-system-uid"
	otherSourceID = "other-source-kube-system-uid"
	// targetEU and targetUS are the source's Targets through which it made
	// chaperons in this cluster: a ClusterTarget and a namespaced Target.
	targetEU = "eu"
	targetUS = namespace + "/us"

	// The chaperons.
	chEU      = "web-eu"
	chUS      = "web-us"
	chOther   = "web-other-source"
	leaseSecs = 60
	duration  = leaseSecs * time.Second
	// grace is the reconciler's grace period, unlike DefaultGracePeriod so
	// that a test sees which one applies.
	grace = 10 * time.Minute
	// slack is what a requeue may add to the time it waits for.
	slack = 2 * time.Second
)

// start is when every test begins, to the microsecond (a Lease's renewTime
// keeps no more).
var start = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

type chaperonOpt func(*multiclusterv1alpha1.PodChaperon)

// chaperon is a chaperon in namespace that sourceID made through targetEU.
func chaperon(name string, opts ...chaperonOpt) *multiclusterv1alpha1.PodChaperon {
	ch := &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{
		Namespace:   namespace,
		Name:        name,
		UID:         types.UID(name + "-uid"),
		Labels:      map[string]string{protocol.SourceClusterLabel: sourceID, "app": "web"},
		Annotations: map[string]string{protocol.TargetAnnotation: targetEU},
	}}
	for _, o := range opts {
		o(ch)
	}
	return ch
}

func inNamespace(ns string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) { ch.Namespace = ns }
}

func ofSource(id string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) { ch.Labels[protocol.SourceClusterLabel] = id }
}

func throughTarget(target string) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) { ch.Annotations[protocol.TargetAnnotation] = target }
}

func withoutSource(ch *multiclusterv1alpha1.PodChaperon) {
	delete(ch.Labels, protocol.SourceClusterLabel)
}

func withoutTarget(ch *multiclusterv1alpha1.PodChaperon) {
	delete(ch.Annotations, protocol.TargetAnnotation)
}

// deleting is being deleted, held by a finalizer.
func deleting(ch *multiclusterv1alpha1.PodChaperon) {
	ch.DeletionTimestamp = &metav1.Time{Time: start.Add(-time.Minute)}
	ch.Finalizers = []string{"test.flotilla.io/keep"}
}

// sourceLease is the Lease by which source stands behind its chaperons
// through target in namespace, as Heartbeat writes it, last renewed at
// renewed.
func sourceLease(ns, source, target string, renewed time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ns,
			Name:        protocol.SourceLeaseName(source, target),
			Labels:      map[string]string{protocol.SourceClusterLabel: source},
			Annotations: map[string]string{protocol.TargetAnnotation: target},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(source),
			LeaseDurationSeconds: ptr.To[int32](leaseSecs),
			RenewTime:            ptr.To(metav1.NewMicroTime(renewed)),
		},
	}
}

// world is a target cluster as the reconciler sees it: its clock, its
// cache (Client) and its API server (APIReader). Leases are in both, the
// same unless a test makes the cache stale; chaperons only matter in the
// cache, through which the reconciler reads and deletes them.
type world struct {
	t        *testing.T
	ctx      context.Context
	clock    *clocktesting.FakeClock
	cache    client.Client
	api      client.Client
	recorder *events.FakeRecorder
	r        *Reconciler
	// apiDown makes live reads fail, as while the API server is down.
	apiDown bool
	// deleted are the chaperons the reconciler deleted.
	deleted []string
}

func newWorld(t *testing.T, gracePeriod time.Duration, chaperons []*multiclusterv1alpha1.PodChaperon, leases []*coordinationv1.Lease) *world {
	_, ctx := ktesting.NewTestContext(t)
	w := &world{t: t, ctx: ctx, clock: clocktesting.NewFakeClock(start), recorder: events.NewFakeRecorder(10)}
	var cached, live []client.Object
	for _, ch := range chaperons {
		cached = append(cached, ch)
	}
	for _, l := range leases {
		cached = append(cached, l)
		live = append(live, l.DeepCopy())
	}
	w.cache = fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(cached...).
		WithInterceptorFuncs(interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if _, ok := obj.(*multiclusterv1alpha1.PodChaperon); ok {
					w.deleted = append(w.deleted, obj.GetName())
				}
				return c.Delete(ctx, obj, opts...)
			},
		}).Build()
	w.api = fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(live...).
		WithInterceptorFuncs(interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if w.apiDown {
					return fmt.Errorf("Get \"https://target.example:6443/apis/coordination.k8s.io/v1\": %w",
						errors.New("dial tcp 10.0.0.1:6443: connect: connection refused"))
				}
				return c.Get(ctx, key, obj, opts...)
			},
		}).Build()
	w.r = &Reconciler{Client: w.cache, APIReader: w.api, Recorder: w.recorder, GracePeriod: gracePeriod, Clock: w.clock}
	return w
}

// putLease writes lease in c, as the source would (c is the API server) or
// as the cache would catch up with it.
func (w *world) putLease(c client.Client, lease *coordinationv1.Lease) {
	w.t.Helper()
	current := &coordinationv1.Lease{}
	err := c.Get(w.ctx, client.ObjectKeyFromObject(lease), current)
	switch {
	case apierrors.IsNotFound(err):
		err = c.Create(w.ctx, lease.DeepCopy())
	case err == nil:
		current.Spec = *lease.Spec.DeepCopy()
		err = c.Update(w.ctx, current)
	}
	if err != nil {
		w.t.Fatalf("Writing lease %s: %v", lease.Name, err)
	}
}

// Changes to the world, made before a reconcile.

// renew renews source's Lease through target now, seen by the cache too.
func renew(source, target string) func(*world) {
	return func(w *world) {
		l := sourceLease(namespace, source, target, w.clock.Now())
		w.putLease(w.api, l)
		w.putLease(w.cache, l)
	}
}

// renewLive renews source's Lease through target now, not yet seen by the
// cache.
func renewLive(source, target string) func(*world) {
	return func(w *world) {
		w.putLease(w.api, sourceLease(namespace, source, target, w.clock.Now()))
	}
}

// syncCache makes the cache catch up with the API server's Leases.
func syncCache(w *world) {
	w.t.Helper()
	leases := &coordinationv1.LeaseList{}
	if err := w.api.List(w.ctx, leases); err != nil {
		w.t.Fatalf("Listing leases: %v", err)
	}
	for i := range leases.Items {
		w.putLease(w.cache, &leases.Items[i])
	}
}

// deleteLease deletes source's Lease through target.
func deleteLease(source, target string) func(*world) {
	return func(w *world) {
		w.t.Helper()
		l := sourceLease(namespace, source, target, start)
		for _, c := range []client.Client{w.api, w.cache} {
			if err := c.Delete(w.ctx, l); err != nil {
				w.t.Fatalf("Deleting lease %s: %v", l.Name, err)
			}
		}
	}
}

func apiDown(down bool) func(*world) {
	return func(w *world) { w.apiDown = down }
}

// orphaned is the event on a chaperon of source through target collected
// because live reads found its Lease run out since since.
func orphaned(source, target string, since time.Time) string {
	return fmt.Sprintf("Warning %s Deleted: its source (cluster %s, through %s) has not renewed Lease %s since %s",
		ReasonOrphaned, source, target, protocol.SourceLeaseName(source, target), since.Format(time.RFC3339))
}

// step is one reconcile of a chaperon, as the controller would run it.
type step struct {
	// after is how long after the previous step it happens;
	// afterRequeue instead waits for the previous step's requeue.
	after        time.Duration
	afterRequeue bool
	// do changes the world before the reconcile.
	do []func(*world)
	// chaperon is the one reconciled, chEU when empty.
	chaperon string

	// wantRequeue is about how long the reconciler asks to wait (it may
	// add up to slack); 0: it does not ask to come back.
	wantRequeue time.Duration
	wantErr     bool
	// wantGone: the chaperon no longer exists after the reconcile.
	wantGone bool
}

func TestReconcile(t *testing.T) {
	// Times of the steps of some cases, from start.
	graceStartsAt := start.Add(duration + time.Second)

	cases := []struct {
		name      string
		grace     time.Duration
		chaperons []*multiclusterv1alpha1.PodChaperon
		leases    []*coordinationv1.Lease
		steps     []step
		// wantDeleted are the chaperons the reconciler deleted, in order.
		wantDeleted []string
		wantEvents  []string
	}{
		{
			name:      "chaperon without a source label: untouched",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU, withoutSource)},
			steps: []step{
				{},
				{after: duration + 2*grace},
			},
		},
		{
			name:      "chaperon without a target annotation: untouched",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU, withoutTarget)},
			steps: []step{
				{},
				{after: duration + 2*grace},
			},
		},
		{
			name:      "chaperon being deleted: untouched",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU, deleting)},
			steps: []step{
				{},
				{after: duration + 2*grace},
			},
		},
		{
			name:  "chaperon gone: nothing to do",
			steps: []step{{wantGone: true}},
		},
		{
			name:      "lease renewed recently: kept until its duration after the last renewal seen",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start.Add(-10*time.Second))},
			steps: []step{
				{wantRequeue: duration},
				{after: 20 * time.Second, do: []func(*world){renew(sourceID, targetEU)}, wantRequeue: duration},
				{after: 45 * time.Second, wantRequeue: 15 * time.Second},
				{after: 10 * time.Second, do: []func(*world){renew(sourceID, targetEU)}, wantRequeue: duration},
				{after: duration - time.Second, wantRequeue: time.Second},
			},
		},
		{
			name:      "first sight of a lease renewed long ago: kept for its whole duration from now",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start.Add(-24*time.Hour))},
			steps: []step{
				{wantRequeue: duration},
				{after: duration - 10*time.Second, wantRequeue: 10 * time.Second},
			},
		},
		{
			name:      "lease not renewed for its duration: collected once the grace period has passed",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start.Add(-24*time.Hour))},
			steps: []step{
				{wantRequeue: duration},
				{afterRequeue: true, wantRequeue: grace},
				{after: grace - 10*time.Second, wantRequeue: 10 * time.Second},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents:  []string{orphaned(sourceID, targetEU, graceStartsAt)},
		},
		{
			name:      "renewal during the grace period: starts over",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start)},
			steps: []step{
				{wantRequeue: duration},
				{afterRequeue: true, wantRequeue: grace},
				{after: grace / 2, wantRequeue: grace / 2},
				{after: time.Minute, do: []func(*world){renew(sourceID, targetEU)}, wantRequeue: duration},
				// The whole duration, then the whole grace period again.
				{afterRequeue: true, wantRequeue: grace},
				{after: grace - time.Second, wantRequeue: time.Second},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents: []string{orphaned(sourceID, targetEU,
				graceStartsAt.Add(grace/2+time.Minute+duration+time.Second))},
		},
		{
			name:      "lease missing: collected a grace period after it was first seen missing",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			steps: []step{
				{wantRequeue: grace},
				{after: grace - time.Minute, wantRequeue: time.Minute},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents:  []string{orphaned(sourceID, targetEU, start)},
		},
		{
			name:      "lease appears after it was seen missing: kept for its whole duration",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			steps: []step{
				{wantRequeue: grace},
				{after: grace - time.Minute, do: []func(*world){renew(sourceID, targetEU)}, wantRequeue: duration},
				{afterRequeue: true, wantRequeue: grace},
			},
		},
		{
			name:      "lease deleted after it was seen: holds for the rest of its duration, then the grace period",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start)},
			steps: []step{
				{wantRequeue: duration},
				{after: 20 * time.Second, do: []func(*world){deleteLease(sourceID, targetEU)}, wantRequeue: duration - 20*time.Second},
				{afterRequeue: true, wantRequeue: grace},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents:  []string{orphaned(sourceID, targetEU, graceStartsAt)},
		},
		{
			name:      "stale cache says it ran out, the API server has a renewal: kept",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start)},
			steps: []step{
				{wantRequeue: duration},
				{afterRequeue: true, do: []func(*world){renewLive(sourceID, targetEU)}, wantRequeue: duration},
				// The cache catches up: the same renewal, not a new one.
				{after: 30 * time.Second, do: []func(*world){syncCache}, wantRequeue: duration - 30*time.Second},
				{afterRequeue: true, wantRequeue: grace},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents:  []string{orphaned(sourceID, targetEU, graceStartsAt.Add(duration+time.Second))},
		},
		{
			name:      "API server down when the cache says it ran out: error, nothing deleted, and the grace period waits for it",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start)},
			steps: []step{
				{wantRequeue: duration},
				{afterRequeue: true, do: []func(*world){apiDown(true)}, wantErr: true},
				{after: 2 * grace, wantErr: true},
				// Back: the whole grace period from now.
				{after: time.Minute, do: []func(*world){apiDown(false)}, wantRequeue: grace},
				{after: grace - time.Second, wantRequeue: time.Second},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents:  []string{orphaned(sourceID, targetEU, graceStartsAt.Add(2*grace+time.Minute))},
		},
		{
			// The source could not renew through a target that did not
			// answer: the outage does not count against it.
			name:      "API server down during the grace period: the grace period starts over once it answers",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start)},
			steps: []step{
				{wantRequeue: duration},
				{afterRequeue: true, wantRequeue: grace},
				{afterRequeue: true, do: []func(*world){apiDown(true)}, wantErr: true},
				{after: time.Minute, do: []func(*world){apiDown(false)}, wantRequeue: grace},
				{after: grace - time.Second, wantRequeue: time.Second},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents:  []string{orphaned(sourceID, targetEU, graceStartsAt.Add(grace+time.Second+time.Minute))},
		},
		{
			name:      "API server down during the grace period, and the source renews once it answers: kept",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases:    []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start)},
			steps: []step{
				{wantRequeue: duration},
				{afterRequeue: true, wantRequeue: grace},
				{afterRequeue: true, do: []func(*world){apiDown(true)}, wantErr: true},
				{after: time.Minute, do: []func(*world){apiDown(false)}, wantRequeue: grace},
				{after: time.Second, do: []func(*world){renew(sourceID, targetEU)}, wantRequeue: duration},
			},
		},
		{
			name: "chaperon of another target: its own lease",
			chaperons: []*multiclusterv1alpha1.PodChaperon{
				chaperon(chEU),
				chaperon(chUS, throughTarget(targetUS)),
			},
			// Only the Lease through targetEU: the source no longer has
			// targetUS, which leads to this cluster too.
			leases: []*coordinationv1.Lease{sourceLease(namespace, sourceID, targetEU, start)},
			steps: []step{
				{wantRequeue: duration},
				{chaperon: chUS, wantRequeue: grace},
				{after: 30 * time.Second, do: []func(*world){renew(sourceID, targetEU)}, wantRequeue: duration},
				{after: grace - 30*time.Second, do: []func(*world){renew(sourceID, targetEU)}, chaperon: chUS, wantGone: true},
				{wantRequeue: duration},
			},
			wantDeleted: []string{chUS},
			wantEvents:  []string{orphaned(sourceID, targetUS, start)},
		},
		{
			name: "chaperon of another source: its own lease",
			chaperons: []*multiclusterv1alpha1.PodChaperon{
				chaperon(chEU),
				chaperon(chOther, ofSource(otherSourceID)),
			},
			leases: []*coordinationv1.Lease{
				sourceLease(namespace, sourceID, targetEU, start),
				sourceLease(namespace, otherSourceID, targetEU, start),
			},
			steps: []step{
				{wantRequeue: duration},
				{chaperon: chOther, wantRequeue: duration},
				{after: 30 * time.Second, do: []func(*world){renew(sourceID, targetEU)}, wantRequeue: duration},
				{after: 31 * time.Second, chaperon: chOther, wantRequeue: grace},
				{after: 29 * time.Second, do: []func(*world){renew(sourceID, targetEU)}, wantRequeue: duration},
				{after: grace - 29*time.Second, chaperon: chOther, wantGone: true},
			},
			wantDeleted: []string{chOther},
			wantEvents:  []string{orphaned(otherSourceID, targetEU, start.Add(duration+time.Second))},
		},
		{
			// leaseDurationSeconds is optional in the Lease API.
			name:      "lease without a duration: run out at once, collected after the grace period",
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			leases: []*coordinationv1.Lease{func() *coordinationv1.Lease {
				l := sourceLease(namespace, sourceID, targetEU, start)
				l.Spec.LeaseDurationSeconds = nil
				return l
			}()},
			steps: []step{
				{wantRequeue: grace},
				{after: grace - time.Second, wantRequeue: time.Second},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents:  []string{orphaned(sourceID, targetEU, start)},
		},
		{
			name:      "no grace period given: DefaultGracePeriod",
			grace:     -1,
			chaperons: []*multiclusterv1alpha1.PodChaperon{chaperon(chEU)},
			steps: []step{
				{wantRequeue: DefaultGracePeriod},
				{after: DefaultGracePeriod - time.Second, wantRequeue: time.Second},
				{afterRequeue: true, wantGone: true},
			},
			wantDeleted: []string{chEU},
			wantEvents:  []string{orphaned(sourceID, targetEU, start)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.grace
			switch {
			case g == 0:
				g = grace
			case g < 0:
				g = 0
			}
			w := newWorld(t, g, tc.chaperons, tc.leases)
			var last reconcile.Result
			for i, s := range tc.steps {
				if s.afterRequeue {
					if last.RequeueAfter <= 0 {
						t.Fatalf("Step %d waits for a requeue, but the previous step asked for none", i)
					}
					w.clock.Step(last.RequeueAfter)
				} else {
					w.clock.Step(s.after)
				}
				for _, do := range s.do {
					do(w)
				}
				name := s.chaperon
				if name == "" {
					name = chEU
				}
				req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}}
				got, err := w.r.Reconcile(w.ctx, req)
				at := w.clock.Now().Sub(start)
				if (err != nil) != s.wantErr {
					t.Fatalf("Step %d (%s after start, %s): Reconcile() error = %v, want error: %t", i, at, name, err, s.wantErr)
				}
				if !about(got.RequeueAfter, s.wantRequeue) {
					t.Errorf("Step %d (%s after start, %s): RequeueAfter = %s, want about %s", i, at, name, got.RequeueAfter, s.wantRequeue)
				}
				err = w.cache.Get(w.ctx, req.NamespacedName, &multiclusterv1alpha1.PodChaperon{})
				if gone := apierrors.IsNotFound(err); gone != s.wantGone {
					t.Errorf("Step %d (%s after start, %s): chaperon gone = %t (%v), want %t", i, at, name, gone, err, s.wantGone)
				}
				last = got
			}
			if diff := cmp.Diff(tc.wantDeleted, w.deleted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Deleted chaperons (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEvents, drain(w.recorder), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Events (-want,+got):\n%s", diff)
			}
		})
	}
}

// about reports whether a requeue after got is one after want: the same,
// or up to slack later.
func about(got, want time.Duration) bool {
	if want == 0 {
		return got == 0
	}
	return got >= want && got <= want+slack
}

func drain(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestChaperonsOf(t *testing.T) {
	chaperons := []client.Object{
		chaperon("a-eu"),
		chaperon("a-eu-2"),
		chaperon("a-us", throughTarget(targetUS)),
		chaperon("a-other-source", ofSource(otherSourceID)),
		chaperon("a-no-target", withoutTarget),
		chaperon("a-no-source", withoutSource),
		chaperon("b-eu", inNamespace("team-b")),
		chaperon("b-us", inNamespace("team-b"), throughTarget(targetUS)),
	}
	noSource := sourceLease(namespace, sourceID, targetEU, start)
	delete(noSource.Labels, protocol.SourceClusterLabel)
	cases := []struct {
		name  string
		lease *coordinationv1.Lease
		want  []string
	}{
		{
			name:  "source and target",
			lease: sourceLease(namespace, sourceID, targetEU, start),
			want:  []string{"a-eu", "a-eu-2"},
		},
		{
			name:  "another target of the source",
			lease: sourceLease(namespace, sourceID, targetUS, start),
			want:  []string{"a-us"},
		},
		{
			name:  "another source",
			lease: sourceLease(namespace, otherSourceID, targetEU, start),
			want:  []string{"a-other-source"},
		},
		{
			name:  "another namespace",
			lease: sourceLease("team-b", sourceID, targetUS, start),
			want:  []string{"team-b/b-us"},
		},
		{
			name:  "a namespace without chaperons",
			lease: sourceLease("team-c", sourceID, targetEU, start),
		},
		{
			name:  "a source without chaperons",
			lease: sourceLease(namespace, "unknown-source", targetEU, start),
		},
		{
			name:  "a lease without a source label",
			lease: noSource,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			c := fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(chaperons...).Build()
			r := &Reconciler{Client: c}
			var got []string
			for _, req := range r.chaperonsOf(ctx, tc.lease) {
				got = append(got, req.String())
			}
			var want []string
			for _, name := range tc.want {
				if strings.Contains(name, "/") {
					want = append(want, name)
				} else {
					want = append(want, namespace+"/"+name)
				}
			}
			if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b }), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("chaperonsOf() (-want,+got):\n%s", diff)
			}
		})
	}
}
