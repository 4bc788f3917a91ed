package vk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/proxy"
	translator "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/flotilla-io/flotilla/pkg/remote"
)

var testTarget = remote.Key{Namespace: "ns", Name: "eu"}

// fakeTarget is a target's API server as far as the streams of one
// delegate pod go: its log subresource answers with logs, and its exec,
// attach and portforward subresources are proxied as kube-apiserver does
// (websocket translated or tunneled to SPDY) to a kubelet, virtual-kubelet's
// kubelet API with the delegate's handler funcs.
type fakeTarget struct {
	namespace, name string
	// logs answers the log subresource: a body, or an error status.
	logs func(query url.Values) (string, *apierrors.StatusError)
	// kubelet is the delegate's.
	kubelet api.PodHandlerConfig
	// refuseWebsocket answers websocket upgrades with 400, as a server
	// that only speaks SPDY.
	refuseWebsocket bool

	kubeletURL string
	mu         sync.Mutex
	// queries of the log requests, upgrades of the streaming requests
	// ("websocket" or "SPDY").
	queries  []url.Values
	upgrades []string
}

// recorded returns the queries of the log requests and the upgrades of
// the streaming requests so far.
func (f *fakeTarget) recorded() ([]url.Values, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values{}, f.queries...), append([]string{}, f.upgrades...)
}

// serve starts f and returns the delegate it serves.
func (f *fakeTarget) serve(t *testing.T) Delegate {
	kubelet := httptest.NewServer(api.PodHandler(f.kubelet, false))
	t.Cleanup(kubelet.Close)
	f.kubeletURL = kubelet.URL
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return Delegate{Target: testTarget, Config: &rest.Config{Host: srv.URL}, Namespace: f.namespace, Name: f.name}
}

func (f *fakeTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	prefix := fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/", f.namespace, f.name)
	sub, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, path(r.URL.Path)))
		return
	}
	q := r.URL.Query()
	if sub == "log" {
		f.mu.Lock()
		f.queries = append(f.queries, q)
		f.mu.Unlock()
		body, err := f.logs(q)
		if err != nil {
			writeStatus(w, err)
			return
		}
		_, _ = io.WriteString(w, body)
		return
	}
	upgrade := "SPDY"
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		upgrade = "websocket"
	}
	f.mu.Lock()
	f.upgrades = append(f.upgrades, upgrade)
	f.mu.Unlock()
	if upgrade == "websocket" && f.refuseWebsocket {
		http.Error(w, "websocket not supported", http.StatusBadRequest)
		return
	}
	// The kubelet's location, as kube-apiserver makes it.
	location, _ := url.Parse(f.kubeletURL)
	var handler http.Handler
	switch sub {
	case "exec", "attach":
		kq := url.Values{"command": q["command"]}
		for api, kubelet := range map[string]string{"stdin": "input", "stdout": "output", "stderr": "error", "tty": "tty"} {
			if q.Get(api) == "true" {
				kq.Set(kubelet, "1")
			}
		}
		location.Path = fmt.Sprintf("/%s/%s/%s/%s", sub, f.namespace, f.name, q.Get("container"))
		location.RawQuery = kq.Encode()
		opts := translator.Options{Stdin: q.Get("stdin") == "true", Stdout: q.Get("stdout") == "true",
			Stderr: q.Get("stderr") == "true", Tty: q.Get("tty") == "true"}
		handler = translator.NewTranslatingHandler(upgradeProxy(location),
			translator.NewStreamTranslatorHandler(location, nil, 0, opts), wsstream.IsWebSocketRequestWithStreamCloseProtocol)
	case "portforward":
		location.Path = fmt.Sprintf("/portForward/%s/%s", f.namespace, f.name)
		handler = translator.NewTranslatingHandler(upgradeProxy(location),
			translator.NewTunnelingHandler(upgradeProxy(location)), wsstream.IsWebSocketRequestWithTunnelingProtocol)
	default:
		http.NotFound(w, r)
		return
	}
	handler.ServeHTTP(w, r)
}

func upgradeProxy(location *url.URL) http.Handler {
	return proxy.NewUpgradeAwareHandler(location, nil, false, true, proxyErrors{})
}

type proxyErrors struct{}

