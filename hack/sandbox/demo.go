package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// demoProcessPrefix names the processes the demo runs (a Flotilla
// component each) among the sandbox's.
const demoProcessPrefix = "flotilla-"

func isDemoProcess(p *framework.Process) bool { return strings.HasPrefix(p.Name, demoProcessPrefix) }

// The demo's namespace and workloads.
const (
	demoNamespace  = "demo"
	demoDeployment = "web"
	demoJob        = "batch"
	demoReplicas   = 4
	demoJobPods    = 2
)

// demo installs Flotilla on the running sandbox as a user would (the chart's
// manifests applied to every cluster, `flotillactl join` from the source to
// every target), with the chart's Deployments run as local processes under
// their own service accounts, then runs an elected Deployment and Job and
// shows where their pods run, kubectl logs and exec. Everything it starts is
// recorded in the sandbox's state, so `sandbox down` stops it. Run again, it
// reuses what runs and shows the table again.
func demo(ctx context.Context, out io.Writer, dir, bin, root string) error {
	s, err := framework.Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no sandbox in %s: start one with `make sandbox-up` (make demo does)", dir)
	}
	if err != nil {
		return err
	}
	for _, p := range s.Crashed() {
		if !isDemoProcess(p) { // those the demo starts again
			return fmt.Errorf("%s of the sandbox has exited; see `make sandbox-status`", p.ID())
		}
	}
	d := &demoRun{s: s, out: out, bin: bin, root: root, start: time.Now()}
	return d.run(ctx)
}

type demoRun struct {
	s         *framework.Sandbox
	out       io.Writer
	bin, root string
	start     time.Time
}

func (d *demoRun) step(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demoRun) run(ctx context.Context) error {
	src, err := d.s.Cluster(framework.SourceCluster)
	if err != nil {
		return err
	}
	var targets []*framework.Cluster
	for _, name := range d.s.Targets() {
		c, err := d.s.Cluster(name)
		if err != nil {
			return err
		}
		targets = append(targets, c)
	}
	if len(targets) == 0 {
		return errors.New("the sandbox has no target cluster: start it with --targets 1 or more")
	}
	for _, c := range append([]*framework.Cluster{src}, targets...) {
		if err := d.install(ctx, c); err != nil {
			return fmt.Errorf("installing Flotilla in %s: %w", c.Name, err)
		}
	}
	for _, t := range targets {
		d.step("flotillactl join --source-context %s --target-context %s", src.Name, t.Name)
		if err := d.flotillactl(ctx, "join", "--source-context", src.Name, "--target-context", t.Name); err != nil {
			return err
		}
	}
	if err := d.waitVirtualNodes(ctx, src, len(targets)); err != nil {
		return err
	}
	if err := d.flotillactl(ctx, "status", "--context", src.Name); err != nil {
		return err
	}
	if err := d.runWorkloads(ctx, src, targets); err != nil {
		return err
	}
	rows, err := placement(ctx, src, d.s)
	if err != nil {
		return err
	}
	fmt.Fprintln(d.out)
	printPlacement(d.out, rows)
	fmt.Fprintln(d.out)
	if err := d.kubectlDemo(ctx, src, rows); err != nil {
		return err
	}
	fmt.Fprintf(d.out, `
Flotilla keeps running in the fleet (component logs: %s/<cluster>/flotilla-*.log).
  export KUBECONFIG=%s   # contexts: %s
  %s/kubectl --context %s -n %s get pods -o wide
  %s/flotillactl status --context %s
Stop everything: make demo-down
`, d.s.Dir, d.s.Kubeconfig, strings.Join(d.s.ClusterNames(), ", "), d.bin, src.Name, demoNamespace, d.bin, src.Name)
	return nil
}

// chart is the chart's manifests as the demo installs it (hooks and CRDs
// included).
func (d *demoRun) chart(ctx context.Context) ([]*unstructured.Unstructured, error) {
	manifests, err := framework.RenderChart(ctx, filepath.Join(d.bin, "helm"), d.root,
		"-f", filepath.Join(d.root, "hack", "demo-values.yaml"))
	if err != nil {
		return nil, err
	}
	return framework.SplitManifests(manifests)
}

