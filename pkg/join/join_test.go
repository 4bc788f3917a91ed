package join

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// fakeAPIServer answers discovery of Flotilla's API group with the
// resources given (404 if none) and records every other request, which it
// refuses.
type fakeAPIServer struct {
	*httptest.Server
	mu    sync.Mutex
	other []string
}

func newFakeAPIServer(t *testing.T, resources ...string) *fakeAPIServer {
	f := &fakeAPIServer{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/apis/multicluster.admiralty.io/v1alpha1" && len(resources) > 0 {
			list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
				GroupVersion: "multicluster.admiralty.io/v1alpha1"}
			for _, name := range resources {
				list.APIResources = append(list.APIResources, metav1.APIResource{Name: name})
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(list)
			return
		}
		if r.URL.Path != "/apis/multicluster.admiralty.io/v1alpha1" {
			f.mu.Lock()
			f.other = append(f.other, r.Method+" "+r.URL.Path)
			f.mu.Unlock()
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) cluster(t *testing.T, name string) *Cluster {
	c, err := NewCluster(name, name, &rest.Config{Host: f.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeAPIServer) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.other
}

// Join checks that both clusters serve Flotilla's API before it reads or
// writes anything, and says which one lacks it.
func TestJoinRequiresFlotillaOnBothSides(t *testing.T) {
	all := []string{"targets", "clustertargets", "sources", "clustersources", "podchaperons"}
	cases := []struct {
		name                     string
		sourceServes, targetServ []string
		opts                     Options
		wantCluster              string
		wantMissing              []string
	}{
		{name: "target without Flotilla", sourceServes: all, wantCluster: "target", wantMissing: []string{"clustersources"}},
		{name: "source without Flotilla", targetServ: all, wantCluster: "source", wantMissing: []string{"clustertargets"}},
		{name: "namespaced: an old target without Sources", sourceServes: all, targetServ: []string{"clustersources"},
			opts: Options{Namespace: "team-a"}, wantCluster: "target", wantMissing: []string{"sources"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, tgt := newFakeAPIServer(t, tc.sourceServes...), newFakeAPIServer(t, tc.targetServ...)
			_, err := Join(context.Background(), src.cluster(t, "hub"), tgt.cluster(t, "eu"), tc.opts)
			var notInstalled *NotInstalledError
			if !errors.As(err, &notInstalled) {
				t.Fatalf("error %v, want a NotInstalledError", err)
			}
			if notInstalled.Cluster != tc.wantCluster || !cmp.Equal(tc.wantMissing, notInstalled.Missing) {
				t.Errorf("not installed in %s, missing %v; want %s, %v", notInstalled.Cluster, notInstalled.Missing, tc.wantCluster, tc.wantMissing)
			}
			for _, f := range []*fakeAPIServer{src, tgt} {
				if reqs := f.requests(); len(reqs) > 0 {
					t.Errorf("requests before the check passed: %v", reqs)
				}
			}
		})
	}
}
