package scheduler

import (
	"testing"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/kubernetes/pkg/features"
)

// TestNewCommandFeatureGates: Flotilla's schedulers start without
// nominatedNodeName writes, and --feature-gates still decides. The gates
// are applied as the command does before it runs (PersistentPreRunE).
func TestNewCommandFeatureGates(t *testing.T) {
	gate := features.NominatedNodeNameForExpectation
	for _, tc := range []struct {
		flag string
		want bool
	}{
		{flag: "", want: false},
		{flag: string(gate) + "=true", want: true},
		{flag: string(gate) + "=false", want: false},
	} {
		command, err := NewCommand("proxy-scheduler")
		if err != nil {
			t.Fatal(err)
		}
		if command.Use != "proxy-scheduler" {
			t.Errorf("Use = %q", command.Use)
		}
		if tc.flag != "" {
			if err := command.Flags().Set("feature-gates", tc.flag); err != nil {
				t.Fatalf("--feature-gates=%s: %v", tc.flag, err)
			}
		}
		if err := command.PersistentPreRunE(command, nil); err != nil {
			t.Fatalf("--feature-gates=%s: applying the gates: %v", tc.flag, err)
		}
		if got := utilfeature.DefaultFeatureGate.Enabled(gate); got != tc.want {
			t.Errorf("--feature-gates=%q: %s enabled %v, want %v", tc.flag, gate, got, tc.want)
		}
	}
}
