package framework

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// Component is a Flotilla binary that a test runs against the sandbox.
type Component struct {
	*Process
}

// StartComponent runs bin/<name> with args until the test ends; when the test
// fails, the tail of its log is printed.
func StartComponent(t testing.TB, name string, args ...string) *Component {
	t.Helper()
	binDir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{
		Name:   name,
		Binary: filepath.Join(binDir, name),
		Args:   args,
		Log:    filepath.Join(t.TempDir(), name+".log"),
	}
	if err := p.start(false); err != nil {
		t.Fatalf("%v (run `make build` first)", err)
	}
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("last lines of %s's log:\n%s", name, p.Tail(40))
		}
	})
	return &Component{Process: p}
}

// FreePort returns a loopback port that was free a moment ago and that no
// earlier call in this process returned (see freePorts).
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// Get fetches url (TLS certificates of loopback components are not checked)
// and returns the status code and body; it fails if the component has
// exited, with its log tail.
func (c *Component) Get(ctx context.Context, url, bearerToken string) (int, string, error) {
	if !c.Alive() {
		return 0, "", crashed(c.Process)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: insecureLoopbackTransport()}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body := make([]byte, 0, 1<<16)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		body = append(body, buf[:n]...)
		if err != nil || len(body) > 4<<20 {
			break
		}
	}
	return resp.StatusCode, string(body), nil
}

// Healthy is nil once url answers 200.
func (c *Component) Healthy(ctx context.Context, url string) error {
	code, body, err := c.Get(ctx, url, "")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d: %s", url, code, body)
	}
	return nil
}

// Stop stops the component (SIGTERM, then SIGKILL), as an outage or a
// restart would.
func (c *Component) Stop() { c.stop(10 * time.Second) }
