package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// ChartRelease and ChartNamespace are how the demo and the tests install
// charts/flotilla: the names a user following the README gets.
const (
	ChartRelease   = "flotilla"
	ChartNamespace = "flotilla-system"
)

// RenderChart runs `helm template` on charts/flotilla of root with the
// given helm arguments (e.g. "-f", file, "--set", "a=b") and returns the
// manifests, CRDs included.
func RenderChart(ctx context.Context, helm, root string, args ...string) ([]byte, error) {
	all := append([]string{"template", ChartRelease, filepath.Join(root, "charts", "flotilla"),
		"--namespace", ChartNamespace, "--include-crds"}, args...)
	cmd := exec.CommandContext(ctx, helm, all...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(all, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// SplitManifests decodes a multi-document YAML stream, skipping empty
// documents.
func SplitManifests(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decoding manifests: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// JoinManifests encodes objects as one multi-document YAML stream.
func JoinManifests(objs []*unstructured.Unstructured) ([]byte, error) {
	var buf bytes.Buffer
	for _, o := range objs {
		data, err := o.MarshalJSON()
		if err != nil {
			return nil, err
		}
		buf.WriteString("---\n")
		buf.Write(data)
		buf.WriteString("\n")
	}
	return buf.Bytes(), nil
}

// ApplyServerSide applies manifests with `kubectl apply --server-side`
// (field manager "flotilla-install"), with extra kubectl arguments such as
// "--dry-run=server", and returns kubectl's output.
func (c *Cluster) ApplyServerSide(ctx context.Context, manifests []byte, args ...string) (string, error) {
	return c.kubectlManifests(ctx, manifests, append([]string{"apply", "--server-side", "--force-conflicts",
		"--field-manager=flotilla-install"}, args...)...)
}

// DeleteManifests deletes the objects of manifests with `kubectl delete
// --ignore-not-found`, with extra kubectl arguments, and returns kubectl's
// output.
func (c *Cluster) DeleteManifests(ctx context.Context, manifests []byte, args ...string) (string, error) {
	return c.kubectlManifests(ctx, manifests, append([]string{"delete", "--ignore-not-found"}, args...)...)
}

// kubectlManifests runs kubectl with args and -f, a file holding manifests.
func (c *Cluster) kubectlManifests(ctx context.Context, manifests []byte, args ...string) (string, error) {
	f, err := os.CreateTemp("", "flotilla-manifests-*.yaml")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.Write(manifests); err != nil {
		_ = f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return c.Kubectl(ctx, append(args, "-f", f.Name())...)
}
