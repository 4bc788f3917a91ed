package vk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
)

// reviewer is a source's SubjectAccessReview API that allows the users in
// allowed and records the reviews.
func reviewer(allowed map[string]bool, fail error) (*fake.Clientset, *[]authorizationv1.SubjectAccessReviewSpec) {
	var specs []authorizationv1.SubjectAccessReviewSpec
	client := fake.NewClientset()
	client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		specs = append(specs, review.Spec)
		if fail != nil {
			return true, nil, fail
		}
		review.Status.Allowed = allowed[review.Spec.User]
		if !review.Status.Allowed {
			review.Status.Reason = "no RBAC policy matched"
		}
		return true, review, nil
	})
	return client, &specs
}

func TestAuthorize(t *testing.T) {
	apiserver := &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}}
	intruder := &x509.Certificate{Subject: pkix.Name{CommonName: "mallory"}}
	verified := func(cert *x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
	}
	apiserverReview := func(verb string) []authorizationv1.SubjectAccessReviewSpec {
		return []authorizationv1.SubjectAccessReviewSpec{{
			User: "kube-apiserver-kubelet-client", Groups: []string{"system:masters", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: "nodes", Subresource: "proxy"},
		}}
	}
	cases := []struct {
		name        string
		method      string
		path        string
		tls         *tls.ConnectionState
		reviewErr   error
		wantCode    int
		wantBody    string
		wantReviews []authorizationv1.SubjectAccessReviewSpec
	}{
		{
			name: "no TLS", method: http.MethodGet, path: "/containerLogs/default/web/app",
			wantCode: http.StatusUnauthorized, wantBody: "Unauthorized",
		},
		{
			name: "no client certificate", method: http.MethodGet, path: "/containerLogs/default/web/app", tls: &tls.ConnectionState{},
			wantCode: http.StatusUnauthorized, wantBody: "Unauthorized",
		},
		{
			name: "denied", method: http.MethodPost, path: "/exec/default/web/app", tls: verified(intruder),
			wantCode: http.StatusForbidden,
			wantBody: "Forbidden (user=mallory, verb=create, resource=nodes, subresource=proxy): no RBAC policy matched",
			wantReviews: []authorizationv1.SubjectAccessReviewSpec{{
				User: "mallory", Groups: []string{"system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Resource: "nodes", Subresource: "proxy"},
			}},
		},
		{
			name: "logs allowed", method: http.MethodGet, path: "/containerLogs/default/web/app", tls: verified(apiserver),
			wantCode: http.StatusTeapot, wantReviews: apiserverReview("get"),
		},
		{
			name: "exec allowed", method: http.MethodPost, path: "/exec/default/web/app", tls: verified(apiserver),
			wantCode: http.StatusTeapot, wantReviews: apiserverReview("create"),
		},
		{
			// A websocket upgrade is a GET, but exec is create all the same.
			name: "websocket exec is create", method: http.MethodGet, path: "/exec/default/web/app", tls: verified(apiserver),
			wantCode: http.StatusTeapot, wantReviews: apiserverReview("create"),
		},
		{
			name: "attach allowed", method: http.MethodGet, path: "/attach/default/web/app", tls: verified(apiserver),
			wantCode: http.StatusTeapot, wantReviews: apiserverReview("create"),
		},
		{
			name: "port-forward allowed", method: http.MethodGet, path: "/portForward/default/web", tls: verified(apiserver),
			wantCode: http.StatusTeapot, wantReviews: apiserverReview("create"),
		},
		{
			name: "review failed", method: http.MethodGet, path: "/containerLogs/default/web/app", tls: verified(apiserver),
			reviewErr: errors.New("etcd is down"),
			wantCode:  http.StatusInternalServerError, wantBody: "etcd is down", wantReviews: apiserverReview("get"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			client, reviews := reviewer(map[string]bool{"kube-apiserver-kubelet-client": true}, tc.reviewErr)
			next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
			req := httptest.NewRequestWithContext(ctx, tc.method, tc.path, nil)
			req.TLS = tc.tls
			rec := httptest.NewRecorder()
			authorize(client.AuthorizationV1().SubjectAccessReviews(), next).ServeHTTP(rec, req)
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("got %d %q, want %d with %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
			if diff := cmp.Diff(tc.wantReviews, *reviews); diff != "" {
				t.Errorf("SubjectAccessReviews (-want,+got):\n%s", diff)
			}
		})
	}
}

// testCA issues client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) client(t *testing.T, user string, groups ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: user, Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestKubeletServer(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	ca := newTestCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	reviews, _ := reviewer(map[string]bool{"kube-apiserver-kubelet-client": true}, nil)
	delegates := staticDelegates{err: fmt.Errorf("pod default/web %w", ErrPodNotFound)}
	s, err := NewKubeletServer(KubeletOptions{NodeIP: "127.0.0.1", ClientCAFile: caFile}, delegates,
		reviews.AuthorizationV1().SubjectAccessReviews())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	// The client trusts the self-signed serving certificate, which must be
	// for the node's IP.
	serving := x509.NewCertPool()
	serving.AddCert(s.tls.Certificates[0].Leaf)
	url := "https://" + ln.Addr().String() + "/containerLogs/default/web/app"
	cases := []struct {
		name     string
		certs    []tls.Certificate
		wantCode int
		wantBody string
	}{
		{name: "no client certificate", wantCode: http.StatusUnauthorized, wantBody: "Unauthorized"},
		{
			name: "allowed", certs: []tls.Certificate{ca.client(t, "kube-apiserver-kubelet-client", "system:masters")},
			// Through to the streams: the pod is not there.
			wantCode: http.StatusNotFound, wantBody: "pod default/web not found",
		},
		{
			name: "denied", certs: []tls.Certificate{ca.client(t, "mallory")},
			wantCode: http.StatusForbidden, wantBody: "Forbidden (user=mallory, verb=get, resource=nodes, subresource=proxy)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: serving, Certificates: tc.certs, MinVersion: tls.VersionTLS12,
			}}}
			resp, err := client.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("got %d %q, want %d with %q", resp.StatusCode, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

func TestNewKubeletServerErrors(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, newTestCA(t).pem, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts KubeletOptions
		want string
	}{
		{name: "no client CA", opts: KubeletOptions{}, want: "needs a client CA"},
		{name: "client CA missing", opts: KubeletOptions{ClientCAFile: filepath.Join(dir, "nope")}, want: "reading the kubelet client CA"},
		{name: "client CA not PEM", opts: KubeletOptions{ClientCAFile: notPEM}, want: "no certificate in the kubelet client CA"},
		{name: "certificate without key", opts: KubeletOptions{ClientCAFile: caFile, CertFile: caFile}, want: "both a certificate and a key file"},
		{name: "node IP not an IP", opts: KubeletOptions{ClientCAFile: caFile, NodeIP: "node-1"}, want: `node IP "node-1" is not an IP address`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reviews, _ := reviewer(nil, nil)
			_, err := NewKubeletServer(tc.opts, staticDelegates{}, reviews.AuthorizationV1().SubjectAccessReviews())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewKubeletServer() error = %v, want one that says %q", err, tc.want)
			}
		})
	}
}

func TestSelfSignedCertificate(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cert, err := selfSignedCertificate("10.0.0.7", now)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	for _, name := range []string{"10.0.0.7", "localhost"} {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("the certificate does not serve %s: %v", name, err)
		}
	}
	if _, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("private key is %T, want ECDSA", cert.PrivateKey)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "10.0.0.8", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("the certificate serves 10.0.0.8")
	}
}