// install applies the chart's manifests to c and runs its Deployments as
// local processes.
func (d *demoRun) install(ctx context.Context, c *framework.Cluster) error {
	objs, err := d.chart(ctx)
	if err != nil {
		return err
	}
	var apply []*unstructured.Unstructured
	var deployments []*appsv1.Deployment
	configMaps := map[string]*corev1.ConfigMap{}
	for _, o := range objs {
		if isHook(o) {
			continue // Helm runs them at their time (uninstall: see uninstall.go)
		}
		switch o.GetKind() {
		case "Deployment":
			var dep appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep); err != nil {
				return fmt.Errorf("decoding Deployment %s: %w", o.GetName(), err)
			}
			deployments = append(deployments, &dep)
			continue
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cm); err != nil {
				return fmt.Errorf("decoding ConfigMap %s: %w", o.GetName(), err)
			}
			configMaps[cm.Name] = &cm
		case "PodDisruptionBudget":
			continue // of the Deployments, which run as processes
		}
		apply = append(apply, o)
	}
	// In a cluster the webhook is called through the chart's Service; here
	// at the local controller-manager's port.
	webhookPort := ""
	if p, err := d.s.FindProcess(c.Name, "flotilla-controller-manager"); err == nil && p.Alive() {
		webhookPort = flagValue(p.Args, "webhook-port")
	} else {
		ports, err := framework.FreePorts(1)
		if err != nil {
			return err
		}
		webhookPort = strconv.Itoa(ports[0])
	}
	for _, o := range apply {
		if o.GetKind() != "MutatingWebhookConfiguration" {
			continue
		}
		webhooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for _, w := range webhooks {
			w.(map[string]any)["clientConfig"] = map[string]any{"url": "https://localhost:" + webhookPort + "/mutate-v1-pod"}
		}
		if err := unstructured.SetNestedSlice(o.Object, webhooks, "webhooks"); err != nil {
			return err
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: framework.ChartNamespace}}
	if err := c.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}
	data, err := framework.JoinManifests(apply)
	if err != nil {
		return err
	}
	if _, err := c.ApplyServerSide(ctx, data); err != nil {
		return err
	}
	d.step("%s: applied the chart's %d objects (helm template charts/flotilla | kubectl apply --server-side); its %d Deployments run as local processes",
		c.Name, len(apply), len(deployments))

	for _, dep := range deployments {
		component := dep.Spec.Template.Labels["app.kubernetes.io/component"]
		started, err := d.runDeployment(ctx, c, dep, configMaps[dep.Name], webhookPort)
		if err != nil {
			return fmt.Errorf("running %s: %w", component, err)
		}
		if started {
			d.step("%s: started %s as service account %s", c.Name, component, dep.Spec.Template.Spec.ServiceAccountName)
		}
	}
	return nil
}

// runDeployment runs the container of a chart Deployment as a process, with
// the command and arguments the chart gives it, authenticated as its service
// account; only what a pod gets from its environment (ports, the webhook's
// address and certificate folder, its IP, in-cluster credentials) is set
// for this machine.
func (d *demoRun) runDeployment(ctx context.Context, c *framework.Cluster, dep *appsv1.Deployment, cm *corev1.ConfigMap, webhookPort string) (bool, error) {
	component := dep.Spec.Template.Labels["app.kubernetes.io/component"]
	name := demoProcessPrefix + component
	container := dep.Spec.Template.Spec.Containers[0]
	if len(container.Command) == 0 {
		return false, fmt.Errorf("deployment %s has no command", dep.Name)
	}
	binary := filepath.Join(d.bin, filepath.Base(container.Command[0]))
	stateDir := filepath.Join(d.s.Dir, c.Name, "flotilla")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return false, err
	}
	if p, err := d.s.FindProcess(c.Name, name); err == nil && p.Alive() {
		return false, nil
	}
	token, err := c.ServiceAccountToken(ctx, dep.Namespace, dep.Spec.Template.Spec.ServiceAccountName)
	if err != nil {
		return false, err
	}
	kubeconfig, err := c.KubeconfigFor(token, c.Name)
	if err != nil {
		return false, err
	}
	kubeconfigFile := filepath.Join(stateDir, component+".kubeconfig")
	if err := os.WriteFile(kubeconfigFile, kubeconfig, 0o600); err != nil {
		return false, err
	}
	var local map[string]string
	switch component {
	case "controller-manager":
		ports, err := framework.FreePorts(3)
		if err != nil {
			return false, err
		}
		local = map[string]string{
			"kubeconfig":                kubeconfigFile,
			"health-probe-bind-address": fmt.Sprintf("127.0.0.1:%d", ports[0]),
			"metrics-bind-address":      fmt.Sprintf("127.0.0.1:%d", ports[1]),
			"webhook-bind-host":         "127.0.0.1",
			"webhook-port":              webhookPort,
			"webhook-cert-dir":          filepath.Join(stateDir, "webhook-certs"),
			"webhook-dns-names":         "localhost",
			// What the Secret volume does in a pod.
			"webhook-cert-from-secret": "true",
			// The pod IP ($POD_IP) and a serving certificate the
			// sandbox's kube-apiserver verifies.
			"node-address":          "127.0.0.1",
			"kubelet-bind-host":     "127.0.0.1",
			"kubelet-port":          strconv.Itoa(ports[2]),
			"kubelet-tls-cert-file": c.KubeletCert,
			"kubelet-tls-key-file":  c.KubeletKey,
		}
	default: // the schedulers
		if cm == nil {
			return false, fmt.Errorf("no ConfigMap %s in the chart", dep.Name)
		}
		cfg := map[string]any{}
		if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
			return false, fmt.Errorf("ConfigMap %s: %w", cm.Name, err)
		}
		cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfigFile}
		data, err := yaml.Marshal(cfg)
		if err != nil {
			return false, err
		}
		configFile := filepath.Join(stateDir, component+".yaml")
		if err := os.WriteFile(configFile, data, 0o644); err != nil {
			return false, err
		}
		ports, err := framework.FreePorts(1)
		if err != nil {
			return false, err
		}
		local = map[string]string{
			"config":       configFile,
			"bind-address": "127.0.0.1",
			"secure-port":  strconv.Itoa(ports[0]),
		}
	}
	args := overrideFlags(container.Args, local)
	return d.s.RunProcess(c.Name, name, binary, args, filepath.Join(d.s.Dir, c.Name, name+".log"))
}

