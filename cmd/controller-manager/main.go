// Command controller-manager runs Flotilla's controllers in one
// controller-runtime manager: the elect webhook, the virtual nodes and the
// chaperon, feedback, follow, summary, source and cleanup controllers. It runs
// in every cluster of a fleet.
//
// Today it runs the elect webhook, the target (connections and virtual
// nodes), source (RBAC), summary, chaperon (target side), feedback, follow
// and service (source side) and cleanup (both sides) controllers. It
// elects a leader when asked to and serves health and metrics endpoints.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/controllers/chaperon"
	"github.com/flotilla-io/flotilla/pkg/controllers/cleanup"
	"github.com/flotilla-io/flotilla/pkg/controllers/feedback"
	"github.com/flotilla-io/flotilla/pkg/controllers/follow"
	"github.com/flotilla-io/flotilla/pkg/controllers/service"
	"github.com/flotilla-io/flotilla/pkg/controllers/source"
	"github.com/flotilla-io/flotilla/pkg/controllers/summary"
	"github.com/flotilla-io/flotilla/pkg/controllers/target"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
	"github.com/flotilla-io/flotilla/pkg/vk"
	"github.com/flotilla-io/flotilla/pkg/webhook"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(multiclusterv1alpha1.AddToScheme(scheme))
}

// deps are what the controllers share.
type deps struct {
	connector remote.Connector
	notifier  *target.Notifier
	nodes     *vk.Manager
	local     kubernetes.Interface
	opts      options
	// connections tells of targets connected or disconnected.
	connections *remote.Broadcast
	ctx         context.Context
	// clusterID reads this cluster's ID once, for the controllers that
	// need it (see protocol.ClusterID).
	clusterID func() (string, error)
}

// controllers are the controllers this binary can run, by name.
var controllers = map[string]func(ctrl.Manager, deps) error{
	"chaperon": func(mgr ctrl.Manager, d deps) error {
		return (&chaperon.Reconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("flotilla-chaperon"),
			Workers: d.opts.chaperonWorkers,
		}).SetupWithManager(mgr)
	},
	"feedback": func(mgr ctrl.Manager, d deps) error {
		r := &feedback.Reconciler{Client: mgr.GetClient(), Fleet: d.connector, Recorder: mgr.GetEventRecorder("flotilla-feedback")}
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
		d.connections.Subscribe(func(key remote.Key) { r.TargetChanged(d.ctx, key) })
		return nil
	},
	"cleanup": func(mgr ctrl.Manager, d deps) error {
		r := &cleanup.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			Recorder: mgr.GetEventRecorder("flotilla-cleanup"), GracePeriod: d.opts.orphanGracePeriod}
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
		id, err := d.clusterID()
		if err != nil {
			return err
		}
		return mgr.Add(&cleanup.Heartbeat{Fleet: d.connector, SourceID: id, Duration: d.opts.sourceLeaseDuration,
			Proxies: mgr.GetClient(), APIReader: mgr.GetAPIReader()})
	},
	"follow": func(mgr ctrl.Manager, d deps) error {
		id, err := d.clusterID()
		if err != nil {
			return err
		}
		r := &follow.Reconciler{Client: mgr.GetClient(), Fleet: d.connector, SourceID: id, Recorder: mgr.GetEventRecorder("flotilla-follow")}
		if err := r.SetupWithManager(d.ctx, mgr); err != nil {
			return err
		}
		d.connections.Subscribe(func(key remote.Key) { r.TargetChanged(d.ctx, key) })
		return nil
	},
	"service": func(mgr ctrl.Manager, d deps) error {
		id, err := d.clusterID()
		if err != nil {
			return err
		}
		r := &service.Reconciler{Client: mgr.GetClient(), Fleet: d.connector, SourceID: id, Recorder: mgr.GetEventRecorder("flotilla-service")}
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
		d.connections.Subscribe(func(key remote.Key) { r.TargetChanged(d.ctx, key) })
		return nil
	},
	"summary": func(mgr ctrl.Manager, _ deps) error {
		return (&summary.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
	},
	"source": func(mgr ctrl.Manager, _ deps) error {
		for _, clusterScoped := range []bool{false, true} {
			if err := (&source.Reconciler{Client: mgr.GetClient(), ClusterScoped: clusterScoped}).SetupWithManager(mgr); err != nil {
				return err
			}
		}
		return mgr.Add(&source.RoleEnsurer{Client: mgr.GetClient()})
	},
	"webhook": func(mgr ctrl.Manager, d deps) error {
		return setupWebhook(mgr, d.opts, d.local)
	},
	"target": func(mgr ctrl.Manager, d deps) error {
		for _, clusterScoped := range []bool{false, true} {
			events := d.notifier.Targets
			if clusterScoped {
				events = d.notifier.ClusterTargets
			}
			r := &target.Reconciler{
				Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(), Connector: d.connector,
				SelfConfig: mgr.GetConfig(), Recorder: mgr.GetEventRecorder("flotilla-target"),
				ClusterScoped: clusterScoped, HealthEvents: events, Nodes: d.nodes,
			}
			if err := r.SetupWithManager(mgr); err != nil {
				return err
			}
		}
		return mgr.Add(&target.OrphanNodeCollector{Reader: mgr.GetAPIReader(), Client: d.local})
	},
}

