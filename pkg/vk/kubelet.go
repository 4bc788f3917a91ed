package vk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Defaults of KubeletOptions.
const (
	DefaultKubeletListenAddress = ":10250"
	// DefaultStreamIdleTimeout is the kubelet's default
	// (--streaming-connection-idle-timeout).
	DefaultStreamIdleTimeout = 4 * time.Hour
	// DefaultStreamCreationTimeout is the kubelet's.
	DefaultStreamCreationTimeout = 30 * time.Second
)

// KubeletOptions configure the kubelet endpoint of the virtual nodes.
type KubeletOptions struct {
	// ListenAddress is host:port to listen on (DefaultKubeletListenAddress
	// when empty).
	ListenAddress string
	// CertFile and KeyFile hold the serving certificate and key (PEM),
	// reloaded when they change. When empty, a self-signed certificate for
	// NodeIP is made at start: kube-apiserver accepts it only if it does not
	// verify kubelets (no --kubelet-certificate-authority).
	CertFile, KeyFile string
	// NodeIP is the virtual nodes' InternalIP, the IP SAN of the
	// self-signed certificate.
	NodeIP string
	// ClientCAFile holds the CAs (PEM) of the client certificate that
	// kube-apiserver presents to kubelets (--kubelet-client-certificate).
	// ClientCA holds them instead (e.g. read from the cluster's
	// extension-apiserver-authentication ConfigMap). One is required.
	ClientCAFile string
	ClientCA     []byte
	// StreamIdleTimeout and StreamCreationTimeout bound exec, attach and
	// port-forward (DefaultStreamIdleTimeout and
	// DefaultStreamCreationTimeout when zero).
	StreamIdleTimeout, StreamCreationTimeout time.Duration
}

// KubeletServer serves the kubelet API of the virtual nodes, for
// kube-apiserver: logs, exec, attach and port-forward of proxy pods, from
// their delegates (see Streams). Like a kubelet with webhook authorization,
// it authenticates the client certificate and authorizes its user with a
// SubjectAccessReview in the source. It is a controller-runtime Runnable.
type KubeletServer struct {
	opts    KubeletOptions
	handler http.Handler
	tls     *tls.Config
	// certs reloads CertFile and KeyFile; nil for a self-signed
	// certificate.
	certs *certwatcher.CertWatcher
}

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=pods;nodes,verbs=get

// NewKubeletServer returns a KubeletServer that finds delegates with
// delegates and authorizes requests with reviews (the source's
// SubjectAccessReviews).
func NewKubeletServer(opts KubeletOptions, delegates Delegates, reviews authorizationv1client.SubjectAccessReviewInterface) (*KubeletServer, error) {
	if opts.ListenAddress == "" {
		opts.ListenAddress = DefaultKubeletListenAddress
	}
	if opts.StreamIdleTimeout <= 0 {
		opts.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if opts.StreamCreationTimeout <= 0 {
		opts.StreamCreationTimeout = DefaultStreamCreationTimeout
	}
	caPEM, source := opts.ClientCA, "given"
	if opts.ClientCAFile != "" {
		var err error
		if caPEM, err = os.ReadFile(opts.ClientCAFile); err != nil {
			return nil, fmt.Errorf("reading the kubelet client CA: %w", err)
		}
		source = opts.ClientCAFile
	}
	if len(caPEM) == 0 {
		return nil, errors.New("the kubelet endpoint needs a client CA, to authenticate kube-apiserver")
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in the kubelet client CA (%s)", source)
	}
	var err error
	s := &KubeletServer{opts: opts}
	s.tls = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The TLS layer verifies a certificate if there is one; the
		// handler answers 401 to a request without.
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  clientCAs,
	}
	switch {
	case opts.CertFile != "" && opts.KeyFile != "":
		s.certs, err = certwatcher.New(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the kubelet serving certificate: %w", err)
		}
		s.tls.GetCertificate = s.certs.GetCertificate
	case opts.CertFile != "" || opts.KeyFile != "":
		return nil, errors.New("the kubelet serving certificate needs both a certificate and a key file")
	default:
		cert, err := selfSignedCertificate(opts.NodeIP, time.Now())
		if err != nil {
			return nil, err
		}
		s.tls.Certificates = []tls.Certificate{cert}
	}
	streams := NewStreams(delegates)
	routes := api.PodHandler(streams.PodHandlerConfig(opts.StreamIdleTimeout, opts.StreamCreationTimeout), false)
	s.handler = withRequestContext(authorize(reviews, routes))
	return s, nil
}

