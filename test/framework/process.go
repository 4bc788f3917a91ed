package framework

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one sandbox process as recorded in the state file.
type Process struct {
	// Name is the component, e.g. "kube-apiserver".
	Name string `json:"name"`
	// Cluster is empty for the shared etcd.
	Cluster string   `json:"cluster,omitempty"`
	PID     int      `json:"pid"`
	Binary  string   `json:"binary"`
	Args    []string `json:"args"`
	Log     string   `json:"log"`

	// exited is closed when a process this one started has exited; nil for
	// processes read back from a state file.
	exited chan struct{} `json:"-"`
}

// ID names the process in messages: "target-1/kube-apiserver".
func (p *Process) ID() string {
	if p.Cluster == "" {
		return p.Name
	}
	return p.Cluster + "/" + p.Name
}

// start runs the process with its output appended to its log file. Each
// process leads its own process group so that stop also ends its children
// (kwok runs exec'd commands as children). Detached processes outlive the
// caller; the others are killed when it dies.
func (p *Process) start(detach bool) error {
	logFile, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening log of %s: %w", p.ID(), err)
	}
	defer func() { _ = logFile.Close() }() // the child has its own descriptor
	cmd := exec.Command(p.Binary, p.Args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = filepath.Dir(p.Log)
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.ID(), err)
	}
	p.PID = cmd.Process.Pid
	p.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// Alive reports whether the recorded PID is still this process (and not a
// zombie or a recycled PID running something else).
func (p *Process) Alive() bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	if p.PID <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	if string(argv0) != p.Binary {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// stop sends SIGTERM to the process group, waits up to grace for the
// process to go, then kills the group; with no grace it kills at once.
func (p *Process) stop(grace time.Duration) {
	if !p.Alive() {
		return
	}
	if grace > 0 {
		_ = syscall.Kill(-p.PID, syscall.SIGTERM)
		if p.waitGone(grace) {
			return
		}
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	p.waitGone(5 * time.Second)
}

func (p *Process) waitGone(timeout time.Duration) bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return true
		case <-time.After(timeout):
			return false
		}
	}
	// Not our child: it is reaped by init; watch /proc until it goes.
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return !p.Alive()
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	data, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CrashedError reports a sandbox process that exited on its own, with the
// tail of its log.
type CrashedError struct {
	Process string
	Log     string
	Tail    string
}

func (e *CrashedError) Error() string {
	return fmt.Sprintf("%s exited; last lines of %s:\n%s", e.Process, e.Log, indent(e.Tail))
}

func crashed(p *Process) error {
	return &CrashedError{Process: p.ID(), Log: p.Log, Tail: p.Tail(25)}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// Ports are picked below Linux's ephemeral range (32768-60999 by default),
// where the kernel also takes the source ports of outgoing connections: a
// port picked there and released can be taken by one of the sandbox's many
// client connections before its server binds it (seen starting 11 clusters).
const (
	portRangeLow  = 20000
	portRangeHigh = 32767
)

var (
	pickedMu sync.Mutex
	picked   = map[int]bool{}
)

// freePorts returns n distinct loopback ports that were free a moment ago
// and that no earlier call in this process returned.
func freePorts(n int) ([]int, error) {
	pickedMu.Lock()
	defer pickedMu.Unlock()
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 10000 {
			return nil, fmt.Errorf("finding a free port: none free in %d-%d", portRangeLow, portRangeHigh)
		}
		port := portRangeLow + rand.IntN(portRangeHigh-portRangeLow+1)
		if picked[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		listeners = append(listeners, l)
		picked[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// waitFor calls check until it succeeds, ctx ends or one of procs exits.
// It returns check's last error when the context ends first.
func waitFor(ctx context.Context, what string, procs []*Process, check func(context.Context) error) error {
	var last error
	for {
		for _, p := range procs {
			if !p.Alive() {
				return fmt.Errorf("waiting for %s: %w", what, crashed(p))
			}
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %w)", what, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var errNotYet = errors.New("not yet")

func itoa(i int) string { return strconv.Itoa(i) }

// insecureLoopbackTransport is for probing the health endpoints of
// kube-controller-manager and kube-scheduler on loopback, which serve with
// certificates they sign themselves.
func insecureLoopbackTransport() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback health probe of a self-signed endpoint
}

// FreePorts returns n loopback ports free at the time of the call.
func FreePorts(n int) ([]int, error) { return freePorts(n) }
