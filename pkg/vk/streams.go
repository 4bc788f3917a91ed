package vk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream"
)

// Streams serve the kubelet API of the virtual nodes: the logs, exec,
// attach and port-forward of a proxy pod are those of its delegate, streamed
// through the target's API server with the source's identity there.
type Streams struct {
	delegates Delegates
}

// NewStreams returns Streams that find delegates with delegates.
func NewStreams(delegates Delegates) *Streams {
	return &Streams{delegates: delegates}
}

// PodHandlerConfig is virtual-kubelet's configuration of the kubelet API
// routes, served by s.
func (s *Streams) PodHandlerConfig(streamIdleTimeout, streamCreationTimeout time.Duration) api.PodHandlerConfig {
	return api.PodHandlerConfig{
		GetContainerLogs:      s.ContainerLogs,
		RunInContainer:        s.Exec,
		AttachToContainer:     s.Attach,
		PortForward:           s.PortForward,
		StreamIdleTimeout:     streamIdleTimeout,
		StreamCreationTimeout: streamCreationTimeout,
	}
}

// ContainerLogs streams the logs of a container of the delegate of proxy
// pod namespace/pod.
func (s *Streams) ContainerLogs(ctx context.Context, namespace, pod, container string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	d, err := s.delegates.Delegate(ctx, namespace, pod)
	if err != nil {
		return nil, forHTTP(err)
	}
	client, err := corev1client.NewForConfig(streamingConfig(d.Config))
	if err != nil {
		return nil, fmt.Errorf("creating a client of target %s: %w", d.Target, err)
	}
	logs, err := client.Pods(d.Namespace).GetLogs(d.Name, podLogOptions(container, opts, requestQuery(ctx))).Stream(ctx)
	if err != nil {
		return nil, forHTTP(fmt.Errorf("reading the logs of container %s of %s: %w", container, d, err))
	}
	klog.FromContext(ctx).V(4).Info("Streaming logs", "pod", klog.KRef(namespace, pod), "container", container,
		"target", d.Target.String(), "delegate", klog.KRef(d.Namespace, d.Name))
	return logs, nil
}

// podLogOptions maps virtual-kubelet's log options to the target's.
// virtual-kubelet cannot tell tailLines=0 (no lines) from no tailLines (all
// lines) and drops the stream parameter, so the request's query, when known,
// says.
func podLogOptions(container string, opts api.ContainerLogOpts, query url.Values) *corev1.PodLogOptions {
	o := &corev1.PodLogOptions{
		Container:  container,
		Follow:     opts.Follow,
		Previous:   opts.Previous,
		Timestamps: opts.Timestamps,
	}
	if opts.Tail > 0 || query.Get("tailLines") != "" {
		o.TailLines = ptrInt64(int64(opts.Tail))
	}
	if opts.LimitBytes > 0 {
		o.LimitBytes = ptrInt64(int64(opts.LimitBytes))
	}
	if opts.SinceSeconds > 0 {
		o.SinceSeconds = ptrInt64(int64(opts.SinceSeconds))
	}
	if !opts.SinceTime.IsZero() {
		t := metav1.NewTime(opts.SinceTime)
		o.SinceTime = &t
	}
	if stream := query.Get("stream"); stream != "" && stream != corev1.LogStreamAll {
		o.Stream = &stream
	}
	return o
}

func ptrInt64(v int64) *int64 { return &v }

// Exec runs cmd in a container of the delegate of proxy pod namespace/pod.
// A command that exits non-zero returns client-go's exit error unchanged,
// from which virtual-kubelet tells kubectl the exit code.
func (s *Streams) Exec(ctx context.Context, namespace, pod, container string, cmd []string, attach api.AttachIO) error {
	d, err := s.delegates.Delegate(ctx, namespace, pod)
	if err != nil {
		return err
	}
	tty := attach.TTY()
	opts := &corev1.PodExecOptions{
		Container: container, Command: cmd, TTY: tty,
		Stdin: attach.Stdin() != nil, Stdout: attach.Stdout() != nil, Stderr: !tty && attach.Stderr() != nil,
	}
	klog.FromContext(ctx).V(4).Info("Exec", "pod", klog.KRef(namespace, pod), "container", container,
		"target", d.Target.String(), "delegate", klog.KRef(d.Namespace, d.Name))
	return remoteCommand(ctx, d, "exec", opts, attach, fmt.Sprintf("exec in container %s of %s", container, d))
}

