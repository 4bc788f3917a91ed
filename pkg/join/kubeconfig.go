package join

import (
	"fmt"
	"net/url"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Credentials are what a source needs to reach a target as the service
// account of its Source.
type Credentials struct {
	// Server is the target's API server URL as the source reaches it.
	Server string
	// CAData is the PEM bundle that verifies the server; none means the
	// system's roots.
	CAData []byte
	// TLSServerName, if set, is the name to verify the server's
	// certificate against.
	TLSServerName string
	// Token is the service account's bearer token.
	Token string
}

// BuildKubeconfig returns a self-contained kubeconfig (embedded CA and
// token, no files or plugins: what a Target's Secret may hold) with one
// cluster, user and context, all named name, the context current.
func BuildKubeconfig(name string, c Credentials) ([]byte, error) {
	if err := validateServer(c.Server); err != nil {
		return nil, err
	}
	if c.Token == "" {
		return nil, fmt.Errorf("no token")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAData, TLSServerName: c.TLSServerName}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: c.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}

// validateServer accepts an http(s) URL with a host.
func validateServer(server string) error {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("server %q is not an http(s) URL with a host, such as https://203.0.113.7:6443", server)
	}
	return nil
}

// chooseCA picks the CA that the source's kubeconfig trusts: the one that
// the user's kubeconfig trusts for the target; if that one skips TLS
// verification without a CA, the cluster's root CA that the token
// controller puts next to the token (never a kubeconfig that skips
// verification); otherwise none, for an API server with a publicly trusted
// certificate.
func chooseCA(kubeconfigCA []byte, insecure bool, tokenCA []byte) []byte {
	if len(kubeconfigCA) > 0 {
		return kubeconfigCA
	}
	if insecure {
		return tokenCA
	}
	return nil
}
