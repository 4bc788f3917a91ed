package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// Client rate limits of connections whose configuration sets none.
const (
	DefaultQPS   = 100
	DefaultBurst = 200
)

// ClusterFactory builds the client and cache of the connection to key.
type ClusterFactory func(key Key, cfg *rest.Config) (cluster.Cluster, error)

// NewCluster is the default ClusterFactory: a controller-runtime cluster
// whose cache drops managed fields. The cache of a Target (namespaced)
// watches namespaced objects in the Target's namespace only: that is all a
// Source in the target grants (a ClusterTarget's ClusterSource grants all).
func NewCluster(key Key, cfg *rest.Config) (cluster.Cluster, error) {
	return cluster.New(cfg, func(o *cluster.Options) {
		o.Scheme = protocol.Scheme
		o.Cache.DefaultTransform = cache.TransformStripManagedFields()
		if key.Namespace != "" {
			o.Cache.DefaultNamespaces = map[string]cache.Config{key.Namespace: {}}
		}
	})
}

type connection struct {
	key         Key
	fingerprint string
	cfg         *rest.Config
	cluster     cluster.Cluster
	cancel      context.CancelFunc
	// done is closed once the connection is closed.
	done <-chan struct{}

	mu      sync.Mutex
	health  Health
	summary *multiclusterv1alpha1.ClusterSummary
}

func (c *connection) Summary() *multiclusterv1alpha1.ClusterSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.summary == nil {
		return nil
	}
	return c.summary.DeepCopy()
}

func (c *connection) setSummary(s *multiclusterv1alpha1.ClusterSummary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.summary = s
}

func (c *connection) Key() Key                    { return c.key }
func (c *connection) GetClient() client.Client    { return c.cluster.GetClient() }
func (c *connection) GetCache() cache.Cache       { return c.cluster.GetCache() }
func (c *connection) GetAPIReader() client.Reader { return c.cluster.GetAPIReader() }
func (c *connection) GetConfig() *rest.Config     { return rest.CopyConfig(c.cluster.GetConfig()) }

func (c *connection) Health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

func (c *connection) close() {
	c.cancel()
	connectionsOpen.Dec()
	forgetTarget(c.key)
}

// start opens a connection: its client and cache, and its probing. summary
// seeds what the connection knows of the target's ClusterSummary until its
// cache has read it (nil: nothing yet).
func (c *connector) start(key Key, cfg *rest.Config, fingerprint string, summary *multiclusterv1alpha1.ClusterSummary) (*connection, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		// client-go's default (5 QPS) would throttle a busy source's
		// candidates, allow marks and status reads.
		cfg.QPS, cfg.Burst = c.opts.QPS, c.opts.Burst
	}
	cl, err := c.newCluster(key, rest.CopyConfig(cfg))
	if err != nil {
		return nil, err
	}
	probeCfg := rest.CopyConfig(cfg)
	probeCfg.Timeout = c.opts.ProbeTimeout
	probe, err := newProber(probeCfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(c.ctx)
	logger := klog.FromContext(ctx).WithValues("target", key.String())
	ctx = klog.NewContext(ctx, logger)
	conn := &connection{key: key, fingerprint: fingerprint, cfg: cfg, cluster: cl, cancel: cancel, done: ctx.Done(), summary: summary}
	// The first probe is made before Connect returns, so that the first
	// condition a user sees is already the truth.
	conn.health = classify(probe.probe(ctx), cfg.Host)
	conn.health.Since = c.opts.Now()
	recordHealth(key, Health{}, conn.health)
	connectionsOpen.Inc()
	go func() {
		if err := cl.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error(err, "Remote cache stopped")
		}
	}()
	go c.probeLoop(ctx, conn, probe)
	go c.watchSummary(ctx, conn)
	logger.V(2).Info("Connected to target", "server", cfg.Host)
	return conn, nil
}

// refreshAfter is how many probes in a row a target must fail for its
// connection to be made anew when it answers again (see refresh); one
// failed probe (a timeout on a busy machine) is not an outage.
const refreshAfter = 2

// probeLoop probes the target every interval until the connection closes,
// publishing changes of readiness or reason. A target that answers again
// after an outage gets a new connection (refresh).
func (c *connector) probeLoop(ctx context.Context, conn *connection, probe *prober) {
	logger := klog.FromContext(ctx)
	ticker := time.NewTicker(c.opts.ProbeInterval)
	defer ticker.Stop()
	failed := 0
	if !conn.Health().Ready {
		failed = 1
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		h := classify(probe.probe(ctx), conn.cfg.Host)
		if ctx.Err() != nil {
			return
		}
		conn.mu.Lock()
		recordHealth(conn.key, conn.health, h)
		changed := h.Ready != conn.health.Ready || h.Reason != conn.health.Reason
		if changed {
			h.Since = c.opts.Now()
		} else {
			h.Since = conn.health.Since
		}
		conn.health = h
		conn.mu.Unlock()
		if !h.Ready {
			failed++
		} else if failed >= refreshAfter && c.refresh(ctx, conn) {
			return // the new connection took over, and said so
		} else {
			failed = 0
		}
		if changed {
			logger.V(2).Info("Target health changed", "ready", h.Ready, "reason", h.Reason, "message", h.Message)
			c.opts.OnHealthChange(conn.key, h)
		}
	}
}

