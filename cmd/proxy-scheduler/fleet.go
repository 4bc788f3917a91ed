package main

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/flotilla-io/flotilla/pkg/controllers/target"
	"github.com/flotilla-io/flotilla/pkg/plugins/proxy"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// fleet runs, once per process, the connections to the targets: the target
// reconcilers (connect only) in a controller-runtime manager of their own.
type fleet struct {
	once      sync.Once
	err       error
	connector remote.Connector
	broadcast remote.Broadcast
}

func (f *fleet) start(ctx context.Context, h fwk.Handle) (proxy.Fleet, error) {
	f.once.Do(func() { f.err = f.run(ctx, h.KubeConfig()) })
	if f.err != nil {
		return nil, f.err
	}
	return f, nil
}

func (f *fleet) run(ctx context.Context, kubeconfig *rest.Config) error {
	logger := klog.FromContext(ctx).WithName("targets")
	cfg := rest.CopyConfig(kubeconfig)
	// kube-scheduler asks for protobuf, which custom resources do not speak.
	cfg.ContentType, cfg.AcceptContentTypes = "", ""
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 protocol.Scheme,
		Logger:                 logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("creating the targets' manager: %w", err)
	}
	f.connector = remote.NewConnector(klog.NewContext(ctx, logger), remote.Options{
		// The targets get the rate limits of clientConnection (qps, burst).
		QPS: kubeconfig.QPS, Burst: kubeconfig.Burst,
		OnHealthChange:     f.broadcast.PublishHealth,
		OnSummaryChange:    f.broadcast.Publish,
		OnConnectionChange: f.broadcast.Publish,
	}, remote.NewCluster)
	for _, clusterScoped := range []bool{false, true} {
		r := &target.Reconciler{
			Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(), Connector: f.connector,
			SelfConfig: cfg, ClusterScoped: clusterScoped, ConnectOnly: true,
		}
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the target reconciler: %w", err)
		}
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			logger.Error(err, "Targets' manager stopped")
		}
	}()
	return nil
}

func (f *fleet) Get(key remote.Key) (remote.Cluster, error) { return f.connector.Get(key) }
func (f *fleet) Keys() []remote.Key                         { return f.connector.Keys() }
func (f *fleet) Subscribe(fn func(remote.Key))              { f.broadcast.Subscribe(fn) }
