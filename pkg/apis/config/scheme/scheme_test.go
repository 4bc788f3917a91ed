package scheme_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	schedvalidation "k8s.io/kubernetes/pkg/scheduler/apis/config/validation"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
	_ "github.com/flotilla-io/flotilla/pkg/apis/config/scheme"
	"github.com/flotilla-io/flotilla/pkg/apis/config/validation"
)

// repoRoot walks up from the test's directory to the one holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// decode reads a KubeSchedulerConfiguration the way kube-scheduler's
// --config does: strict, defaulted, converted to the internal version.
func decode(data []byte) (*schedconfig.KubeSchedulerConfiguration, error) {
	obj, gvk, err := schedscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	cfg := obj.(*schedconfig.KubeSchedulerConfiguration)
	cfg.APIVersion = gvk.GroupVersion().String() // as kube-scheduler's loadConfig does
	return cfg, nil
}

func pluginArgs(t *testing.T, prof *schedconfig.KubeSchedulerProfile, name string) runtime.Object {
	t.Helper()
	for _, pc := range prof.PluginConfig {
		if pc.Name == name {
			return pc.Args
		}
	}
	t.Fatalf("profile %s has no pluginConfig for %s", prof.SchedulerName, name)
	return nil
}

func names(ps []schedconfig.Plugin) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func validateArgs(args runtime.Object) error {
	path := field.NewPath("args")
	switch a := args.(type) {
	case *config.ProxyArgs:
		return validation.ValidateProxyArgs(path, a)
	case *config.CandidateArgs:
		return validation.ValidateCandidateArgs(path, a)
	}
	return nil
}

