package chaperon

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// Reasons of the events recorded on PodChaperons.
const (
	// ReasonPriorityClassNotFound: the chaperon's priorityClassName does not
	// exist in this cluster; its candidate pod runs at the default priority.
	ReasonPriorityClassNotFound = "PriorityClassNotFound"
	// ReasonCreateFailed: the API server rejected the candidate pod.
	ReasonCreateFailed = "CreateFailed"
	// ReasonNameTaken: a pod that the chaperon does not control has the
	// candidate pod's name.
	ReasonNameTaken = "NameTaken"
	// ReasonDelegateDeleted: the candidate pod was deleted once bound (see
	// protocol.ReasonDelegateDeleted).
	ReasonDelegateDeleted = protocol.ReasonDelegateDeleted
)

// Actions of the events recorded on PodChaperons.
const (
	actionCreate = "CreateCandidate"
	actionReport = "ReportStatus"
)

// Reconciler makes the candidate pod of each PodChaperon and reports that
// pod's status in the chaperon's status.
type Reconciler struct {
	// Client reads chaperons, pods and PriorityClasses from the cache, creates
	// candidate pods and writes chaperon status.
	Client client.Client
	// APIReader reads around the cache, to confirm that a delegate pod is
	// gone before its chaperon fails; nil reads through Client.
	APIReader client.Reader
	// Recorder records events on chaperons; nil records none.
	Recorder events.EventRecorder
	// Clock stamps the conditions the reconciler writes; nil is the real clock.
	Clock clock.PassiveClock
	// Workers is how many chaperons are reconciled at once
	// (DefaultWorkers if 0): each candidate costs a few reconciles, most of
	// them waiting for the API server, so one worker is the first queue to
	// grow when sources fan out.
	Workers int
}

// DefaultWorkers is the default of Reconciler.Workers.
const DefaultWorkers = 8

// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=podchaperons,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=podchaperons/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=scheduling.k8s.io,resources=priorityclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// Reconcile makes the chaperon's candidate pod if it has none and may have
// one, and reports its pod's status.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	ch := &multiclusterv1alpha1.PodChaperon{}
	if err := r.Client.Get(ctx, req.NamespacedName, ch); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.deleteCandidate(ctx, req.NamespacedName, nil)
		}
		return ctrl.Result{}, fmt.Errorf("getting chaperon: %w", err)
	}
	if !ch.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.deleteCandidate(ctx, req.NamespacedName, ch)
	}
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("getting candidate pod: %w", err)
		}
		pod = nil
	}
	return ctrl.Result{}, r.reconcile(ctx, ch, pod)
}

// deleteCandidate deletes the candidate pod of a chaperon that is gone
// (nil) or going, at once: garbage collection would free the name and the
// target's resources only after its next look at the chaperons (up to
// half a minute for a newly installed CRD). A going chaperon may carry the
// grace period that the proxy pod's deletion asked for.
func (r *Reconciler) deleteCandidate(ctx context.Context, nn types.NamespacedName, ch *multiclusterv1alpha1.PodChaperon) error {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, nn, pod); err != nil {
		return client.IgnoreNotFound(err)
	}
	var grace *int64
	if ch != nil {
		grace = protocol.DeletionGracePeriod(ch)
	}
	if protocol.ChaperonOf(pod) != nn.Name {
		return nil
	}
	if !pod.DeletionTimestamp.IsZero() && (grace == nil || pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds <= *grace) {
		return nil // going, no slower than asked
	}
	if ch != nil && !metav1.IsControlledBy(pod, ch) {
		return nil
	}
	if ch == nil {
		// The chaperon of this name may have been replaced already: only
		// a pod whose owner no longer exists goes.
		owner := metav1.GetControllerOf(pod)
		current := &multiclusterv1alpha1.PodChaperon{}
		if err := r.reader().Get(ctx, nn, current); err == nil && current.UID == owner.UID {
			return nil
		} else if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("getting chaperon: %w", err)
		}
	}
	opts := []client.DeleteOption{client.Preconditions{UID: &pod.UID}}
	if grace != nil {
		opts = append(opts, client.GracePeriodSeconds(*grace))
	}
	err := r.Client.Delete(ctx, pod, opts...)
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting the candidate pod of a deleted chaperon: %w", err)
	}
	ctrl.LoggerFrom(ctx).V(4).Info("Deleted the candidate pod of a deleted chaperon", "pod", klog.KObj(pod), "gracePeriodSeconds", grace)
	return nil
}

// reconcile acts on the chaperon ch given the pod of its name, nil if none.
func (r *Reconciler) reconcile(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon, pod *corev1.Pod) error {
	switch {
	case pod != nil && metav1.IsControlledBy(pod, ch):
		return r.mirrorStatus(ctx, ch, pod)
	case pod != nil && protocol.ChaperonOf(pod) == ch.Name:
		// The candidate of a previous chaperon of this name (the proxy pod
		// released it and fanned out again), on its way out through garbage
		// collection; its deletion requeues ch. Or our cache has not seen
		// ch's replacement yet. Either way, wait.
		ctrl.LoggerFrom(ctx).V(2).Info("Waiting for the previous candidate pod of this name to go", "pod", klog.KObj(pod))
		return nil
	case isDelegate(ch):
		return r.failDelegateDeleted(ctx, ch)
	case pod == nil:
		return r.createCandidate(ctx, ch)
	default:
		return r.reportNameTaken(ctx, ch, pod)
	}
}

