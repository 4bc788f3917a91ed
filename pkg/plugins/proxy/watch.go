package proxy

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// observe records a chaperon seen in key (by the informer of connection
// conn, or nil for the result of our own write, which never replaces what
// the informer delivered) and wakes its proxy pod when its verdict changed.
func (pl *Proxy) observe(key remote.Key, conn remote.Cluster, ch *multiclusterv1alpha1.PodChaperon) {
	if conn != nil && !pl.isWatched(key, conn) || !protocol.OfTarget(ch, key.String()) {
		return
	}
	before, after, changed := pl.store.set(key, ch, conn == nil)
	if !changed || before.State == after.State && before.Attempt == after.Attempt {
		return
	}
	switch after.State {
	case protocol.StateReserved, protocol.StateUnschedulable, protocol.StateBound:
		verdictsTotal.WithLabelValues(string(after.State)).Inc()
	}
	pl.activate(proxyUID(ch))
}

func (pl *Proxy) observeDeleted(key remote.Key, conn remote.Cluster, ch *multiclusterv1alpha1.PodChaperon) {
	if !pl.isWatched(key, conn) || !protocol.OfTarget(ch, key.String()) {
		return
	}
	if pl.store.remove(key, ch) {
		pl.activate(proxyUID(ch))
	}
}

// hasSynced reports whether the store holds all of key's chaperons (its
// informer has listed them).
func (pl *Proxy) hasSynced(key remote.Key) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	f, ok := pl.synced[key]
	return ok && f()
}

func (pl *Proxy) isWatched(key remote.Key, conn remote.Cluster) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.watched[key] == conn
}

// targetChanged follows a target's connection: a new one gets a chaperon
// informer, a closed one is forgotten; pending pods are brought back when
// the target is new or gained capacity.
func (pl *Proxy) targetChanged(ctx context.Context, key remote.Key) {
	conn, err := pl.fleet.Get(key)
	pl.mu.Lock()
	current := pl.watched[key]
	switch {
	case err != nil:
		delete(pl.watched, key)
		delete(pl.free, key)
		delete(pl.synced, key)
		delete(pl.ready, key)
		pl.mu.Unlock()
		if current != nil {
			pl.activate(pl.store.forgetTarget(key)...)
		}
		return
	case current != conn:
		pl.watched[key] = conn
		delete(pl.synced, key)
		pl.ready[key] = conn.Health().Ready
		pl.forgetFailuresLocked(key)
		pl.mu.Unlock()
		pl.store.forgetTarget(key)
		pl.watchChaperons(ctx, key, conn)
		pl.activateAll()
		return
	}
	// Pending pods come back when the target may take more than before:
	// it gained free capacity, or it became ready. Other changes (capacity
	// taken, the same health) leave them be.
	grew := false
	if s := conn.Summary(); s != nil {
		old, seen := pl.free[key]
		grew = !seen || gained(old, s.Free)
		pl.free[key] = s.Free.DeepCopy()
	}
	ready := conn.Health().Ready
	becameReady := ready && !pl.ready[key]
	pl.ready[key] = ready
	if becameReady {
		pl.forgetFailuresLocked(key)
	}
	pl.mu.Unlock()
	if grew || becameReady {
		pl.activateAll()
	}
}

// forgetFailuresLocked forgets the failures to create candidates in key (a
// target that is back, or connected anew), so that the pods activated next
// are sent there again at once rather than at their next retry. A target
// where a pod cannot start stays held off.
func (pl *Proxy) forgetFailuresLocked(key remote.Key) {
	now := pl.now()
	for _, st := range pl.pods {
		st.forgetFailure(key, now)
	}
}

// gained reports whether any resource of now is above before.
func gained(before, now corev1.ResourceList) bool {
	for name, q := range now {
		if b, ok := before[name]; !ok || q.Cmp(b) > 0 {
			return true
		}
	}
	return false
}

// activateAll brings back every pending proxy pod that has no choice in
// progress.
func (pl *Proxy) activateAll() {
	pl.mu.Lock()
	uids := make([]types.UID, 0, len(pl.pods))
	for uid := range pl.pods {
		uids = append(uids, uid)
	}
	pl.mu.Unlock()
	pl.activate(uids...)
}

// watchChaperons feeds the store from the connection's PodChaperon
// informer, from as soon as the target answers (remote.AddHandler).
func (pl *Proxy) watchChaperons(ctx context.Context, key remote.Key, conn remote.Cluster) {
	c := conn.GetCache()
	if c == nil {
		return // a fake connection: tests feed observe directly
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if ch, ok := obj.(*multiclusterv1alpha1.PodChaperon); ok {
				pl.observe(key, conn, ch)
			}
		},
		UpdateFunc: func(_, obj any) {
			if ch, ok := obj.(*multiclusterv1alpha1.PodChaperon); ok {
				pl.observe(key, conn, ch)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if ch, ok := obj.(*multiclusterv1alpha1.PodChaperon); ok {
				pl.observeDeleted(key, conn, ch)
			}
		},
	}
	go func() {
		logger := klog.FromContext(ctx).WithValues("target", key.String())
		reg, err := remote.AddHandler(klog.NewContext(ctx, logger), c, &multiclusterv1alpha1.PodChaperon{}, handler,
			func() bool { return pl.isWatched(key, conn) })
		if err != nil {
			if !errors.Is(err, remote.ErrNotWanted) && ctx.Err() == nil {
				logger.Error(err, "Watching the target's PodChaperons")
			}
			return
		}
		// The store holds all of the target's chaperons once this handler
		// has seen the informer's initial list (not merely once the
		// informer has).
		pl.mu.Lock()
		if pl.watched[key] == conn {
			pl.synced[key] = reg.HasSynced
		}
		pl.mu.Unlock()
		select {
		case <-reg.HasSyncedChecker().Done():
			// Pods that waited to see their chosen target's chaperons
			// (see decision) may go on.
			if pl.isWatched(key, conn) {
				pl.activateAll()
			}
		case <-ctx.Done():
		}
	}()
}

// podHandler forgets proxy pods once they are bound or deleted.
func podHandler(pl *Proxy) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			if pod, ok := obj.(*corev1.Pod); ok && isProxy(pod) && pod.Spec.NodeName != "" {
				pl.forget(pod.UID)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok && isProxy(pod) {
				pl.forget(pod.UID)
			}
		},
	}
}
