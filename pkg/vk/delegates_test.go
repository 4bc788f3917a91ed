package vk

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// proxyPod is a proxy pod bound to node (none if empty).
func proxyPod(namespace, name string, uid types.UID, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: uid},
		Spec: corev1.PodSpec{
			SchedulerName: protocol.ProxySchedulerName,
			NodeName:      node,
			Containers:    []corev1.Container{{Name: "app", Image: "nginx"}},
		},
	}
}

func TestDelegate(t *testing.T) {
	key := remote.Key{Namespace: "ns", Name: "eu"}
	virtual := Desired(key, nil, remote.Health{Ready: true}, nil)
	worker := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}}
	bound := proxyPod("default", "web", "uid-1", virtual.Name)
	plain := proxyPod("default", "plain", "uid-2", "worker-1")
	plain.Spec.SchedulerName = corev1.DefaultSchedulerName
	onReal := proxyPod("default", "on-real", "uid-3", "worker-1")
	unbound := proxyPod("default", "pending", "uid-4", "")
	orphan := proxyPod("default", "orphan", "uid-5", "admiralty-gone")
	cfg := &rest.Config{Host: "https://eu.example:6443", BearerToken: "source-in-eu"}
	down := remote.Health{Reason: "Unreachable", Message: "dial tcp: connection refused"}

	cases := []struct {
		name      string
		pod       string
		connected bool
		health    *remote.Health
		want      Delegate
		wantErr   error
		wantMsg   string
	}{
		{
			name: "not found", pod: "nope", connected: true,
			wantErr: ErrPodNotFound, wantMsg: "pod default/nope not found",
		},
		{
			name: "not a proxy pod", pod: "plain", connected: true,
			wantErr: ErrNotProxy, wantMsg: `pod default/plain is not a proxy pod (its scheduler is "default-scheduler", not "admiralty-proxy")`,
		},
		{
			name: "proxy pod on a real node", pod: "on-real", connected: true,
			wantErr: ErrNotProxy, wantMsg: "pod default/on-real is not a proxy pod: node worker-1 is not a virtual node",
		},
		{
			name: "not bound yet", pod: "pending", connected: true,
			wantErr: ErrNotBound, wantMsg: "pod default/pending is not running in a target yet: it is not bound to a virtual node",
		},
		{
			name: "virtual node gone", pod: "orphan", connected: true,
			wantErr: ErrTargetUnreachable, wantMsg: "pod default/orphan: its virtual node admiralty-gone is gone (its target was removed): unreachable",
		},
		{
			name: "target not connected", pod: "web",
			wantErr: ErrTargetUnreachable, wantMsg: "pod default/web runs in target ns/eu, which is unreachable: ns/eu: cluster not connected",
		},
		{
			name: "target not ready", pod: "web", connected: true, health: &down,
			wantErr: ErrTargetUnreachable, wantMsg: "pod default/web runs in target ns/eu, which is unreachable: Unreachable: dial tcp: connection refused",
		},
		{
			name: "ok", pod: "web", connected: true,
			want: Delegate{Target: key, Config: cfg, Namespace: "default", Name: protocol.ChaperonName(bound)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			source := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).
				WithObjects(virtual, worker, bound, plain, onReal, unbound, orphan).Build()
			fleet := &remote.Fake{Configs: map[remote.Key]*rest.Config{key: cfg}, Healths: map[remote.Key]remote.Health{}}
			if tc.connected {
				fleet.Connected = map[remote.Key]string{key: "fp"}
			}
			if tc.health != nil {
				fleet.Healths[key] = *tc.health
			}
			got, err := NewDelegates(source, fleet).Delegate(ctx, "default", tc.pod)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || err.Error() != tc.wantMsg {
					t.Fatalf("Delegate() error = %v, want %q (%v)", err, tc.wantMsg, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Delegate(): %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Delegate() (-want,+got):\n%s", diff)
			}
			if got.Name == bound.Name {
				t.Errorf("the delegate has the proxy pod's name %q", got.Name)
			}
		})
	}
}

// staticDelegates resolves every proxy pod to one delegate, or fails.
type staticDelegates struct {
	delegate Delegate
	err      error
}

func (s staticDelegates) Delegate(context.Context, string, string) (Delegate, error) {
	return s.delegate, s.err
}
