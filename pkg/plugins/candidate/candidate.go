package candidate

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
	"github.com/flotilla-io/flotilla/pkg/apis/config/validation"
	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// Name is the plugin's name in the scheduler configuration.
const Name = "Candidate"

// Reasons in statuses.
const (
	ErrReasonNoChaperon  = "the candidate's PodChaperon is gone"
	ErrReasonWithdrawn   = "the candidate's PodChaperon was deleted since Reserve (the proxy chose another target, or the proxy pod is gone)"
	ErrReasonReleased    = "released by the proxy scheduler (another target was chosen, or the proxy pod is gone)"
	ErrReasonRevoked     = "the proxy's allow mark is no longer current"
	ErrReasonNotFollowed = "the ConfigMaps and Secrets the pod references are not in this cluster yet"
	ErrReasonDeleting    = "the pod is being deleted"
)

// retryAfterRelease is how soon a candidate whose reservation ended
// without a decision offers itself again.
const retryAfterRelease = time.Second

// Candidate is the candidate plugin.
type Candidate struct {
	handle fwk.Handle
	args   config.CandidateArgs
	// chaperons reads PodChaperons from an informer cache.
	chaperons client.Reader
	// client writes (and reads, for the binding fence) directly.
	client client.Client
	marks  workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu sync.Mutex
	// reservations held by candidates waiting for (or past) Permit, by pod UID.
	reservations map[types.UID]reservation
	// byChaperon finds the pod holding a chaperon's reservation.
	byChaperon map[types.NamespacedName]types.UID
	// last is the latest attempt this process made per chaperon; desired
	// the reservation mark to write.
	last    map[types.NamespacedName]int64
	desired map[types.NamespacedName]string
	// waitingSince is when each pod entered Permit.
	waitingSince map[types.UID]time.Time
}

type reservation struct {
	chaperon types.NamespacedName
	attempt  int64
	node     string
}

var (
	_ fwk.PreEnqueuePlugin = &Candidate{}
	_ fwk.PostFilterPlugin = &Candidate{}
	_ fwk.ReservePlugin    = &Candidate{}
	_ fwk.PermitPlugin     = &Candidate{}
	_ fwk.PreBindPlugin    = &Candidate{}
	_ fwk.PostBindPlugin   = &Candidate{}
)

// New is the plugin's factory: it watches the cluster's PodChaperons with
// the scheduler's own client configuration.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, ok := obj.(*config.CandidateArgs)
	if !ok {
		return nil, fmt.Errorf("want args of type CandidateArgs, got %T", obj)
	}
	if err := validation.ValidateCandidateArgs(nil, args); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(h.KubeConfig())
	// kube-scheduler asks for protobuf, which custom resources do not speak.
	cfg.ContentType, cfg.AcceptContentTypes = "", ""
	c, err := client.New(cfg, client.Options{Scheme: protocol.Scheme})
	if err != nil {
		return nil, fmt.Errorf("building a client: %w", err)
	}
	informers, err := cache.New(cfg, cache.Options{Scheme: protocol.Scheme, DefaultTransform: cache.TransformStripManagedFields()})
	if err != nil {
		return nil, fmt.Errorf("building a cache: %w", err)
	}
	pl := newCandidate(h, args, informers, c)
	informer, err := informers.GetInformer(ctx, &multiclusterv1alpha1.PodChaperon{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("watching PodChaperons: %w", err)
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.chaperonAdded(obj); pl.chaperonChanged(obj, false) },
		UpdateFunc: func(_, obj any) { pl.chaperonChanged(obj, false) },
		DeleteFunc: func(obj any) { pl.chaperonChanged(obj, true) },
	}); err != nil {
		return nil, fmt.Errorf("watching PodChaperons: %w", err)
	}
	go func() {
		if err := informers.Start(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "PodChaperon cache stopped")
		}
	}()
	pl.Start(ctx)
	return pl, nil
}

func newCandidate(h fwk.Handle, args *config.CandidateArgs, chaperons client.Reader, c client.Client) *Candidate {
	registerMetrics()
	return &Candidate{
		handle:    h,
		args:      *args,
		chaperons: chaperons,
		client:    c,
		marks: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](50*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "flotilla-candidate-marks"}),
		reservations: map[types.UID]reservation{},
		byChaperon:   map[types.NamespacedName]types.UID{},
		last:         map[types.NamespacedName]int64{},
		desired:      map[types.NamespacedName]string{},
		waitingSince: map[types.UID]time.Time{},
	}
}

// Start runs the workers that write reservation marks, until ctx ends.
func (pl *Candidate) Start(ctx context.Context) {
	for range 8 {
		go pl.runMarks(ctx)
	}
	go func() {
		<-ctx.Done()
		pl.marks.ShutDown()
	}()
}