func (proxyErrors) Error(w http.ResponseWriter, _ *http.Request, err error) {
	http.Error(w, err.Error(), http.StatusBadGateway)
}

func path(p string) string { return p[strings.LastIndex(p, "/")+1:] }

func writeStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	status := err.ErrStatus
	status.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(status.Code))
	_ = json.NewEncoder(w).Encode(status)
}

// kubelet serves the streams of delegates' proxy pods as the virtual
// nodes' kubelet endpoint does, without authentication.
func kubelet(t *testing.T, delegates Delegates) *httptest.Server {
	_, ctx := ktesting.NewTestContext(t)
	routes := api.PodHandler(NewStreams(delegates).PodHandlerConfig(time.Minute, 10*time.Second), false)
	srv := httptest.NewUnstartedServer(withRequestContext(routes))
	srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestContainerLogOptions(t *testing.T) {
	cases := []struct {
		name  string
		query string
		want  url.Values
	}{
		{name: "all", want: url.Values{}},
		{name: "tail 0 is no line", query: "tailLines=0", want: url.Values{"tailLines": {"0"}}},
		{name: "tail", query: "tailLines=20", want: url.Values{"tailLines": {"20"}}},
		{
			name: "flags", query: "follow=true&previous=true&timestamps=true",
			want: url.Values{"follow": {"true"}, "previous": {"true"}, "timestamps": {"true"}},
		},
		{name: "since seconds", query: "sinceSeconds=30", want: url.Values{"sinceSeconds": {"30"}}},
		{
			name: "since time", query: "sinceTime=2026-11-25T12:00:00Z",
			want: url.Values{"sinceTime": {"2026-11-25T12:00:00Z"}},
		},
		{name: "limit bytes", query: "limitBytes=100", want: url.Values{"limitBytes": {"100"}}},
		{name: "one stream", query: "stream=Stderr", want: url.Values{"stream": {"Stderr"}}},
		{name: "both streams is the default", query: "stream=All", want: url.Values{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := &fakeTarget{namespace: "default", name: "web-1234",
				logs: func(url.Values) (string, *apierrors.StatusError) { return "hello\n", nil }}
			srv := kubelet(t, staticDelegates{delegate: target.serve(t)})
			resp, err := http.Get(srv.URL + "/containerLogs/default/web/app?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "hello\n" {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, "hello\n")
			}
			want := url.Values{"container": {"app"}}
			for k, v := range tc.want {
				want[k] = v
			}
			queries, _ := target.recorded()
			if diff := cmp.Diff([]url.Values{want}, queries); diff != "" {
				t.Errorf("query of the target's log request (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestContainerLogErrors(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	cases := []struct {
		name       string
		resolveErr error
		targetErr  *apierrors.StatusError
		wantCode   int
		wantBody   string
	}{
		{
			name: "proxy pod not found", resolveErr: fmt.Errorf("pod default/web %w", ErrPodNotFound),
			wantCode: http.StatusNotFound, wantBody: "pod default/web not found",
		},
		{
			name: "not bound", resolveErr: fmt.Errorf("pod default/web is %w", ErrNotBound),
			wantCode: http.StatusBadRequest, wantBody: "pod default/web is not running in a target yet",
		},
		{
			name: "target unreachable", resolveErr: fmt.Errorf("pod default/web runs in target ns/eu, which is %w: Unreachable", ErrTargetUnreachable),
			wantCode: http.StatusInternalServerError, wantBody: "pod default/web runs in target ns/eu, which is unreachable: Unreachable",
		},
		{
			name: "delegate gone", targetErr: apierrors.NewNotFound(pods, "web-1234"),
			wantCode: http.StatusInternalServerError,
			wantBody: `reading the logs of container app of delegate pod default/web-1234 in target ns/eu: pods "web-1234" not found`,
		},
		{
			name: "unknown container", targetErr: apierrors.NewBadRequest("container app is not valid for pod web-1234"),
			wantCode: http.StatusBadRequest,
			wantBody: "reading the logs of container app of delegate pod default/web-1234 in target ns/eu: container app is not valid for pod web-1234",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := &fakeTarget{namespace: "default", name: "web-1234",
				logs: func(url.Values) (string, *apierrors.StatusError) { return "", tc.targetErr }}
			srv := kubelet(t, staticDelegates{delegate: target.serve(t), err: tc.resolveErr})
			resp, err := http.Get(srv.URL + "/containerLogs/default/web/app")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.HasSuffix(string(body), tc.wantBody) {
				t.Errorf("got %d %q, want %d ending with %q", resp.StatusCode, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// execURL is the kubelet URL of an exec or attach of container app of
// proxy pod default/web.
func execURL(t *testing.T, srv *httptest.Server, sub string, params url.Values) *url.URL {
	u, err := url.Parse(fmt.Sprintf("%s/%s/default/web/app?%s", srv.URL, sub, params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// fixedSizes is a terminal that is 120x40 and never resized after.
type fixedSizes struct {
	ctx  context.Context
	sent bool
}

func (f *fixedSizes) Next() *remotecommand.TerminalSize {
	if f.sent {
		<-f.ctx.Done()
		return nil
	}
	f.sent = true
	return &remotecommand.TerminalSize{Width: 120, Height: 40}
}

func TestExec(t *testing.T) {
	// run is the delegate's container: it says what it ran with and exits
	// with the code given as the command's last word.
	run := func(_ context.Context, _, _, container string, cmd []string, attach api.AttachIO) error {
		in := ""
		if attach.Stdin() != nil {
			b, _ := io.ReadAll(attach.Stdin())
			in = string(b)
		}
		if attach.TTY() {
			size := <-attach.Resize()
			fmt.Fprintf(attach.Stdout(), "tty %dx%d %s %q", size.Width, size.Height, container, cmd)
		} else {
			fmt.Fprintf(attach.Stdout(), "%s %q stdin=%q", container, cmd, in)
			fmt.Fprint(attach.Stderr(), "oops")
		}
		var code int
		if _, err := fmt.Sscan(cmd[len(cmd)-1], &code); err != nil {
			return err
		}
		if code != 0 {
			return utilexec.CodeExitError{Err: fmt.Errorf("exit %d", code), Code: code}
		}
		return nil
	}
	cases := []struct {
		name            string
		refuseWebsocket bool
		params          url.Values
		stdin           string
		tty             bool
		wantUpgrades    []string
		wantCode        int
		wantStdout      string
		wantStderr      string
	}{
		{
			name:         "non-zero exit code over websocket",
			params:       url.Values{"command": {"sh", "-c", "3"}, "input": {"1"}, "output": {"1"}, "error": {"1"}},
			stdin:        "data",
			wantUpgrades: []string{"websocket"}, wantCode: 3,
			wantStdout: `app ["sh" "-c" "3"] stdin="data"`, wantStderr: "oops",
		},
		{
			name:            "non-zero exit code over SPDY",
			refuseWebsocket: true,
			params:          url.Values{"command": {"false", "1"}, "output": {"1"}, "error": {"1"}},
			wantUpgrades:    []string{"websocket", "SPDY"}, wantCode: 1,
			wantStdout: `app ["false" "1"] stdin=""`, wantStderr: "oops",
		},
		{
			name:         "success",
			params:       url.Values{"command": {"true", "0"}, "output": {"1"}, "error": {"1"}},
			wantUpgrades: []string{"websocket"},
			wantStdout:   `app ["true" "0"] stdin=""`, wantStderr: "oops",
		},
		{
			name:         "terminal",
			params:       url.Values{"command": {"bash", "0"}, "input": {"1"}, "output": {"1"}, "tty": {"1"}},
			tty:          true,
			wantUpgrades: []string{"websocket"},
			wantStdout:   `tty 120x40 app ["bash" "0"]`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			target := &fakeTarget{namespace: "default", name: "web-1234", refuseWebsocket: tc.refuseWebsocket,
				kubelet: api.PodHandlerConfig{RunInContainer: run}}
			srv := kubelet(t, staticDelegates{delegate: target.serve(t)})
			exec, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: srv.URL}, http.MethodPost, execURL(t, srv, "exec", tc.params))
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			opts := remotecommand.StreamOptions{Stdout: &stdout, Tty: tc.tty}
			if tc.params.Get("input") == "1" {
				opts.Stdin = strings.NewReader(tc.stdin)
			}
			if tc.params.Get("error") == "1" {
				opts.Stderr = &stderr
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if tc.tty {
				opts.TerminalSizeQueue = &fixedSizes{ctx: ctx}
			}
			err = exec.StreamWithContext(ctx, opts)
			var exit utilexec.CodeExitError
			switch {
			case tc.wantCode == 0 && err != nil:
				t.Errorf("exec: %v", err)
			case tc.wantCode != 0 && (!errors.As(err, &exit) || exit.Code != tc.wantCode):
				t.Errorf("exec error = %#v, want exit code %d", err, tc.wantCode)
			}
			if stdout.String() != tc.wantStdout || stderr.String() != tc.wantStderr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tc.wantStdout, tc.wantStderr)
			}
			if _, upgrades := target.recorded(); !cmp.Equal(tc.wantUpgrades, upgrades) {
				diff := cmp.Diff(tc.wantUpgrades, upgrades)
				t.Errorf("upgrades of the target's exec (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestExecError(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	srv := kubelet(t, staticDelegates{err: fmt.Errorf("pod default/web runs in target ns/eu, which is %w: Unreachable", ErrTargetUnreachable)})
	params := url.Values{"command": {"date"}, "output": {"1"}}
	exec, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: srv.URL}, http.MethodPost, execURL(t, srv, "exec", params))
	if err != nil {
		t.Fatal(err)
	}
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard})
	want := "pod default/web runs in target ns/eu, which is unreachable: Unreachable"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("exec error = %v, want one that says %q", err, want)
	}
}

func TestAttach(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	attach := func(_ context.Context, _, _, container string, attach api.AttachIO) error {
		b, _ := io.ReadAll(attach.Stdin())
		fmt.Fprintf(attach.Stdout(), "attached to %s: %s", container, b)
		return nil
	}
	target := &fakeTarget{namespace: "default", name: "web-1234",
		kubelet: api.PodHandlerConfig{AttachToContainer: attach}}
	srv := kubelet(t, staticDelegates{delegate: target.serve(t)})
	params := url.Values{"input": {"1"}, "output": {"1"}}
	exec, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: srv.URL}, http.MethodPost, execURL(t, srv, "attach", params))
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("hi"), Stdout: &stdout}); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if want := "attached to app: hi"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
}

func TestPortForward(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ports := make(chan int32, 1)
	// The delegate's port echoes in upper case.
	forward := func(_ context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
		ports <- port
		b, err := io.ReadAll(stream)
		if err != nil {
			return err
		}
		_, err = stream.Write(bytes.ToUpper(b))
		return err
	}
	target := &fakeTarget{namespace: "default", name: "web-1234",
		kubelet: api.PodHandlerConfig{PortForward: forward}}
	srv := kubelet(t, staticDelegates{delegate: target.serve(t)})

	// kubectl port-forward, through the kubelet endpoint.
	cfg := &rest.Config{Host: srv.URL}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL + "/portForward/default/web")
	dialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddressesForStreamingWithContext(ctx, dialer, []string{"127.0.0.1"}, []string{"0:8080"}, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("port-forward: %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward: %v", err)
	}
	forwarded, err := pf.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", forwarded[0].Local))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, "ping"); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "PING" {
		t.Errorf("read %q through the forwarded port, want %q", got, "PING")
	}
	if port := <-ports; port != 8080 {
		t.Errorf("the delegate was asked for port %d, want 8080", port)
	}
	wantUpgrades := []string{"websocket"}
	if _, upgrades := target.recorded(); !cmp.Equal(wantUpgrades, upgrades) {
		diff := cmp.Diff(wantUpgrades, upgrades)
		t.Errorf("upgrades of the target's port-forward (-want,+got):\n%s", diff)
	}
}

func TestPortForwardError(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	refuse := func(context.Context, string, string, int32, io.ReadWriteCloser) error {
		return errors.New("dial tcp 127.0.0.1:8080: connection refused")
	}
	target := &fakeTarget{namespace: "default", name: "web-1234",
		kubelet: api.PodHandlerConfig{PortForward: refuse}}
	streams := NewStreams(staticDelegates{delegate: target.serve(t)})
	local, remote := net.Pipe()
	defer func() { _ = local.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := streams.PortForward(ctx, "default", "web", 8080, remote)
	for _, want := range []string{"forwarding port 8080 of delegate pod default/web-1234 in target ns/eu", "connection refused"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("PortForward() error = %v, want one that says %q", err, want)
		}
	}
}
