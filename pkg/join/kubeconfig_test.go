package join

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestBuildKubeconfig(t *testing.T) {
	cases := []struct {
		name    string
		creds   Credentials
		want    *clientcmdapi.Cluster
		wantErr string
	}{
		{name: "CA and token", creds: Credentials{Server: "https://10.0.0.1:6443", CAData: []byte("PEM"), Token: "tok"},
			want: &clientcmdapi.Cluster{Server: "https://10.0.0.1:6443", CertificateAuthorityData: []byte("PEM")}},
		{name: "server name", creds: Credentials{Server: "https://172.18.0.3:6443", CAData: []byte("PEM"), TLSServerName: "kubernetes", Token: "tok"},
			want: &clientcmdapi.Cluster{Server: "https://172.18.0.3:6443", CertificateAuthorityData: []byte("PEM"), TLSServerName: "kubernetes"}},
		{name: "public CA", creds: Credentials{Server: "https://api.example.com", Token: "tok"},
			want: &clientcmdapi.Cluster{Server: "https://api.example.com"}},
		{name: "path prefix kept", creds: Credentials{Server: "https://rancher.example.com/k8s/clusters/c-1", Token: "tok"},
			want: &clientcmdapi.Cluster{Server: "https://rancher.example.com/k8s/clusters/c-1"}},
		{name: "no scheme", creds: Credentials{Server: "10.0.0.1:6443", Token: "tok"}, wantErr: "not an http(s) URL"},
		{name: "no host", creds: Credentials{Server: "https://", Token: "tok"}, wantErr: "not an http(s) URL"},
		{name: "no token", creds: Credentials{Server: "https://10.0.0.1:6443"}, wantErr: "no token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := BuildKubeconfig("eu", tc.creds)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := clientcmd.Load(data)
			if err != nil {
				t.Fatalf("not a kubeconfig: %v\n%s", err, data)
			}
			if got.CurrentContext != "eu" {
				t.Errorf("current context %q, want eu", got.CurrentContext)
			}
			if diff := cmp.Diff(&clientcmdapi.Context{Cluster: "eu", AuthInfo: "eu"}, got.Contexts["eu"], cmp.FilterPath(isExtensions, cmp.Ignore())); diff != "" {
				t.Errorf("context (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got.Clusters["eu"], cmp.FilterPath(isExtensions, cmp.Ignore())); diff != "" {
				t.Errorf("cluster (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(&clientcmdapi.AuthInfo{Token: tc.creds.Token}, got.AuthInfos["eu"], cmp.FilterPath(isExtensions, cmp.Ignore())); diff != "" {
				t.Errorf("user (-want,+got):\n%s", diff)
			}
			// What the source's target controller builds its client from.
			cfg, err := clientcmd.NewNonInteractiveClientConfig(*got, "", &clientcmd.ConfigOverrides{}, nil).ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.creds.Server || cfg.BearerToken != tc.creds.Token {
				t.Errorf("client config: host %q token %q", cfg.Host, cfg.BearerToken)
			}
		})
	}
}

func isExtensions(p cmp.Path) bool {
	return strings.HasSuffix(p.String(), "Extensions") || strings.HasSuffix(p.String(), "LocationOfOrigin")
}

func TestChooseCA(t *testing.T) {
	cases := []struct {
		name         string
		kubeconfigCA []byte
		insecure     bool
		tokenCA      []byte
		want         []byte
	}{
		{"the kubeconfig's CA", []byte("kc"), false, []byte("root"), []byte("kc")},
		{"the kubeconfig's CA even if insecure", []byte("kc"), true, []byte("root"), []byte("kc")},
		{"insecure without a CA: the cluster's root CA", nil, true, []byte("root"), []byte("root")},
		{"no CA: the system roots", nil, false, []byte("root"), nil},
	}
	for _, tc := range cases {
		if got := chooseCA(tc.kubeconfigCA, tc.insecure, tc.tokenCA); !cmp.Equal(tc.want, got) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// testCA returns a PEM certificate that client-go accepts as a CA.
func testCA(t *testing.T, name string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestClusterFromKubeconfig(t *testing.T) {
	dir := t.TempDir()
	hubCA, euCA := testCA(t, "hub"), testCA(t, "eu")
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, euCA, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["hub-cluster"] = &clientcmdapi.Cluster{Server: "https://hub:6443", CertificateAuthorityData: hubCA}
	cfg.Clusters["eu-cluster"] = &clientcmdapi.Cluster{Server: "https://eu:6443", CertificateAuthority: caFile}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["hub"] = &clientcmdapi.Context{Cluster: "hub-cluster", AuthInfo: "admin"}
	cfg.Contexts["eu"] = &clientcmdapi.Context{Cluster: "eu-cluster", AuthInfo: "admin"}
	cfg.CurrentContext = "hub"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	loader := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}

	cases := []struct {
		context             string
		wantContext, wantCl string
		wantServer, wantCA  string
		wantErr             string
	}{
		{context: "", wantContext: "hub", wantCl: "hub-cluster", wantServer: "https://hub:6443", wantCA: string(hubCA)},
		{context: "eu", wantContext: "eu", wantCl: "eu-cluster", wantServer: "https://eu:6443", wantCA: string(euCA)},
		{context: "us", wantErr: `context "us" not found in the kubeconfig (it has: eu, hub)`},
	}
	for _, tc := range cases {
		c, err := ClusterFromKubeconfig(loader, tc.context)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("context %q: error %v, want %q", tc.context, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("context %q: %v", tc.context, err)
		}
		if c.Context != tc.wantContext || c.Name != tc.wantCl || c.Config.Host != tc.wantServer {
			t.Errorf("context %q: got context %q, cluster %q, server %q", tc.context, c.Context, c.Name, c.Config.Host)
		}
		ca, _, err := clusterCA(c.Config)
		if err != nil || string(ca) != tc.wantCA {
			t.Errorf("context %q: CA %q (%v), want %q", tc.context, ca, err, tc.wantCA)
		}
	}

	if _, err := ClusterFromKubeconfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: filepath.Join(dir, "absent")}, "hub"); err == nil {
		t.Errorf("a kubeconfig that does not exist: no error")
	}
	if _, _, err := clusterCA(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(dir, "absent.crt")}}); err == nil {
		t.Errorf("a CA file that does not exist: no error")
	}
}
