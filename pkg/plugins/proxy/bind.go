package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// errCommitted: a revocation found the candidate committed to bind.
var errCommitted = errors.New("the candidate has committed to bind")

// Reserve notes the choice; nothing is written until PreBind.
func (pl *Proxy) Reserve(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, nodeName string) *fwk.Status {
	pl.mu.Lock()
	if st := pl.pods[pod.UID]; st != nil && !st.roundStart.IsZero() {
		decisionDuration.Observe(pl.now().Sub(st.roundStart).Seconds())
	}
	pl.mu.Unlock()
	klog.FromContext(ctx).V(4).Info("Chose target", "pod", klog.KObj(pod), "node", nodeName)
	return nil
}

// Unreserve has nothing to undo: a failed PreBind revokes its own choice.
func (pl *Proxy) Unreserve(context.Context, fwk.CycleState, *corev1.Pod, string) {}

// PreBindPreFlight: every proxy pod goes through PreBind.
func (pl *Proxy) PreBindPreFlight(context.Context, fwk.CycleState, *corev1.Pod, string) (*fwk.PreBindPreFlightResult, *fwk.Status) {
	return nil, nil
}

// PreBind makes the decision real: it allows the chosen candidate, releases
// the others, and waits (on chaperon events) until the delegate is bound.
func (pl *Proxy) PreBind(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, nodeName string) *fwk.Status {
	logger := klog.FromContext(ctx).WithValues("pod", klog.KObj(pod), "node", nodeName)
	node, err := pl.nodes.Get(nodeName)
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("reading virtual node %s: %w", nodeName, err))
	}
	key, ok := remote.KeyOfVirtualNode(node)
	if !ok {
		return fwk.AsStatus(fmt.Errorf("node %s is not a virtual node", nodeName))
	}
	cl, err := pl.fleet.Get(key)
	if err != nil {
		return fwk.AsStatus(err)
	}
	chosenCh := pl.store.get(pod.UID)[key]
	if chosenCh == nil {
		decisionsTotal.WithLabelValues("failed").Inc()
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s: the candidate is gone", key))
	}
	// The record comes first: no allow mark is written that the pod does
	// not name.
	if err := pl.recordDecision(ctx, pod, key, chosenCh.UID); err != nil {
		return fwk.AsStatus(err)
	}

	start := pl.now()
	timeout := time.NewTimer(pl.args.DelegateBindTimeout.Duration)
	defer timeout.Stop()
	released := false
	for {
		changed := pl.store.changed(pod.UID)
		chs := pl.store.get(pod.UID)
		ch := chs[key]
		if ch == nil || ch.UID != chosenCh.UID {
			decisionsTotal.WithLabelValues("failed").Inc()
			return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s: the candidate is gone", key))
		}
		v := protocol.VerdictOf(ch)
		if msg := ch.Annotations[protocol.FollowConflictAnnotation]; msg != "" && v.State != protocol.StateBinding && v.State != protocol.StateBound {
			// The pod cannot start there: try it elsewhere.
			if err := pl.revoke(ctx, cl.GetClient(), pod.UID, key); err == nil {
				pl.cannotStart(pod.UID, key, msg)
				decisionsTotal.WithLabelValues("revoked").Inc()
				return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s: %s", key, msg))
			} else if !errors.Is(err, errCommitted) {
				return fwk.AsStatus(err)
			}
		}
		switch v.State {
		case protocol.StateBinding, protocol.StateBound:
			// Binding is the candidate's commitment (its mark makes a
			// revocation fail): the proxy pod need not wait for the
			// target's chaperon controller to report the binding done.
			if !released {
				pl.release(ctx, pod, key, chs)
			}
			delegateBindDuration.Observe(pl.now().Sub(start).Seconds())
			decisionsTotal.WithLabelValues("bound").Inc()
			pl.handle.EventRecorder().Eventf(pod, nil, corev1.EventTypeNormal, EventReasonDelegated, "Binding",
				"Delegate %s/%s bound to node %s in target %s", ch.Namespace, ch.Name, v.Node, key)
			logger.V(2).Info("Delegate bound", "target", key.String(), "delegateNode", v.Node)
			return nil
		case protocol.StateReserved:
			if !protocol.Allows(ch, v.Attempt) {
				err := allow(ctx, cl.GetClient(), ch, v.Attempt)
				switch {
				case apierrors.IsNotFound(err):
					// Deleted: its deletion event ends the wait below.
				case err != nil:
					return fwk.AsStatus(fmt.Errorf("allowing the candidate in %s: %w", key, err))
				default:
					logger.V(4).Info("Allowed candidate", "target", key.String(), "attempt", v.Attempt)
				}
			}
			if !released {
				pl.release(ctx, pod, key, chs)
				released = true
			}
		case protocol.StateUnschedulable:
			// The candidate lost its reservation and found no other node.
			if err := pl.revoke(ctx, cl.GetClient(), pod.UID, key); err == nil {
				decisionsTotal.WithLabelValues("revoked").Inc()
				return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s: %s", key, v.Message))
			} else if !errors.Is(err, errCommitted) {
				return fwk.AsStatus(err)
			}
		}
		select {
		case <-changed:
		case <-timeout.C:
			err := pl.revoke(ctx, cl.GetClient(), pod.UID, key)
			if errors.Is(err, errCommitted) {
				// Adopt: the delegate is being bound.
				timeout.Reset(pl.args.DelegateBindTimeout.Duration)
				continue
			}
			if err != nil {
				decisionsTotal.WithLabelValues("failed").Inc()
				return fwk.AsStatus(fmt.Errorf("%s did not bind the delegate within %s, and withdrawing the choice failed: %w",
					key, pl.args.DelegateBindTimeout.Duration, err))
			}
			decisionsTotal.WithLabelValues("revoked").Inc()
			return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s did not bind the delegate within %s", key, pl.args.DelegateBindTimeout.Duration))
		case <-ctx.Done():
			return fwk.AsStatus(ctx.Err())
		}
	}
}

