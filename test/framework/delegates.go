package framework

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// DelegateSampler records, from informers on every target (which recover
// from dropped watches and API server restarts), each candidate pod ever
// seen bound to a node, per proxy pod: a proxy pod must never have two.
type DelegateSampler struct {
	mu    sync.Mutex
	bound map[string]map[types.UID]string // proxy UID → candidate UID → description
}

// SampleDelegates samples the delegates in namespace ns of targets until
// the test ends.
func SampleDelegates(t *testing.T, targets []*Cluster, ns string) *DelegateSampler {
	t.Helper()
	s := &DelegateSampler{bound: map[string]map[types.UID]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, tc := range targets {
		factory := informers.NewSharedInformerFactoryWithOptions(tc.Clientset, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = protocol.ProxyPodUIDLabel }))
		record := func(obj any) {
			pod, ok := obj.(*corev1.Pod)
			if !ok || pod.Spec.NodeName == "" {
				return
			}
			uid := pod.Labels[protocol.ProxyPodUIDLabel]
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.bound[uid] == nil {
				s.bound[uid] = map[types.UID]string{}
			}
			if _, seen := s.bound[uid][pod.UID]; !seen {
				// Enough to tell, when a proxy pod has two, how each came to bind.
				var owner types.UID
				for _, ref := range pod.OwnerReferences {
					owner = ref.UID
				}
				s.bound[uid][pod.UID] = fmt.Sprintf("%s/%s (uid %s, owner %s, created %s, node %s, seen bound %s)",
					tc.Name, pod.Name, pod.UID, owner, pod.CreationTimestamp.Format(time.RFC3339), pod.Spec.NodeName,
					time.Now().Format("15:04:05.000"))
			}
		}
		if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    record,
			UpdateFunc: func(_, obj any) { record(obj) },
		}); err != nil {
			t.Fatal(err)
		}
		factory.Start(ctx.Done())
		// Shutdown waits for the informers, which stop once ctx is done.
		t.Cleanup(func() { cancel(); factory.Shutdown() })
		for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				t.Fatalf("informer of %v in %s did not sync", typ, tc.Name)
			}
		}
	}
	return s
}

// Doubles lists the proxy pods that ever had more than one delegate.
func (s *DelegateSampler) Doubles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for uid, pods := range s.bound {
		if len(pods) > 1 {
			var names []string
			for _, n := range pods {
				names = append(names, n)
			}
			slices.Sort(names)
			out = append(out, fmt.Sprintf("%s: %v", uid, names))
		}
	}
	return out
}

// Count is how many delegates were seen bound.
func (s *DelegateSampler) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, pods := range s.bound {
		n += len(pods)
	}
	return n
}
