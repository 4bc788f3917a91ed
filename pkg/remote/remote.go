package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// ErrClusterNotConnected is returned for a target that has no connection.
var ErrClusterNotConnected = errors.New("cluster not connected")

// Key names a target: Namespace and Name of a Target, or only the Name of a
// ClusterTarget.
type Key struct {
	Namespace string
	Name      string
}

func (k Key) String() string {
	if k.Namespace == "" {
		return k.Name
	}
	return k.Namespace + "/" + k.Name
}

// ParseKey is the inverse of Key.String: "namespace/name" or "name".
func ParseKey(s string) Key {
	if ns, name, ok := strings.Cut(s, "/"); ok {
		return Key{Namespace: ns, Name: name}
	}
	return Key{Name: s}
}

// KeyOfVirtualNode reads the target a virtual node stands for (its
// TargetAnnotation); ok is false for any other node.
func KeyOfVirtualNode(node *corev1.Node) (Key, bool) {
	v := node.Annotations[protocol.TargetAnnotation]
	if v == "" || node.Labels[protocol.VirtualKubeletProviderKey] != protocol.VirtualKubeletProvider {
		return Key{}, false
	}
	return ParseKey(v), true
}

// Health is the result of the latest probe of a target.
type Health struct {
	Ready bool
	// Reason is one of the multicluster v1alpha1 Ready reasons.
	Reason string
	// Message says what is wrong and what to do about it.
	Message string
	// Since is when the target entered this state.
	Since time.Time
}

// Cluster is the connection to one target.
type Cluster interface {
	Key() Key
	// GetClient reads from the shared cache and writes to the target.
	GetClient() client.Client
	// GetAPIReader reads from the target's API server, around the cache.
	GetAPIReader() client.Reader
	GetCache() cache.Cache
	// GetConfig is the configuration the connection dials with (the
	// source's identity in the target), for what a client cannot do, such
	// as streaming logs, exec and port-forward.
	GetConfig() *rest.Config
	Health() Health
	// Summary is the target's ClusterSummary as last seen by the cache's
	// watch, or nil before it is seen.
	Summary() *multiclusterv1alpha1.ClusterSummary
}

// Connector keeps the connections. Connect is idempotent: the same
// fingerprint keeps the existing connection.
type Connector interface {
	// Connect makes sure key is connected with cfg; a different fingerprint
	// (the configuration's identity, e.g. a hash of the kubeconfig) replaces
	// the connection.
	Connect(ctx context.Context, key Key, cfg *rest.Config, fingerprint string) (Cluster, error)
	// Disconnect closes the connection to key, if any.
	Disconnect(key Key)
	// Get returns the connection to key or ErrClusterNotConnected.
	Get(key Key) (Cluster, error)
	// Keys lists the connected targets.
	Keys() []Key
}

// Options tune the connections.
type Options struct {
	// ProbeInterval is how often each target is probed (default 2s). A
	// target that fails a probe is reported at once.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe (default: ProbeInterval).
	ProbeTimeout time.Duration
	// OnHealthChange is called, from the probing goroutine, whenever a
	// target's health changes (reason or readiness).
	OnHealthChange func(Key, Health)
	// OnSummaryChange is called whenever the target's ClusterSummary changes.
	OnSummaryChange func(Key)
	// OnConnectionChange is called after a target is connected (anew or
	// with a new configuration) or disconnected.
	OnConnectionChange func(Key)
	// QPS and Burst are the client rate limits of each connection whose
	// kubeconfig sets none (a kubeconfig never does): default DefaultQPS and
	// DefaultBurst.
	QPS   float32
	Burst int
	// Now is the clock (tests swap it).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 2 * time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = o.ProbeInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.QPS <= 0 {
		o.QPS = DefaultQPS
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.OnHealthChange == nil {
		o.OnHealthChange = func(Key, Health) {}
	}
	if o.OnSummaryChange == nil {
		o.OnSummaryChange = func(Key) {}
	}
	if o.OnConnectionChange == nil {
		o.OnConnectionChange = func(Key) {}
	}
}

// NewConnector returns a Connector whose connections live until ctx ends
// (its logger is theirs too) and whose clients and caches newCluster builds.
func NewConnector(ctx context.Context, opts Options, newCluster ClusterFactory) Connector {
	opts.defaults()
	c := &connector{ctx: ctx, opts: opts, newCluster: newCluster, conns: map[Key]*connection{}}
	go func() {
		<-ctx.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		for k, conn := range c.conns {
			conn.close()
			delete(c.conns, k)
		}
	}()
	return c
}

type connector struct {
	ctx        context.Context
	opts       Options
	newCluster ClusterFactory

	mu    sync.Mutex
	conns map[Key]*connection
}

func (c *connector) Connect(ctx context.Context, key Key, cfg *rest.Config, fingerprint string) (Cluster, error) {
	conn, changed, err := c.connect(ctx, key, cfg, fingerprint)
	if changed {
		c.opts.OnConnectionChange(key)
	}
	return conn, err
}

func (c *connector) connect(_ context.Context, key Key, cfg *rest.Config, fingerprint string) (Cluster, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	if conn, ok := c.conns[key]; ok {
		if conn.fingerprint == fingerprint {
			return conn, false, nil
		}
		conn.close()
		delete(c.conns, key)
		changed = true
	}
	if c.ctx.Err() != nil {
		return nil, changed, fmt.Errorf("connecting to %s: %w", key, c.ctx.Err())
	}
	conn, err := c.start(key, cfg, fingerprint, nil)
	if err != nil {
		return nil, changed, fmt.Errorf("connecting to %s: %w", key, err)
	}
	c.conns[key] = conn
	return conn, true, nil
}

func (c *connector) Disconnect(key Key) {
	c.mu.Lock()
	conn, ok := c.conns[key]
	if ok {
		conn.close()
		delete(c.conns, key)
	}
	c.mu.Unlock()
	if ok {
		c.opts.OnConnectionChange(key)
	}
}

func (c *connector) Get(key Key) (Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn, ok := c.conns[key]; ok {
		return conn, nil
	}
	return nil, fmt.Errorf("%s: %w", key, ErrClusterNotConnected)
}

func (c *connector) Keys() []Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]Key, 0, len(c.conns))
	for k := range c.conns {
		keys = append(keys, k)
	}
	return keys
}