// cannotStartRetry is how long a target where a pod cannot start (see
// protocol.FollowConflictAnnotation) is left out before it is tried again.
const cannotStartRetry = 30 * time.Second

// cannotStart leaves key out of the pod's choices, as a target where its
// candidate could not be created, until a dispatch cannotStartRetry later
// tries it again.
func (pl *Proxy) cannotStart(uid types.UID, key remote.Key, why string) {
	pl.mu.Lock()
	if st := pl.pods[uid]; st != nil {
		st.failures[key] = "the pod cannot start there: " + why
		if st.heldOff == nil {
			st.heldOff = map[remote.Key]time.Time{}
		}
		st.heldOff[key] = pl.now().Add(cannotStartRetry)
	}
	pl.mu.Unlock()
	pl.queue.AddAfter(uid, cannotStartRetry)
}

// PostBind forgets the pod.
func (pl *Proxy) PostBind(_ context.Context, _ fwk.CycleState, pod *corev1.Pod, _ string) {
	pl.forget(pod.UID)
}

// allow writes the allow mark for reservation attempt on ch.
func allow(ctx context.Context, c client.Client, ch *multiclusterv1alpha1.PodChaperon, attempt int64) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{protocol.AllowedAnnotation: protocol.AllowMark(types.UID(ch.Labels[protocol.ProxyPodUIDLabel]), attempt)},
	}})
	if err != nil {
		return err
	}
	target := &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: ch.Namespace, Name: ch.Name}}
	return c.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch))
}

