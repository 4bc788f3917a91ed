package framework

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Well-known names of the default fleet.
const (
	SourceCluster = "source"
	// RegionLabel is the standard topology label the default nodes carry.
	RegionLabel = "topology.kubernetes.io/region"
	// KwokNodeAnnotation marks the nodes that the sandbox's kwok manages. kwok
	// never runs with --manage-all-nodes, so that nodes which Flotilla adds
	// (virtual nodes in a source) are left alone.
	KwokNodeAnnotation      = "kwok.x-k8s.io/node"
	kwokNodeAnnotationValue = "fake"
	// SandboxClusterLabel is set on every sandbox node to the name of its cluster.
	SandboxClusterLabel = "sandbox.flotilla.io/cluster"
)

// TargetName returns the name of the i-th target cluster (1-based).
func TargetName(i int) string { return fmt.Sprintf("target-%d", i) }

// NodePool is a set of identical kwok nodes.
type NodePool struct {
	// Name prefixes the node names: <cluster>-<name>-<index>.
	Name   string            `json:"name"`
	Count  int               `json:"count"`
	CPU    string            `json:"cpu"`
	Memory string            `json:"memory"`
	Pods   string            `json:"pods"`
	Labels map[string]string `json:"labels,omitempty"`
}

// ClusterConfig describes one sandbox cluster.
type ClusterConfig struct {
	Name  string     `json:"name"`
	Nodes []NodePool `json:"nodes"`
}

// Config describes a sandbox fleet.
type Config struct {
	// Dir holds the sandbox's state: certificates, kubeconfigs, data, logs and
	// the state file. It is created if missing.
	Dir string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubectl and kwok (see hack/build-tools.sh).
	BinDir string
	// Clusters to start; names must be unique DNS labels.
	Clusters []ClusterConfig
	// Detach makes the processes outlive the calling process (the CLI's case);
	// otherwise they are killed when it dies (a test binary's case).
	Detach bool
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// LogText is what `kubectl logs` and `attach` print for every pod.
	LogText []string
}

// DefaultConfig returns the fleet of the README: a source and n targets.
// target-1 has 3 nodes of 4 CPU/16Gi in region eu-west, target-2 has 2 nodes of
// 8 CPU/32Gi in region us-east, further targets 2 nodes of 4 CPU/16Gi in a
// region of their own; the source has 1 node of 4 CPU/16Gi.
func DefaultConfig(dir, binDir string, targets int) Config {
	cfg := Config{
		Dir:    dir,
		BinDir: binDir,
		Clusters: []ClusterConfig{{
			Name:  SourceCluster,
			Nodes: []NodePool{{Name: "node", Count: 1, CPU: "4", Memory: "16Gi", Pods: "110"}},
		}},
		LogText: []string{"Hello from the Flotilla sandbox", "this line is the configured container log"},
	}
	for i := 1; i <= targets; i++ {
		pool := NodePool{Name: "node", Count: 2, CPU: "4", Memory: "16Gi", Pods: "110",
			Labels: map[string]string{RegionLabel: "region-" + strconv.Itoa(i)}}
		switch i {
		case 1:
			pool.Count, pool.Labels[RegionLabel] = 3, "eu-west"
		case 2:
			pool.CPU, pool.Memory, pool.Labels[RegionLabel] = "8", "32Gi", "us-east"
		}
		cfg.Clusters = append(cfg.Clusters, ClusterConfig{Name: TargetName(i), Nodes: []NodePool{pool}})
	}
	return cfg
}

// ParseNodePool parses "count=3,cpu=4,memory=16Gi,pods=110,label.k=v" over the
// given defaults; it lets the CLI change a cluster's nodes.
func ParseNodePool(s string, def NodePool) (NodePool, error) {
	p := def
	p.Labels = map[string]string{}
	for k, v := range def.Labels {
		p.Labels[k] = v
	}
	for _, field := range strings.Split(s, ",") {
		if field == "" {
			continue
		}
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return p, fmt.Errorf("node pool field %q: want key=value", field)
		}
		switch {
		case k == "count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return p, fmt.Errorf("node pool count %q: want a non-negative integer", v)
			}
			p.Count = n
		case k == "cpu":
			p.CPU = v
		case k == "memory":
			p.Memory = v
		case k == "pods":
			p.Pods = v
		case strings.HasPrefix(k, "label."):
			p.Labels[strings.TrimPrefix(k, "label.")] = v
		default:
			return p, fmt.Errorf("node pool field %q: want count, cpu, memory, pods or label.<key>", k)
		}
	}
	return p, p.validate()
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (p NodePool) validate() error {
	for name, q := range map[string]string{"cpu": p.CPU, "memory": p.Memory, "pods": p.Pods} {
		if _, err := resource.ParseQuantity(q); err != nil {
			return fmt.Errorf("node pool %q: %s %q: %w", p.Name, name, q, err)
		}
	}
	if p.Count < 0 {
		return fmt.Errorf("node pool %q: negative count", p.Name)
	}
	if !dnsLabel.MatchString(p.Name) {
		return fmt.Errorf("node pool name %q: want a DNS label", p.Name)
	}
	return nil
}

func (c *Config) validate() error {
	if c.Dir == "" || c.BinDir == "" {
		return fmt.Errorf("sandbox config needs Dir and BinDir")
	}
	if len(c.Clusters) == 0 {
		return fmt.Errorf("sandbox config has no clusters")
	}
	seen := map[string]bool{}
	for _, cl := range c.Clusters {
		if !dnsLabel.MatchString(cl.Name) || len(cl.Name) > 40 {
			return fmt.Errorf("cluster name %q: want a DNS label of at most 40 characters", cl.Name)
		}
		if seen[cl.Name] {
			return fmt.Errorf("cluster %q listed twice", cl.Name)
		}
		seen[cl.Name] = true
		for _, p := range cl.Nodes {
			if err := p.validate(); err != nil {
				return fmt.Errorf("cluster %q: %w", cl.Name, err)
			}
		}
	}
	for _, bin := range requiredBinaries {
		path := filepath.Join(c.BinDir, bin)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s is missing (run `make tools` or hack/build-tools.sh): %w", path, err)
		}
	}
	return nil
}

var requiredBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"}
