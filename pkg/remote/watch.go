package remote

import (
	"context"
	"errors"
	"sync"

	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Watcher hands every event on one kind of object, in every connected
// target's cache, to Handler (added, updated and deleted alike; a deleted
// object whose final state is unknown is handed as last seen). Call
// TargetChanged on every connection change (e.g. from a Broadcast).
type Watcher struct {
	Fleet interface{ Get(Key) (Cluster, error) }
	// Object is an empty object of the kind to watch.
	Object client.Object
	// Handler runs on the informer's goroutine: keep it short (enqueue).
	Handler func(Key, client.Object)

	mu      sync.Mutex
	watched map[Key]Cluster
}

// TargetChanged watches key's current connection, once per connection
// (in the background: see AddHandler). The error is kept for callers; it
// is nil.
func (w *Watcher) TargetChanged(ctx context.Context, key Key) error {
	cl, err := w.Fleet.Get(key)
	w.mu.Lock()
	if w.watched == nil {
		w.watched = map[Key]Cluster{}
	}
	if err != nil {
		delete(w.watched, key)
		w.mu.Unlock()
		return nil
	}
	if w.watched[key] == cl {
		w.mu.Unlock()
		return nil
	}
	w.watched[key] = cl
	w.mu.Unlock()
	if cl.GetCache() == nil {
		return nil
	}
	handle := func(obj any) {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if o, ok := obj.(client.Object); ok {
			w.Handler(key, o)
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
		DeleteFunc: handle,
	}
	wanted := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.watched[key] == cl
	}
	// A target that does not answer yet is watched once it does.
	go func() {
		_, err := AddHandler(klog.NewContext(ctx, klog.FromContext(ctx).WithValues("target", key.String())), cl.GetCache(), w.Object, handler, wanted)
		if err != nil && !errors.Is(err, ErrNotWanted) && ctx.Err() == nil {
			klog.FromContext(ctx).Error(err, "Watching the target", "target", key.String(), "kind", kindOf(w.Object))
		}
	}()
	return nil
}
