package framework

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// StateFile is the name of the sandbox's state file inside its Dir.
const StateFile = "sandbox.json"

// State is what a running sandbox records about itself, so that another
// process (the CLI's down/status, a test that reuses the sandbox) can find and
// stop exactly what was started.
type State struct {
	Dir       string          `json:"dir"`
	StartedAt time.Time       `json:"startedAt"`
	Detached  bool            `json:"detached"`
	EtcdURL   string          `json:"etcdURL"`
	Clusters  []*ClusterState `json:"clusters"`
	Processes []*Process      `json:"processes"`
	// Kubeconfig holds one context per cluster, named after it.
	Kubeconfig string `json:"kubeconfig"`
}

// ClusterState records one cluster's endpoints and files.
type ClusterState struct {
	Name string `json:"name"`
	// Server is the kube-apiserver URL.
	Server string `json:"server"`
	// Kubeconfig is an admin kubeconfig with embedded credentials.
	Kubeconfig string `json:"kubeconfig"`
	// Ports of kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
	Ports map[string]int `json:"ports"`
	Nodes []string       `json:"nodes"`
	// PodCIDR is where kwok takes pod IPs from.
	PodCIDR string `json:"podCIDR"`
	// ContainerLog is the CRI-format file that kwok serves as every
	// container's log (and streams to attach).
	ContainerLog string `json:"containerLog"`
	// CAFile is the cluster's CA certificate; KubeletServing a serving
	// certificate and key it signed for 127.0.0.1, for a virtual node's
	// kubelet endpoint ("<cert>,<key>").
	CAFile         string `json:"caFile"`
	KubeletServing string `json:"kubeletServing"`
}

// Sandbox is a running fleet of local clusters.
type Sandbox struct {
	State

	mu       sync.Mutex // guards State and clusters
	saveMu   sync.Mutex // serialises writes of the state file
	progress io.Writer
	start    time.Time
	clusters map[string]*Cluster
}

// AlreadyRunningError is returned by Up when Dir holds a sandbox whose
// processes still run.
type AlreadyRunningError struct{ Dir string }

func (e *AlreadyRunningError) Error() string {
	return fmt.Sprintf("a sandbox is already running in %s (stop it with `make sandbox-down`, or look at it with `make sandbox-status`)", e.Dir)
}

// Load reads the state of the sandbox in dir.
func Load(dir string) (*Sandbox, error) {
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("reading sandbox state: %w", err)
	}
	s := &Sandbox{progress: io.Discard, clusters: map[string]*Cluster{}}
	if err := json.Unmarshal(data, &s.State); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, StateFile), err)
	}
	return s, nil
}

