package target

import (
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

func kubeconfig(t *testing.T, mutate func(*clientcmdapi.Config)) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["t"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: []byte("ca")}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "secret-token"}
	cfg.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "t", AuthInfo: "u"}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "t", AuthInfo: "u"}
	cfg.CurrentContext = "ctx"
	if mutate != nil {
		mutate(cfg)
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRestConfigFromKubeconfig(t *testing.T) {
	cases := []struct {
		name        string
		data        []byte
		context     string
		wantReason  string
		wantMessage string
	}{
		{name: "current context", data: kubeconfig(t, nil)},
		{name: "named context", data: kubeconfig(t, nil), context: "other"},
		{name: "not YAML", data: []byte("{{{ not a kubeconfig"), wantReason: multiclusterv1alpha1.ReasonKubeconfigInvalid, wantMessage: "is not a valid kubeconfig"},
		{name: "missing context", data: kubeconfig(t, nil), context: "nope", wantReason: multiclusterv1alpha1.ReasonContextNotFound, wantMessage: `no context "nope" (it has: ctx, other)`},
		{name: "no current context", data: kubeconfig(t, func(c *clientcmdapi.Config) { c.CurrentContext = "" }),
			wantReason: multiclusterv1alpha1.ReasonKubeconfigInvalid, wantMessage: "has no current-context"},
		{name: "undefined cluster", data: kubeconfig(t, func(c *clientcmdapi.Config) { c.Contexts["ctx"].Cluster = "ghost" }),
			wantReason: multiclusterv1alpha1.ReasonKubeconfigInvalid, wantMessage: `names cluster "ghost"`},
		{name: "CA file", data: kubeconfig(t, func(c *clientcmdapi.Config) {
			c.Clusters["t"].CertificateAuthorityData = nil
			c.Clusters["t"].CertificateAuthority = "/etc/ca.crt"
		}), wantReason: multiclusterv1alpha1.ReasonKubeconfigInvalid, wantMessage: "embed it as certificate-authority-data"},
		{name: "token file", data: kubeconfig(t, func(c *clientcmdapi.Config) {
			c.AuthInfos["u"] = &clientcmdapi.AuthInfo{TokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token"}
		}), wantReason: multiclusterv1alpha1.ReasonKubeconfigInvalid, wantMessage: "refers to the token file"},
		{name: "exec plugin", data: kubeconfig(t, func(c *clientcmdapi.Config) {
			c.AuthInfos["u"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{Command: "sh", APIVersion: "client.authentication.k8s.io/v1"}}
		}), wantReason: multiclusterv1alpha1.ReasonKubeconfigInvalid, wantMessage: "exec credential plugin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, fp, cerr := restConfigFromKubeconfig(tc.data, tc.context, `key "config" of secret ns/kc`)
			if tc.wantReason == "" {
				if cerr != nil {
					t.Fatalf("unexpected error: %v", cerr)
				}
				if cfg.Host != "https://127.0.0.1:6443" || cfg.BearerToken != "secret-token" || fp == "" {
					t.Errorf("config = host %q token %q fingerprint %q", cfg.Host, cfg.BearerToken, fp)
				}
				return
			}
			if cerr == nil || cerr.Reason != tc.wantReason || !strings.Contains(cerr.Message, tc.wantMessage) {
				t.Fatalf("error = %v, want reason %s and a message containing %q", cerr, tc.wantReason, tc.wantMessage)
			}
			if strings.Contains(cerr.Message, "secret-token") {
				t.Errorf("message leaks the token: %s", cerr.Message)
			}
		})
	}

	// The fingerprint changes with the data and the context, not otherwise.
	_, a, _ := restConfigFromKubeconfig(kubeconfig(t, nil), "", "x")
	_, b, _ := restConfigFromKubeconfig(kubeconfig(t, nil), "", "x")
	_, c, _ := restConfigFromKubeconfig(kubeconfig(t, nil), "other", "x")
	_, d, _ := restConfigFromKubeconfig(kubeconfig(t, func(c *clientcmdapi.Config) { c.AuthInfos["u"].Token = "rotated" }), "", "x")
	if a != b || a == c || a == d {
		t.Errorf("fingerprints: same=%t, other context differs=%t, rotated token differs=%t", a == b, a != c, a != d)
	}
}

func TestCheckExcludedLabels(t *testing.T) {
	if err := checkExcludedLabels(nil); err != nil {
		t.Errorf("nil: %v", err)
	}
	if err := checkExcludedLabels(ptr.To(`^node\.kubernetes\.io/`)); err != nil {
		t.Errorf("valid: %v", err)
	}
	err := checkExcludedLabels(ptr.To(`([`))
	if err == nil || err.Reason != multiclusterv1alpha1.ReasonInvalidSpec || !strings.Contains(err.Message, "spec.excludedLabelsRegexp") {
		t.Errorf("invalid: %v", err)
	}
}