// The profiles under config/scheduler decode through kube-scheduler's own
// codecs, their args arrive typed with the documented values, and the whole
// configuration as well as the args pass validation.
func TestProfiles(t *testing.T) {
	cases := []struct {
		file          string
		schedulerName string
		leaseName     string
		plugin        string
		wantArgs      runtime.Object
		wantEnabled   []string // profile.Plugins.MultiPoint.Enabled, in order
	}{
		{
			file:          "proxy-scheduler.yaml",
			schedulerName: "admiralty-proxy",
			leaseName:     "flotilla-proxy-scheduler",
			plugin:        "Proxy",
			wantArgs: &config.ProxyArgs{
				CandidateVerdictTimeout: metav1.Duration{Duration: 5 * time.Second},
				DelegateBindTimeout:     metav1.Duration{Duration: 30 * time.Second},
				MaxTargets:              0,
			},
			wantEnabled: []string{"Proxy", "PrioritySort", "SchedulingGates", "NodeUnschedulable", "NodeName",
				"NodeAffinity", "PodTopologySpread", "DefaultBinder"},
		},
		{
			file:          "candidate-scheduler.yaml",
			schedulerName: "admiralty-candidate",
			leaseName:     "flotilla-candidate-scheduler",
			plugin:        "Candidate",
			wantArgs:      &config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: 30 * time.Second}},
		},
	}
	root := repoRoot(t)
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, "config", "scheduler", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := decode(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := schedvalidation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
				t.Errorf("ValidateKubeSchedulerConfiguration: %v", err)
			}
			le := cfg.LeaderElection
			if diff := cmp.Diff([]any{true, tc.leaseName, "flotilla-system"},
				[]any{le.LeaderElect, le.ResourceName, le.ResourceNamespace}); diff != "" {
				t.Errorf("leaderElection (-want,+got):\n%s", diff)
			}
			if cfg.ClientConnection.Kubeconfig != "" {
				t.Errorf("clientConnection.kubeconfig is set (%q); the deployments set it", cfg.ClientConnection.Kubeconfig)
			}
			if len(cfg.Profiles) != 1 {
				t.Fatalf("want 1 profile, got %d", len(cfg.Profiles))
			}
			prof := &cfg.Profiles[0]
			if diff := cmp.Diff(tc.schedulerName, prof.SchedulerName); diff != "" {
				t.Errorf("schedulerName (-want,+got):\n%s", diff)
			}
			args := pluginArgs(t, prof, tc.plugin)
			if diff := cmp.Diff(tc.wantArgs, args); diff != "" {
				t.Errorf("%s args (-want,+got):\n%s", tc.plugin, diff)
			}
			if err := validateArgs(args); err != nil {
				t.Errorf("args validation: %v", err)
			}

			enabled := names(prof.Plugins.MultiPoint.Enabled)
			if tc.wantEnabled != nil {
				if diff := cmp.Diff(tc.wantEnabled, enabled); diff != "" {
					t.Errorf("multiPoint.enabled (-want,+got):\n%s", diff)
				}
			}
			if !containsName(enabled, tc.plugin) {
				t.Errorf("multiPoint.enabled %v lacks %s", enabled, tc.plugin)
			}
			if containsName(enabled, "DefaultPreemption") {
				t.Errorf("multiPoint.enabled %v has DefaultPreemption", enabled)
			}
		})
	}
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// Candidate keeps every default plugin but preemption, and the proxy profile
// carries the Proxy plugin's weight.
func TestProfilePlugins(t *testing.T) {
	root := repoRoot(t)
	read := func(file string) *schedconfig.KubeSchedulerProfile {
		data, err := os.ReadFile(filepath.Join(root, "config", "scheduler", file))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := decode(data)
		if err != nil {
			t.Fatal(err)
		}
		return &cfg.Profiles[0]
	}

	def, err := decode([]byte("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range names(def.Profiles[0].Plugins.MultiPoint.Enabled) {
		if n != "DefaultPreemption" {
			want = append(want, n)
		}
	}
	want = append(want, "Candidate")
	if diff := cmp.Diff(want, names(read("candidate-scheduler.yaml").Plugins.MultiPoint.Enabled)); diff != "" {
		t.Errorf("candidate multiPoint.enabled (-want,+got):\n%s", diff)
	}

	proxy := read("proxy-scheduler.yaml")
	if diff := cmp.Diff(schedconfig.Plugin{Name: "Proxy", Weight: 3}, proxy.Plugins.MultiPoint.Enabled[0]); diff != "" {
		t.Errorf("proxy plugin (-want,+got):\n%s", diff)
	}
}

const header = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
  - schedulerName: test
    plugins:
      multiPoint:
        enabled:
          - name: Proxy
          - name: Candidate
`

// What happens to args that are missing, invalid or misspelt. kube-scheduler
// validates only its in-tree plugins' args, so invalid values get past
// ValidateKubeSchedulerConfiguration and the plugins must call package
// validation; unknown fields and wrong types fail decoding (strict codec).
func TestArgsDecoding(t *testing.T) {
	cases := []struct {
		name          string
		pluginConfig  string
		wantDecodeErr string // substring
		wantProxy     *config.ProxyArgs
		wantCandidate *config.CandidateArgs
		wantArgsErr   string
	}{
		{
			name: "no pluginConfig: defaults for enabled plugins",
			wantProxy: &config.ProxyArgs{
				CandidateVerdictTimeout: metav1.Duration{Duration: 5 * time.Second},
				DelegateBindTimeout:     metav1.Duration{Duration: 30 * time.Second},
			},
			wantCandidate: &config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: 30 * time.Second}},
		},
		{
			name: "partial args are defaulted",
			pluginConfig: `
      - name: Proxy
        args:
          maxTargets: 2
      - name: Candidate
        args: {}
`,
			wantProxy: &config.ProxyArgs{
				CandidateVerdictTimeout: metav1.Duration{Duration: 5 * time.Second},
				DelegateBindTimeout:     metav1.Duration{Duration: 30 * time.Second},
				MaxTargets:              2,
			},
			wantCandidate: &config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: 30 * time.Second}},
		},
		{
			name: "negative timeout decodes; ValidateProxyArgs rejects it",
			pluginConfig: `
      - name: Proxy
        args:
          candidateVerdictTimeout: -1s
`,
			wantProxy: &config.ProxyArgs{
				CandidateVerdictTimeout: metav1.Duration{Duration: -time.Second},
				DelegateBindTimeout:     metav1.Duration{Duration: 30 * time.Second},
			},
			wantCandidate: &config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: 30 * time.Second}},
			wantArgsErr:   `args.candidateVerdictTimeout: Invalid value: "-1s": must be a duration greater than 0, e.g. 5s`,
		},
		{
			name: "zero permitWaitTimeout decodes; ValidateCandidateArgs rejects it",
			pluginConfig: `
      - name: Candidate
        args:
          permitWaitTimeout: 0s
`,
			wantProxy: &config.ProxyArgs{
				CandidateVerdictTimeout: metav1.Duration{Duration: 5 * time.Second},
				DelegateBindTimeout:     metav1.Duration{Duration: 30 * time.Second},
			},
			wantCandidate: &config.CandidateArgs{},
			wantArgsErr:   `args.permitWaitTimeout: Invalid value: "0s": must be a duration greater than 0, e.g. 5s`,
		},
		{
			name: "unknown field",
			pluginConfig: `
      - name: Proxy
        args:
          candidateVerdictTimeot: 5s
`,
			wantDecodeErr: `decoding args for plugin Proxy: strict decoding error: unknown field "candidateVerdictTimeot"`,
		},
		{
			name: "wrong type",
			pluginConfig: `
      - name: Proxy
        args:
          maxTargets: many
`,
			wantDecodeErr: `decoding args for plugin Proxy`,
		},
		{
			name: "not a duration",
			pluginConfig: `
      - name: Candidate
        args:
          permitWaitTimeout: 30
`,
			wantDecodeErr: `decoding args for plugin Candidate`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := header
			if tc.pluginConfig != "" {
				data += "    pluginConfig:" + tc.pluginConfig
			}
			cfg, err := decode([]byte(data))
			if tc.wantDecodeErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantDecodeErr) {
					t.Fatalf("decode error: want one containing %q, got %v", tc.wantDecodeErr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			// kube-scheduler does not look into out-of-tree args.
			if err := schedvalidation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
				t.Errorf("ValidateKubeSchedulerConfiguration: %v", err)
			}
			prof := &cfg.Profiles[0]
			proxy, candidate := pluginArgs(t, prof, "Proxy"), pluginArgs(t, prof, "Candidate")
			if diff := cmp.Diff(runtime.Object(tc.wantProxy), proxy); diff != "" {
				t.Errorf("Proxy args (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(runtime.Object(tc.wantCandidate), candidate); diff != "" {
				t.Errorf("Candidate args (-want,+got):\n%s", diff)
			}
			var errs []string
			for _, a := range []runtime.Object{proxy, candidate} {
				if err := validateArgs(a); err != nil {
					errs = append(errs, err.Error())
				}
			}
			if diff := cmp.Diff(tc.wantArgsErr, strings.Join(errs, "; ")); diff != "" {
				t.Errorf("args validation (-want,+got):\n%s", diff)
			}
		})
	}
}

// kube-scheduler logs its configuration (and --write-config-to writes it)
// encoded back to v1, args included.
func TestEncode(t *testing.T) {
	cfg, err := decode([]byte(header))
	if err != nil {
		t.Fatal(err)
	}
	info, ok := runtime.SerializerInfoForMediaType(schedscheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeYAML)
	if !ok {
		t.Fatal("no YAML serializer")
	}
	var buf strings.Builder
	enc := schedscheme.Codecs.EncoderForVersion(info.Serializer, schedconfigv1.SchemeGroupVersion)
	if err := enc.Encode(cfg, &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"candidateVerdictTimeout: 5s", "delegateBindTimeout: 30s", "maxTargets: 0", "kind: ProxyArgs",
		"permitWaitTimeout: 30s", "kind: CandidateArgs",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("encoded configuration lacks %q:\n%s", want, buf.String())
		}
	}
}
