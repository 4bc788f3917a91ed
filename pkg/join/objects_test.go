package join

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	discoveryfake "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
)

// TestApplyConfigurations checks what join sends: each object's identity,
// the managed-by label, and the fields that tie the objects together.
func TestApplyConfigurations(t *testing.T) {
	labels := map[string]any{ManagedByLabel: FieldManager}
	meta := func(ns, name string) map[string]any {
		m := map[string]any{"name": name, "labels": labels}
		if ns != "" {
			m["namespace"] = ns
		}
		return m
	}
	cluster := Names{Target: "eu", Source: "hub", TokenSecret: "hub-token", Namespace: SystemNamespace, ClusterScoped: true}
	namespaced := Names{Target: "eu", Source: "hub", TokenSecret: "hub-token", Namespace: "team-a"}
	cases := []struct {
		name string
		obj  runtime.Object
		want map[string]any
	}{
		{"service account", cluster.serviceAccountObject(), map[string]any{
			"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(SystemNamespace, "hub")}},
		{"token secret", cluster.tokenSecretObject(), map[string]any{
			"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
			"metadata": func() map[string]any {
				m := meta(SystemNamespace, "hub-token")
				m["annotations"] = map[string]any{"kubernetes.io/service-account.name": "hub"}
				return m
			}()}},
		{"cluster source", cluster.sourceObject(), map[string]any{
			"apiVersion": "multicluster.admiralty.io/v1alpha1", "kind": "ClusterSource", "metadata": meta("", "hub"),
			"spec": map[string]any{"serviceAccount": map[string]any{"namespace": SystemNamespace, "name": "hub"}}}},
		{"source", namespaced.sourceObject(), map[string]any{
			"apiVersion": "multicluster.admiralty.io/v1alpha1", "kind": "Source", "metadata": meta("team-a", "hub"),
			"spec": map[string]any{"serviceAccountName": "hub"}}},
		{"kubeconfig secret", cluster.kubeconfigSecretObject([]byte("kc")), map[string]any{
			"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta(SystemNamespace, "eu"),
			"data": map[string]any{"config": "a2M="}}},
		{"cluster target", cluster.targetObject(), map[string]any{
			"apiVersion": "multicluster.admiralty.io/v1alpha1", "kind": "ClusterTarget", "metadata": meta("", "eu"),
			"spec": map[string]any{"kubeconfigSecret": map[string]any{"namespace": SystemNamespace, "name": "eu", "key": "config"}}}},
		{"target", namespaced.targetObject(), map[string]any{
			"apiVersion": "multicluster.admiralty.io/v1alpha1", "kind": "Target", "metadata": meta("team-a", "eu"),
			"spec": map[string]any{"kubeconfigSecret": map[string]any{"name": "eu", "key": "config"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := applyConfiguration(tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.Object); diff != "" {
				t.Errorf("apply configuration (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestRefs(t *testing.T) {
	cluster := Names{Target: "eu", Source: "hub", TokenSecret: "hub-token", Namespace: SystemNamespace, ClusterScoped: true}
	namespaced := Names{Target: "eu", Source: "hub", TokenSecret: "hub-token", Namespace: "team-a"}
	str := func(refs []ref) []string {
		var out []string
		for _, r := range refs {
			out = append(out, r.resource.Resource+": "+r.String())
		}
		return out
	}
	for _, tc := range []struct {
		names                  Names
		wantTarget, wantSource []string
	}{
		{cluster,
			[]string{"serviceaccounts: ServiceAccount flotilla-system/hub", "clustersources: ClusterSource hub", "secrets: Secret flotilla-system/hub-token"},
			[]string{"secrets: Secret flotilla-system/eu", "clustertargets: ClusterTarget eu"}},
		{namespaced,
			[]string{"serviceaccounts: ServiceAccount team-a/hub", "sources: Source team-a/hub", "secrets: Secret team-a/hub-token"},
			[]string{"secrets: Secret team-a/eu", "targets: Target team-a/eu"}},
	} {
		if diff := cmp.Diff(tc.wantTarget, str(tc.names.targetSide())); diff != "" {
			t.Errorf("target side (-want,+got):\n%s", diff)
		}
		if diff := cmp.Diff(tc.wantSource, str(tc.names.sourceSide())); diff != "" {
			t.Errorf("source side (-want,+got):\n%s", diff)
		}
	}
}

func TestCheckInstalled(t *testing.T) {
	gv := "multicluster.admiralty.io/v1alpha1"
	served := func(names ...string) []*metav1.APIResourceList {
		l := &metav1.APIResourceList{GroupVersion: gv}
		for _, n := range names {
			l.APIResources = append(l.APIResources, metav1.APIResource{Name: n})
		}
		return []*metav1.APIResourceList{l}
	}
	cases := []struct {
		name      string
		resources []*metav1.APIResourceList
		require   []string
		wantErr   string
	}{
		{name: "installed", resources: served("targets", "clustertargets", "sources", "clustersources"), require: []string{"clustersources"}},
		{name: "group not served", require: []string{"clustersources"},
			wantErr: `Flotilla is not installed in the target cluster (context "eu"): it does not serve multicluster.admiralty.io/v1alpha1 clustersources: install Flotilla in the target cluster first`},
		{name: "a resource missing", resources: served("podchaperons", "sources"), require: []string{"sources", "clustersources"},
			wantErr: "it does not serve multicluster.admiralty.io/v1alpha1 clustersources: install Flotilla"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &discoveryfake.FakeDiscovery{Fake: &clienttesting.Fake{Resources: tc.resources}}
			err := checkInstalled(context.Background(), d, side{&Cluster{Context: "eu"}, "target"}, tc.require...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
