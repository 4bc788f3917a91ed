package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// PodTiming is what the benchmark saw of one pod, as offsets from the
// start of its run. For a vanilla pod, Bound is its binding and
// DelegateBound stays zero.
type PodTiming struct {
	Pod string
	// Target is the cluster of the delegate (empty for vanilla pods).
	Target                                 string
	Created, DelegateBound, Bound, Running time.Duration
}

// recorder timestamps pods from watch events as they arrive: the time the
// benchmark observed each step, on one clock (every cluster is local).
type recorder struct {
	mu    sync.Mutex
	start time.Time
	pods  map[string]*PodTiming
	// changed is signalled (without blocking) on every recorded step.
	changed chan struct{}
	// createRetries counts pod creations that failed and were retried.
	createRetries int
}

func (r *recorder) retried() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.createRetries++
}

func (r *recorder) retries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.createRetries
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, pods: map[string]*PodTiming{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) pod(name string) *PodTiming {
	p, ok := r.pods[name]
	if !ok {
		p = &PodTiming{Pod: name}
		r.pods[name] = p
	}
	return p
}

func (r *recorder) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// set records when (once) a step of a pod happened.
func (r *recorder) set(name string, step func(*PodTiming) *time.Duration, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := step(r.pod(name))
	if *d == 0 {
		*d = max(at.Sub(r.start), time.Nanosecond)
		r.notify()
	}
}

func (r *recorder) setTarget(name, target string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pod(name).Target = target
}

// counts returns how many pods reached each step.
func (r *recorder) counts() (created, delegateBound, bound, running int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pods {
		if p.Created > 0 {
			created++
		}
		if p.DelegateBound > 0 {
			delegateBound++
		}
		if p.Bound > 0 {
			bound++
		}
		if p.Running > 0 {
			running++
		}
	}
	return
}

// notRunning names (sorted, at most n) the pods not Running yet, with the
// target of their delegate if bound.
func (r *recorder) notRunning(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, name := range slices.Sorted(maps.Keys(r.pods)) {
		if p := r.pods[name]; p.Running == 0 {
			if p.Target != "" {
				name += " (delegate in " + p.Target + ")"
			}
			out = append(out, name)
		}
	}
	if len(out) > n {
		out = append(out[:n], "...")
	}
	return out
}

// timings returns a copy of the pods created in this run.
func (r *recorder) timings() []PodTiming {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PodTiming, 0, len(r.pods))
	for _, p := range r.pods {
		if p.Created > 0 {
			out = append(out, *p)
		}
	}
	return out
}

func created(p *PodTiming) *time.Duration       { return &p.Created }
func delegateBound(p *PodTiming) *time.Duration { return &p.DelegateBound }
func bound(p *PodTiming) *time.Duration         { return &p.Bound }
func running(p *PodTiming) *time.Duration       { return &p.Running }

// watchPods records, for the pods of namespace ns in a cluster, when each is
// bound and Running (by its own name), or, with delegates, when the
// delegate of each proxy pod is bound (by the proxy pod's name).
func (r *recorder) watchPods(ctx context.Context, cs kubernetes.Interface, ns, cluster string, delegates bool) error {
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	handle := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		now := time.Now()
		if delegates {
			proxy := pod.Annotations[protocol.ProxyPodNameAnnotation]
			if proxy == "" || pod.Spec.SchedulerName != protocol.CandidateSchedulerName {
				return
			}
			r.set(proxy, delegateBound, now)
			r.setTarget(proxy, cluster)
			return
		}
		r.set(pod.Name, bound, now)
		if pod.Status.Phase == corev1.PodRunning {
			r.set(pod.Name, running, now)
		}
	}
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("watching %v in %s: cache not synced", typ, cluster)
		}
	}
	return nil
}