// Name returns the plugin's name.
func (pl *Candidate) Name() string { return Name }

func (pl *Candidate) chaperon(ctx context.Context, nn types.NamespacedName) (*multiclusterv1alpha1.PodChaperon, error) {
	ch := &multiclusterv1alpha1.PodChaperon{}
	if err := pl.chaperons.Get(ctx, nn, ch); err != nil {
		return nil, err
	}
	return ch, nil
}

func chaperonKey(pod *corev1.Pod) (types.NamespacedName, bool) {
	name := protocol.ChaperonOf(pod)
	return types.NamespacedName{Namespace: pod.Namespace, Name: name}, name != ""
}

// PreEnqueue keeps a pod that is being deleted out of the active queue: a
// withdrawn candidate's deletion is an update that would otherwise bring it
// back, only for kube-scheduler to skip it with a FailedScheduling Event
// ("skip schedule deleting pod"), one more write per losing candidate.
func (pl *Candidate) PreEnqueue(_ context.Context, pod *corev1.Pod) *fwk.Status {
	if pod.DeletionTimestamp != nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonDeleting)
	}
	return nil
}

// PostFilter runs when no node fits the candidate: a reservation mark left
// by an earlier attempt (e.g. of a scheduler that restarted) is released,
// so that the proxy reads the verdict in the candidate's status.
func (pl *Candidate) PostFilter(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	if nn, ok := chaperonKey(pod); ok {
		if ch, err := pl.chaperon(ctx, nn); err == nil {
			if v := protocol.VerdictOf(ch); v.State == protocol.StateReserved {
				pl.setMark(nn, v.Attempt, protocol.ReservationMark(v.Attempt, ""))
			}
		}
	}
	return nil, fwk.NewStatus(fwk.Unschedulable)
}

// Reserve marks the chaperon reserved (asynchronously: the write is off
// the scheduling cycle) under a new attempt.
func (pl *Candidate) Reserve(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, nodeName string) *fwk.Status {
	nn, ok := chaperonKey(pod)
	if !ok {
		return nil
	}
	ch, err := pl.chaperon(ctx, nn)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonNoChaperon)
		}
		return fwk.AsStatus(err)
	}
	pl.mu.Lock()
	attempt := max(protocol.LastAttempt(ch), pl.last[nn]) + 1
	pl.last[nn] = attempt
	pl.reservations[pod.UID] = reservation{chaperon: nn, attempt: attempt, node: nodeName}
	pl.byChaperon[nn] = pod.UID
	pl.mu.Unlock()
	pl.setMark(nn, attempt, protocol.ReservationMark(attempt, nodeName))
	klog.FromContext(ctx).V(4).Info("Reserved candidate", "pod", klog.KObj(pod), "node", nodeName, "attempt", attempt)
	return nil
}

// Unreserve releases the reservation and marks it released; a candidate
// whose chaperon still exists offers itself again shortly. A withdrawn
// one (its chaperon deleted) is left to go.
func (pl *Candidate) Unreserve(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, _ string) {
	pl.mu.Lock()
	r, ok := pl.reservations[pod.UID]
	delete(pl.reservations, pod.UID)
	delete(pl.waitingSince, pod.UID)
	if ok && pl.byChaperon[r.chaperon] == pod.UID {
		delete(pl.byChaperon, r.chaperon)
	}
	pl.mu.Unlock()
	if !ok {
		return
	}
	_, err := pl.chaperon(ctx, r.chaperon)
	if apierrors.IsNotFound(err) {
		// Withdrawn (the proxy chose another target): no mark to write on
		// a chaperon that is gone, and its candidate pod goes with it.
		return
	}
	pl.setMark(r.chaperon, r.attempt, protocol.ReservationMark(r.attempt, ""))
	if err == nil {
		time.AfterFunc(retryAfterRelease, func() { pl.activate(r.chaperon) })
	}
}

// Withdrawn reports whether a scheduling failure is this plugin's
// rejection of a candidate whose chaperon was deleted after Reserve found it
// (the proxy chose another target, or its proxy pod went): the chaperon
// controller is deleting the pod, so the scheduler need not report the
// failure on it, nor retry it (scheduler.Quiet). A chaperon missing from the
// cache at Reserve (ErrReasonNoChaperon) is not: the cache may be behind,
// and the pod is retried when it appears.
func Withdrawn(s *fwk.Status) bool {
	if s == nil || s.Plugin() != Name {
		return false
	}
	switch s.Message() {
	case ErrReasonReleased:
		return s.Code() == fwk.Unschedulable
	case ErrReasonWithdrawn:
		return s.Code() == fwk.UnschedulableAndUnresolvable
	}
	return false
}

