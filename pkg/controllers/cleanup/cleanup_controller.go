package cleanup

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// DefaultGracePeriod is how long a target waits, after it last saw a
// source's Lease renewed and that Lease ran out, before it collects the
// source's chaperons. It is longer than taint-based eviction (5 minutes),
// after which the source has replaced the pods of a target it cannot
// reach anyway.
const DefaultGracePeriod = 15 * time.Minute

// ReasonOrphaned is the reason of the event on a collected chaperon.
const ReasonOrphaned = "Orphaned"

// Reconciler runs in a target: it deletes the PodChaperons (and so their
// candidates, delegates and followers) of a source that no longer stands
// behind them: its Lease there (see Heartbeat) was not renewed, as this
// controller observes it, for the Lease's duration, and then stays so, as
// confirmed by reading the API server (not a cache that may be stale, e.g.
// while this cluster's API server is down), for GracePeriod. Time is
// measured by this controller's own clock from what it observes (as the
// node lifecycle controller does with node leases), never from the
// source's timestamps: a target coming back from an outage gives its
// sources the whole grace period to reconnect before anything is collected.
type Reconciler struct {
	Client client.Client
	// APIReader confirms an expiry with a live read.
	APIReader   client.Reader
	Recorder    events.EventRecorder
	GracePeriod time.Duration
	Clock       clock.PassiveClock

	mu sync.Mutex
	// seen is, per Lease, what this controller observed of it.
	seen map[types.NamespacedName]*observation
}

type observation struct {
	// at is when the Lease was last seen renewed (or first seen missing).
	at       time.Time
	renewed  time.Time
	duration time.Duration
	present  bool
	// expiredSince is when a live read first confirmed it ran out.
	expiredSince time.Time
}

// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=podchaperons,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// Reconcile collects a chaperon whose source's Lease ran out long enough
// ago, or comes back when it may have.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	ch := &multiclusterv1alpha1.PodChaperon{}
	if err := r.Client.Get(ctx, req.NamespacedName, ch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	source, target := ch.Labels[protocol.SourceClusterLabel], protocol.ChaperonTarget(ch)
	if source == "" || target == "" || !ch.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // made before sources said who they are
	}
	name := types.NamespacedName{Namespace: ch.Namespace, Name: protocol.SourceLeaseName(source, target)}
	lease, err := r.lease(ctx, r.Client, name)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.clock().Now()
	if until := r.observe(name, lease, now); until > 0 {
		return ctrl.Result{RequeueAfter: until + time.Second}, nil
	}
	// Ran out, says the cache: ask the API server. While it does not
	// answer, the source cannot renew either: the grace period starts over
	// once it answers again, so that a target coming back from an outage
	// does not delete what its sources still want.
	if lease, err = r.lease(ctx, r.APIReader, name); err != nil {
		r.unconfirmed(name)
		return ctrl.Result{}, fmt.Errorf("confirming that lease %s ran out: %w", name, err)
	}
	if until := r.observe(name, lease, now); until > 0 {
		return ctrl.Result{RequeueAfter: until + time.Second}, nil
	}
	since := r.expired(name, now)
	if wait := since.Add(r.grace()).Sub(now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait + time.Second}, nil
	}
	err = r.Client.Delete(ctx, ch, client.Preconditions{UID: &ch.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return ctrl.Result{}, fmt.Errorf("deleting an orphaned chaperon: %w", err)
	}
	why := fmt.Sprintf("its source (cluster %s, through %s) has not renewed Lease %s since %s", source, target, name.Name,
		since.Format(time.RFC3339))
	if r.Recorder != nil {
		r.Recorder.Eventf(ch, nil, corev1.EventTypeWarning, ReasonOrphaned, "Delete", "Deleted: %s", why)
	}
	ctrl.LoggerFrom(ctx).Info("Deleted an orphaned chaperon", "why", why)
	return ctrl.Result{}, nil
}

func (r *Reconciler) lease(ctx context.Context, reader client.Reader, name types.NamespacedName) (*coordinationv1.Lease, error) {
	lease := &coordinationv1.Lease{}
	if err := reader.Get(ctx, name, lease); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return lease, nil
}

// observe records what was read of a Lease (nil: missing) and returns how
// long it still holds (0: it ran out).
func (r *Reconciler) observe(name types.NamespacedName, lease *coordinationv1.Lease, now time.Time) time.Duration {
	var renewed time.Time
	var duration time.Duration
	if lease != nil {
		if lease.Spec.RenewTime != nil {
			renewed = lease.Spec.RenewTime.Time
		}
		if lease.Spec.LeaseDurationSeconds != nil {
			duration = time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[types.NamespacedName]*observation{}
	}
	o, known := r.seen[name]
	if !known || lease != nil && (!o.present || !renewed.Equal(o.renewed)) {
		o = &observation{at: now, renewed: renewed, duration: duration, present: lease != nil}
		r.seen[name] = o
	}
	left := o.at.Add(o.duration).Sub(now)
	if left > 0 {
		o.expiredSince = time.Time{}
		return left
	}
	return 0
}

// expired returns since when live reads have found the Lease run out.
func (r *Reconciler) expired(name types.NamespacedName, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.seen[name]
	if o.expiredSince.IsZero() {
		o.expiredSince = now
	}
	return o.expiredSince
}

// unconfirmed forgets since when the Lease was found run out: a live read
// failed.
func (r *Reconciler) unconfirmed(name types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.seen[name]; o != nil {
		o.expiredSince = time.Time{}
	}
}

func (r *Reconciler) grace() time.Duration {
	if r.GracePeriod <= 0 {
		return DefaultGracePeriod
	}
	return r.GracePeriod
}

func (r *Reconciler) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

// chaperonsOf maps a source's Lease to the chaperons it stands behind.
func (r *Reconciler) chaperonsOf(ctx context.Context, obj client.Object) []reconcile.Request {
	source, target := obj.GetLabels()[protocol.SourceClusterLabel], obj.GetAnnotations()[protocol.TargetAnnotation]
	if source == "" {
		return nil
	}
	list := &multiclusterv1alpha1.PodChaperonList{}
	if err := r.Client.List(ctx, list, client.InNamespace(obj.GetNamespace()),
		client.MatchingLabels{protocol.SourceClusterLabel: source}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the chaperons of a source", "source", source)
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if protocol.ChaperonTarget(&list.Items[i]) == target {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// SetupWithManager watches chaperons and the sources' Leases.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	sourceLeases := predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, ok := o.GetLabels()[protocol.SourceClusterLabel]
		return ok
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("cleanup").
		For(&multiclusterv1alpha1.PodChaperon{}).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(r.chaperonsOf), builder.WithPredicates(sourceLeases)).
		Complete(r)
}