// isDelegate reports whether ch's candidate pod was committed to bind, or
// bound: whatever happens to it, it is never made again.
func isDelegate(ch *multiclusterv1alpha1.PodChaperon) bool {
	s := protocol.VerdictOf(ch).State
	return s == protocol.StateBinding || s == protocol.StateBound
}

// createCandidate creates the chaperon's candidate pod.
func (r *Reconciler) createCandidate(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon) error {
	pod := protocol.CandidatePod(ch)
	missingClass, err := r.resolvePriority(ctx, pod)
	if err != nil {
		return err
	}
	if err := r.Client.Create(ctx, pod); err != nil {
		err = fmt.Errorf("creating candidate pod: %w", err)
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
			return err // AlreadyExists included: our cache is behind, retry.
		}
		// Bad input for this cluster (a missing ServiceAccount, a quota...):
		// this target cannot run the pod, say so to the source.
		msg := apiMessage(err)
		r.warn(ch, ReasonCreateFailed, actionCreate, "%s", msg)
		if _, serr := r.patchStatus(ctx, ch, r.unschedulable(ch, "cannot create the candidate pod: "+msg)); serr != nil {
			return errors.Join(err, serr)
		}
		return err
	}
	if missingClass != "" {
		r.warn(ch, ReasonPriorityClassNotFound, actionCreate,
			"PriorityClass %q does not exist in this cluster; the pod runs at the default priority", missingClass)
	}
	ctrl.LoggerFrom(ctx).V(2).Info("Created candidate pod", "pod", klog.KObj(pod))
	return nil
}

// resolvePriority clears the pod's priorityClassName if no PriorityClass of
// that name exists in this cluster, and then returns that name. The target's
// admission resolves the pod's priority from its class.
func (r *Reconciler) resolvePriority(ctx context.Context, pod *corev1.Pod) (string, error) {
	name := pod.Spec.PriorityClassName
	if name == "" {
		return "", nil
	}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &schedulingv1.PriorityClass{}); err != nil {
		if !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("getting PriorityClass %s: %w", name, err)
		}
		pod.Spec.PriorityClassName = ""
		return name, nil
	}
	return "", nil
}

// mirrorStatus copies the candidate pod's status into the chaperon's, and
// annotations both ways (see protocol.DelegateAnnotationsPatch).
func (r *Reconciler) mirrorStatus(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon, pod *corev1.Pod) error {
	if err := r.syncAnnotations(ctx, ch, pod); err != nil {
		return err
	}
	if ch.Status.Phase == "" && unscheduledAsCreated(pod) {
		// Nothing to report yet, and most candidates are withdrawn in
		// this state: the source reads a verdict from the reservation
		// mark, or from the PodScheduled condition the scheduler sets on
		// a pod that fits no node. Not writing saves a write per candidate.
		return nil
	}
	changed, err := r.patchStatus(ctx, ch, *pod.Status.DeepCopy())
	if changed {
		ctrl.LoggerFrom(ctx).V(4).Info("Reported candidate pod status", "pod", klog.KObj(pod), "phase", pod.Status.Phase)
	}
	return err
}

// unscheduledAsCreated reports whether pod's status holds nothing but what
// the API server gives every new pod (phase Pending, QoS class): no node,
// no condition, no container.
func unscheduledAsCreated(pod *corev1.Pod) bool {
	return pod.Spec.NodeName == "" && pod.Status.Phase == corev1.PodPending &&
		len(pod.Status.Conditions) == 0 && pod.Status.NominatedNodeName == "" &&
		len(pod.Status.ContainerStatuses) == 0 && len(pod.Status.InitContainerStatuses) == 0 &&
		pod.Status.Message == "" && pod.Status.Reason == ""
}

// syncAnnotations sets the chaperon's annotations on its pod and records
// the pod's own annotations on the chaperon.
func (r *Reconciler) syncAnnotations(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon, pod *corev1.Pod) error {
	podPatch, chPatch := protocol.DelegateAnnotationsPatch(ch, pod)
	if len(podPatch) > 0 {
		body, err := podPatch.Body()
		if err != nil {
			return err
		}
		if err := r.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body)); err != nil {
			return client.IgnoreNotFound(fmt.Errorf("setting the candidate pod's annotations: %w", err))
		}
		ctrl.LoggerFrom(ctx).V(4).Info("Set annotations on the pod", "pod", klog.KObj(pod), "changed", len(podPatch))
	}
	if len(chPatch) > 0 {
		body, err := chPatch.Body()
		if err != nil {
			return err
		}
		if err := r.Client.Patch(ctx, ch, client.RawPatch(types.MergePatchType, body)); err != nil {
			return client.IgnoreNotFound(fmt.Errorf("recording the pod's annotations on the chaperon: %w", err))
		}
	}
	return nil
}

