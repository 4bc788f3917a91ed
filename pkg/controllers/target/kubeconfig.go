package target

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// configError is a problem with a target's configuration, as a Ready
// condition's reason and message.
type configError struct {
	Reason  string
	Message string
}

func (e *configError) Error() string { return e.Reason + ": " + e.Message }

// restConfigFromKubeconfig builds a client configuration from a kubeconfig
// held in a Secret. Only self-contained kubeconfigs are accepted: file
// references, exec and auth-provider plugins would make the controller read
// its own disk or run programs on behalf of whoever can write the Secret.
func restConfigFromKubeconfig(data []byte, contextName, where string) (*rest.Config, string, *configError) {
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, "", &configError{multiclusterv1alpha1.ReasonKubeconfigInvalid,
			fmt.Sprintf("%s is not a valid kubeconfig: %v", where, err)}
	}
	if contextName == "" {
		contextName = kc.CurrentContext
		if contextName == "" {
			return nil, "", &configError{multiclusterv1alpha1.ReasonKubeconfigInvalid,
				fmt.Sprintf("the kubeconfig in %s has no current-context: name one in spec.kubeconfigSecret.context", where)}
		}
	}
	kctx, ok := kc.Contexts[contextName]
	if !ok {
		have := make([]string, 0, len(kc.Contexts))
		for name := range kc.Contexts {
			have = append(have, name)
		}
		slices.Sort(have)
		return nil, "", &configError{multiclusterv1alpha1.ReasonContextNotFound,
			fmt.Sprintf("the kubeconfig in %s has no context %q (it has: %s)", where, contextName, strings.Join(have, ", "))}
	}
	if err := selfContained(kc, kctx); err != nil {
		return nil, "", &configError{multiclusterv1alpha1.ReasonKubeconfigInvalid,
			fmt.Sprintf("the kubeconfig in %s %v", where, err)}
	}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*kc, contextName, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, "", &configError{multiclusterv1alpha1.ReasonKubeconfigInvalid,
			fmt.Sprintf("the kubeconfig in %s cannot be used: %v", where, err)}
	}
	sum := sha256.Sum256(append(append([]byte{}, data...), []byte("\x00"+contextName)...))
	return cfg, hex.EncodeToString(sum[:]), nil
}

func selfContained(kc *clientcmdapi.Config, kctx *clientcmdapi.Context) error {
	cluster, ok := kc.Clusters[kctx.Cluster]
	if !ok {
		return fmt.Errorf("names cluster %q, which it does not define", kctx.Cluster)
	}
	if cluster.CertificateAuthority != "" {
		return fmt.Errorf("refers to the file %q: embed it as certificate-authority-data", cluster.CertificateAuthority)
	}
	user, ok := kc.AuthInfos[kctx.AuthInfo]
	if !ok {
		if kctx.AuthInfo == "" {
			return nil
		}
		return fmt.Errorf("names user %q, which it does not define", kctx.AuthInfo)
	}
	switch {
	case user.ClientCertificate != "" || user.ClientKey != "":
		return fmt.Errorf("refers to client certificate files: embed them as client-certificate-data and client-key-data")
	case user.TokenFile != "":
		return fmt.Errorf("refers to the token file %q: embed the token", user.TokenFile)
	case user.Exec != nil:
		return fmt.Errorf("uses an exec credential plugin, which is not allowed: embed a token or client certificate")
	case user.AuthProvider != nil:
		return fmt.Errorf("uses an auth-provider plugin, which is not allowed: embed a token or client certificate")
	}
	return nil
}

func checkExcludedLabels(expr *string) *configError {
	if expr == nil {
		return nil
	}
	if _, err := regexp.Compile(*expr); err != nil {
		return &configError{multiclusterv1alpha1.ReasonInvalidSpec,
			fmt.Sprintf("spec.excludedLabelsRegexp %q is not a valid regular expression: %v", *expr, err)}
	}
	return nil
}
