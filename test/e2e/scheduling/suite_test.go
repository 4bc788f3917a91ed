// Package scheduling holds the end-to-end tests of the two-phase protocol:
// a sandbox (one source, two targets with different node sizes and regions)
// with all of Flotilla running, and workloads that users would run.
//
// The suite has its own sandbox and one Flotilla installation (a Fleet)
// shared by its tests, which therefore run one at a time.
package scheduling

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/flotilla-io/flotilla/test/framework"
)

// envKeepLogs set keeps the components' logs (their folder is printed).
const envKeepLogs = "FLOTILLA_KEEP_LOGS"

var (
	sandbox *framework.Sandbox
	fleet   *framework.Fleet
	logDir  string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	s, stop, err := framework.SetupSandbox(ctx, 2, os.Stderr)
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
	logDir, err = os.MkdirTemp("", "flotilla-fleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if os.Getenv(envKeepLogs) != "" {
		fmt.Fprintln(os.Stderr, "e2e: component logs in", logDir)
	} else {
		defer func() { _ = os.RemoveAll(logDir) }()
	}
	fleet, err = framework.StartFleet(ctx, s, 2, logDir)
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
	entries, _ := os.ReadDir(logDir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".log" {
			continue
		}
		p := &framework.Process{Name: e.Name(), Log: filepath.Join(logDir, e.Name())}
		fmt.Fprintf(os.Stderr, "==== last lines of %s\n%s\n", e.Name(), p.Tail(60))
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