// Attach attaches to a container of the delegate of proxy pod namespace/pod.
func (s *Streams) Attach(ctx context.Context, namespace, pod, container string, attach api.AttachIO) error {
	d, err := s.delegates.Delegate(ctx, namespace, pod)
	if err != nil {
		return err
	}
	tty := attach.TTY()
	opts := &corev1.PodAttachOptions{
		Container: container, TTY: tty,
		Stdin: attach.Stdin() != nil, Stdout: attach.Stdout() != nil, Stderr: !tty && attach.Stderr() != nil,
	}
	klog.FromContext(ctx).V(4).Info("Attach", "pod", klog.KRef(namespace, pod), "container", container,
		"target", d.Target.String(), "delegate", klog.KRef(d.Namespace, d.Name))
	return remoteCommand(ctx, d, "attach", opts, attach, fmt.Sprintf("attaching to container %s of %s", container, d))
}

// remoteCommand streams attach to the delegate's exec or attach
// subresource, over websocket or else SPDY, as kubectl does.
func remoteCommand(ctx context.Context, d Delegate, subresource string, params runtime.Object, attach api.AttachIO, what string) error {
	cfg := streamingConfig(d.Config)
	u, err := podURL(cfg, d, subresource, params)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	exec, err := newExecutor(cfg, u)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := remotecommand.StreamOptions{Tty: attach.TTY()}
	// Only the streams that were asked for: a nil io.WriteCloser stays a
	// nil io.Writer.
	if in := attach.Stdin(); in != nil {
		opts.Stdin = in
	}
	if out := attach.Stdout(); out != nil {
		opts.Stdout = out
	}
	if errOut := attach.Stderr(); errOut != nil && !opts.Tty {
		opts.Stderr = errOut
	}
	if sizes := attach.Resize(); sizes != nil && opts.Tty {
		opts.TerminalSizeQueue = sizeQueue{ctx: ctx, sizes: sizes}
	}
	err = exec.StreamWithContext(ctx, opts)
	// virtual-kubelet asserts utilexec.ExitError on the very error it gets
	// (no unwrapping) to report the exit code: pass it on unwrapped.
	var exit utilexec.ExitError
	if errors.As(err, &exit) {
		return exit
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// newExecutor is kubectl's executor: websocket, falling back to SPDY when
// the server cannot upgrade to websocket.
func newExecutor(cfg *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	spdyExec, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		return nil, fmt.Errorf("creating a SPDY executor: %w", err)
	}
	// Websocket requires GET (RFC 6455 4.1).
	wsExec, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
	if err != nil {
		return nil, fmt.Errorf("creating a websocket executor: %w", err)
	}
	return remotecommand.NewFallbackExecutor(wsExec, spdyExec, shouldFallback)
}

func shouldFallback(err error) bool {
	return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
}

// sizeQueue hands terminal resizes over to client-go until ctx ends.
type sizeQueue struct {
	ctx   context.Context
	sizes <-chan api.TermSize
}

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case s, ok := <-q.sizes:
		if !ok {
			return nil
		}
		return &remotecommand.TerminalSize{Width: s.Width, Height: s.Height}
	case <-q.ctx.Done():
		return nil
	}
}

