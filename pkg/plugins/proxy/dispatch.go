package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// dispatchWorkers create candidates concurrently: each waits on a remote
// API server, none uses much CPU.
const dispatchWorkers = 16

// EventReasonDispatchFailed is the reason of the Event saying that a
// candidate could not be created in a target.
const EventReasonDispatchFailed = "CandidateNotCreated"

func (pl *Proxy) runDispatch(ctx context.Context) {
	for {
		uid, shutdown := pl.queue.Get()
		if shutdown {
			return
		}
		func() {
			defer pl.queue.Done(uid)
			retry, err := pl.dispatch(ctx, uid)
			switch {
			case err != nil:
				klog.FromContext(ctx).Error(err, "Dispatching candidates", "podUID", uid)
				pl.queue.AddRateLimited(uid)
			case retry:
				pl.queue.AddRateLimited(uid)
			default:
				pl.queue.Forget(uid)
			}
		}()
	}
}

// dispatch creates the pod's missing candidates in its eligible targets,
// after withdrawing a choice whose candidate can no longer fit. It reports
// whether some target must be retried.
func (pl *Proxy) dispatch(ctx context.Context, uid types.UID) (bool, error) {
	pl.mu.Lock()
	st := pl.pods[uid]
	var pod *corev1.Pod
	if st != nil {
		pod = st.pod
	}
	pl.mu.Unlock()
	if pod == nil {
		return false, nil
	}
	logger := klog.FromContext(ctx).WithValues("pod", klog.KObj(pod))
	chs := pl.store.get(uid)
	switch key, ch, c := pl.decision(pod, chs); c {
	case chosenUnseen:
		// Nothing is sent until the chosen target's chaperons are seen.
		return false, nil
	case chosen:
		if protocol.VerdictOf(ch).State != protocol.StateUnschedulable {
			return false, nil
		}
		cl, err := pl.fleet.Get(key)
		if err != nil {
			return true, nil
		}
		if err := pl.revoke(ctx, cl.GetClient(), uid, key); err != nil {
			if errors.Is(err, errCommitted) {
				pl.activate(uid)
				return false, nil
			}
			return false, err
		}
		logger.V(2).Info("Withdrew the choice of a target whose candidate can no longer fit", "target", key.String())
		decisionsTotal.WithLabelValues("revoked").Inc()
		pl.activate(uid)
		return false, nil
	}

	if err := pl.ensureFinalizer(ctx, pod); err != nil {
		return false, err
	}
	ch, err := protocol.NewChaperon(pod)
	if err != nil {
		pl.handle.EventRecorder().Eventf(pod, nil, corev1.EventTypeWarning, EventReasonDispatchFailed, "Dispatch", "%v", err)
		return false, nil
	}
	ch.Labels[protocol.SourceClusterLabel] = pl.sourceID
	var missing []target
	now := pl.now()
	pl.mu.Lock()
	var heldOff map[remote.Key]time.Time
	if st := pl.pods[uid]; st != nil {
		heldOff = maps.Clone(st.heldOff)
	}
	pl.mu.Unlock()
	targets := pl.eligible(pod, chs)
	for _, t := range targets {
		if _, ok := chs[t.key]; !ok && !now.Before(heldOff[t.key]) {
			missing = append(missing, t)
		}
	}
	start := pl.now()
	var mu sync.Mutex
	failures := map[remote.Key]string{}
	var wg sync.WaitGroup
	for _, t := range missing {
		wg.Go(func() {
			mine := ch.DeepCopy()
			mine.Annotations[protocol.TargetAnnotation] = t.key.String()
			if err := pl.create(ctx, t.key, mine); err != nil {
				logger.V(2).Info("Could not create candidate", "target", t.key.String(), "err", err.Error())
				mu.Lock()
				failures[t.key] = fmt.Sprintf("cannot create the candidate: %v", err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(missing) > 0 {
		dispatchDuration.Observe(pl.now().Sub(start).Seconds())
	}
	pl.mu.Lock()
	if st := pl.pods[uid]; st != nil {
		for _, t := range missing {
			if why, failed := failures[t.key]; failed {
				if _, before := st.failures[t.key]; !before {
					pl.handle.EventRecorder().Eventf(pod, nil, corev1.EventTypeWarning, EventReasonDispatchFailed, "Dispatch", "%s: %s", t.key, why)
				}
				st.failures[t.key] = why
			} else {
				delete(st.failures, t.key)
			}
		}
		// A failure in a target that is out of the question now (not
		// ready, tainted, ...) is forgotten: Filter says why it is out, and
		// the pod is sent there anew once it is back. Kept, it would keep
		// the pod from the target for good, as nothing retries it.
		for key := range st.failures {
			if !slices.ContainsFunc(targets, func(t target) bool { return t.key == key }) {
				st.forgetFailure(key, now)
			}
		}
	}
	pl.mu.Unlock()
	pl.activate(uid)
	return len(failures) > 0, nil
}

// create creates a chaperon in a target; one that exists already (a
// restarted scheduler, a lost response) is adopted.
func (pl *Proxy) create(ctx context.Context, key remote.Key, ch *multiclusterv1alpha1.PodChaperon) error {
	cl, err := pl.fleet.Get(key)
	if err != nil {
		return err
	}
	c := cl.GetClient()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = c.Create(cctx, ch)
	if apierrors.IsAlreadyExists(err) {
		// Read it around the cache, which may not have it yet (another
		// Target to the same cluster has just made it).
		existing := &multiclusterv1alpha1.PodChaperon{}
		if err := cl.GetAPIReader().Get(cctx, client.ObjectKeyFromObject(ch), existing); err != nil {
			return fmt.Errorf("reading the PodChaperon that exists already: %w", err)
		}
		if existing.Labels[protocol.ProxyPodUIDLabel] != ch.Labels[protocol.ProxyPodUIDLabel] {
			return fmt.Errorf("PodChaperon %s/%s exists and belongs to another proxy pod", ch.Namespace, ch.Name)
		}
		if !protocol.OfTarget(existing, key.String()) {
			return fmt.Errorf("this cluster has the pod's candidate already, through target %s", protocol.ChaperonTarget(existing))
		}
		ch = existing
	} else if err != nil {
		return err
	}
	pl.observe(key, nil, ch)
	return nil
}
