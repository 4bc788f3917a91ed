package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeschedulerconfigv1 "k8s.io/kube-scheduler/config/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// FleetNamespace is where a Fleet keeps its identities and secrets.
const FleetNamespace = "flotilla-system"

// Fleet is Flotilla installed on a sandbox as a user would have it: in the
// source, the controller-manager (elect webhook, targets and virtual nodes,
// feedback) and the proxy scheduler; in every target, the controller-manager
// (summary, source RBAC, chaperons) and the candidate scheduler; one
// ClusterTarget per target, named after it, through a ClusterSource
// identity. Each component is a process of bin/ that tests may kill and
// restart.
type Fleet struct {
	Source  *Cluster
	Targets []*Cluster
	// Components by name: "proxy-scheduler", "source-controller-manager",
	// "candidate-scheduler/<target>", "controller-manager/<target>".
	Components map[string]*Process
	logDir     string
	opts       FleetOptions
	// metrics and pprof are the components' /metrics and /debug/pprof URLs.
	metrics, pprof map[string]string
}

// FleetOptions tune the components a Fleet runs (the benchmark sets client
// rate limits through them).
type FleetOptions struct {
	// ControllerManagerArgs are added to every controller-manager's flags.
	ControllerManagerArgs []string
	// SchedulerConfig, if set, edits both schedulers' configuration (e.g.
	// clientConnection.qps, plugin args) before they start.
	SchedulerConfig func(component string, cfg *kubeschedulerconfigv1.KubeSchedulerConfiguration)
	// SchedulerVerbosity is the schedulers' -v (default 4).
	SchedulerVerbosity int
}

// StartFleet installs and starts Flotilla on the sandbox's source and
// targets, with component logs under logDir, and waits for every virtual
// node to be Ready.
func StartFleet(ctx context.Context, s *Sandbox, targets int, logDir string) (*Fleet, error) {
	return StartFleetWith(ctx, s, targets, logDir, FleetOptions{})
}

// StartFleetWith is StartFleet with options.
func StartFleetWith(ctx context.Context, s *Sandbox, targets int, logDir string, opts FleetOptions) (*Fleet, error) {
	src, err := s.Cluster(SourceCluster)
	if err != nil {
		return nil, err
	}
	f := &Fleet{Source: src, Components: map[string]*Process{}, logDir: logDir, opts: opts, metrics: map[string]string{}, pprof: map[string]string{}}
	for i := 1; i <= targets; i++ {
		c, err := s.Cluster(TargetName(i))
		if err != nil {
			return nil, err
		}
		f.Targets = append(f.Targets, c)
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	for _, c := range append([]*Cluster{src}, f.Targets...) {
		if err := c.InstallCRDs(ctx); err != nil {
			return nil, err
		}
		if err := ensureNamespace(ctx, c, FleetNamespace); err != nil {
			return nil, err
		}
	}
	for _, t := range f.Targets {
		if err := f.startTarget(ctx, t, root, binDir); err != nil {
			f.Stop()
			return nil, err
		}
	}
	if err := f.startSource(ctx, root, binDir); err != nil {
		f.Stop()
		return nil, err
	}
	if err := f.WaitReady(ctx, 2*time.Minute); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

func ensureNamespace(ctx context.Context, c *Cluster, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s in %s: %w", name, c.Name, err)
	}
	return c.WaitDefaultServiceAccount(ctx, name)
}

func (f *Fleet) start(name string, binary string, args ...string) error {
	p := &Process{Name: name, Binary: binary, Args: args,
		Log: filepath.Join(f.logDir, strings.ReplaceAll(name, "/", "-")+".log")}
	if err := p.start(false); err != nil {
		return err
	}
	f.Components[name] = p
	return nil
}

// startTarget runs a target's components and lets the source in.
func (f *Fleet) startTarget(ctx context.Context, t *Cluster, root, binDir string) error {
	if err := f.startControllerManager("controller-manager/"+t.Name, filepath.Join(binDir, "controller-manager"),
		"--kubeconfig="+t.Kubeconfig, "--controllers=summary,source,chaperon,cleanup",
		// Leftovers of a source that forgot this target go after 3 s
		// (the source's Lease) + 8 s.
		"--orphan-grace-period=8s",
		"--health-probe-bind-address=0"); err != nil {
		return err
	}
	cfg, err := f.schedulerConfig(root, "candidate-scheduler.yaml", t.Kubeconfig, t.Name)
	if err != nil {
		return err
	}
	if err := f.startScheduler("candidate-scheduler/"+t.Name, filepath.Join(binDir, "candidate-scheduler"), cfg); err != nil {
		return err
	}
	cs := &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: SourceCluster},
		Spec: multiclusterv1alpha1.ClusterSourceSpec{ServiceAccount: &multiclusterv1alpha1.ServiceAccountReference{
			Namespace: FleetNamespace, Name: SourceCluster}}}
	if err := t.Client.Create(ctx, cs); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ClusterSource in %s: %w", t.Name, err)
	}
	token, err := t.ServiceAccountToken(ctx, FleetNamespace, SourceCluster)
	if err != nil {
		return err
	}
	// The source connects once the identity has its permissions.
	if err := waitSourceReady(ctx, f.processes(), t, "ClusterSource of "+t.Name, cs, func() []metav1.Condition { return cs.Status.Conditions }); err != nil {
		return err
	}
	kubeconfig, err := t.KubeconfigFor(token, t.Name)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: FleetNamespace, Name: t.Name},
		Data: map[string][]byte{"config": kubeconfig}}
	if err := f.Source.Client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the kubeconfig secret of %s: %w", t.Name, err)
	}
	ct := &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: t.Name},
		Spec: multiclusterv1alpha1.ClusterTargetSpec{KubeconfigSecret: &multiclusterv1alpha1.ClusterKubeconfigSecret{
			Namespace: FleetNamespace, Name: t.Name}}}
	if err := f.Source.Client.Create(ctx, ct); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ClusterTarget %s: %w", t.Name, err)
	}
	return nil
}