type options struct {
	metricsAddr             string
	metricsSecure           bool
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	leaderElectionID        string
	controllers             string
	probeInterval           time.Duration
	chaperonWorkers         int

	webhookHost           string
	webhookPort           int
	webhookCertDir        string
	webhookCertRotation   bool
	webhookCertFromSecret bool
	webhookSecret         string
	webhookDNSNames       string
	webhookConfiguration  string

	sourceLeaseDuration time.Duration
	orphanGracePeriod   time.Duration

	kubeletPort         int
	kubeletBindHost     string
	nodeAddress         string
	kubeletCertFile     string
	kubeletKeyFile      string
	kubeletClientCAFile string
	pprofAddr           string
	kubeAPIQPS          float32
	kubeAPIBurst        int
	targetAPIQPS        float32
	targetAPIBurst      int
}

func (o *options) addFlags(fs *flag.FlagSet) {
	o.kubeAPIQPS, o.targetAPIQPS = 50, remote.DefaultQPS
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443",
		"Address the metrics endpoint binds to (\"0\" disables it).")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS, authenticated and authorized against the API server (TokenReview and SubjectAccessReview).")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "",
		"Address of Go's pprof endpoints (/debug/pprof/), for profiling; empty turns them off.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081",
		"Address the /healthz and /readyz endpoints bind to.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false,
		"Elect a leader so that only one replica reconciles at a time.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease (defaults to the pod's namespace when in-cluster).")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "controller-manager.flotilla.multicluster.admiralty.io",
		"Name of the leader election Lease.")
	fs.StringVar(&o.controllers, "controllers", "*",
		"Comma-separated controllers to run: * for all, or names from: chaperon, cleanup, feedback, follow, service, source, summary, target, webhook.")
	fs.StringVar(&o.webhookHost, "webhook-bind-host", "", "Address the elect webhook binds to (all by default).")
	fs.IntVar(&o.webhookPort, "webhook-port", 9443, "Port of the elect webhook.")
	fs.StringVar(&o.webhookCertDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "flotilla-webhook-certs"),
		"Folder of the webhook's tls.crt and tls.key.")
	fs.BoolVar(&o.webhookCertRotation, "webhook-cert-rotation", true,
		"Generate and rotate the webhook's certificate (kept in --webhook-secret) and inject its CA into the MutatingWebhookConfiguration; turn off when cert-manager provides them.")
	fs.BoolVar(&o.webhookCertFromSecret, "webhook-cert-from-secret", false,
		"Write the webhook Secret's tls.crt and tls.key into --webhook-cert-dir, for a controller-manager that runs outside a pod (in a pod, mount the Secret there instead).")
	fs.StringVar(&o.webhookSecret, "webhook-secret", "flotilla-system/flotilla-webhook-cert",
		"namespace/name of the Secret that holds the webhook's certificate and CA (it must exist).")
	fs.StringVar(&o.webhookDNSNames, "webhook-dns-names", "flotilla-webhook.flotilla-system.svc",
		"Comma-separated DNS names of the webhook's certificate; the first is its main name.")
	fs.StringVar(&o.webhookConfiguration, "webhook-configuration", webhook.ConfigurationName,
		"Name of the MutatingWebhookConfiguration whose CA bundle is kept up to date.")
	fs.DurationVar(&o.sourceLeaseDuration, "source-lease-duration", cleanup.DefaultLeaseDuration,
		"As a source: duration of the Lease by which it stands behind its chaperons in each target namespace (renewed three times as often).")
	fs.DurationVar(&o.orphanGracePeriod, "orphan-grace-period", cleanup.DefaultGracePeriod,
		"As a target: how long a source's Lease must stay run out before its chaperons, delegates and followers are deleted; keep it longer than any source outage you want to ride out.")
	fs.IntVar(&o.kubeletPort, "kubelet-port", 10250,
		"Port of the virtual nodes' kubelet endpoint (kubectl logs, exec, attach, port-forward on proxy pods); 0 turns it off.")
	fs.StringVar(&o.kubeletBindHost, "kubelet-bind-host", "", "Address the kubelet endpoint binds to (all by default).")
	fs.StringVar(&o.nodeAddress, "node-address", os.Getenv("POD_IP"),
		"The virtual nodes' InternalIP, where kube-apiserver reaches the kubelet endpoint (default $POD_IP; without one, no endpoint is served).")
	fs.StringVar(&o.kubeletCertFile, "kubelet-tls-cert-file", "",
		"Serving certificate of the kubelet endpoint (reloaded on change); a self-signed one when empty, which kube-apiserver accepts only if it runs without --kubelet-certificate-authority.")
	fs.StringVar(&o.kubeletKeyFile, "kubelet-tls-key-file", "", "Key of --kubelet-tls-cert-file.")
	fs.StringVar(&o.kubeletClientCAFile, "kubelet-client-ca-file", "",
		"CA of the client certificate kube-apiserver presents to kubelets; by default the client-ca-file of ConfigMap kube-system/extension-apiserver-authentication.")
	fs.Func("kube-api-qps", "Client rate limit (queries per second) towards this cluster's API server (default 50).", float32Flag(&o.kubeAPIQPS))
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 100, "Client burst towards this cluster's API server.")
	fs.Func("target-api-qps", fmt.Sprintf("Client rate limit (queries per second) towards each target's API server (default %d).", remote.DefaultQPS), float32Flag(&o.targetAPIQPS))
	fs.IntVar(&o.targetAPIBurst, "target-api-burst", remote.DefaultBurst, "Client burst towards each target's API server.")
	fs.IntVar(&o.chaperonWorkers, "concurrent-chaperon-syncs", chaperon.DefaultWorkers,
		"As a target: how many PodChaperons (candidates and delegates of other clusters' pods) are reconciled at once.")
	fs.DurationVar(&o.probeInterval, "target-probe-interval", 2*time.Second,
		"How often each target is probed; a target that stops answering is reported within about this long.")
}

