package remote

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrNotWanted: the connection an informer was for is gone.
var ErrNotWanted = errors.New("the connection is no longer current")

// informerBackoff spaces the attempts to get an informer from a target
// that does not answer.
var informerBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: 30 * time.Second}

// AddHandler registers handler with the target cache's informer for obj's
// kind. Getting the informer needs the target's API discovery (to map the
// kind to a resource); when the target does not answer, e.g. it is down
// as the connection is made, AddHandler tries again with backoff, and
// logs once, for as long as wanted reports true and ctx lasts. Once the
// informer exists, it retries on its own (client-go's reflector).
func AddHandler(ctx context.Context, c cache.Cache, obj client.Object, handler toolscache.ResourceEventHandler, wanted func() bool) (toolscache.ResourceEventHandlerRegistration, error) {
	logger := klog.FromContext(ctx)
	backoff := informerBackoff
	logged := false
	for {
		informer, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err == nil {
			if logged {
				logger.Info("Watching the target now", "kind", kindOf(obj))
			}
			return informer.AddEventHandler(handler)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !logged {
			logger.Error(err, "Cannot watch the target yet; trying again", "kind", kindOf(obj))
			logged = true
		}
		select {
		case <-time.After(backoff.Step()):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !wanted() {
			return nil, ErrNotWanted
		}
	}
}

func kindOf(obj client.Object) string { return fmt.Sprintf("%T", obj) }
