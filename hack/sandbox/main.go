// Command sandbox starts, inspects and stops the local fleet of clusters that
// the demo, the end-to-end tests and the benchmarks run on (see
// test/framework). It backs `make sandbox-up`, `make sandbox-status` and
// `make sandbox-down`.
//
//	sandbox up [--dir .sandbox] [--bin bin] [--targets 2] [--nodes target-1=count=4,cpu=8] [--reuse]
//	sandbox status [--dir .sandbox]
//	sandbox down [--dir .sandbox]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-io/flotilla/test/framework"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

type nodeFlags []string

func (n *nodeFlags) String() string     { return strings.Join(*n, " ") }
func (n *nodeFlags) Set(v string) error { *n = append(*n, v); return nil }

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: sandbox up|status|demo|uninstall|down [flags]")
	}
	verb := args[0]
	fs := flag.NewFlagSet("sandbox "+verb, flag.ContinueOnError)
	dir := fs.String("dir", ".sandbox", "folder of the sandbox's state, kubeconfigs and logs")
	bin := fs.String("bin", "bin", "folder with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok")
	targets := fs.Int("targets", 2, "number of target clusters besides the source")
	root := fs.String("root", ".", "demo, uninstall: the Flotilla checkout whose charts/flotilla is installed")
	reuse := fs.Bool("reuse", false, "up: when a sandbox already runs in --dir, use it instead of failing")
	var nodes nodeFlags
	fs.Var(&nodes, "nodes", "change a cluster's nodes: <cluster>=count=N,cpu=Q,memory=Q,pods=N,label.<key>=<value> (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch verb {
	case "up":
		err := up(ctx, out, *dir, *bin, *targets, nodes)
		var running *framework.AlreadyRunningError
		if *reuse && errors.As(err, &running) {
			fmt.Fprintf(out, "reusing the sandbox already running in %s\n", running.Dir)
			return status(ctx, out, *dir)
		}
		return err
	case "status":
		return status(ctx, out, *dir)
	case "demo":
		return demo(ctx, out, *dir, *bin, *root)
	case "uninstall":
		return uninstallDemo(ctx, out, *dir, *bin, *root)
	case "down":
		return down(out, *dir)
	default:
		return fmt.Errorf("unknown verb %q: want up, status, demo, uninstall or down", verb)
	}
}

func up(ctx context.Context, out io.Writer, dir, bin string, targets int, nodes []string) error {
	if targets < 0 {
		return fmt.Errorf("--targets=%d: want 0 or more", targets)
	}
	cfg := framework.DefaultConfig(dir, bin, targets)
	cfg.Detach = true
	cfg.Progress = out
	for _, spec := range nodes {
		name, pool, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("--nodes %q: want <cluster>=<fields>", spec)
		}
		found := false
		for i := range cfg.Clusters {
			if cfg.Clusters[i].Name != name {
				continue
			}
			p, err := framework.ParseNodePool(pool, cfg.Clusters[i].Nodes[0])
			if err != nil {
				return fmt.Errorf("--nodes %q: %w", spec, err)
			}
			cfg.Clusters[i].Nodes = []framework.NodePool{p}
			found = true
		}
		if !found {
			return fmt.Errorf("--nodes %q: no cluster %q", spec, name)
		}
	}
	s, err := framework.Up(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	printClusters(out, s)
	fmt.Fprintf(out, "\nAll contexts: export KUBECONFIG=%s\nStop with: make sandbox-down\n", s.Kubeconfig)
	return nil
}

func printClusters(out io.Writer, s *framework.Sandbox) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLUSTER\tAPI SERVER\tNODES\tKUBECONFIG")
	for _, c := range s.Clusters {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", c.Name, c.Server, len(c.Nodes), c.Kubeconfig)
	}
	_ = w.Flush()
}

func status(ctx context.Context, out io.Writer, dir string) error {
	s, err := load(out, dir)
	if s == nil || err != nil {
		return err
	}
	fmt.Fprintf(out, "sandbox in %s, started %s ago\n\n", s.Dir, time.Since(s.StartedAt).Round(time.Second))
	printClusters(out, s)

	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLUSTER\tNODE\tREADY\tPODS")
	for _, name := range s.ClusterNames() {
		c, err := s.Cluster(name)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		nodes, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			cancel()
			fmt.Fprintf(w, "%s\t-\tunreachable: %v\t-\n", name, err)
			continue
		}
		pods, err := c.Clientset.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		cancel()
		perNode := map[string]int{}
		if err == nil {
			for _, p := range pods.Items {
				perNode[p.Spec.NodeName]++
			}
		}
		for _, n := range nodes.Items {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", name, n.Name, nodeReady(&n), perNode[n.Name])
		}
	}
	_ = w.Flush()

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROCESS\tPID\tSTATE\tLOG")
	var dead []*framework.Process
	for _, p := range s.Processes {
		state := "running"
		if !p.Alive() {
			state = "EXITED"
			dead = append(dead, p)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", p.ID(), p.PID, state, p.Log)
	}
	_ = w.Flush()
	for _, p := range dead {
		fmt.Fprintf(out, "\n%s exited; last lines of its log:\n%s\n", p.ID(), p.Tail(20))
	}
	core := 0
	for _, p := range dead {
		if !isDemoProcess(p) {
			core++
		}
	}
	switch {
	case core > 0:
		return fmt.Errorf("%d sandbox processes have exited", len(dead))
	case len(dead) > 0:
		fmt.Fprintf(out, "\n%d Flotilla components have exited: `make demo` starts them again\n", len(dead))
	}
	return nil
}

func nodeReady(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return string(c.Status)
		}
	}
	return "Unknown"
}

func down(out io.Writer, dir string) error {
	s, err := load(out, dir)
	if s == nil || err != nil {
		return err
	}
	fmt.Fprintf(out, "stopping %d processes of the sandbox in %s\n", len(s.Processes), s.Dir)
	if err := s.Down(); err != nil {
		return err
	}
	fmt.Fprintln(out, "sandbox stopped")
	return nil
}

// load reads the sandbox in dir; without one it says so and returns nil.
func load(out io.Writer, dir string) (*framework.Sandbox, error) {
	s, err := framework.Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "no sandbox in %s\n", dir)
		return nil, nil
	}
	return s, err
}