// overrideFlags replaces (or adds) the --name=value flags of set in args.
func overrideFlags(args []string, set map[string]string) []string {
	out := make([]string, 0, len(args)+len(set))
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := set[name]; ok && strings.HasPrefix(a, "-") {
			continue
		}
		out = append(out, a)
	}
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, "--"+name+"="+set[name])
	}
	return out
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), name+"="); ok && strings.HasPrefix(a, "-") {
			return v
		}
	}
	return ""
}

func (d *demoRun) flotillactl(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "flotillactl"), append([]string{"--kubeconfig", d.s.Kubeconfig}, args...)...)
	output, err := cmd.CombinedOutput()
	fmt.Fprint(d.out, indent(string(output)))
	if err != nil {
		return fmt.Errorf("flotillactl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// poll calls check every half second until it succeeds or timeout passes,
// saying what it waits for every 10 s.
func (d *demoRun) poll(ctx context.Context, what string, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	said := time.Now()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if dead := d.s.Crashed(); len(dead) > 0 {
			return fmt.Errorf("waiting for %s: %s exited; last lines of %s:\n%s", what, dead[0].ID(), dead[0].Log, dead[0].Tail(20))
		}
		if time.Since(said) > 10*time.Second {
			d.step("still waiting for %s: %v", what, err)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %w)", what, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (d *demoRun) waitVirtualNodes(ctx context.Context, src *framework.Cluster, want int) error {
	d.step("waiting for %d virtual nodes to be Ready in %s", want, src.Name)
	return d.poll(ctx, "virtual nodes Ready", 2*time.Minute, func(ctx context.Context) error {
		var nodes corev1.NodeList
		if err := src.Client.List(ctx, &nodes, client.MatchingLabels{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider}); err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes.Items {
			if nodeReady(&n) == string(corev1.ConditionTrue) {
				ready++
			}
		}
		if ready < want {
			return fmt.Errorf("%d of %d Ready", ready, want)
		}
		return nil
	})
}

// runWorkloads creates (once) the demo namespace in every cluster and the
// elected Deployment and Job in the source, and waits for them.
func (d *demoRun) runWorkloads(ctx context.Context, src *framework.Cluster, targets []*framework.Cluster) error {
	for _, c := range append([]*framework.Cluster{src}, targets...) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}}
		if c == src {
			ns.Labels = map[string]string{protocol.NamespaceEnabledLabel: protocol.NamespaceEnabledLabelValue}
		}
		if err := c.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s in %s: %w", demoNamespace, c.Name, err)
		}
	}
	// The webhook answers once its certificate is in place.
	if err := d.poll(ctx, "the elect webhook", time.Minute, func(ctx context.Context) error {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, GenerateName: "check-",
			Annotations: map[string]string{protocol.ElectAnnotation: ""}}, Spec: framework.PodSpec()}
		if err := src.Client.Create(ctx, pod, client.DryRunAll); err != nil {
			return err
		}
		if pod.Spec.SchedulerName != protocol.ProxySchedulerName {
			return errors.New("the pod was not made a proxy pod")
		}
		return nil
	}); err != nil {
		return err
	}
	dep := framework.Deployment(demoNamespace, demoDeployment, demoReplicas)
	dep.Spec.Template.Annotations = map[string]string{protocol.ElectAnnotation: "",
		// Cluster-level constraints of the proxy pods: spread the replicas
		// over the targets (virtual nodes carry the cluster-name label).
		protocol.ProxyPodSchedulingConstraintsAnnotation: `topologySpreadConstraints:
- maxSkew: 1
  topologyKey: ` + protocol.ClusterNameLabel + `
  whenUnsatisfiable: DoNotSchedule
  labelSelector: {matchLabels: {app: ` + demoDeployment + `}}
`}
	job := framework.Job(demoNamespace, demoJob, demoJobPods)
	job.Spec.Template.Annotations = map[string]string{protocol.ElectAnnotation: "",
		// kwok completes the pods this long after they start.
		"pod-complete.stage.kwok.x-k8s.io/delay": "5s"}
	for _, o := range []client.Object{dep, job} {
		if err := src.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s: %w", o.GetName(), err)
		}
	}
	d.step("created in %s/%s: Deployment %s (%d replicas, spread over the targets) and Job %s (%d pods), annotated %s",
		src.Name, demoNamespace, demoDeployment, demoReplicas, demoJob, demoJobPods, protocol.ElectAnnotation)
	return d.poll(ctx, "the Deployment available and the Job complete", 3*time.Minute, func(ctx context.Context) error {
		if err := src.Client.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return err
		}
		if dep.Status.AvailableReplicas < demoReplicas {
			return fmt.Errorf("deployment %s: %d of %d available", dep.Name, dep.Status.AvailableReplicas, demoReplicas)
		}
		if err := src.Client.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
			return err
		}
		if job.Status.Succeeded < demoJobPods {
			return fmt.Errorf("job %s: %d of %d succeeded", job.Name, job.Status.Succeeded, demoJobPods)
		}
		return nil
	})
}

