package join

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent is what flotillactl calls itself to API servers.
const UserAgent = "flotillactl"

// Cluster is one cluster of a join, as a kubeconfig context reaches it.
type Cluster struct {
	// Context is the kubeconfig context (for messages).
	Context string
	// Name is what the kubeconfig calls the context's cluster: the default
	// name of the cluster's Target or Source.
	Name string
	// Config reaches the cluster as the context's user.
	Config *rest.Config

	kube      kubernetes.Interface
	dynamic   dynamic.Interface
	discovery *discovery.DiscoveryClient
}

// ContextNotFoundError says that a kubeconfig has no such context.
type ContextNotFoundError struct {
	Context string
	// Have are the contexts it has.
	Have []string
}

func (e *ContextNotFoundError) Error() string {
	if len(e.Have) == 0 {
		return fmt.Sprintf("context %q not found: the kubeconfig has no contexts", e.Context)
	}
	return fmt.Sprintf("context %q not found in the kubeconfig (it has: %s)", e.Context, strings.Join(e.Have, ", "))
}

// ClusterFromKubeconfig returns the cluster that a context of the
// kubeconfig that loader loads reaches: contextName, or the current context
// if empty. Use clientcmd.NewDefaultClientConfigLoadingRules() (with
// ExplicitPath set from --kubeconfig) to load it as kubectl does.
func ClusterFromKubeconfig(loader clientcmd.ClientConfigLoader, contextName string) (*Cluster, error) {
	raw, err := loader.Load()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	if contextName == "" {
		contextName = raw.CurrentContext
		if contextName == "" {
			return nil, fmt.Errorf("the kubeconfig has no current context: name one")
		}
	}
	kctx, ok := raw.Contexts[contextName]
	if !ok {
		have := make([]string, 0, len(raw.Contexts))
		for name := range raw.Contexts {
			have = append(have, name)
		}
		slices.Sort(have)
		return nil, &ContextNotFoundError{Context: contextName, Have: have}
	}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, contextName, &clientcmd.ConfigOverrides{}, loader).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", contextName, err)
	}
	return NewCluster(contextName, kctx.Cluster, cfg)
}

// NewCluster returns the cluster that cfg reaches; context and name are
// what the kubeconfig calls it and its cluster.
func NewCluster(context, name string, cfg *rest.Config) (*Cluster, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = UserAgent
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", context, err)
	}
	c := &Cluster{Context: context, Name: name, Config: cfg}
	if c.kube, err = kubernetes.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("context %q: %w", context, err)
	}
	if c.dynamic, err = dynamic.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("context %q: %w", context, err)
	}
	if c.discovery, err = discovery.NewDiscoveryClientForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("context %q: %w", context, err)
	}
	return c, nil
}

// clusterCA returns the CA that the kubeconfig trusts for the cluster, read
// from its file if the kubeconfig names one, and whether it skips TLS
// verification.
func clusterCA(cfg *rest.Config) ([]byte, bool, error) {
	if len(cfg.CAData) > 0 {
		return cfg.CAData, cfg.Insecure, nil
	}
	if cfg.CAFile != "" {
		c := rest.CopyConfig(cfg)
		if err := rest.LoadTLSFiles(c); err != nil {
			return nil, false, fmt.Errorf("reading the certificate authority of the kubeconfig: %w", err)
		}
		return c.CAData, c.Insecure, nil
	}
	return nil, cfg.Insecure, nil
}
