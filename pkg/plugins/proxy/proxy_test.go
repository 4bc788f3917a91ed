package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// TestNewFactory: the factory type-checks and validates its args, and
// reports (never panics on) what is wrong before it starts connections.
func TestNewFactory(t *testing.T) {
	valid := defaultArgs()
	with := func(mutate func(*config.ProxyArgs)) *config.ProxyArgs {
		a := valid
		mutate(&a)
		return &a
	}
	cases := []struct {
		name        string
		args        runtime.Object
		startErr    error
		wantErr     string
		wantStarted bool
	}{
		{name: "valid", args: &valid, wantStarted: true},
		{name: "maxTargets set", args: with(func(a *config.ProxyArgs) { a.MaxTargets = 3 }), wantStarted: true},
		{
			name:    "args of another type",
			args:    &config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: time.Second}},
			wantErr: "want args of type ProxyArgs, got *config.CandidateArgs",
		},
		{name: "no args", args: nil, wantErr: "want args of type ProxyArgs, got <nil>"},
		{
			name: "nil *ProxyArgs", args: (*config.ProxyArgs)(nil),
			wantErr: "want args of type ProxyArgs, got *config.ProxyArgs",
		},
		{
			name:    "negative maxTargets",
			args:    with(func(a *config.ProxyArgs) { a.MaxTargets = -1 }),
			wantErr: "maxTargets: Invalid value: -1: must be greater than or equal to 0 (0 means no limit)",
		},
		{
			name:    "no candidateVerdictTimeout",
			args:    with(func(a *config.ProxyArgs) { a.CandidateVerdictTimeout.Duration = 0 }),
			wantErr: `candidateVerdictTimeout: Invalid value: "0s": must be a duration greater than 0, e.g. 5s`,
		},
		{
			name:    "negative delegateBindTimeout",
			args:    with(func(a *config.ProxyArgs) { a.DelegateBindTimeout.Duration = -time.Second }),
			wantErr: `delegateBindTimeout: Invalid value: "-1s": must be a duration greater than 0, e.g. 5s`,
		},
		{
			name:        "the fleet does not start",
			args:        &valid,
			startErr:    errors.New("no client configuration"),
			wantErr:     "starting the connections to targets: no client configuration",
			wantStarted: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			cs := k8sfake.NewClientset(kubeSystem())
			h, err := frameworkruntime.NewFramework(ctx, nil, nil,
				frameworkruntime.WithClientSet(cs),
				frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(cs, 0)),
				frameworkruntime.WithPodActivator(&podActivator{}))
			if err != nil {
				t.Fatal(err)
			}
			started := false
			factory := NewFactory(func(context.Context, fwk.Handle) (Fleet, error) {
				started = true
				if tc.startErr != nil {
					return nil, tc.startErr
				}
				return &fakeFleet{clusters: map[remote.Key]*fakeCluster{}}, nil
			})

			p, err := func() (p fwk.Plugin, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return factory(ctx, tc.args, h)
			}()
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tc.wantErr {
				t.Errorf("error: %q, want %q", gotErr, tc.wantErr)
			}
			if started != tc.wantStarted {
				t.Errorf("fleet started: %v, want %v", started, tc.wantStarted)
			}
			if tc.wantErr == "" {
				if p == nil || p.Name() != Name {
					t.Errorf("plugin: %v, want the %s plugin", p, Name)
				}
			} else if p != nil {
				t.Errorf("plugin: %v, want none", p)
			}
		})
	}
}