// float32Flag parses a positive float32 flag into p.
func float32Flag(p *float32) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 32)
		if err != nil || f <= 0 {
			return fmt.Errorf("%q: want a positive number", v)
		}
		*p = float32(f)
		return nil
	}
}

// enabled resolves --controllers to names, rejecting unknown ones.
func (o *options) enabled() ([]string, error) {
	if o.controllers == "*" {
		names := make([]string, 0, len(controllers))
		for name := range controllers {
			names = append(names, name)
		}
		sort.Strings(names)
		return names, nil
	}
	var names []string
	for _, name := range strings.Split(o.controllers, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := controllers[name]; !ok {
			return nil, fmt.Errorf("--controllers: unknown controller %q", name)
		}
		names = append(names, name)
	}
	return names, nil
}

func main() {
	var o options
	klog.InitFlags(flag.CommandLine)
	o.addFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(klog.Background())

	if err := run(o); err != nil {
		klog.Background().Error(err, "controller-manager failed")
		klog.FlushAndExit(klog.ExitFlushTimeout, 1)
	}
}

func run(o options) error {
	logger := klog.Background()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", flag.Args())
	}
	enabled, err := o.enabled()
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = o.kubeAPIQPS, o.kubeAPIBurst

	metricsOptions := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.metricsSecure,
	}
	if o.metricsSecure {
		metricsOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOptions,
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionNamespace: o.leaderElectionNamespace,
		LeaderElectionID:        o.leaderElectionID,
		Cache:                   cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	notifier := target.NewNotifier()
	local, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating a clientset: %w", err)
	}
	connections := &remote.Broadcast{}
	d := deps{
		clusterID:   sync.OnceValues(func() (string, error) { return protocol.ClusterID(ctx, local) }),
		opts:        o,
		notifier:    notifier,
		local:       local,
		connections: connections,
		ctx:         klog.NewContext(ctx, logger),
		connector: remote.NewConnector(klog.NewContext(ctx, logger.WithName("remote")),
			remote.Options{ProbeInterval: o.probeInterval, OnHealthChange: notifier.Notify, OnSummaryChange: notifier.NotifyKey,
				OnConnectionChange: connections.Publish, QPS: o.targetAPIQPS, Burst: o.targetAPIBurst},
			remote.NewCluster),
		nodes: vk.NewManager(klog.NewContext(ctx, logger.WithName("vk")), local, vk.Options{Address: kubeletAddress(o), KubeletPort: kubeletPort(o)}),
	}
	for _, name := range enabled {
		if err := controllers[name](mgr, d); err != nil {
			return fmt.Errorf("setting up the %s controller: %w", name, err)
		}
	}
	if slices.Contains(enabled, "target") && kubeletPort(o) != 0 {
		if err := addKubeletServer(d.ctx, mgr, d, o); err != nil {
			return err
		}
	} else if slices.Contains(enabled, "target") {
		logger.Info("No kubelet endpoint for the virtual nodes (no --node-address, or --kubelet-port=0): kubectl logs, exec, attach and port-forward on proxy pods will fail")
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding readyz check: %w", err)
	}

	logger.Info("Starting manager", "controllers", enabled, "metrics", o.metricsAddr, "probes", o.probeAddr, "leaderElection", o.leaderElect)
	if err := mgr.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