// refresh replaces conn, whose target answers again after an outage, by a
// new connection with the same configuration, and reports true once it
// has (false: conn is no longer current, or the new one could not be made).
// The cache's watches failed during the outage (connection refused; then,
// as an API server starts, Forbidden until its authorizer has synced) and
// client-go's reflectors retry them with a backoff that reaches 30-60 s: the
// target would look ready while the cache stayed behind, unaware of
// chaperons made or deleted since. A new cache lists and watches at once.
// The new connection keeps the ClusterSummary last seen until its cache
// reads it, so that the virtual node keeps its labels and capacity.
func (c *connector) refresh(ctx context.Context, conn *connection) bool {
	logger := klog.FromContext(ctx)
	c.mu.Lock()
	if c.conns[conn.key] != conn || c.ctx.Err() != nil {
		c.mu.Unlock()
		return false
	}
	fresh, err := c.start(conn.key, conn.cfg, conn.fingerprint, conn.Summary())
	if err != nil {
		c.mu.Unlock()
		logger.Error(err, "Renewing the connection to the target that answers again; its cache catches up on its own")
		return false
	}
	c.conns[conn.key] = fresh
	conn.cancel()
	connectionsOpen.Dec() // the target's metrics go on with the new connection
	c.mu.Unlock()
	h := fresh.Health()
	logger.V(2).Info("Target answers again: connection renewed", "ready", h.Ready, "reason", h.Reason, "message", h.Message)
	c.opts.OnHealthChange(conn.key, h)
	c.opts.OnConnectionChange(conn.key)
	return true
}

// watchSummary follows the target's ClusterSummary through the shared
// cache, from as soon as the target answers (see AddHandler).
func (c *connector) watchSummary(ctx context.Context, conn *connection) {
	logger := klog.FromContext(ctx)
	update := func(obj any) {
		s, ok := obj.(*multiclusterv1alpha1.ClusterSummary)
		if !ok || s.Name != protocol.ClusterSummaryName {
			return
		}
		conn.setSummary(s.DeepCopy())
		c.opts.OnSummaryChange(conn.key)
	}
	_, err := AddHandler(ctx, conn.cluster.GetCache(), &multiclusterv1alpha1.ClusterSummary{}, toolscache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
		DeleteFunc: func(obj any) {
			if s, ok := obj.(*multiclusterv1alpha1.ClusterSummary); ok && s.Name == protocol.ClusterSummaryName {
				conn.setSummary(nil)
				c.opts.OnSummaryChange(conn.key)
			}
		},
	}, func() bool { return true }) // ctx ends with the connection
	if err != nil && ctx.Err() == nil {
		logger.Error(err, "Watching the target's ClusterSummary")
	}
}

// prober reads the target's ClusterSummary without a cache: one small
// request that needs reachability, valid credentials, the permission a
// Source grants, and Flotilla installed.
type prober struct {
	client rest.Interface
}

func newProber(cfg *rest.Config) (*prober, error) {
	cfg.GroupVersion = &multiclusterv1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building probe client: %w", err)
	}
	return &prober{client: rc}, nil
}

func (p *prober) probe(ctx context.Context) error {
	return p.client.Get().Resource("clustersummaries").Name(protocol.ClusterSummaryName).Do(ctx).Error()
}

// classify turns a probe's outcome into a Health a user can act on.
func classify(err error, server string) Health {
	switch {
	case err == nil:
		return Health{Ready: true, Reason: multiclusterv1alpha1.ReasonConnected, Message: "connected to " + server}
	case isSummaryNotFound(err):
		return Health{Ready: true, Reason: multiclusterv1alpha1.ReasonConnected,
			Message: "connected to " + server + "; it has not published its ClusterSummary yet (is Flotilla's controller-manager running there?)"}
	case apierrors.IsNotFound(err):
		return Health{Reason: multiclusterv1alpha1.ReasonNotInstalled,
			Message: server + " does not serve multicluster.admiralty.io/v1alpha1 ClusterSummaries: install Flotilla in the target cluster"}
	case apierrors.IsUnauthorized(err):
		return Health{Reason: multiclusterv1alpha1.ReasonUnauthorized,
			Message: server + " rejected the credentials (401 Unauthorized): the token or client certificate in the kubeconfig is invalid or expired"}
	case apierrors.IsForbidden(err):
		return Health{Reason: multiclusterv1alpha1.ReasonForbidden,
			Message: server + " accepted the credentials but forbids reading ClusterSummaries: create a Source (or ClusterSource) for this identity in the target cluster (" + err.Error() + ")"}
	default:
		return Health{Reason: multiclusterv1alpha1.ReasonUnreachable, Message: "cannot reach " + server + ": " + err.Error()}
	}
}

// isSummaryNotFound tells "no such ClusterSummary" (Flotilla installed, the
// summary not written yet) from "no such resource" (not installed).
func isSummaryNotFound(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsNotFound(err) {
		return false
	}
	// A 404 without a Status body (no such path: the API is not served) is
	// turned into a NotFound by client-go too, marked as unexpected.
	if apierrors.IsUnexpectedServerError(err) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Name == protocol.ClusterSummaryName
}
