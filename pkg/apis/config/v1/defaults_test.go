package v1

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
)

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := config.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// Defaulting through the scheme fills what is unset and keeps what is set,
// zero values included (validation rejects a zero timeout later).
func TestDefaults(t *testing.T) {
	s := newScheme(t)
	cases := []struct {
		name string
		in   runtime.Object
		want runtime.Object
	}{
		{
			name: "empty ProxyArgs",
			in:   &ProxyArgs{},
			want: &ProxyArgs{
				CandidateVerdictTimeout: duration(5 * time.Second),
				DelegateBindTimeout:     duration(30 * time.Second),
				MaxTargets:              ptr.To[int32](0),
			},
		},
		{
			name: "ProxyArgs set",
			in: &ProxyArgs{
				CandidateVerdictTimeout: duration(2 * time.Second),
				DelegateBindTimeout:     duration(time.Minute),
				MaxTargets:              ptr.To[int32](3),
			},
			want: &ProxyArgs{
				CandidateVerdictTimeout: duration(2 * time.Second),
				DelegateBindTimeout:     duration(time.Minute),
				MaxTargets:              ptr.To[int32](3),
			},
		},
		{
			name: "ProxyArgs partly set, zero kept",
			in: &ProxyArgs{
				CandidateVerdictTimeout: duration(0),
				MaxTargets:              ptr.To[int32](1),
			},
			want: &ProxyArgs{
				CandidateVerdictTimeout: duration(0),
				DelegateBindTimeout:     duration(30 * time.Second),
				MaxTargets:              ptr.To[int32](1),
			},
		},
		{
			name: "empty CandidateArgs",
			in:   &CandidateArgs{},
			want: &CandidateArgs{PermitWaitTimeout: duration(30 * time.Second)},
		},
		{
			name: "CandidateArgs set",
			in:   &CandidateArgs{PermitWaitTimeout: duration(10 * time.Second)},
			want: &CandidateArgs{PermitWaitTimeout: duration(10 * time.Second)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.DeepCopyObject()
			s.Default(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("defaults (-want,+got):\n%s", diff)
			}
		})
	}
}

// Conversion to the internal version and back keeps every value; unset
// fields become zero values internally.
func TestConversion(t *testing.T) {
	s := newScheme(t)
	cases := []struct {
		name     string
		in       runtime.Object
		internal runtime.Object
		back     runtime.Object
	}{
		{
			name: "ProxyArgs",
			in: &ProxyArgs{
				CandidateVerdictTimeout: duration(2 * time.Second),
				DelegateBindTimeout:     duration(time.Minute),
				MaxTargets:              ptr.To[int32](3),
			},
			internal: &config.ProxyArgs{
				CandidateVerdictTimeout: metav1.Duration{Duration: 2 * time.Second},
				DelegateBindTimeout:     metav1.Duration{Duration: time.Minute},
				MaxTargets:              3,
			},
			back: &ProxyArgs{
				TypeMeta:                metav1.TypeMeta{APIVersion: "kubescheduler.config.k8s.io/v1", Kind: "ProxyArgs"},
				CandidateVerdictTimeout: duration(2 * time.Second),
				DelegateBindTimeout:     duration(time.Minute),
				MaxTargets:              ptr.To[int32](3),
			},
		},
		{
			name:     "ProxyArgs unset",
			in:       &ProxyArgs{},
			internal: &config.ProxyArgs{},
			back: &ProxyArgs{
				TypeMeta:                metav1.TypeMeta{APIVersion: "kubescheduler.config.k8s.io/v1", Kind: "ProxyArgs"},
				CandidateVerdictTimeout: duration(0),
				DelegateBindTimeout:     duration(0),
				MaxTargets:              ptr.To[int32](0),
			},
		},
		{
			name:     "CandidateArgs",
			in:       &CandidateArgs{PermitWaitTimeout: duration(10 * time.Second)},
			internal: &config.CandidateArgs{PermitWaitTimeout: metav1.Duration{Duration: 10 * time.Second}},
			back: &CandidateArgs{
				TypeMeta:          metav1.TypeMeta{APIVersion: "kubescheduler.config.k8s.io/v1", Kind: "CandidateArgs"},
				PermitWaitTimeout: duration(10 * time.Second),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			internal, err := s.ConvertToVersion(tc.in.DeepCopyObject(), config.SchemeGroupVersion)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.internal, internal); diff != "" {
				t.Errorf("to internal (-want,+got):\n%s", diff)
			}
			back, err := s.ConvertToVersion(internal, SchemeGroupVersion)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.back, back); diff != "" {
				t.Errorf("back to v1 (-want,+got):\n%s", diff)
			}
		})
	}
}
