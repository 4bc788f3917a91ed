package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// Tenant is one source cluster's share of some targets: a namespace, in
// which the source's elected pods may go to those targets, through a
// namespaced Source there and a namespaced Target in the source (what
// `flotillactl join --namespace` makes).
type Tenant struct {
	// Source is the source cluster's name.
	Source string
	// Namespace exists in the source (elect-enabled) and in every target.
	Namespace string
	// Targets are the names of the target clusters.
	Targets []string
}

// SharedFleet is Flotilla installed on a sandbox where several source
// clusters share targets, each through namespaced Sources and Targets: in a
// target, a source's identity is granted its tenant's namespace only. Each
// source runs its own proxy scheduler and controller-manager, each target
// its own candidate scheduler and controller-manager, as in a Fleet.
type SharedFleet struct {
	// Sources by cluster name: a Fleet each, holding the source's
	// components ("proxy-scheduler", "source-controller-manager") and no
	// targets.
	Sources map[string]*Fleet
	// Targets holds the targets' components ("candidate-scheduler/<target>",
	// "controller-manager/<target>"); its Source is nil.
	Targets *Fleet
	tenants []Tenant
}

// VirtualNode is the name of the virtual node of a namespaced Target.
func VirtualNode(namespace, target string) string {
	return "admiralty-" + namespace + "-" + target
}

// TenantTargetSecret is the Secret, in the tenant's namespace of its
// source, holding the kubeconfig of its Target to target.
func TenantTargetSecret(target string) string { return target + "-kubeconfig" }

// StartSharedFleet installs and starts Flotilla on the sandbox's clusters
// that the tenants name, joins each tenant's source to its targets in its
// namespace, with component logs under logDir (a folder per source), and
// waits for every virtual node to be Ready.
func StartSharedFleet(ctx context.Context, s *Sandbox, tenants []Tenant, logDir string, opts FleetOptions) (_ *SharedFleet, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	f := &SharedFleet{Sources: map[string]*Fleet{}, tenants: tenants,
		Targets: &Fleet{Components: map[string]*Process{}, logDir: logDir, opts: opts, metrics: map[string]string{}, pprof: map[string]string{}}}
	defer func() {
		if err != nil {
			f.Stop()
		}
	}()
	for _, tn := range tenants {
		for _, name := range tn.Targets {
			if slices.ContainsFunc(f.Targets.Targets, func(c *Cluster) bool { return c.Name == name }) {
				continue
			}
			t, err := s.Cluster(name)
			if err != nil {
				return nil, err
			}
			if err := prepareCluster(ctx, t); err != nil {
				return nil, err
			}
			if err := f.startTargetComponents(t, root, binDir); err != nil {
				return nil, err
			}
			f.Targets.Targets = append(f.Targets.Targets, t)
		}
	}
	for _, tn := range tenants {
		if _, ok := f.Sources[tn.Source]; ok {
			continue
		}
		src, err := s.Cluster(tn.Source)
		if err != nil {
			return nil, err
		}
		if err := prepareCluster(ctx, src); err != nil {
			return nil, err
		}
		dir := filepath.Join(logDir, src.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		sf := &Fleet{Source: src, Components: map[string]*Process{}, logDir: dir, opts: opts, metrics: map[string]string{}, pprof: map[string]string{}}
		f.Sources[src.Name] = sf
		if err := sf.startSource(ctx, root, binDir); err != nil {
			return nil, err
		}
	}
	for _, tn := range tenants {
		for _, name := range tn.Targets {
			if err := f.join(ctx, tn, name); err != nil {
				return nil, err
			}
		}
	}
	if err := f.WaitReady(ctx, LongTimeout); err != nil {
		return nil, err
	}
	return f, nil
}

func prepareCluster(ctx context.Context, c *Cluster) error {
	if err := c.InstallCRDs(ctx); err != nil {
		return err
	}
	return ensureNamespace(ctx, c, FleetNamespace)
}

// startTargetComponents runs a target's controller-manager and candidate
// scheduler, with the flags a Fleet gives them.
func (f *SharedFleet) startTargetComponents(t *Cluster, root, binDir string) error {
	if err := f.Targets.startControllerManager("controller-manager/"+t.Name, filepath.Join(binDir, "controller-manager"),
		"--kubeconfig="+t.Kubeconfig, "--controllers=summary,source,chaperon,cleanup",
		"--orphan-grace-period=8s", "--health-probe-bind-address=0"); err != nil {
		return err
	}
	cfg, err := f.Targets.schedulerConfig(root, "candidate-scheduler.yaml", t.Kubeconfig, t.Name)
	if err != nil {
		return err
	}
	return f.Targets.startScheduler("candidate-scheduler/"+t.Name, filepath.Join(binDir, "candidate-scheduler"), cfg)
}

// join lets the tenant's source into target in the tenant's namespace: a
// ServiceAccount and a Source named after the source cluster there, and in
// the source a Secret with a kubeconfig for that account and a Target
// named after the target cluster.
func (f *SharedFleet) join(ctx context.Context, tn Tenant, target string) error {
	src := f.Sources[tn.Source].Source
	var t *Cluster
	for _, c := range f.Targets.Targets {
		if c.Name == target {
			t = c
		}
	}
	if err := ensureNamespace(ctx, t, tn.Namespace); err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tn.Namespace,
		Labels: map[string]string{protocol.NamespaceEnabledLabel: protocol.NamespaceEnabledLabelValue}}}
	if err := src.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s in %s: %w", tn.Namespace, src.Name, err)
	}
	if err := src.WaitDefaultServiceAccount(ctx, tn.Namespace); err != nil {
		return err
	}
	token, err := t.ServiceAccountToken(ctx, tn.Namespace, src.Name)
	if err != nil {
		return err
	}
	source := &multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: tn.Namespace, Name: src.Name},
		Spec: multiclusterv1alpha1.SourceSpec{ServiceAccountName: src.Name}}
	if err := t.Client.Create(ctx, source); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Source %s/%s in %s: %w", tn.Namespace, src.Name, t.Name, err)
	}
	what := fmt.Sprintf("Source %s/%s of %s", tn.Namespace, src.Name, t.Name)
	if err := waitSourceReady(ctx, f.processes(), t, what, source, func() []metav1.Condition { return source.Status.Conditions }); err != nil {
		return err
	}
	kubeconfig, err := t.KubeconfigFor(token, t.Name)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tn.Namespace, Name: TenantTargetSecret(t.Name)},
		Data: map[string][]byte{"config": kubeconfig}}
	if err := src.Client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the kubeconfig secret of %s in %s: %w", t.Name, src.Name, err)
	}
	tg := &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: tn.Namespace, Name: t.Name},
		Spec: multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: secret.Name}}}
	if err := src.Client.Create(ctx, tg); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Target %s/%s in %s: %w", tn.Namespace, t.Name, src.Name, err)
	}
	return nil
}

