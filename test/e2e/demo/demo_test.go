// Package demo runs `make demo` as a newcomer would, on a sandbox of its
// own, and checks what it prints against the clusters.
package demo

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

type row struct{ proxyPod, workload, cluster, node, phase string }

// placementTable parses the table `make demo` prints.
func placementTable(t *testing.T, out string) []row {
	t.Helper()
	var rows []row
	in := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "PROXY POD"):
			in, rows = true, nil // the last table printed
		case in && len(fields) == 0:
			in = false
		case in:
			if len(fields) != 5 {
				t.Fatalf("placement table line %q: want 5 columns", line)
			}
			rows = append(rows, row{fields[0], fields[1], fields[2], fields[3], fields[4]})
		}
	}
	return rows
}

func makeDemo(t *testing.T, root, dir, bin, target string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, target, "SANDBOX="+dir, "BIN="+bin)
	cmd.Stdin = nil // non-interactive
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s%s", target, err, out, logTails(dir, 40))
	}
	return string(out)
}

// logTails is the end of every Flotilla component's log in the demo's
// sandbox, for a failure to show what the components did.
func logTails(dir string, lines int) string {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "flotilla-*.log"))
	var b strings.Builder
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "\n==== last lines of %s\n%s\n", l, strings.Join(all[max(0, len(all)-lines):], "\n"))
	}
	return b.String()
}

func TestMakeDemo(t *testing.T) {
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := framework.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "sandbox")
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			_ = exec.Command("make", "-C", root, "demo-down", "SANDBOX="+dir, "BIN="+bin).Run()
		}
	})

	out := makeDemo(t, root, dir, bin, "demo")
	t.Logf("make demo:\n%s", out)
	s, err := framework.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, s, placementTable(t, out))
	for _, want := range []string{"flotillactl join --source-context source --target-context target-1",
		"kubectl --context source -n demo logs", "make demo-down", s.Kubeconfig} {
		if !strings.Contains(out, want) {
			t.Errorf("make demo does not print %q", want)
		}
	}
	// The processes the demo started run as the chart's service accounts.
	for _, name := range []string{"flotilla-controller-manager", "flotilla-proxy-scheduler", "flotilla-candidate-scheduler"} {
		for _, c := range s.ClusterNames() {
			p, err := s.FindProcess(c, name)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Alive() {
				t.Errorf("%s is not running:\n%s", p.ID(), p.Tail(20))
			}
		}
	}

	// Again: it reuses the fleet and shows the same placement.
	again := makeDemo(t, root, dir, bin, "demo")
	if !strings.Contains(again, "reusing the sandbox") {
		t.Errorf("a second make demo did not reuse the fleet:\n%s", again)
	}
	checkTable(t, s, placementTable(t, again))

	// helm uninstall, with proxy pods running and waiting: nothing left.
	checkUninstall(t, s, root, dir, bin)

	pids := map[string]int{}
	for _, p := range s.Processes {
		pids[p.ID()] = p.PID
	}
	s, err = framework.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	makeDemo(t, root, dir, bin, "demo-down")
	for _, p := range s.Processes {
		if p.Alive() {
			t.Errorf("%s (pid %d) still runs after make demo-down", p.ID(), p.PID)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after make demo-down: %v", dir, err)
	}
}

// checkTable asserts that the table lists every proxy pod of the demo
// namespace, with the cluster, node and phase that the clusters report.
func checkTable(t *testing.T, s *framework.Sandbox, rows []row) {
	t.Helper()
	ctx := t.Context()
	src, err := s.Cluster(framework.SourceCluster)
	if err != nil {
		t.Fatal(err)
	}
	var proxies corev1.PodList
	if err := src.Client.List(ctx, &proxies, client.InNamespace("demo")); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 || len(rows) != len(proxies.Items) {
		t.Fatalf("placement table has %d rows, the source %d pods in demo; want 6 (4 of the Deployment, 2 of the Job): %v",
			len(rows), len(proxies.Items), rows)
	}
	// The Deployment's proxy pods spread over the targets (its
	// proxy-pod-scheduling-constraints): 2 and 2.
	perCluster := map[string]int{}
	for _, r := range rows {
		if r.workload == "deployment/web" {
			perCluster[r.cluster]++
		}
	}
	for _, c := range s.Targets() {
		if perCluster[c] != 2 {
			t.Errorf("the Deployment's pods per cluster: %v, want 2 in each target", perCluster)
			break
		}
	}
	byName := map[string]*corev1.Pod{}
	for i := range proxies.Items {
		byName[proxies.Items[i].Name] = &proxies.Items[i]
	}
	for _, r := range rows {
		p := byName[r.proxyPod]
		if p == nil {
			t.Errorf("row %v: no such pod in the source", r)
			continue
		}
		if p.Spec.SchedulerName != protocol.ProxySchedulerName {
			t.Errorf("row %v: pod is not a proxy pod (scheduler %q)", r, p.Spec.SchedulerName)
		}
		if string(p.Status.Phase) != r.phase {
			t.Errorf("row %v: the proxy pod is %s", r, p.Status.Phase)
		}
		want := map[string]corev1.PodPhase{"deployment/web": corev1.PodRunning, "job/batch": corev1.PodSucceeded}[r.workload]
		if want == "" || r.phase != string(want) {
			t.Errorf("row %v: want workload deployment/web Running or job/batch Succeeded", r)
		}
		var vnode corev1.Node
		if err := src.Client.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, &vnode); err != nil {
			t.Errorf("row %v: virtual node %q: %v", r, p.Spec.NodeName, err)
			continue
		}
		if got := vnode.Annotations[protocol.TargetAnnotation]; got != r.cluster {
			t.Errorf("row %v: bound to %s, the virtual node of %q", r, vnode.Name, got)
		}
		target, err := s.Cluster(r.cluster)
		if err != nil {
			t.Errorf("row %v: %v", r, err)
			continue
		}
		var pods corev1.PodList
		if err := target.Client.List(ctx, &pods, client.InNamespace("demo")); err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, d := range pods.Items {
			if d.Annotations[protocol.ProxyPodNameAnnotation] != r.proxyPod || d.Spec.NodeName == "" {
				continue
			}
			found++
			if d.Spec.NodeName != r.node {
				t.Errorf("row %v: the delegate runs on %s", r, d.Spec.NodeName)
			}
			if !strings.HasPrefix(d.Spec.NodeName, r.cluster+"-") {
				t.Errorf("row %v: node %s is not one of %s's kwok nodes", r, d.Spec.NodeName, r.cluster)
			}
		}
		if found != 1 {
			t.Errorf("row %v: %d bound delegates in %s, want 1", r, found, r.cluster)
		}
	}
}