func kubeletAddress(o options) string {
	if o.kubeletPort == 0 {
		return ""
	}
	return o.nodeAddress
}

func kubeletPort(o options) int32 {
	if o.nodeAddress == "" {
		return 0
	}
	return int32(o.kubeletPort)
}

// addKubeletServer serves the virtual nodes' kubelet endpoint.
func addKubeletServer(ctx context.Context, mgr ctrl.Manager, d deps, o options) error {
	opts := vk.KubeletOptions{
		ListenAddress: net.JoinHostPort(o.kubeletBindHost, strconv.Itoa(o.kubeletPort)),
		CertFile:      o.kubeletCertFile, KeyFile: o.kubeletKeyFile,
		NodeIP: o.nodeAddress, ClientCAFile: o.kubeletClientCAFile,
	}
	if opts.ClientCAFile == "" {
		cm, err := d.local.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading kube-apiserver's client CA (or give --kubelet-client-ca-file): %w", err)
		}
		opts.ClientCA = []byte(cm.Data["client-ca-file"])
	}
	srv, err := vk.NewKubeletServer(opts, vk.NewDelegates(mgr.GetAPIReader(), d.connector), d.local.AuthorizationV1().SubjectAccessReviews())
	if err != nil {
		return err
	}
	return mgr.Add(srv)
}
