package cleanup

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// DefaultLeaseDuration is how long a source's Lease in a target holds
// without renewal.
const DefaultLeaseDuration = time.Minute

// Fleet is what the heartbeat needs of the connections to targets.
type Fleet interface {
	Get(remote.Key) (remote.Cluster, error)
	Keys() []remote.Key
}

// Heartbeat runs in a source: in every target namespace where it has
// chaperons, it keeps a Lease per Target (protocol.SourceLeaseName)
// renewed, by which it says that it still stands behind them. A chaperon
// whose proxy pod is gone (deleted while its target did not answer) it
// deletes instead. When a
// Target is removed (even while its cluster is down), or the source is
// gone, the Lease runs out and the target's cleanup controller collects
// the chaperons, and with them the delegates and followers. It is a
// controller-runtime Runnable (leader only).
type Heartbeat struct {
	Fleet    Fleet
	SourceID string
	// Duration of the Leases (DefaultLeaseDuration when zero); they are
	// renewed three times as often.
	Duration time.Duration
	Clock    clock.WithTicker
	// Proxies reads the source's pods (a cache) and APIReader confirms,
	// for chaperons whose proxy pod is gone (deleted while their target
	// did not answer): those are deleted instead of renewed. Without
	// Proxies, no chaperon is checked.
	Proxies, APIReader client.Reader

	// leases are the namespaces where this process keeps a Lease, by target.
	leases map[remote.Key]map[string]bool
}

func (h *Heartbeat) defaults() {
	if h.Duration <= 0 {
		h.Duration = DefaultLeaseDuration
	}
	if h.Clock == nil {
		h.Clock = clock.RealClock{}
	}
	if h.leases == nil {
		h.leases = map[remote.Key]map[string]bool{}
	}
}

// NeedLeaderElection is true: one replica renews.
func (h *Heartbeat) NeedLeaderElection() bool { return true }

// Start renews the Leases until ctx ends.
func (h *Heartbeat) Start(ctx context.Context) error {
	h.defaults()
	ticker := h.Clock.NewTicker(h.Duration / 3)
	defer ticker.Stop()
	for {
		h.Beat(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
	}
}

// Beat renews the Leases once, and deletes those of namespaces left
// without chaperons. Targets are beaten in parallel, each for at most half
// a Lease, so that a slow or unreachable one holds up no other. A target
// that is not Ready is still renewed: it may only be slow (its probe timed
// out on a loaded API server), and a Lease that runs out there would get
// live workloads collected; its renewal fails if it is really gone. Leases
// are deleted only in Ready targets, whose chaperons the cache knows.
func (h *Heartbeat) Beat(ctx context.Context) {
	h.defaults()
	type beat struct {
		key        remote.Key
		namespaces map[string]bool
	}
	var wg sync.WaitGroup
	beats := make(chan beat, len(h.Fleet.Keys()))
	for _, key := range h.Fleet.Keys() {
		cl, err := h.Fleet.Get(key)
		if err != nil {
			continue
		}
		known := h.leases[key]
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, h.Duration/2)
			defer cancel()
			if namespaces, ok := h.beat(ctx, cl, known); ok {
				beats <- beat{key, namespaces}
			}
		})
	}
	wg.Wait()
	close(beats)
	for b := range beats {
		h.leases[b.key] = b.namespaces
	}
	for key := range h.leases {
		if _, err := h.Fleet.Get(key); err != nil {
			delete(h.leases, key)
		}
	}
}

// beat renews the Leases of one target and, if it is Ready, deletes those
// of the namespaces in known (where it kept Leases) left without
// chaperons. It returns the namespaces where it keeps Leases now, and false
// if it could not tell.
func (h *Heartbeat) beat(ctx context.Context, cl remote.Cluster, known map[string]bool) (map[string]bool, bool) {
	key := cl.Key()
	ready := cl.Health().Ready
	logger := ctrl.LoggerFrom(ctx).WithName("heartbeat").WithValues("target", key.String())
	if !ready {
		// Errors are expected there: quieter.
		logger = logger.V(2)
	}
	namespaces, err := h.namespaces(ctx, cl)
	if err != nil {
		logger.Error(err, "Listing chaperons")
		return nil, false
	}
	for ns := range namespaces {
		if err := h.renew(ctx, cl, ns); err != nil {
			logger.Error(err, "Renewing the source's lease", "namespace", ns)
		}
	}
	for ns := range known {
		if namespaces[ns] {
			continue
		}
		if !ready {
			namespaces[ns] = true // deleted once the target is Ready
			continue
		}
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: protocol.SourceLeaseName(h.SourceID, key.String())}}
		if err := cl.GetClient().Delete(ctx, lease); err != nil && !apierrors.IsNotFound(err) {
			logger.Error(err, "Deleting the source's lease", "namespace", ns)
			namespaces[ns] = true // try again next time
		}
	}
	return namespaces, true
}