// WaitReady waits until every source's elect webhook answers and every
// tenant's virtual nodes are Ready in its source.
func (f *SharedFleet) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, sf := range f.Sources {
		if err := sf.WaitReady(ctx, timeout); err != nil {
			return err
		}
	}
	return waitFor(ctx, "the tenants' virtual nodes Ready", f.processes(), func(ctx context.Context) error {
		for _, tn := range f.tenants {
			src := f.Sources[tn.Source].Source
			for _, t := range tn.Targets {
				var node corev1.Node
				if err := src.Client.Get(ctx, client.ObjectKey{Name: VirtualNode(tn.Namespace, t)}, &node); err != nil {
					return fmt.Errorf("virtual node in %s: %w", src.Name, err)
				}
				ready := false
				for _, c := range node.Status.Conditions {
					ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
				}
				if !ready {
					return fmt.Errorf("virtual node %s of %s not Ready", node.Name, src.Name)
				}
			}
		}
		return nil
	})
}

func (f *SharedFleet) processes() []*Process {
	procs := f.Targets.processes()
	for _, sf := range f.Sources {
		procs = append(procs, sf.processes()...)
	}
	return procs
}

// Crashed returns an error naming each component that exited unasked.
func (f *SharedFleet) Crashed() error {
	errs := []error{f.Targets.Crashed()}
	for _, sf := range f.Sources {
		errs = append(errs, sf.Crashed())
	}
	return errors.Join(errs...)
}

// Stop stops every component and removes the Targets, their Secrets and
// the Sources that StartSharedFleet made, and what each source's Fleet
// made (its webhook configuration), so that a reused sandbox is left as it
// was found. The tenants' namespaces are left.
func (f *SharedFleet) Stop() {
	for _, p := range f.Targets.Components {
		p.stop(5 * time.Second)
	}
	for _, sf := range f.Sources {
		for _, p := range sf.Components {
			p.stop(5 * time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tn := range f.tenants {
		sf, ok := f.Sources[tn.Source]
		if !ok {
			continue
		}
		for _, name := range tn.Targets {
			_ = sf.Source.Client.Delete(ctx, &multiclusterv1alpha1.Target{ObjectMeta: metav1.ObjectMeta{Namespace: tn.Namespace, Name: name}})
			_ = sf.Source.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tn.Namespace, Name: TenantTargetSecret(name)}})
			for _, t := range f.Targets.Targets {
				if t.Name == name {
					_ = t.Client.Delete(ctx, &multiclusterv1alpha1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: tn.Namespace, Name: tn.Source}})
				}
			}
		}
	}
	for _, sf := range f.Sources {
		sf.Stop() // no targets: its webhook configuration and check namespace
	}
}

// As returns a handle on cluster c that authenticates with a
// self-contained kubeconfig (its current context) instead of as admin: its
// clients, Kubectl and PortForwardEcho act with that identity. The
// kubeconfig is written to dir.
func (c *Cluster) As(kubeconfig []byte, dir string) (*Cluster, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(cfg, client.Options{Scheme: Scheme})
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, c.Name+"-*.kubeconfig")
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(kubeconfig); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	as := *c
	as.Kubeconfig, as.RESTConfig, as.Client, as.Clientset = f.Name(), cfg, cl, cs
	return &as, nil
}
