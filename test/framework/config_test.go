package framework

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseNodePool(t *testing.T) {
	def := NodePool{Name: "node", Count: 2, CPU: "4", Memory: "16Gi", Pods: "110", Labels: map[string]string{RegionLabel: "eu-west"}}
	cases := []struct {
		name    string
		in      string
		want    NodePool
		wantErr string
	}{
		{name: "empty keeps defaults", in: "", want: def},
		{
			name: "every field",
			in:   "count=5,cpu=8,memory=32Gi,pods=50,label.gpu=true,label." + RegionLabel + "=us-east",
			want: NodePool{Name: "node", Count: 5, CPU: "8", Memory: "32Gi", Pods: "50",
				Labels: map[string]string{RegionLabel: "us-east", "gpu": "true"}},
		},
		{name: "zero nodes", in: "count=0", want: NodePool{Name: "node", Count: 0, CPU: "4", Memory: "16Gi", Pods: "110", Labels: def.Labels}},
		{name: "not key=value", in: "count", wantErr: `want key=value`},
		{name: "unknown key", in: "gpus=1", wantErr: `want count, cpu, memory, pods or label.<key>`},
		{name: "negative count", in: "count=-1", wantErr: "non-negative"},
		{name: "bad quantity", in: "cpu=lots", wantErr: `cpu "lots"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNodePool(tc.in, def)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseNodePool(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNodePool(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseNodePool(%q) (-want,+got):\n%s", tc.in, diff)
			}
		})
	}
	if def.Labels[RegionLabel] != "eu-west" {
		t.Errorf("ParseNodePool changed the default pool's labels: %v", def.Labels)
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig("/tmp/x", "/tmp/bin", 3)
	type summary struct {
		Name, CPU, Memory, Region string
		Count                     int
	}
	var got []summary
	for _, c := range cfg.Clusters {
		p := c.Nodes[0]
		got = append(got, summary{c.Name, p.CPU, p.Memory, p.Labels[RegionLabel], p.Count})
	}
	want := []summary{
		{"source", "4", "16Gi", "", 1},
		{"target-1", "4", "16Gi", "eu-west", 3},
		{"target-2", "8", "32Gi", "us-east", 2},
		{"target-3", "4", "16Gi", "region-3", 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DefaultConfig clusters (-want,+got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	bin := t.TempDir()
	cases := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "missing binaries", mutate: func(*Config) {}, wantErr: "etcd is missing"},
		{name: "duplicate cluster", mutate: func(c *Config) { c.Clusters = append(c.Clusters, c.Clusters[0]) }, wantErr: `"source" listed twice`},
		{name: "bad cluster name", mutate: func(c *Config) { c.Clusters[0].Name = "Source_1" }, wantErr: "want a DNS label"},
		{name: "no clusters", mutate: func(c *Config) { c.Clusters = nil }, wantErr: "no clusters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig(t.TempDir(), bin, 1)
			tc.mutate(&cfg)
			err := cfg.validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// Up never wipes a folder that holds something other than a sandbox.
func TestUpRefusesForeignFolder(t *testing.T) {
	bin := t.TempDir()
	for _, name := range requiredBinaries {
		if err := os.WriteFile(filepath.Join(bin, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	precious := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(precious, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Up(t.Context(), DefaultConfig(dir, bin, 1))
	if err == nil || !strings.Contains(err.Error(), "holds no sandbox") {
		t.Fatalf("Up() = %v, want an error about a foreign folder", err)
	}
	if data, err := os.ReadFile(precious); err != nil || string(data) != "keep me" {
		t.Errorf("Up touched a foreign folder: %q, %v", data, err)
	}
}