// Up starts the fleet described by cfg and returns once every API server is
// healthy, every node Ready and every namespace's default service account
// can be made. On failure, whatever was started is stopped again.
func Up(ctx context.Context, cfg Config) (_ *Sandbox, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", cfg.Dir, err)
	}
	binDir, err := filepath.Abs(cfg.BinDir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", cfg.BinDir, err)
	}
	old, err := Load(dir)
	switch {
	case err == nil && old.anyAlive():
		return nil, &AlreadyRunningError{Dir: dir}
	case err == nil:
		// A stale sandbox whose processes are gone: start afresh.
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("removing stale sandbox state: %w", err)
		}
	case errors.Is(err, os.ErrNotExist):
		// Never wipe a folder that is not a sandbox's.
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			return nil, fmt.Errorf("%s is not empty and holds no sandbox (%s); choose another folder", dir, StateFile)
		}
	default:
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	s := &Sandbox{
		State:    State{Dir: dir, StartedAt: time.Now(), Detached: cfg.Detach, Kubeconfig: filepath.Join(dir, "kubeconfig")},
		progress: progress,
		start:    time.Now(),
		clusters: map[string]*Cluster{},
	}
	defer func() {
		if err != nil {
			s.logf("start failed; stopping what was started")
			s.stopProcesses()
		}
	}()

	if err := s.startEtcd(binDir, cfg.Detach); err != nil {
		return nil, err
	}

	// API servers first, all at once: they take a few seconds each.
	clusters := make([]*clusterSetup, len(cfg.Clusters))
	for i, cc := range cfg.Clusters {
		cs := &clusterSetup{sb: s, cfg: cc, index: i, binDir: binDir, detach: cfg.Detach, logText: cfg.LogText}
		if err := cs.prepare(); err != nil {
			return nil, err
		}
		clusters[i] = cs
		s.Clusters = append(s.Clusters, cs.state)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, cs := range clusters {
		g.Go(func() error { return cs.startAPIServer(gctx) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	g, gctx = errgroup.WithContext(ctx)
	for _, cs := range clusters {
		g.Go(func() error { return cs.startRest(gctx) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := s.writeMergedKubeconfig(); err != nil {
		return nil, err
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	s.logf("sandbox ready: %d clusters in %s", len(clusters), dir)
	return s, nil
}

func (s *Sandbox) logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.progress, "[%5.1fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

func (s *Sandbox) addProcess(p *Process) error {
	s.mu.Lock()
	s.Processes = append(s.Processes, p)
	s.mu.Unlock()
	return s.save()
}

func (s *Sandbox) save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	data, err := json.MarshalIndent(&s.State, "", "  ")
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encoding sandbox state: %w", err)
	}
	tmp := filepath.Join(s.Dir, StateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing sandbox state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, StateFile)); err != nil {
		return fmt.Errorf("writing sandbox state: %w", err)
	}
	return nil
}

func (s *Sandbox) anyAlive() bool {
	for _, p := range s.Processes {
		if p.Alive() {
			return true
		}
	}
	return false
}

// Down stops every process of the sandbox (API servers before etcd) and
// removes its folder.
func (s *Sandbox) Down() error {
	s.stopProcesses()
	for _, p := range s.Processes {
		if p.Alive() {
			return fmt.Errorf("%s (pid %d) is still running after SIGKILL", p.ID(), p.PID)
		}
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("removing %s: %w", s.Dir, err)
	}
	return nil
}

// stopProcesses stops the clusters' components in parallel, then the API
// servers, then etcd: an API server whose etcd is gone can ignore SIGTERM for
// a long time.
func (s *Sandbox) stopProcesses() {
	order := []func(*Process) bool{
		func(p *Process) bool { return p.Name != "kube-apiserver" && p.Name != "etcd" },
		func(p *Process) bool { return p.Name == "kube-apiserver" },
		func(p *Process) bool { return p.Name == "etcd" },
	}
	for _, match := range order {
		var wg sync.WaitGroup
		for _, p := range s.Processes {
			if match(p) {
				wg.Go(func() { p.stop(10 * time.Second) })
			}
		}
		wg.Wait()
	}
}

// Crashed returns the processes that are no longer running.
func (s *Sandbox) Crashed() []*Process {
	var out []*Process
	for _, p := range s.Processes {
		if !p.Alive() {
			out = append(out, p)
		}
	}
	return out
}

// ClusterNames lists the clusters in the order they were configured.
func (s *Sandbox) ClusterNames() []string {
	names := make([]string, 0, len(s.Clusters))
	for _, c := range s.Clusters {
		names = append(names, c.Name)
	}
	return names
}

// Targets lists every cluster but the source.
func (s *Sandbox) Targets() []string {
	var names []string
	for _, c := range s.Clusters {
		if c.Name != SourceCluster {
			names = append(names, c.Name)
		}
	}
	return names
}

func (s *Sandbox) clusterState(name string) *ClusterState {
	for _, c := range s.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (s *Sandbox) startEtcd(binDir string, detach bool) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	dir := filepath.Join(s.Dir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	p := &Process{
		Name:   "etcd",
		Binary: filepath.Join(binDir, "etcd"),
		Log:    filepath.Join(dir, "etcd.log"),
		Args: []string{
			"--name=sandbox",
			"--data-dir=" + filepath.Join(dir, "data"),
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=sandbox=" + peer,
			// A throwaway store: skip fsync, keep the database small.
			"--unsafe-no-fsync=true",
			"--quota-backend-bytes=4294967296",
			"--auto-compaction-mode=periodic",
			"--auto-compaction-retention=5m",
			"--log-level=warn",
		},
	}
	s.EtcdURL = client
	if err := p.start(detach); err != nil {
		return err
	}
	if err := s.addProcess(p); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	httpClient := &http.Client{Timeout: 2 * time.Second}
	err = waitFor(ctx, "etcd", []*Process{p}, func(ctx context.Context) error {
		return httpOK(ctx, httpClient, client+"/health")
	})
	if err != nil {
		return err
	}
	s.logf("etcd ready at %s", client)
	return nil
}

// startTimeout bounds each start-up step.
const startTimeout = 90 * time.Second

func httpOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// clusterSetup starts one cluster.
type clusterSetup struct {
	sb      *Sandbox
	cfg     ClusterConfig
	index   int
	binDir  string
	detach  bool
	logText []string

	dir   string
	ca    *authority
	state *ClusterState
	rest  *rest.Config
	files map[string]string
	procs []*Process
}

func (c *clusterSetup) process(name string, args ...string) *Process {
	return &Process{
		Name:    name,
		Cluster: c.cfg.Name,
		Binary:  filepath.Join(c.binDir, name),
		Args:    args,
		Log:     filepath.Join(c.dir, name+".log"),
	}
}

func (c *clusterSetup) run(p *Process) error {
	if err := p.start(c.detach); err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return c.sb.addProcess(p)
}

// prepare picks the cluster's ports and writes its certificates and
// kubeconfigs.
func (c *clusterSetup) prepare() error {
	name := c.cfg.Name
	c.dir = filepath.Join(c.sb.Dir, name)
	if err := os.MkdirAll(filepath.Join(c.dir, "pki"), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", c.dir, err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	c.state = &ClusterState{
		Name:       name,
		Server:     fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		Kubeconfig: filepath.Join(c.dir, "kubeconfig"),
		Ports: map[string]int{
			"kube-apiserver": ports[0], "kube-controller-manager": ports[1],
			"kube-scheduler": ports[2], "kwok": ports[3],
		},
		PodCIDR: fmt.Sprintf("10.%d.0.0/16", 100+c.index),
	}
	if err := c.writePKI(); err != nil {
		return fmt.Errorf("cluster %s: %w", name, err)
	}
	c.rest = &rest.Config{
		Host: c.state.Server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.ca.CertPEM,
			CertFile: c.files["admin.crt"],
			KeyFile:  c.files["admin.key"],
		},
		QPS: 100, Burst: 200,
	}
	return nil
}

// startAPIServer starts the cluster's kube-apiserver and waits until it is
// ready.
func (c *clusterSetup) startAPIServer(ctx context.Context) error {
	name, f, ports := c.cfg.Name, c.files, c.state.Ports
	apiserver := c.process("kube-apiserver",
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+itoa(ports["kube-apiserver"]),
		// The endpoint reconciler refuses loopback addresses.
		"--endpoint-reconciler-type=none",
		"--etcd-servers="+c.sb.EtcdURL,
		// One etcd, one key prefix per cluster.
		"--etcd-prefix=/flotilla-sandbox/"+name,
		"--tls-cert-file="+f["apiserver.crt"],
		"--tls-private-key-file="+f["apiserver.key"],
		"--client-ca-file="+f["ca.crt"],
		"--service-account-issuer=https://kubernetes.default.svc."+name+".sandbox",
		"--service-account-key-file="+f["sa.pub"],
		"--service-account-signing-key-file="+f["sa.key"],
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota,PodSecurity",
		"--allow-privileged=true",
		"--kubelet-client-certificate="+f["kubelet-client.crt"],
		"--kubelet-client-key="+f["kubelet-client.key"],
		"--kubelet-certificate-authority="+f["ca.crt"],
		"--kubelet-preferred-address-types=InternalIP",
		"--event-ttl=1h",
		"--profiling=false",
	)
	if err := c.run(apiserver); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	httpClient, err := rest.HTTPClientFor(c.rest)
	if err != nil {
		return fmt.Errorf("cluster %s: building HTTP client: %w", name, err)
	}
	err = waitFor(ctx, name+" kube-apiserver", c.procs, func(ctx context.Context) error {
		return httpOK(ctx, httpClient, c.state.Server+"/readyz")
	})
	if err != nil {
		return err
	}
	c.sb.logf("%s: kube-apiserver ready at %s", name, c.state.Server)
	return nil
}

// startRest starts the controller manager, the scheduler and kwok, registers
// the nodes and waits for the cluster to be usable.
func (c *clusterSetup) startRest(ctx context.Context) error {
	name, f, ports := c.cfg.Name, c.files, c.state.Ports
	kcm := c.process("kube-controller-manager",
		"--kubeconfig="+f["kube-controller-manager.kubeconfig"],
		"--authentication-kubeconfig="+f["kube-controller-manager.kubeconfig"],
		"--authorization-kubeconfig="+f["kube-controller-manager.kubeconfig"],
		"--bind-address=127.0.0.1",
		"--secure-port="+itoa(ports["kube-controller-manager"]),
		"--controllers=*,-nodeipam",
		"--cluster-name="+name,
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+f["sa.key"],
		"--root-ca-file="+f["ca.crt"],
		"--cluster-signing-cert-file="+f["ca.crt"],
		"--cluster-signing-key-file="+f["ca.key"],
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		"--concurrent-job-syncs=10",
	)
	schedulerConfig := filepath.Join(c.dir, "kube-scheduler.yaml")
	if err := os.WriteFile(schedulerConfig, fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %s
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
`, f["kube-scheduler.kubeconfig"]), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", schedulerConfig, err)
	}
	scheduler := c.process("kube-scheduler",
		"--config="+schedulerConfig,
		"--authentication-kubeconfig="+f["kube-scheduler.kubeconfig"],
		"--authorization-kubeconfig="+f["kube-scheduler.kubeconfig"],
		"--bind-address=127.0.0.1",
		"--secure-port="+itoa(ports["kube-scheduler"]),
	)
	kwokConfig, err := c.writeKwokConfig()
	if err != nil {
		return err
	}
	kwok := c.process("kwok",
		"--kubeconfig="+f["kwok.kubeconfig"],
		"--config="+kwokConfig,
		"--manage-nodes-with-annotation-selector="+KwokNodeAnnotation+"="+kwokNodeAnnotationValue,
		"--node-ip=127.0.0.1",
		"--node-port="+itoa(ports["kwok"]),
		"--server-address=127.0.0.1:"+itoa(ports["kwok"]),
		"--tls-cert-file="+f["kwok-serving.crt"],
		"--tls-private-key-file="+f["kwok-serving.key"],
		"--node-lease-duration-seconds=40",
		"--cidr="+c.state.PodCIDR,
	)
	for _, p := range []*Process{kcm, scheduler, kwok} {
		if err := c.run(p); err != nil {
			return err
		}
	}
	cs, err := kubernetes.NewForConfig(c.rest)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", name, err)
	}
	if err := c.registerNodes(ctx, cs); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for _, comp := range []string{"kube-controller-manager", "kube-scheduler"} {
		url := fmt.Sprintf("https://127.0.0.1:%d/healthz", ports[comp])
		insecure := &http.Client{Timeout: 2 * time.Second, Transport: insecureLoopbackTransport()}
		if err := waitFor(ctx, name+" "+comp, c.procs, func(ctx context.Context) error {
			return httpOK(ctx, insecure, url)
		}); err != nil {
			return err
		}
	}
	if err := waitFor(ctx, name+" nodes Ready", c.procs, func(ctx context.Context) error {
		return nodesReady(ctx, cs, c.state.Nodes)
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, name+" default service account", c.procs, func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	c.sb.logf("%s: ready (%d nodes)", name, len(c.state.Nodes))
	return nil
}

func (c *clusterSetup) writeKwokConfig() (string, error) {
	logs := filepath.Join(c.dir, "container.log")
	c.state.ContainerLog = logs
	if err := appendCRILog(logs, c.logText...); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	err := kwokTemplate.Execute(&buf, map[string]string{"LogsFile": logs, "WorkDir": c.dir, "Cluster": c.cfg.Name})
	if err != nil {
		return "", fmt.Errorf("rendering kwok config: %w", err)
	}
	path := filepath.Join(c.dir, "kwok.yaml")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// appendCRILog appends lines to a container log file in the CRI format
// that kwok serves: "<RFC3339Nano> stdout F <text>".
func appendCRILog(path string, lines ...string) error {
	var buf bytes.Buffer
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	for _, line := range lines {
		fmt.Fprintf(&buf, "%s stdout F %s\n", stamp, line)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

//go:embed kwok.yaml.tmpl
var kwokTemplateText string

var kwokTemplate = template.Must(template.New("kwok").Parse(kwokTemplateText))

// registerNodes creates the cluster's kwok nodes, as kubelets register
// themselves: with capacity in their status.
func (c *clusterSetup) registerNodes(ctx context.Context, cs kubernetes.Interface) error {
	for _, pool := range c.cfg.Nodes {
		names, err := registerPool(ctx, cs, c.cfg.Name, pool, 0)
		c.sb.mu.Lock()
		c.state.Nodes = append(c.state.Nodes, names...)
		c.sb.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return c.sb.save()
}

// registerPool creates pool.Count nodes numbered from first and returns the
// names of those it created.
func registerPool(ctx context.Context, cs kubernetes.Interface, cluster string, pool NodePool, first int) ([]string, error) {
	var names []string
	for i := first; i < first+pool.Count; i++ {
		node := newNode(cluster, pool, i)
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return names, fmt.Errorf("cluster %s: registering node %s: %w", cluster, node.Name, err)
		}
		names = append(names, node.Name)
	}
	return names, nil
}

// AddNodes registers more kwok nodes in a running cluster (as when a node
// joins) and returns their names; kwok makes them Ready.
func (s *Sandbox) AddNodes(ctx context.Context, cluster string, pool NodePool) ([]string, error) {
	if err := pool.validate(); err != nil {
		return nil, err
	}
	c, err := s.Cluster(cluster)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	st := s.clusterState(cluster)
	first := 0
	prefix := fmt.Sprintf("%s-%s-", cluster, pool.Name)
	for _, n := range st.Nodes {
		if strings.HasPrefix(n, prefix) {
			first++
		}
	}
	s.mu.Unlock()
	names, err := registerPool(ctx, c.Clientset, cluster, pool, first)
	s.mu.Lock()
	st.Nodes = append(st.Nodes, names...)
	c.Nodes = slices.Clone(st.Nodes)
	s.mu.Unlock()
	if saveErr := s.save(); err == nil {
		err = saveErr
	}
	return names, err
}

func newNode(cluster string, pool NodePool, i int) *corev1.Node {
	name := fmt.Sprintf("%s-%s-%d", cluster, pool.Name, i)
	labels := map[string]string{
		corev1.LabelHostname:           name,
		corev1.LabelOSStable:           "linux",
		corev1.LabelArchStable:         "amd64",
		corev1.LabelInstanceTypeStable: "kwok-" + pool.CPU + "cpu-" + strings.ToLower(pool.Memory),
		"type":                         "kwok",
		SandboxClusterLabel:            cluster,
	}
	for k, v := range pool.Labels {
		labels[k] = v
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(pool.CPU),
		corev1.ResourceMemory: resource.MustParse(pool.Memory),
		corev1.ResourcePods:   resource.MustParse(pool.Pods),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{KwokNodeAnnotation: kwokNodeAnnotationValue},
		},
		Status: corev1.NodeStatus{Capacity: resources, Allocatable: resources.DeepCopy()},
	}
}

// nodesReady is nil once every named node is Ready and no longer carries the
// not-ready or unreachable taints, i.e. pods can be scheduled on it.
func nodesReady(ctx context.Context, cs kubernetes.Interface, names []string) error {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ready := map[string]bool{}
	for _, n := range nodes.Items {
		ok := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ok = true
			}
		}
		for _, t := range n.Spec.Taints {
			if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
				ok = false
			}
		}
		ready[n.Name] = ok
	}
	var notReady []string
	for _, name := range names {
		if !ready[name] {
			notReady = append(notReady, name)
		}
	}
	if len(notReady) > 0 {
		return fmt.Errorf("nodes not ready: %s: %w", strings.Join(notReady, ", "), errNotYet)
	}
	return nil
}

func (c *clusterSetup) writePKI() error {
	pki := filepath.Join(c.dir, "pki")
	ca, err := newAuthority(c.cfg.Name + "-ca")
	if err != nil {
		return err
	}
	c.ca = ca
	c.files = map[string]string{}
	caKey, err := encodeKey(ca.key)
	if err != nil {
		return err
	}
	c.files["ca.crt"] = filepath.Join(pki, "ca.crt")
	c.files["ca.key"] = filepath.Join(pki, "ca.key")
	if err := os.WriteFile(c.files["ca.crt"], ca.CertPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.files["ca.key"], caKey, 0o600); err != nil {
		return err
	}
	saKey, saPub, err := newServiceAccountKey()
	if err != nil {
		return err
	}
	c.files["sa.key"] = filepath.Join(pki, "sa.key")
	c.files["sa.pub"] = filepath.Join(pki, "sa.pub")
	if err := os.WriteFile(c.files["sa.key"], saKey, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(c.files["sa.pub"], saPub, 0o644); err != nil {
		return err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.96.0.1")}
	certs := map[string]certRequest{
		"apiserver": {CommonName: "kube-apiserver", Server: true, IPs: loopback,
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		"kwok-serving": {CommonName: "kwok", Server: true, IPs: loopback[:2], DNSNames: []string{"localhost"}},
		// For Flotilla's virtual nodes: kube-apiserver verifies kubelets.
		"virtual-kubelet-serving": {CommonName: "virtual-kubelet", Server: true, IPs: loopback[:2], DNSNames: []string{"localhost"}},
		"kubelet-client":          {CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"system:masters"}, Client: true},
		"admin":                   {CommonName: "kubernetes-admin", Organizations: []string{"system:masters"}, Client: true},
		"kube-controller-manager": {CommonName: "system:kube-controller-manager", Client: true},
		"kube-scheduler":          {CommonName: "system:kube-scheduler", Client: true},
		// kwok speaks for every fake node and their pods.
		"kwok": {CommonName: "kwok", Organizations: []string{"system:masters"}, Client: true},
	}
	c.state.CAFile = c.files["ca.crt"]
	c.state.KubeletServing = filepath.Join(pki, "virtual-kubelet-serving.crt") + "," + filepath.Join(pki, "virtual-kubelet-serving.key")
	for name, req := range certs {
		pair, err := ca.issue(req)
		if err != nil {
			return err
		}
		certFile, keyFile, err := pair.writeTo(pki, name)
		if err != nil {
			return err
		}
		c.files[name+".crt"], c.files[name+".key"] = certFile, keyFile
		if req.Client {
			path := filepath.Join(c.dir, name+".kubeconfig")
			if name == "admin" {
				path = c.state.Kubeconfig
			}
			if err := writeKubeconfig(path, c.cfg.Name, c.state.Server, ca.CertPEM, pair); err != nil {
				return err
			}
			c.files[name+".kubeconfig"] = path
		}
	}
	return nil
}

func kubeconfigFor(name, server string, caPEM []byte, pair *keyPair) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: pair.CertPEM, ClientKeyData: pair.KeyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: metav1.NamespaceDefault}
	cfg.CurrentContext = name
	return cfg
}

func writeKubeconfig(path, name, server string, caPEM []byte, pair *keyPair) error {
	if err := clientcmd.WriteToFile(*kubeconfigFor(name, server, caPEM, pair), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeMergedKubeconfig writes one kubeconfig with a context per cluster,
// the source's current.
func (s *Sandbox) writeMergedKubeconfig() error {
	merged := clientcmdapi.NewConfig()
	for _, c := range s.Clusters {
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			return fmt.Errorf("reading %s: %w", c.Kubeconfig, err)
		}
		merged.Clusters[c.Name] = cfg.Clusters[c.Name]
		merged.AuthInfos[c.Name] = cfg.AuthInfos[c.Name]
		merged.Contexts[c.Name] = cfg.Contexts[c.Name]
	}
	merged.CurrentContext = s.Clusters[0].Name
	if err := clientcmd.WriteToFile(*merged, s.Kubeconfig); err != nil {
		return fmt.Errorf("writing %s: %w", s.Kubeconfig, err)
	}
	return nil
}

// process finds a cluster's component ("kube-apiserver", "kwok", ...).
func (s *Sandbox) process(cluster, name string) (*Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.Processes {
		if p.Cluster == cluster && p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no process %s/%s in the sandbox", cluster, name)
}

// StopProcess stops one component of a cluster, as an outage would: e.g.
// StopProcess("target-1", "kube-apiserver") makes the cluster stop answering.
func (s *Sandbox) StopProcess(cluster, name string) error {
	p, err := s.process(cluster, name)
	if err != nil {
		return err
	}
	p.stop(10 * time.Second)
	if p.Alive() {
		return fmt.Errorf("%s did not stop", p.ID())
	}
	return nil
}

// StartProcess starts a stopped component again with the same flags (and so
// the same port), and for an API server waits until it is ready.
func (s *Sandbox) StartProcess(ctx context.Context, cluster, name string) error {
	p, err := s.process(cluster, name)
	if err != nil {
		return err
	}
	if p.Alive() {
		return fmt.Errorf("%s is already running (pid %d)", p.ID(), p.PID)
	}
	s.mu.Lock()
	err = p.start(s.Detached)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.save(); err != nil {
		return err
	}
	if name != "kube-apiserver" {
		return nil
	}
	c, err := s.Cluster(cluster)
	if err != nil {
		return err
	}
	httpClient, err := rest.HTTPClientFor(c.RESTConfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return waitFor(ctx, p.ID(), []*Process{p}, func(ctx context.Context) error {
		return httpOK(ctx, httpClient, c.Server+"/readyz")
	})
}

// KillProcess kills one component of a cluster at once (SIGKILL), as a
// crash or a sudden outage would.
func (s *Sandbox) KillProcess(cluster, name string) error {
	p, err := s.process(cluster, name)
	if err != nil {
		return err
	}
	p.stop(0)
	if p.Alive() {
		return fmt.Errorf("%s did not die", p.ID())
	}
	return nil
}

// RunProcess starts binary with args as the process cluster/name of the
// sandbox, logging to log, and records it in the state file, so that
// `sandbox down` stops it with the rest (the demo runs Flotilla's components
// so). A recorded process of that name that still runs is left alone and
// reported as not started; one that has exited is started again with args.
func (s *Sandbox) RunProcess(cluster, name, binary string, args []string, log string) (started bool, err error) {
	if p, err := s.process(cluster, name); err == nil {
		if p.Alive() {
			return false, nil
		}
		s.mu.Lock()
		p.Binary, p.Args, p.Log = binary, args, log
		err = p.start(s.Detached)
		s.mu.Unlock()
		if err != nil {
			return false, err
		}
		return true, s.save()
	}
	p := &Process{Cluster: cluster, Name: name, Binary: binary, Args: args, Log: log}
	if err := p.start(s.Detached); err != nil {
		return false, err
	}
	return true, s.addProcess(p)
}

// FindProcess returns the recorded process cluster/name.
func (s *Sandbox) FindProcess(cluster, name string) (*Process, error) {
	return s.process(cluster, name)
}
