package main

import (
	"slices"
	"testing"
)

func TestOverrideFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		set  map[string]string
		want []string
	}{
		{"replaces in place of the chart's value, keeps the rest",
			[]string{"--controllers=*", "--webhook-port=9443", "-v=4"},
			map[string]string{"webhook-port": "1234"},
			[]string{"--controllers=*", "-v=4", "--webhook-port=1234"}},
		{"adds what the chart does not set, sorted",
			[]string{"--config=/etc/flotilla/config.yaml"},
			map[string]string{"secure-port": "1", "bind-address": "127.0.0.1", "config": "/tmp/c.yaml"},
			[]string{"--bind-address=127.0.0.1", "--config=/tmp/c.yaml", "--secure-port=1"}},
		{"a value that looks like a flag name is not a flag",
			[]string{"--controllers=webhook-port=1"},
			map[string]string{"webhook-port": "2"},
			[]string{"--controllers=webhook-port=1", "--webhook-port=2"}},
		{"single-dash flags too",
			[]string{"-kubeconfig=/x"},
			map[string]string{"kubeconfig": "/y"},
			[]string{"--kubeconfig=/y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := overrideFlags(tc.args, tc.set); !slices.Equal(got, tc.want) {
				t.Errorf("overrideFlags(%q, %v) = %q, want %q", tc.args, tc.set, got, tc.want)
			}
		})
	}
}

func TestFlagValue(t *testing.T) {
	args := []string{"--webhook-port=9443", "--webhook-port-extra=1", "-v=4"}
	for flag, want := range map[string]string{"webhook-port": "9443", "v": "4", "missing": ""} {
		if got := flagValue(args, flag); got != want {
			t.Errorf("flagValue(%q) = %q, want %q", flag, got, want)
		}
	}
}
