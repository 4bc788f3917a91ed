package remote

import "sync"

// Broadcast fans changes of targets out to subscribers. Its Publish fits
// Options.OnConnectionChange and Options.OnSummaryChange, and PublishHealth
// fits Options.OnHealthChange.
type Broadcast struct {
	mu   sync.Mutex
	subs []func(Key)
}

// Subscribe registers f, called from any goroutine whenever a target changes.
func (b *Broadcast) Subscribe(f func(Key)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, f)
}

// Publish tells every subscriber that key changed.
func (b *Broadcast) Publish(key Key) {
	b.mu.Lock()
	subs := append([]func(Key){}, b.subs...)
	b.mu.Unlock()
	for _, f := range subs {
		f(key)
	}
}

// PublishHealth is Publish for Options.OnHealthChange.
func (b *Broadcast) PublishHealth(key Key, _ Health) { b.Publish(key) }
