package framework

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
)

// Environment variables that tests read.
const (
	// EnvSandbox names the folder of a running sandbox (e.g. ".sandbox" after
	// `make sandbox-up`) that tests use instead of starting their own.
	EnvSandbox = "FLOTILLA_SANDBOX"
	// EnvBinDir overrides where the sandbox binaries are (default <repo>/bin).
	EnvBinDir = "FLOTILLA_BIN"
)

// ModulePath is the main module's path.
const ModulePath = "github.com/flotilla-io/flotilla"

// RepoRoot finds the checkout's root from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modfile.ModulePath(data) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

// BinDir is where the sandbox binaries are: $FLOTILLA_BIN or <repo>/bin.
func BinDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// SetupSandbox gives a test suite a sandbox with a source and at least
// targets target clusters: the one that $FLOTILLA_SANDBOX names if set,
// otherwise a new one in a temporary folder. The returned stop function stops
// only a sandbox that SetupSandbox started.
func SetupSandbox(ctx context.Context, targets int, progress io.Writer) (*Sandbox, func() error, error) {
	return SetupSandboxWithSources(ctx, targets, nil, progress)
}

// SetupSandboxWithSources is SetupSandbox for a sandbox that also has the
// source clusters named sources (each with the default source's nodes). A
// sandbox named by $FLOTILLA_SANDBOX must have them all.
func SetupSandboxWithSources(ctx context.Context, targets int, sources []string, progress io.Writer) (*Sandbox, func() error, error) {
	if dir := os.Getenv(EnvSandbox); dir != "" {
		s, err := Load(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("$%s=%s: %w", EnvSandbox, dir, err)
		}
		if dead := s.Crashed(); len(dead) > 0 {
			return nil, nil, fmt.Errorf("$%s=%s: %w", EnvSandbox, dir, crashed(dead[0]))
		}
		want := []string{SourceCluster}
		for i := 1; i <= targets; i++ {
			want = append(want, TargetName(i))
		}
		want = append(want, sources...)
		for _, name := range want {
			if s.clusterState(name) == nil {
				return nil, nil, fmt.Errorf("$%s=%s has clusters %s; this suite needs %s",
					EnvSandbox, dir, strings.Join(s.ClusterNames(), ", "), strings.Join(want, ", "))
			}
		}
		return s, func() error { return nil }, nil
	}
	binDir, err := BinDir()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "flotilla-sandbox-")
	if err != nil {
		return nil, nil, err
	}
	cfg := DefaultConfig(dir, binDir, targets)
	for _, name := range sources {
		cfg.Clusters = append(cfg.Clusters, ClusterConfig{Name: name, Nodes: slices.Clone(cfg.Clusters[0].Nodes)})
	}
	cfg.Progress = progress
	s, err := Up(ctx, cfg)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, s.Down, nil
}