// NeedLeaderElection is true: only the leader connects to targets, so only
// it can find delegates (and its address is the virtual nodes').
func (s *KubeletServer) NeedLeaderElection() bool { return true }

// Start serves until ctx ends.
func (s *KubeletServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.ListenAddress)
	if err != nil {
		return fmt.Errorf("listening for the kubelet endpoint: %w", err)
	}
	return s.serve(ctx, ln)
}

func (s *KubeletServer) serve(ctx context.Context, ln net.Listener) error {
	logger := klog.FromContext(ctx).WithName("kubelet")
	ctx = klog.NewContext(ctx, logger)
	if s.certs != nil {
		go func() {
			if err := s.certs.Start(ctx); err != nil {
				logger.Error(err, "Watching the kubelet serving certificate")
			}
		}()
	}
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          klog.NewStandardLogger("INFO"),
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			logger.Error(err, "Shutting down the kubelet endpoint")
		}
	}()
	logger.Info("Serving the kubelet API of virtual nodes", "address", ln.Addr().String())
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the kubelet endpoint: %w", err)
	}
	return nil
}

type queryKey struct{}

// withRequestContext gives handlers a logger with the request and the
// request's query (see requestQuery).
func withRequestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		logger := klog.FromContext(ctx).WithValues("method", r.Method, "path", r.URL.Path)
		ctx = klog.NewContext(context.WithValue(ctx, queryKey{}, r.URL.Query()), logger)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestQuery is the query of the request that ctx belongs to, or nil.
func requestQuery(ctx context.Context) url.Values {
	q, _ := ctx.Value(queryKey{}).(url.Values)
	return q
}

// authorize lets a request through to next only from a verified client
// certificate (401 otherwise) whose user may use the nodes' proxy
// subresource in the source (403 otherwise): the user is the certificate's
// CommonName, its groups its Organizations, as for kube-apiserver.
func authorize(reviews authorizationv1client.SubjectAccessReviewInterface, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		logger := klog.FromContext(ctx)
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			logger.V(4).Info("Unauthenticated request")
			http.Error(w, "Unauthorized: a client certificate signed by the kubelet client CA is required", http.StatusUnauthorized)
			return
		}
		cert := r.TLS.VerifiedChains[0][0]
		user := cert.Subject.CommonName
		groups := append(append([]string{}, cert.Subject.Organization...), "system:authenticated")
		attrs := &authorizationv1.ResourceAttributes{Verb: verbOf(r), Resource: "nodes", Subresource: "proxy"}
		review, err := reviews.Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: attrs},
		}, metav1.CreateOptions{})
		if err != nil {
			logger.Error(err, "Authorizing a request", "user", user)
			http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource=proxy): %v", user, attrs.Verb, err),
				http.StatusInternalServerError)
			return
		}
		if !review.Status.Allowed {
			msg := fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=proxy)", user, attrs.Verb)
			if reason := review.Status.Reason; reason != "" {
				msg += ": " + reason
			}
			logger.V(2).Info("Forbidden request", "user", user, "verb", attrs.Verb)
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(klog.NewContext(ctx, logger.WithValues("user", user))))
	})
}

// verbOf is the verb to authorize r with: create for exec, attach and
// port-forward whatever the method (a websocket upgrade is a GET), else
// the method's verb, as a kubelet does.
func verbOf(r *http.Request) string {
	for _, streaming := range []string{"/exec/", "/attach/", "/portForward/"} {
		if strings.HasPrefix(r.URL.Path, streaming) {
			return "create"
		}
	}
	switch r.Method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "get"
}

// selfSignedCertificate is a serving certificate for ip (if any) and
// localhost, valid for a year from now.
func selfSignedCertificate(ip string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating a serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "flotilla-virtual-kubelet"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
	}
	if ip != "" {
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return tls.Certificate{}, fmt.Errorf("node IP %q is not an IP address", ip)
		}
		tmpl.IPAddresses = []net.IP{parsed}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signing the kubelet serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing the self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
