package validation

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
)

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestValidateProxyArgs(t *testing.T) {
	valid := config.ProxyArgs{
		CandidateVerdictTimeout: metav1.Duration{Duration: 5 * time.Second},
		DelegateBindTimeout:     metav1.Duration{Duration: 30 * time.Second},
	}
	cases := []struct {
		name   string
		mutate func(*config.ProxyArgs)
		want   string
	}{
		{name: "defaults", mutate: func(*config.ProxyArgs) {}},
		{name: "maxTargets set", mutate: func(a *config.ProxyArgs) { a.MaxTargets = 2 }},
		{
			name:   "zero candidateVerdictTimeout",
			mutate: func(a *config.ProxyArgs) { a.CandidateVerdictTimeout.Duration = 0 },
			want:   `args.candidateVerdictTimeout: Invalid value: "0s": must be a duration greater than 0, e.g. 5s`,
		},
		{
			name:   "negative delegateBindTimeout",
			mutate: func(a *config.ProxyArgs) { a.DelegateBindTimeout.Duration = -time.Second },
			want:   `args.delegateBindTimeout: Invalid value: "-1s": must be a duration greater than 0, e.g. 5s`,
		},
		{
			name:   "negative maxTargets",
			mutate: func(a *config.ProxyArgs) { a.MaxTargets = -1 },
			want:   `args.maxTargets: Invalid value: -1: must be greater than or equal to 0 (0 means no limit)`,
		},
		{
			name:   "everything wrong",
			mutate: func(a *config.ProxyArgs) { *a = config.ProxyArgs{MaxTargets: -2} },
			want: `[args.candidateVerdictTimeout: Invalid value: "0s": must be a duration greater than 0, e.g. 5s, ` +
				`args.delegateBindTimeout: Invalid value: "0s": must be a duration greater than 0, e.g. 5s, ` +
				`args.maxTargets: Invalid value: -2: must be greater than or equal to 0 (0 means no limit)]`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := valid
			tc.mutate(&args)
			got := errText(ValidateProxyArgs(field.NewPath("args"), &args))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestValidateCandidateArgs(t *testing.T) {
	cases := []struct {
		name string
		args config.CandidateArgs
		want string
	}{
		{name: "default", args: config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: 30 * time.Second}}},
		{
			name: "zero",
			args: config.CandidateArgs{},
			want: `args.permitWaitTimeout: Invalid value: "0s": must be a duration greater than 0, e.g. 5s`,
		},
		{
			name: "negative",
			args: config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: -time.Minute}},
			want: `args.permitWaitTimeout: Invalid value: "-1m0s": must be a duration greater than 0, e.g. 5s`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := errText(ValidateCandidateArgs(field.NewPath("args"), &tc.args))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error (-want,+got):\n%s", diff)
			}
		})
	}
}

// A plugin factory may validate its args without a path; fields are then
// reported from the args' root.
func TestNilPath(t *testing.T) {
	got := errText(ValidateProxyArgs(nil, &config.ProxyArgs{
		CandidateVerdictTimeout: metav1.Duration{Duration: time.Second},
		DelegateBindTimeout:     metav1.Duration{Duration: time.Second},
		MaxTargets:              -1,
	}))
	want := `maxTargets: Invalid value: -1: must be greater than or equal to 0 (0 means no limit)`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error (-want,+got):\n%s", diff)
	}
	got = errText(ValidateCandidateArgs(nil, &config.CandidateArgs{}))
	want = `permitWaitTimeout: Invalid value: "0s": must be a duration greater than 0, e.g. 5s`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error (-want,+got):\n%s", diff)
	}
}