// placementRow is one line of the placement table.
type placementRow struct {
	ProxyPod, Workload, Cluster, Node, Phase string
}

// placement lists the source's proxy pods in the demo namespace with the
// target cluster and node where each one's delegate runs.
func placement(ctx context.Context, src *framework.Cluster, s *framework.Sandbox) ([]placementRow, error) {
	var pods corev1.PodList
	if err := src.Client.List(ctx, &pods, client.InNamespace(demoNamespace)); err != nil {
		return nil, err
	}
	var rows []placementRow
	for _, p := range pods.Items {
		if p.Spec.SchedulerName != protocol.ProxySchedulerName {
			continue
		}
		row := placementRow{ProxyPod: p.Name, Workload: workloadOf(&p), Cluster: "-", Node: "-", Phase: string(p.Status.Phase)}
		if p.Spec.NodeName != "" {
			var vnode corev1.Node
			if err := src.Client.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, &vnode); err == nil {
				row.Cluster = vnode.Annotations[protocol.TargetAnnotation]
			}
			if c, err := s.Cluster(row.Cluster); err == nil {
				row.Node = delegateNode(ctx, c, &p)
			}
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b placementRow) int {
		return strings.Compare(a.Workload+"/"+a.ProxyPod, b.Workload+"/"+b.ProxyPod)
	})
	return rows, nil
}

func workloadOf(p *corev1.Pod) string {
	if name := p.Labels[batchv1.JobNameLabel]; name != "" {
		return "job/" + name
	}
	if name := p.Labels["app"]; name != "" {
		return "deployment/" + name
	}
	return "pod/" + p.Name
}

// delegateNode is the node of proxy's delegate pod in target c.
func delegateNode(ctx context.Context, c *framework.Cluster, proxy *corev1.Pod) string {
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(proxy.Namespace)); err != nil {
		return "?"
	}
	for _, p := range pods.Items {
		if p.Annotations[protocol.ProxyPodNameAnnotation] == proxy.Name && p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			return p.Spec.NodeName
		}
	}
	return "-"
}

// printPlacement writes the placement table.
func printPlacement(out io.Writer, rows []placementRow) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROXY POD\tWORKLOAD\tCLUSTER\tNODE\tPHASE")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ProxyPod, r.Workload, r.Cluster, r.Node, r.Phase)
	}
	_ = w.Flush()
}

// kubectlDemo shows kubectl logs and exec on a proxy pod of the Deployment:
// the commands reach its delegate in its target cluster.
func (d *demoRun) kubectlDemo(ctx context.Context, src *framework.Cluster, rows []placementRow) error {
	var pod string
	for _, r := range rows {
		if r.Workload == "deployment/"+demoDeployment && r.Phase == string(corev1.PodRunning) {
			pod = r.ProxyPod
			break
		}
	}
	if pod == "" {
		return errors.New("no Running proxy pod of the Deployment")
	}
	for _, args := range [][]string{
		{"-n", demoNamespace, "logs", pod, "--tail=3"},
		{"-n", demoNamespace, "exec", pod, "--", "sh", "-c", "echo hello from $FLOTILLA_SANDBOX_CLUSTER"},
	} {
		fmt.Fprintf(d.out, "$ kubectl --context %s %s\n", src.Name, strings.Join(quoteArgs(args), " "))
		output, err := src.Kubectl(ctx, args...)
		fmt.Fprint(d.out, output)
		if err != nil {
			return err
		}
	}
	return nil
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " $") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}
