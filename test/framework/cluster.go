package framework

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// Cluster is a handle on one sandbox cluster for tests: clients, kubeconfig
// and kubectl.
type Cluster struct {
	Name string
	// Kubeconfig is the path of an admin kubeconfig.
	Kubeconfig string
	// Server is the kube-apiserver URL.
	Server     string
	RESTConfig *rest.Config
	Client     client.Client
	Clientset  kubernetes.Interface
	// Nodes are the names of the cluster's kwok nodes.
	Nodes []string
	// ContainerLog is the file kwok serves as every container's log.
	ContainerLog string
	// CAFile is the cluster's CA; KubeletCert and KubeletKey a serving
	// certificate it signed for 127.0.0.1 (for a virtual node's kubelet
	// endpoint).
	CAFile, KubeletCert, KubeletKey string

	kubectl string
}

// Scheme is what Cluster.Client knows: client-go's built-in types, CRDs
// and Flotilla's API.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, multiclusterv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// Cluster returns the handle on the named cluster.
func (s *Sandbox) Cluster(name string) (*Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clusters[name]; ok {
		return c, nil
	}
	st := s.clusterState(name)
	if st == nil {
		return nil, fmt.Errorf("no cluster %q in the sandbox (have %s)", name, strings.Join(s.ClusterNames(), ", "))
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", st.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: Scheme})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	cert, key, _ := strings.Cut(st.KubeletServing, ",")
	c := &Cluster{
		Name: name, Kubeconfig: st.Kubeconfig, Server: st.Server, RESTConfig: cfg,
		Client: cl, Clientset: cs, Nodes: slices.Clone(st.Nodes), ContainerLog: st.ContainerLog,
		CAFile: st.CAFile, KubeletCert: cert, KubeletKey: key,
		kubectl: filepath.Join(s.binDir(), "kubectl"),
	}
	s.clusters[name] = c
	return c, nil
}

// binDir is where the sandbox's binaries live, read back from a process.
func (s *Sandbox) binDir() string {
	for _, p := range s.Processes {
		return filepath.Dir(p.Binary)
	}
	return "bin"
}

// Kubectl runs kubectl against the cluster and returns its standard output;
// the error carries standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlWithInput(ctx, "", args...)
}

// KubectlWithInput is Kubectl with stdin. Without a deadline in ctx, the
// command is given KubectlTimeout.
func (c *Cluster) KubectlWithInput(ctx context.Context, stdin string, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, KubectlTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s (cluster %s): %w: %s", strings.Join(args, " "), c.Name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// AppendContainerLog adds lines to what every container of the cluster
// logs: `kubectl logs -f` and `attach` stream them as they come.
func (c *Cluster) AppendContainerLog(lines ...string) error {
	return appendCRILog(c.ContainerLog, lines...)
}

// KubectlStreamUntil runs a kubectl command that streams until stopped
// (logs -f, attach) and returns its output once it contains want, or when
// ShortTimeout passes; the error carries standard error.
func (c *Cluster) KubectlStreamUntil(ctx context.Context, want string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ShortTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		_ = cmd.Process.Kill()
		if cmd.ProcessState == nil {
			_ = cmd.Wait()
		}
	}()
	var out strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), want) {
		n, err := stdout.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF || ctx.Err() != nil {
			break
		}
		if err != nil {
			return out.String(), fmt.Errorf("reading kubectl %s: %w", strings.Join(args, " "), err)
		}
	}
	if !strings.Contains(out.String(), want) {
		// stderr is complete only once kubectl has exited (its copy ends
		// with Wait); at EOF of stdout it may not be yet.
		_ = cmd.Wait()
		return out.String(), fmt.Errorf("kubectl %s (cluster %s) did not print %q: %s", strings.Join(args, " "), c.Name, want, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// PortForwardEcho runs kubectl port-forward to port of pod and returns what
// a line sent through it comes back as (the sandbox's pods echo).
func (c *Cluster) PortForwardEcho(ctx context.Context, namespace, pod string, port int, line string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ShortTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.kubectl, "--kubeconfig", c.Kubeconfig,
		"port-forward", "-n", namespace, "pod/"+pod, "--address", "127.0.0.1", fmt.Sprintf(":%d", port))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		_ = cmd.Process.Kill()
		if cmd.ProcessState == nil {
			_ = cmd.Wait()
		}
	}()
	// "Forwarding from 127.0.0.1:NNNNN -> <port>"
	said, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("kubectl port-forward: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	m := regexp.MustCompile(fmt.Sprintf(`127\.0\.0\.1:(\d+) -> %d`, port)).FindStringSubmatch(said)
	if len(m) != 2 {
		return "", fmt.Errorf("kubectl port-forward said %q", said)
	}
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+m[1], 5*time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(line)); err != nil {
		return "", err
	}
	echoed, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return echoed, fmt.Errorf("reading through port-forward: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return echoed, nil
}

// Events returns the notes of the events of reason regarding obj.
func (c *Cluster) Events(ctx context.Context, obj client.Object, reason string) ([]string, error) {
	list, err := c.Clientset.EventsV1().Events(obj.GetNamespace()).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing events in %s: %w", c.Name, err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.UID == obj.GetUID() && e.Reason == reason {
			out = append(out, e.Note)
		}
	}
	return out, nil
}
