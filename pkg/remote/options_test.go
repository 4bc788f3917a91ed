package remote

import "testing"

func TestOptionsDefaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        Options
		wantQPS   float32
		wantBurst int
	}{
		{"unset: the defaults", Options{}, DefaultQPS, DefaultBurst},
		{"set: kept", Options{QPS: 500, Burst: 1000}, 500, 1000},
		{"negative: the defaults", Options{QPS: -1, Burst: -1}, DefaultQPS, DefaultBurst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.in
			o.defaults()
			if o.QPS != tc.wantQPS || o.Burst != tc.wantBurst {
				t.Errorf("QPS, Burst = %v, %v; want %v, %v", o.QPS, o.Burst, tc.wantQPS, tc.wantBurst)
			}
		})
	}
}