// PortForward forwards stream to port of the delegate of proxy pod
// namespace/pod, over one port-forward connection to the target's API
// server (websocket tunneling, falling back to SPDY, as kubectl does).
func (s *Streams) PortForward(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error {
	d, err := s.delegates.Delegate(ctx, namespace, pod)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("forwarding port %d of %s", port, d)
	logger := klog.FromContext(ctx).WithValues("pod", klog.KRef(namespace, pod), "port", port,
		"target", d.Target.String(), "delegate", klog.KRef(d.Namespace, d.Name))
	cfg := streamingConfig(d.Config)
	u, err := podURL(cfg, d, "portforward", nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	dialer, err := newPortForwardDialer(logger, cfg, u)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = conn.Close() }()
	logger.V(4).Info("Forwarding port")
	return forward(ctx, conn, port, stream, what)
}

func newPortForwardDialer(logger klog.Logger, cfg *rest.Config, u *url.URL) (httpstream.Dialer, error) {
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a SPDY round tripper: %w", err)
	}
	spdyDialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	tunneling, err := portforward.NewSPDYOverWebsocketDialerForStreamingWithLogger(logger, u, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a websocket dialer: %w", err)
	}
	return portforward.NewFallbackDialerForStreaming(tunneling, spdyDialer, shouldFallback), nil
}

// forward copies between local and one port-forward request on conn, as
// kubectl's PortForwarder.handleConnection does: an error stream and a data
// stream with the same headers; what the error stream says is the error.
// It returns when the remote side is done or local fails.
func forward(ctx context.Context, conn httpstream.Connection, port int32, local io.ReadWriteCloser, what string) error {
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errorStream, err := conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("%s: creating the error stream: %w", what, err)
	}
	// Nothing is written to the error stream.
	_ = errorStream.Close()
	defer conn.RemoveStreams(errorStream)
	type readResult struct {
		message []byte
		err     error
	}
	errorRead := make(chan readResult, 1)
	go func() {
		message, err := io.ReadAll(errorStream)
		errorRead <- readResult{message: message, err: err}
	}()

	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	dataStream, err := conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("%s: creating the data stream: %w", what, err)
	}
	defer conn.RemoveStreams(dataStream)

	remoteDone := make(chan error, 1)
	localFailed := make(chan error, 1)
	go func() {
		_, err := io.Copy(local, dataStream)
		remoteDone <- err
	}()
	go func() {
		// Tell the target that nothing more will be sent.
		defer func() { _ = dataStream.Close() }()
		if _, err := io.Copy(dataStream, local); err != nil && !isClosed(err) {
			localFailed <- err
		}
	}()

	var copyErr error
	select {
	case err := <-remoteDone:
		if err != nil && !isClosed(err) {
			copyErr = fmt.Errorf("copying from the target: %w", err)
		}
	case err := <-localFailed:
		copyErr = fmt.Errorf("copying to the target: %w", err)
	case <-ctx.Done():
		// Closing conn (deferred) ends everything.
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	// Discard what is left to send before waiting on the error stream,
	// which it could otherwise hold up.
	_ = dataStream.Reset()

	res := <-errorRead
	switch {
	case len(res.message) > 0:
		return fmt.Errorf("%s: %s", what, res.message)
	case res.err != nil && !isClosed(res.err):
		return fmt.Errorf("%s: reading the error stream: %w", what, res.err)
	case copyErr != nil:
		return fmt.Errorf("%s: %w", what, copyErr)
	}
	return nil
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		strings.Contains(strings.ToLower(err.Error()), "use of closed network connection")
}

// podURL is the URL of a subresource of the delegate pod, with params.
func podURL(cfg *rest.Config, d Delegate, subresource string, params runtime.Object) (*url.URL, error) {
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a client of target %s: %w", d.Target, err)
	}
	req := client.RESTClient().Post().Namespace(d.Namespace).Resource("pods").Name(d.Name).SubResource(subresource)
	if params != nil {
		req = req.VersionedParams(params, scheme.ParameterCodec)
	}
	return req.URL(), nil
}

// streamingConfig is cfg for streams: no client timeout, which would cut
// them short.
func streamingConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 0
	return cfg
}

// forHTTP makes err one that virtual-kubelet answers with the right
// status: 404 for a pod the source does not have, 400 for a pod that has no
// delegate and for what the target calls a bad request (such as an unknown
// container), 500 otherwise. kube-apiserver passes the message of a 400 or
// 500 on to kubectl, not that of a 404 or 503.
func forHTTP(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrPodNotFound):
		return errdefs.AsNotFound(err)
	case errors.Is(err, ErrNotProxy), errors.Is(err, ErrNotBound), apierrors.IsBadRequest(err):
		return errdefs.AsInvalidInput(err)
	}
	return err
}
