package proxy

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// store holds the chaperons of every proxy pod, per target, as last seen
// by the targets' informers or returned by our own writes. Objects are
// shared read-only: never mutate them.
type store struct {
	mu        sync.Mutex
	chaperons map[types.UID]map[remote.Key]*multiclusterv1alpha1.PodChaperon
	// changes is closed (and replaced) whenever a pod's chaperons change.
	changes map[types.UID]chan struct{}
}

func newStore() *store {
	return &store{
		chaperons: map[types.UID]map[remote.Key]*multiclusterv1alpha1.PodChaperon{},
		changes:   map[types.UID]chan struct{}{},
	}
}

func proxyUID(ch *multiclusterv1alpha1.PodChaperon) types.UID {
	return types.UID(ch.Labels[protocol.ProxyPodUIDLabel])
}

// set records ch as the chaperon in key and returns the verdict it
// replaces (zero if none) and the new one. With ifAbsent (our own writes'
// results, which may be older than what the informer delivered already),
// a chaperon of the same UID that is held is kept.
func (s *store) set(key remote.Key, ch *multiclusterv1alpha1.PodChaperon, ifAbsent bool) (before, after protocol.Verdict, ok bool) {
	uid := proxyUID(ch)
	if uid == "" {
		return before, after, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byKey := s.chaperons[uid]
	if byKey == nil {
		byKey = map[remote.Key]*multiclusterv1alpha1.PodChaperon{}
		s.chaperons[uid] = byKey
	}
	if old := byKey[key]; old != nil {
		if old.UID == ch.UID && (ifAbsent || old.ResourceVersion == ch.ResourceVersion) {
			return before, after, false
		}
		before = protocol.VerdictOf(old)
	}
	byKey[key] = ch
	s.notifyLocked(uid)
	return before, protocol.VerdictOf(ch), true
}

// remove forgets the chaperon in key if it is ch (by UID).
func (s *store) remove(key remote.Key, ch *multiclusterv1alpha1.PodChaperon) bool {
	uid := proxyUID(ch)
	s.mu.Lock()
	defer s.mu.Unlock()
	byKey := s.chaperons[uid]
	if old, ok := byKey[key]; !ok || old.UID != ch.UID {
		return false
	}
	delete(byKey, key)
	if len(byKey) == 0 {
		delete(s.chaperons, uid)
	}
	s.notifyLocked(uid)
	return true
}

// forgetTarget drops every chaperon of key (its connection closed) and
// returns the proxy pods concerned.
func (s *store) forgetTarget(key remote.Key) []types.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var uids []types.UID
	for uid, byKey := range s.chaperons {
		if _, ok := byKey[key]; ok {
			delete(byKey, key)
			if len(byKey) == 0 {
				delete(s.chaperons, uid)
			}
			uids = append(uids, uid)
			s.notifyLocked(uid)
		}
	}
	return uids
}

// get returns a pod's chaperons by target (a new map of shared objects).
func (s *store) get(uid types.UID) map[remote.Key]*multiclusterv1alpha1.PodChaperon {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[remote.Key]*multiclusterv1alpha1.PodChaperon, len(s.chaperons[uid]))
	for k, ch := range s.chaperons[uid] {
		out[k] = ch
	}
	return out
}

// changed returns a channel closed at the next change of uid's chaperons.
// Take it before reading, so that no change is missed.
func (s *store) changed(uid types.UID) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.changes[uid]
	if !ok {
		c = make(chan struct{})
		s.changes[uid] = c
	}
	return c
}

// release drops the change channel of a pod that is done with.
func (s *store) release(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.changes[uid]; ok {
		close(c)
		delete(s.changes, uid)
	}
}

func (s *store) notifyLocked(uid types.UID) {
	if c, ok := s.changes[uid]; ok {
		close(c)
		delete(s.changes, uid)
	}
}

// choice is how far a proxy pod is committed to a target.
type choice int

const (
	// undecided: the pod may go to any target.
	undecided choice = iota
	// chosen: the pod may only go to the chosen target, whose chaperon
	// the store holds.
	chosen
	// chosenUnseen: the pod's decision record names a target whose
	// chaperons the store does not hold yet (not connected, or its
	// informer has not synced): the chaperon may be allowed, even binding,
	// so the pod waits to see it rather than going elsewhere.
	chosenUnseen
)

// decision tells where pod is committed: to the target whose chaperon
// carries the choice (allowed, binding or bound), else to the one its
// decision record names (protocol.DecisionAnnotation, written before any
// allow mark), as long as that chaperon exists or may exist. A record
// whose chaperon is gone from a synced store, or whose target left the
// fleet (no virtual node), is void.
func (pl *Proxy) decision(pod *corev1.Pod, chs map[remote.Key]*multiclusterv1alpha1.PodChaperon) (remote.Key, *multiclusterv1alpha1.PodChaperon, choice) {
	if key, ch, ok := decided(chs); ok {
		return key, ch, chosen
	}
	target, uid, ok := protocol.ParseDecision(pod)
	if !ok {
		return remote.Key{}, nil, undecided
	}
	key := remote.ParseKey(target)
	if ch := chs[key]; ch != nil && ch.UID == uid {
		return key, ch, chosen
	}
	if _, configured := pl.virtualNodes()[key]; !configured || pl.hasSynced(key) {
		return remote.Key{}, nil, undecided
	}
	return key, nil, chosenUnseen
}

// decided returns the target whose chaperon carries the proxy's choice.
func decided(chs map[remote.Key]*multiclusterv1alpha1.PodChaperon) (remote.Key, *multiclusterv1alpha1.PodChaperon, bool) {
	for k, ch := range chs {
		if protocol.Decided(ch) {
			return k, ch, true
		}
	}
	return remote.Key{}, nil, false
}
