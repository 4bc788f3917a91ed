package framework

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func shellProcess(t *testing.T, script string) *Process {
	t.Helper()
	return &Process{Name: "sh", Binary: "/bin/sh", Args: []string{"-c", script}, Log: filepath.Join(t.TempDir(), "sh.log")}
}

// A component that dies while the sandbox waits for it fails the wait with
// the tail of its log, instead of a bare timeout.
func TestWaitForReportsCrashWithLogTail(t *testing.T) {
	p := shellProcess(t, "echo starting; echo 'fatal: port already in use' >&2; exit 3")
	if err := p.start(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := waitFor(ctx, "the component", []*Process{p}, func(context.Context) error { return errNotYet })
	var crash *CrashedError
	if !errors.As(err, &crash) {
		t.Fatalf("waitFor() = %v, want a CrashedError", err)
	}
	if !strings.Contains(err.Error(), "fatal: port already in use") || !strings.Contains(err.Error(), "starting") {
		t.Errorf("error does not show the log tail:\n%v", err)
	}
}

// Stopping a process ends its whole process group (kwok runs exec'd
// commands as children) and leaves nothing running.
func TestStopEndsProcessGroup(t *testing.T) {
	childPID := filepath.Join(t.TempDir(), "child.pid")
	p := shellProcess(t, "sleep 300 & echo $! > "+childPID+"; wait")
	if err := p.start(false); err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		data, _ := os.ReadFile(childPID)
		child, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		time.Sleep(20 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("child never started")
	}
	if !p.Alive() {
		t.Fatal("process not alive after start")
	}
	p.stop(5 * time.Second)
	if p.Alive() {
		t.Error("process still alive after stop")
	}
	sleeper := &Process{PID: child, Binary: "sleep"}
	deadline = time.Now().Add(5 * time.Second)
	for sleeper.Alive() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if sleeper.Alive() {
		t.Errorf("child %d survived its group's stop", child)
	}
}

// A PID read back from a state file counts as alive only while it still
// runs the recorded binary: a recycled PID is not ours.
func TestAliveChecksRecordedBinary(t *testing.T) {
	self := &Process{PID: os.Getpid()}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmdline, _ := os.ReadFile("/proc/self/cmdline")
	argv0 := strings.SplitN(string(cmdline), "\x00", 2)[0]
	cases := []struct {
		binary string
		want   bool
	}{
		{argv0, true},
		{"/usr/bin/some-other-program", false},
	}
	for _, tc := range cases {
		self.Binary = tc.binary
		if got := self.Alive(); got != tc.want {
			t.Errorf("Alive() with binary %q (exe %s) = %t, want %t", tc.binary, exe, got, tc.want)
		}
	}
	if (&Process{PID: 0, Binary: argv0}).Alive() {
		t.Error("PID 0 counts as alive")
	}
}