// startSource runs the source's components; the elect webhook is served
// at a loopback URL.
func (f *Fleet) startSource(ctx context.Context, root, binDir string) error {
	port, err := freePorts(2)
	if err != nil {
		return err
	}
	check := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhookCheckNamespace,
		Labels: map[string]string{protocol.NamespaceEnabledLabel: protocol.NamespaceEnabledLabelValue}}}
	if err := f.Source.Client.Create(ctx, check); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	name, err := InstallWebhookConfiguration(ctx, f.Source, root, port[0], fleetWebhookName)
	if err != nil {
		return err
	}
	if err := f.startControllerManager("source-controller-manager", filepath.Join(binDir, "controller-manager"),
		"--kubeconfig="+f.Source.Kubeconfig, "--controllers=webhook,target,feedback,follow,service,cleanup", "--target-probe-interval=1s",
		"--source-lease-duration=3s",
		"--health-probe-bind-address=0",
		"--webhook-bind-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", port[0]),
		"--webhook-cert-dir="+filepath.Join(f.logDir, "webhook-certs"), "--webhook-secret="+FleetNamespace+"/flotilla-webhook-cert",
		"--webhook-dns-names=localhost", "--webhook-configuration="+name, "--webhook-cert-from-secret",
		// The virtual nodes' kubelet endpoint, with a certificate the
		// source's kube-apiserver verifies, for its kubelet client.
		"--node-address=127.0.0.1", "--kubelet-bind-host=127.0.0.1", fmt.Sprintf("--kubelet-port=%d", port[1]),
		"--kubelet-tls-cert-file="+f.Source.KubeletCert, "--kubelet-tls-key-file="+f.Source.KubeletKey,
		"--kubelet-client-ca-file="+f.Source.CAFile); err != nil {
		return err
	}
	cfg, err := f.schedulerConfig(root, "proxy-scheduler.yaml", f.Source.Kubeconfig, f.Source.Name)
	if err != nil {
		return err
	}
	return f.startScheduler("proxy-scheduler", filepath.Join(binDir, "proxy-scheduler"), cfg)
}

// waitSourceReady waits (a minute at most) for obj, a Source or
// ClusterSource in t whose conditions conditions reads, to be Ready, unless
// one of procs exits.
func waitSourceReady(ctx context.Context, procs []*Process, t *Cluster, what string, obj client.Object, conditions func() []metav1.Condition) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return waitFor(ctx, what+" Ready", procs, func(ctx context.Context) error {
		if err := t.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(conditions(), multiclusterv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("%s not Ready: %v", what, c)
		}
		return nil
	})
}

// startControllerManager runs a controller-manager whose metrics answer
// anyone on loopback (plain HTTP), with the options' extra flags.
func (f *Fleet) startControllerManager(name, binary string, args ...string) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	args = append(args, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[0]), "--metrics-secure=false",
		fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", ports[1]))
	if err := f.start(name, binary, append(args, f.opts.ControllerManagerArgs...)...); err != nil {
		return err
	}
	f.metrics[name] = fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0])
	f.pprof[name] = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", ports[1])
	return nil
}

