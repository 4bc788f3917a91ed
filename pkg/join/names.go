package join

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// SystemNamespace is where a cluster-scoped join keeps its service account,
// token and kubeconfig Secret.
const SystemNamespace = "flotilla-system"

// DefaultTimeout bounds each wait: for the token controller to fill the
// token Secret (join), for the source to remove the virtual node (unjoin).
const DefaultTimeout = 30 * time.Second

// Options say what to join and how; the zero value joins cluster-scoped
// with names taken from the kubeconfig.
type Options struct {
	// Name of the Target or ClusterTarget and of its kubeconfig Secret in
	// the source (--name); by default the target's cluster name in the
	// kubeconfig, made a DNS-1123 label.
	Name string
	// SourceName is the name of the Source or ClusterSource and of its
	// service account in the target (--source-name); by default the
	// source's cluster name in the kubeconfig, made a DNS-1123 label.
	SourceName string
	// Namespace makes the join namespaced (--namespace): a Source and its
	// service account in this namespace of the target, a Target and its
	// Secret in this namespace of the source. It must exist in both.
	Namespace string
	// TargetServer is the URL at which the source reaches the target's API
	// server (--target-server), if not the one in the kubeconfig.
	TargetServer string
	// Timeout bounds each wait; DefaultTimeout if zero.
	Timeout time.Duration
}

// Names are the names of what a join makes.
type Names struct {
	// Target names the Target or ClusterTarget and its kubeconfig Secret
	// in the source.
	Target string
	// Source names the Source or ClusterSource and its service account in
	// the target.
	Source string
	// TokenSecret is the service account's token Secret in the target.
	TokenSecret string
	// Namespace holds the service account, its token, the kubeconfig
	// Secret and, if not ClusterScoped, the Source and the Target.
	Namespace string
	// ClusterScoped: a ClusterSource and a ClusterTarget.
	ClusterScoped bool
}

// ResolveNames validates the names in opts and fills in the defaults from
// the clusters' names in the kubeconfig.
func ResolveNames(opts Options, sourceCluster, targetCluster string) (Names, error) {
	name, err := nameOrDefault("--name", opts.Name, "the target's cluster name", targetCluster)
	if err != nil {
		return Names{}, err
	}
	source, err := nameOrDefault("--source-name", opts.SourceName, "the source's cluster name", sourceCluster)
	if err != nil {
		return Names{}, err
	}
	n := Names{Target: name, Source: source, TokenSecret: source + "-token", Namespace: SystemNamespace, ClusterScoped: true}
	if opts.Namespace != "" {
		if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
			return Names{}, fmt.Errorf("invalid --namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
		}
		n.Namespace, n.ClusterScoped = opts.Namespace, false
	}
	return n, nil
}

// nameOrDefault validates an explicit name, or derives one from what the
// kubeconfig calls the cluster.
func nameOrDefault(flag, explicit, what, clusterName string) (string, error) {
	if explicit != "" {
		if errs := validation.IsDNS1123Label(explicit); len(errs) > 0 {
			return "", fmt.Errorf("invalid %s %q: %s", flag, explicit, strings.Join(errs, "; "))
		}
		return explicit, nil
	}
	name := SanitizeName(clusterName)
	if name == "" {
		return "", fmt.Errorf("cannot make a name of %s %q: set %s", what, clusterName, flag)
	}
	return name, nil
}

// SanitizeName makes a DNS-1123 label of a kubeconfig cluster name (such as
// "gke_project_europe-west1_prod" or "arn:aws:eks:...:cluster/prod"):
// lower case, every run of other characters than [a-z0-9] a single "-",
// no "-" at either end, at most 63 characters. It returns "" if nothing is
// left.
func SanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	out := b.String()
	if len(out) > validation.DNS1123LabelMaxLength {
		out = strings.TrimRight(out[:validation.DNS1123LabelMaxLength], "-")
	}
	return out
}
