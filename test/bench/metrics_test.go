package bench

import "testing"

// TestCPUUseMachineBusy: how busy the machine was is a fraction of its
// cores' time, even when the kernel's idle count steps back.
func TestCPUUseMachineBusy(t *testing.T) {
	cases := []struct {
		name          string
		before, after cpuSample
		want          float64
	}{
		{"half busy", cpuSample{busy: 10, total: 20}, cpuSample{busy: 15, total: 30}, 0.5},
		{"fully busy", cpuSample{busy: 10, total: 20}, cpuSample{busy: 20, total: 30}, 1},
		{"idle count stepped back", cpuSample{busy: 10, total: 20}, cpuSample{busy: 20.02, total: 30}, 1},
		{"no time passed", cpuSample{busy: 10, total: 20}, cpuSample{busy: 10, total: 20}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := cpuUse(tc.before, tc.after); got != tc.want {
				t.Errorf("busy = %v, want %v", got, tc.want)
			}
		})
	}
}
