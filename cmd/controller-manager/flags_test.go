package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/flotilla-io/flotilla/pkg/remote"
)

func TestClientRateFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    [4]float64 // kube QPS, kube burst, target QPS, target burst
		wantErr string
	}{
		{name: "defaults", want: [4]float64{50, 100, remote.DefaultQPS, remote.DefaultBurst}},
		{name: "set", args: []string{"--kube-api-qps=500", "--kube-api-burst=1000", "--target-api-qps=250.5", "--target-api-burst=300"},
			want: [4]float64{500, 1000, 250.5, 300}},
		{name: "zero QPS refused", args: []string{"--kube-api-qps=0"}, wantErr: `"0": want a positive number`},
		{name: "not a number refused", args: []string{"--target-api-qps=fast"}, wantErr: `"fast": want a positive number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o options
			fs := flag.NewFlagSet("controller-manager", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.addFlags(fs)
			err := fs.Parse(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %v, want an error containing %s", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := [4]float64{float64(o.kubeAPIQPS), float64(o.kubeAPIBurst), float64(o.targetAPIQPS), float64(o.targetAPIBurst)}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