// Permit holds the candidate until the proxy allows its reservation (an
// informer event on the chaperon), or permitWaitTimeout passes.
func (pl *Candidate) Permit(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, _ string) (*fwk.Status, time.Duration) {
	pl.mu.Lock()
	r, ok := pl.reservations[pod.UID]
	if ok {
		pl.waitingSince[pod.UID] = time.Now()
	}
	pl.mu.Unlock()
	if !ok {
		return nil, 0
	}
	ch, err := pl.chaperon(ctx, r.chaperon)
	if apierrors.IsNotFound(err) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonWithdrawn), 0
	} else if err != nil {
		return fwk.AsStatus(fmt.Errorf("reading PodChaperon %s: %w", r.chaperon, err)), 0
	}
	if mayBind(ch, r.attempt) {
		permitOutcomes.WithLabelValues("allowed").Inc()
		return nil, 0
	}
	return fwk.NewStatus(fwk.Wait, "waiting for the proxy scheduler's decision"), pl.args.PermitWaitTimeout.Duration
}

// mayBind: the proxy allowed this attempt, and the ConfigMaps and Secrets
// the pod references are in this cluster (the source marks the chaperon
// once it has copied them).
func mayBind(ch *multiclusterv1alpha1.PodChaperon, attempt int64) bool {
	return protocol.Allows(ch, attempt) && protocol.Followed(ch)
}

// chaperonAdded brings back the candidate of a chaperon this cache had not
// seen, if it never reserved: it may have been tried before (e.g. while the
// watch recovered from an API server restart) and rejected for want of its
// chaperon.
func (pl *Candidate) chaperonAdded(obj any) {
	ch, ok := obj.(*multiclusterv1alpha1.PodChaperon)
	if !ok || ch.Annotations[protocol.ReservationAnnotation] != "" || !ch.DeletionTimestamp.IsZero() {
		return
	}
	pl.activate(types.NamespacedName{Namespace: ch.Namespace, Name: ch.Name})
}

// chaperonChanged allows or rejects a waiting candidate, or brings back a
// candidate that was allowed while it was not waiting.
func (pl *Candidate) chaperonChanged(obj any, deleted bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	ch, ok := obj.(*multiclusterv1alpha1.PodChaperon)
	if !ok {
		return
	}
	nn := types.NamespacedName{Namespace: ch.Namespace, Name: ch.Name}
	pl.mu.Lock()
	uid, held := pl.byChaperon[nn]
	r := pl.reservations[uid]
	since := pl.waitingSince[uid]
	if deleted {
		delete(pl.last, nn)
		delete(pl.desired, nn)
	}
	pl.mu.Unlock()
	if !held {
		s := protocol.VerdictOf(ch).State
		switch {
		case deleted:
		case ch.Annotations[protocol.AllowedAnnotation] != "" && protocol.Followed(ch) &&
			(s == protocol.StateReserved || s == protocol.StateBinding):
			// Allowed while the candidate is not waiting (its wait timed
			// out, or the scheduler restarted): schedule it again now.
			pl.activate(nn)
		}
		return
	}
	pl.decide(uid, r, since, ch, deleted, 0)
}

// decisionRetries bound how often a decision that found no waiting pod is
// tried again (after 20, 40, ... 320 ms).
const decisionRetries = 5

// decide applies the proxy's decision to the waiting candidate. A decision
// can arrive between Permit's look at the chaperon and the framework's
// registering the pod as waiting; it is then applied again shortly after.
func (pl *Candidate) decide(uid types.UID, r reservation, since time.Time, ch *multiclusterv1alpha1.PodChaperon, deleted bool, tries int) {
	allowed := !deleted && mayBind(ch, r.attempt)
	if !deleted && !allowed {
		return
	}
	wp := pl.handle.GetWaitingPod(uid)
	if wp == nil {
		if tries < decisionRetries {
			time.AfterFunc((20*time.Millisecond)<<tries, func() {
				pl.mu.Lock()
				current, held := pl.reservations[uid]
				pl.mu.Unlock()
				if held && current == r {
					pl.decide(uid, r, since, ch, deleted, tries+1)
				}
			})
		}
		return
	}
	if deleted {
		if wp.Reject(Name, ErrReasonReleased) {
			permitOutcomes.WithLabelValues("released").Inc()
			observeWait(since)
		}
		return
	}
	wp.Allow(Name)
	permitOutcomes.WithLabelValues("allowed").Inc()
	observeWait(since)
}

// activate brings a chaperon's candidate pod back to the active queue.
func (pl *Candidate) activate(nn types.NamespacedName) {
	pod, err := pl.handle.SharedInformerFactory().Core().V1().Pods().Lister().Pods(nn.Namespace).Get(nn.Name)
	if err != nil || pod.Spec.NodeName != "" {
		return
	}
	pl.handle.Activate(klog.Background(), map[string]*corev1.Pod{nn.String(): pod})
}