// failDelegateDeleted fails the chaperon whose delegate pod was deleted:
// a proxy pod has at most one delegate, so it is not made again.
func (r *Reconciler) failDelegateDeleted(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon) error {
	if p := ch.Status.Phase; p == corev1.PodSucceeded || p == corev1.PodFailed {
		// It had finished (or already failed) before it went: that stands.
		return nil
	}
	gone, err := r.delegateGone(ctx, ch)
	if err != nil || !gone {
		return err
	}
	status := *ch.Status.DeepCopy()
	status.Phase = corev1.PodFailed
	status.Reason = ReasonDelegateDeleted
	status.Message = "the delegate pod was deleted; it is not recreated (a proxy pod has at most one delegate)"
	if node := protocol.VerdictOf(ch).Node; node != "" {
		status.Message = fmt.Sprintf("the delegate pod, bound to node %s, was deleted; it is not recreated (a proxy pod has at most one delegate)", node)
	}
	changed, err := r.patchStatus(ctx, ch, status)
	if err != nil || !changed {
		return err
	}
	r.warn(ch, ReasonDelegateDeleted, actionReport, "%s", status.Message)
	ctrl.LoggerFrom(ctx).V(2).Info("Delegate pod deleted, chaperon failed")
	return nil
}

// reader reads around the cache (APIReader), or through it.
func (r *Reconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// delegateGone confirms, around the cache, that ch's delegate pod is gone:
// a chaperon failed by mistake would fail its proxy pod.
func (r *Reconciler) delegateGone(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon) (bool, error) {
	pod := &corev1.Pod{}
	if err := r.reader().Get(ctx, client.ObjectKeyFromObject(ch), pod); err != nil {
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, fmt.Errorf("confirming that the delegate pod is gone: %w", err)
	}
	// Still there: our cache is behind and will requeue ch when it catches up.
	return !metav1.IsControlledBy(pod, ch), nil
}

// reportNameTaken reports that a pod ch does not control has its name.
func (r *Reconciler) reportNameTaken(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon, pod *corev1.Pod) error {
	msg := fmt.Sprintf("cannot create the candidate pod: its name is taken by pod %s, which this chaperon does not control", klog.KObj(pod))
	changed, err := r.patchStatus(ctx, ch, r.unschedulable(ch, msg))
	if err != nil || !changed {
		return err
	}
	r.warn(ch, ReasonNameTaken, actionCreate,
		"Pod %s exists and this chaperon does not control it; the candidate pod is created once it is gone", klog.KObj(pod))
	return nil
}

// unschedulable is the status of a chaperon whose candidate pod cannot be
// made: what the source reads as an unschedulable verdict with message.
func (r *Reconciler) unschedulable(ch *multiclusterv1alpha1.PodChaperon, message string) corev1.PodStatus {
	cond := corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: message,
		LastTransitionTime: metav1.NewTime(r.clock().Now()),
	}
	for _, c := range ch.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == cond.Status {
			cond.LastTransitionTime = c.LastTransitionTime
		}
	}
	return corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{cond}}
}

// patchStatus sets the chaperon's status, if it differs, with a merge patch
// of the status subresource (the schedulers write the chaperon's
// annotations concurrently). ch is left as it was.
func (r *Reconciler) patchStatus(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon, status corev1.PodStatus) (bool, error) {
	if apiequality.Semantic.DeepEqual(ch.Status, status) {
		return false, nil
	}
	patched := ch.DeepCopy()
	patched.Status = status
	if err := r.Client.Status().Patch(ctx, patched, client.MergeFrom(ch)); err != nil {
		return false, fmt.Errorf("patching chaperon status: %w", err)
	}
	return true, nil
}

func (r *Reconciler) warn(ch *multiclusterv1alpha1.PodChaperon, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ch, nil, corev1.EventTypeWarning, reason, action, note, args...)
	}
}

func (r *Reconciler) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

// apiMessage is the API server's message in err.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}

// SetupWithManager watches chaperons and their candidate pods, and the
// deletion of pods that hold a chaperon's name without being its candidate.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	workers := r.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("chaperon").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		For(&multiclusterv1alpha1.PodChaperon{}).
		Owns(&corev1.Pod{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(sameName), builder.WithPredicates(nameFreed())).
		Complete(r)
}

// sameName maps a pod to the chaperon of its name.
func sameName(_ context.Context, obj client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(obj)}}
}

// nameFreed passes the deletion of a pod that is not controlled by the
// chaperon of its name (those are watched as owned), which may free that
// name for the chaperon (see ReasonNameTaken).
func nameFreed() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		DeleteFunc: func(e event.DeleteEvent) bool {
			pod, ok := e.Object.(*corev1.Pod)
			return ok && protocol.ChaperonOf(pod) != pod.Name
		},
	}
}
