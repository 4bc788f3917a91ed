// Package isolation runs two real source clusters that share one target,
// each through a namespaced Source there (A in team-a, B in team-b), with
// real workloads, and checks what one source's identity in the target can
// do to the other's work.
//
// Pass: with the identity in the kubeconfig of its own Target, a source
// cannot get, list, watch, update, patch or delete the other source's
// PodChaperons, delegate pods and followed ConfigMaps and Secrets, nor read
// the logs of, exec into, attach to or port-forward to its delegates,
// while it can do in its own namespace what the protocol needs; a user of
// source A cannot reach the target's team-b through A's virtual node; a
// privileged pod does not run in a target namespace whose Pod Security
// level forbids it and the source pod gets an Event naming the violation,
// while other pods there still run; a Secret reaches a target only when a
// pod placed there references it, and goes when that pod goes.
//
// Source A has a second target of its own (target-2), so that a pod can be
// placed elsewhere than the shared target.
package isolation

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flotilla-io/flotilla/test/framework"
)

// envKeepLogs set keeps the components' logs (their folder is printed).
const envKeepLogs = "FLOTILLA_KEEP_LOGS"

// The sandbox: source A is the default source cluster, B a second one.
const (
	clusterA = framework.SourceCluster
	clusterB = "source-b"
	nsA      = "team-a"
	nsB      = "team-b"
)

var (
	sharedTarget = framework.TargetName(1) // A's and B's
	onlyATarget  = framework.TargetName(2) // A's only
)

var (
	sandbox *framework.Sandbox
	fleet   *framework.SharedFleet
	logDir  string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(klog.Background())
	ctx := context.Background()
	s, stop, err := framework.SetupSandboxWithSources(ctx, 2, []string{clusterB}, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the sandbox:", err)
		return 1
	}
	defer func() {
		if err := stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping the sandbox:", err)
		}
	}()
	sandbox = s
	logDir, err = os.MkdirTemp("", "flotilla-isolation-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if os.Getenv(envKeepLogs) != "" {
		fmt.Fprintln(os.Stderr, "e2e: component logs in", logDir)
	} else {
		defer func() { _ = os.RemoveAll(logDir) }()
	}
	fleet, err = framework.StartSharedFleet(ctx, s, []framework.Tenant{
		{Source: clusterA, Namespace: nsA, Targets: []string{sharedTarget, onlyATarget}},
		{Source: clusterB, Namespace: nsB, Targets: []string{sharedTarget}},
	}, logDir, framework.FleetOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting Flotilla:", err)
		dumpLogs()
		return 1
	}
	defer fleet.Stop()
	code := m.Run()
	if code != 0 {
		dumpLogs()
	}
	return code
}

// dumpLogs prints the end of every component's log.
func dumpLogs() {
	var logs []string
	_ = filepath.WalkDir(logDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".log" {
			logs = append(logs, path)
		}
		return nil
	})
	slices.Sort(logs)
	for _, path := range logs {
		p := &framework.Process{Name: path, Log: path}
		fmt.Fprintf(os.Stderr, "==== last lines of %s\n%s\n", path, p.Tail(60))
	}
}

// cluster returns the handle on a sandbox cluster or fails the test.
func cluster(t *testing.T, name string) *framework.Cluster {
	t.Helper()
	c, err := sandbox.Cluster(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