// PreBindPreFlight: candidates go through PreBind, other pods skip it.
func (pl *Candidate) PreBindPreFlight(_ context.Context, _ fwk.CycleState, pod *corev1.Pod, _ string) (*fwk.PreBindPreFlightResult, *fwk.Status) {
	if _, ok := chaperonKey(pod); !ok {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	return nil, nil
}

// PreBind is the fence: it marks the chaperon binding with an update
// conditional on the resourceVersion read with a current allow mark. The
// proxy revokes by a delete conditional on the version it last saw, so
// exactly one of the two wins; a candidate that loses does not bind.
func (pl *Candidate) PreBind(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, nodeName string) *fwk.Status {
	pl.mu.Lock()
	r, ok := pl.reservations[pod.UID]
	pl.mu.Unlock()
	if !ok {
		return fwk.NewStatus(fwk.Unschedulable, ErrReasonRevoked)
	}
	for range 10 {
		ch := &multiclusterv1alpha1.PodChaperon{}
		if err := pl.client.Get(ctx, r.chaperon, ch); err != nil {
			if apierrors.IsNotFound(err) {
				return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonWithdrawn)
			}
			return fwk.AsStatus(fmt.Errorf("reading PodChaperon %s: %w", r.chaperon, err))
		}
		if !protocol.Allows(ch, r.attempt) {
			return fwk.NewStatus(fwk.Unschedulable, ErrReasonRevoked)
		}
		if !protocol.Followed(ch) {
			return fwk.NewStatus(fwk.Unschedulable, ErrReasonNotFollowed)
		}
		if ch.Annotations[protocol.BindingAnnotation] == protocol.BindingMark(r.attempt, nodeName) {
			return nil
		}
		ch.Annotations[protocol.BindingAnnotation] = protocol.BindingMark(r.attempt, nodeName)
		err := pl.client.Update(ctx, ch)
		switch {
		case err == nil:
			klog.FromContext(ctx).V(4).Info("Committed to bind", "pod", klog.KObj(pod), "node", nodeName, "attempt", r.attempt)
			return nil
		case apierrors.IsConflict(err):
			continue
		case apierrors.IsNotFound(err):
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonWithdrawn)
		default:
			return fwk.AsStatus(fmt.Errorf("marking PodChaperon %s binding: %w", r.chaperon, err))
		}
	}
	return fwk.AsStatus(fmt.Errorf("PodChaperon %s kept changing while committing to bind", r.chaperon))
}

// PostBind forgets the reservation: the candidate is the delegate now.
func (pl *Candidate) PostBind(_ context.Context, _ fwk.CycleState, pod *corev1.Pod, _ string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if r, ok := pl.reservations[pod.UID]; ok {
		delete(pl.byChaperon, r.chaperon)
		delete(pl.last, r.chaperon)
		delete(pl.desired, r.chaperon)
	}
	delete(pl.reservations, pod.UID)
	delete(pl.waitingSince, pod.UID)
}

// setMark asks the mark workers to write a reservation mark, unless a
// newer attempt's mark is already wanted.
func (pl *Candidate) setMark(nn types.NamespacedName, attempt int64, mark string) {
	pl.mu.Lock()
	if attempt < pl.last[nn] {
		pl.mu.Unlock()
		return
	}
	pl.desired[nn] = mark
	pl.mu.Unlock()
	pl.marks.Add(nn)
}

func (pl *Candidate) runMarks(ctx context.Context) {
	for {
		nn, shutdown := pl.marks.Get()
		if shutdown {
			return
		}
		func() {
			defer pl.marks.Done(nn)
			pl.mu.Lock()
			mark, ok := pl.desired[nn]
			pl.mu.Unlock()
			if !ok {
				pl.marks.Forget(nn)
				return
			}
			if err := pl.writeMark(ctx, nn, mark); err != nil {
				if apierrors.IsNotFound(err) {
					// The chaperon is gone, and with it any need for a mark.
					pl.marks.Forget(nn)
					pl.mu.Lock()
					if pl.desired[nn] == mark {
						delete(pl.desired, nn)
					}
					pl.mu.Unlock()
					return
				}
				klog.FromContext(ctx).Error(err, "Writing reservation mark", "chaperon", nn)
				pl.marks.AddRateLimited(nn)
				return
			}
			pl.marks.Forget(nn)
			pl.mu.Lock()
			if pl.desired[nn] == mark {
				delete(pl.desired, nn)
			}
			pl.mu.Unlock()
		}()
	}
}

func (pl *Candidate) writeMark(ctx context.Context, nn types.NamespacedName, mark string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{protocol.ReservationAnnotation: mark},
	}})
	if err != nil {
		return err
	}
	ch := &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}}
	return pl.client.Patch(ctx, ch, client.RawPatch(types.MergePatchType, patch))
}