// namespaces are those where this source has chaperons through cl's Target.
func (h *Heartbeat) namespaces(ctx context.Context, cl remote.Cluster) (map[string]bool, error) {
	// A cache that cannot sync (e.g. the identity may not list chaperons)
	// must not hold up the other targets.
	ctx, cancel := context.WithTimeout(ctx, h.Duration/3)
	defer cancel()
	list := &multiclusterv1alpha1.PodChaperonList{}
	opts := []client.ListOption{client.MatchingLabels{protocol.SourceClusterLabel: h.SourceID}}
	if ns := cl.Key().Namespace; ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := cl.GetClient().List(ctx, list, opts...); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for i := range list.Items {
		ch := &list.Items[i]
		if protocol.ChaperonTarget(ch) != cl.Key().String() || !ch.DeletionTimestamp.IsZero() {
			continue
		}
		// One chaperon that cannot be dealt with must not let the Leases
		// of the others run out: it counts as held.
		gone, err := h.proxyGone(ctx, ch)
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Checking a chaperon's proxy pod", "target", cl.Key().String(), "chaperon", client.ObjectKeyFromObject(ch))
		}
		if err != nil || !gone {
			out[ch.Namespace] = true
			continue
		}
		err = cl.GetClient().Delete(ctx, ch, client.Preconditions{UID: &ch.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			continue // gone already (a cache re-watching may still list it), or replaced
		}
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Deleting a chaperon whose proxy pod is gone", "target", cl.Key().String(), "chaperon", client.ObjectKeyFromObject(ch))
			out[ch.Namespace] = true
			continue
		}
		ctrl.LoggerFrom(ctx).Info("Deleted a chaperon whose proxy pod is gone", "target", cl.Key().String(),
			"chaperon", client.ObjectKeyFromObject(ch), "proxy", ch.Annotations[protocol.ProxyPodNameAnnotation])
	}
	return out, nil
}

// proxyGone reports whether the proxy pod of ch no longer exists, as the
// API server says (a cache that does not have it yet is not enough).
func (h *Heartbeat) proxyGone(ctx context.Context, ch *multiclusterv1alpha1.PodChaperon) (bool, error) {
	name, uid := ch.Annotations[protocol.ProxyPodNameAnnotation], ch.Labels[protocol.ProxyPodUIDLabel]
	if h.Proxies == nil || name == "" || uid == "" {
		return false, nil
	}
	key := types.NamespacedName{Namespace: ch.Namespace, Name: name}
	pod := &corev1.Pod{}
	if err := h.Proxies.Get(ctx, key, pod); err == nil && string(pod.UID) == uid {
		return false, nil
	}
	err := h.APIReader.Get(ctx, key, pod)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading proxy pod %s: %w", key, err)
	}
	return string(pod.UID) != uid, nil
}

// renew moves the Lease's renewTime to now, creating it if needed (a
// source writes Leases without reading them).
func (h *Heartbeat) renew(ctx context.Context, cl remote.Cluster, namespace string) error {
	now := metav1.NewMicroTime(h.Clock.Now())
	seconds := int32(h.Duration / time.Second)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: protocol.SourceLeaseName(h.SourceID, cl.Key().String()),
			Labels:      map[string]string{protocol.SourceClusterLabel: h.SourceID},
			Annotations: map[string]string{protocol.TargetAnnotation: cl.Key().String()}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &h.SourceID, LeaseDurationSeconds: &seconds, RenewTime: &now},
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"renewTime": now, "leaseDurationSeconds": seconds}})
	if err != nil {
		return err
	}
	for range 2 {
		err := cl.GetClient().Patch(ctx, lease.DeepCopy(), client.RawPatch(types.MergePatchType, patch))
		if !apierrors.IsNotFound(err) {
			return err
		}
		err = cl.GetClient().Create(ctx, lease.DeepCopy())
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return fmt.Errorf("lease %s/%s kept coming and going", namespace, lease.Name)
}
