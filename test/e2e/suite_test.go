// Package e2e holds the end-to-end tests that run on the local sandbox: real
// kube-apiservers, controller managers, schedulers and kwok nodes on loopback.
// Set FLOTILLA_SANDBOX=.sandbox to reuse a sandbox from `make sandbox-up`;
// otherwise the suite starts its own and stops it at the end.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/flotilla-io/flotilla/test/framework"
)

var sandbox *framework.Sandbox

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
	sandbox = s
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the sandbox:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
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

// t0 is a context for cleanups and helpers that outlive a test's context.
func t0() context.Context { return context.Background() }