// startScheduler runs a scheduler whose health and metrics endpoints
// answer anyone on loopback.
func (f *Fleet) startScheduler(name, binary, cfg string) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	v := f.opts.SchedulerVerbosity
	if v == 0 {
		v = 4
	}
	if err := f.start(name, binary, "--config="+cfg, "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[0]),
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics,/debug/pprof/*", fmt.Sprintf("-v=%d", v)); err != nil {
		return err
	}
	f.metrics[name] = fmt.Sprintf("https://127.0.0.1:%d/metrics", ports[0])
	f.pprof[name] = fmt.Sprintf("https://127.0.0.1:%d/debug/pprof", ports[0])
	return nil
}

// CPUProfile records a component's CPU profile for d (Go's pprof format).
func (f *Fleet) CPUProfile(ctx context.Context, name string, d time.Duration) ([]byte, error) {
	p, ok := f.Components[name]
	if !ok {
		return nil, fmt.Errorf("no component %q", name)
	}
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/profile?seconds=%d", f.pprof[name], int(d.Seconds())), nil)
	if err != nil {
		return nil, err
	}
	if !p.Alive() {
		return nil, crashed(p)
	}
	resp, err := (&http.Client{Transport: insecureLoopbackTransport()}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("profiling %s: %w", name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("profiling %s: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("profiling %s: %s: %s", name, resp.Status, body)
	}
	return body, nil
}

// Metrics returns what a component's /metrics endpoint serves.
func (f *Fleet) Metrics(ctx context.Context, name string) (string, error) {
	p, ok := f.Components[name]
	if !ok {
		return "", fmt.Errorf("no component %q", name)
	}
	code, body, err := (&Component{Process: p}).Get(ctx, f.metrics[name], "")
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET /metrics of %s: %d: %s", name, code, body)
	}
	return body, nil
}

// InstallWebhookConfiguration registers config/webhook's elect webhook in c
// under name, served at https://localhost:port, and returns its name.
func InstallWebhookConfiguration(ctx context.Context, c *Cluster, root string, port int, name string) (string, error) {
	out, err := c.Kubectl(ctx, "kustomize", filepath.Join(root, "config", "webhook"))
	if err != nil {
		return "", err
	}
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		return "", fmt.Errorf("reading config/webhook: %w", err)
	}
	cfg.Name = name
	cfg.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{
		URL: ptr.To(fmt.Sprintf("https://localhost:%d/mutate-v1-pod", port)),
	}
	if err := c.Client.Create(ctx, &cfg); apierrors.IsAlreadyExists(err) {
		// Left by an earlier run on a reused sandbox: replace it.
		old := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Client.Delete(ctx, old); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("replacing webhook configuration %s: %w", name, err)
		}
		err = c.Client.Create(ctx, &cfg)
		if err != nil {
			return "", fmt.Errorf("creating webhook configuration %s: %w", name, err)
		}
	} else if err != nil {
		return "", fmt.Errorf("creating webhook configuration %s: %w", name, err)
	}
	return name, nil
}

// schedulerConfig writes config/scheduler/<file> with the sandbox's
// kubeconfig and no leader election, and returns its path.
func (f *Fleet) schedulerConfig(root, file, kubeconfig, cluster string) (string, error) {
	dir := f.logDir
	data, err := os.ReadFile(filepath.Join(root, "config", "scheduler", file))
	if err != nil {
		return "", err
	}
	var cfg kubeschedulerconfigv1.KubeSchedulerConfiguration
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	cfg.ClientConnection.Kubeconfig = kubeconfig
	cfg.LeaderElection.LeaderElect = ptr.To(false)
	if f.opts.SchedulerConfig != nil {
		f.opts.SchedulerConfig(strings.TrimSuffix(file, ".yaml"), &cfg)
	}
	out, err := yaml.Marshal(&cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, cluster+"-"+file)
	return path, os.WriteFile(path, out, 0o644)
}

// WaitReady waits until every target's virtual node is Ready in the source.
func (f *Fleet) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return waitFor(ctx, "virtual nodes Ready and the elect webhook answering", f.processes(), func(ctx context.Context) error {
		// A dry-run elected pod comes back a proxy pod once the webhook serves.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: webhookCheckNamespace, Name: "check",
			Annotations: map[string]string{protocol.ElectAnnotation: ""}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause"}}}}
		if err := f.Source.Client.Create(ctx, pod, client.DryRunAll); err != nil {
			return fmt.Errorf("elect webhook: %w", err)
		}
		if pod.Spec.SchedulerName != protocol.ProxySchedulerName {
			return fmt.Errorf("elect webhook: the pod was not made a proxy pod")
		}
		for _, t := range f.Targets {
			var node corev1.Node
			if err := f.Source.Client.Get(ctx, client.ObjectKey{Name: "admiralty-" + t.Name}, &node); err != nil {
				return err
			}
			ready := false
			for _, c := range node.Status.Conditions {
				ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
			}
			if !ready {
				return fmt.Errorf("virtual node of %s not Ready", t.Name)
			}
		}
		return nil
	})
}

func (f *Fleet) processes() []*Process {
	procs := make([]*Process, 0, len(f.Components))
	for _, p := range f.Components {
		procs = append(procs, p)
	}
	return procs
}

// webhookCheckNamespace is an elect-enabled namespace where StartFleet
// checks (dry run) that the webhook serves.
const webhookCheckNamespace = "flotilla-webhook-check"

// Kill ends a component at once (SIGKILL), as a crash would.
func (f *Fleet) Kill(name string) error {
	p, ok := f.Components[name]
	if !ok {
		return fmt.Errorf("no component %q", name)
	}
	p.stop(0)
	return nil
}

// Freeze stops a component without ending it (SIGSTOP to its process
// group), as a hung process or a paused VM would: its connections stay
// open, and nothing it would do happens until Thaw.
func (f *Fleet) Freeze(name string) error {
	return f.signal(name, syscall.SIGSTOP)
}

// Thaw resumes a frozen component (SIGCONT).
func (f *Fleet) Thaw(name string) error {
	return f.signal(name, syscall.SIGCONT)
}

func (f *Fleet) signal(name string, sig syscall.Signal) error {
	p, ok := f.Components[name]
	if !ok {
		return fmt.Errorf("no component %q", name)
	}
	if !p.Alive() {
		return fmt.Errorf("%s is not running", name)
	}
	if err := syscall.Kill(-p.PID, sig); err != nil {
		return fmt.Errorf("signalling %s (%s): %w", name, sig, err)
	}
	return nil
}

// Restart starts a stopped component again, with the same arguments.
func (f *Fleet) Restart(name string) error {
	p, ok := f.Components[name]
	if !ok {
		return fmt.Errorf("no component %q", name)
	}
	if p.Alive() {
		return fmt.Errorf("%s is running", name)
	}
	return p.start(false)
}

// Crashed returns an error naming each component that exited unasked.
func (f *Fleet) Crashed() error {
	var errs []error
	for _, p := range f.Components {
		if !p.Alive() {
			errs = append(errs, crashed(p))
		}
	}
	return errors.Join(errs...)
}

// Stop stops every component and removes what StartFleet created, so that
// a reused sandbox is left as it was found.
func (f *Fleet) Stop() {
	for _, p := range f.Components {
		p.stop(5 * time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	objs := []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: fleetWebhookName}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhookCheckNamespace}},
	}
	for _, t := range f.Targets {
		objs = append(objs, &multiclusterv1alpha1.ClusterTarget{ObjectMeta: metav1.ObjectMeta{Name: t.Name}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: FleetNamespace, Name: t.Name}})
		_ = t.Client.Delete(ctx, &multiclusterv1alpha1.ClusterSource{ObjectMeta: metav1.ObjectMeta{Name: SourceCluster}})
	}
	for _, o := range objs {
		_ = f.Source.Client.Delete(ctx, o)
	}
}

// fleetWebhookName is the fleet's MutatingWebhookConfiguration.
const fleetWebhookName = "flotilla-elect-fleet"

// Namespace creates a namespace of the given name in the source (enabled
// for the elect webhook) and in every target, where delegates run.
func (f *Fleet) Namespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{protocol.NamespaceEnabledLabel: protocol.NamespaceEnabledLabelValue}}}
	if err := f.Source.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating namespace %s in %s: %w", name, f.Source.Name, err)
	}
	if err := f.Source.WaitDefaultServiceAccount(ctx, name); err != nil {
		return err
	}
	for _, t := range f.Targets {
		if err := ensureNamespace(ctx, t, name); err != nil {
			return err
		}
	}
	return nil
}