// release deletes the pod's chaperons in every target but the chosen one,
// which frees their reservations at once. Where the store may not know
// them all yet (a target's informer has not synced, e.g. after a restart),
// the chaperon is deleted by name.
func (pl *Proxy) release(ctx context.Context, pod *corev1.Pod, chosen remote.Key, chs map[remote.Key]*multiclusterv1alpha1.PodChaperon) {
	var wg sync.WaitGroup
	for _, key := range pl.fleet.Keys() {
		if key == chosen || key.Namespace != "" && key.Namespace != pod.Namespace {
			continue
		}
		ch, known := chs[key]
		if !known && pl.hasSynced(key) {
			continue
		}
		cl, err := pl.fleet.Get(key)
		if err != nil {
			continue
		}
		wg.Go(func() {
			if !known {
				// Read it (waiting for the cache): the cluster may also be
				// the chosen one's, through another Target.
				ch = &multiclusterv1alpha1.PodChaperon{}
				key := types.NamespacedName{Namespace: pod.Namespace, Name: protocol.ChaperonName(pod)}
				if err := cl.GetClient().Get(ctx, key, ch); err != nil {
					return
				}
			}
			if !protocol.OfTarget(ch, key.String()) || ch.Labels[protocol.ProxyPodUIDLabel] != string(pod.UID) {
				return
			}
			if protocol.Decided(ch) {
				// Never: the decision record allows one target at a time.
				// Deleting it could take a delegate away.
				klog.FromContext(ctx).Error(nil, "Not releasing a candidate that carries a choice", "pod", klog.KObj(pod), "target", key.String(), "chosen", chosen.String())
				return
			}
			err := cl.GetClient().Delete(ctx, ch, client.Preconditions{UID: &ch.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if err != nil && !apierrors.IsNotFound(err) {
				klog.FromContext(ctx).Error(err, "Releasing a candidate", "pod", klog.KObj(pod), "target", key.String())
			}
		})
	}
	wg.Wait()
}

// revoke withdraws the choice of key by deleting its chaperon, on the
// condition that it is the version last seen, which did not commit to
// bind. errCommitted says it did.
func (pl *Proxy) revoke(ctx context.Context, c client.Client, uid types.UID, key remote.Key) error {
	for range 5 {
		changed := pl.store.changed(uid)
		ch := pl.store.get(uid)[key]
		if ch == nil {
			return nil
		}
		if s := protocol.VerdictOf(ch).State; s == protocol.StateBinding || s == protocol.StateBound {
			return errCommitted
		}
		err := c.Delete(ctx, ch, client.Preconditions{UID: &ch.UID, ResourceVersion: &ch.ResourceVersion},
			client.PropagationPolicy(metav1.DeletePropagationBackground))
		switch {
		case err == nil || apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err):
			// A newer version exists: wait for it, then look again.
			select {
			case <-changed:
			case <-time.After(time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			return fmt.Errorf("deleting candidate %s/%s in %s: %w", ch.Namespace, ch.Name, key, err)
		}
	}
	return fmt.Errorf("candidate of %s kept changing while withdrawing it", key)
}

// ensureFinalizer makes sure the proxy pod cannot go before its
// chaperons (a pod that named admiralty-proxy itself has no finalizer yet).
func (pl *Proxy) ensureFinalizer(ctx context.Context, pod *corev1.Pod) error {
	if slices.Contains(pod.Finalizers, protocol.ProxyPodFinalizer) {
		return nil
	}
	if err := pl.patchPod(ctx, pod, map[string]any{"finalizers": []string{protocol.ProxyPodFinalizer}}); err != nil {
		return fmt.Errorf("adding finalizer %s: %w", protocol.ProxyPodFinalizer, err)
	}
	return nil
}

// recordDecision writes, on the proxy pod, the chaperon the proxy chose
// (protocol.DecisionAnnotation), with the finalizer if it is missing, in
// one write.
func (pl *Proxy) recordDecision(ctx context.Context, pod *corev1.Pod, key remote.Key, chaperon types.UID) error {
	mark := protocol.DecisionMark(key.String(), chaperon)
	meta := map[string]any{}
	if pod.Annotations[protocol.DecisionAnnotation] != mark {
		meta["annotations"] = map[string]string{protocol.DecisionAnnotation: mark}
	}
	if !slices.Contains(pod.Finalizers, protocol.ProxyPodFinalizer) {
		meta["finalizers"] = []string{protocol.ProxyPodFinalizer}
	}
	if len(meta) == 0 {
		return nil
	}
	if err := pl.patchPod(ctx, pod, meta); err != nil {
		return fmt.Errorf("recording the choice of %s: %w", key, err)
	}
	return nil
}

// patchPod applies a strategic merge patch of the proxy pod's metadata
// (finalizers are merged, not replaced).
func (pl *Proxy) patchPod(ctx context.Context, pod *corev1.Pod, meta map[string]any) error {
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = pl.handle.ClientSet().CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	return err
}
