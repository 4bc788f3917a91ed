package remote

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// probedTarget answers the probe's read of the ClusterSummary, failing the
// next fail reads with 503 (an API server that is down or starting); every
// other request gets 404.
type probedTarget struct {
	fail   atomic.Int32
	probes atomic.Int32
}

func (p *probedTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/clustersummaries/"+protocol.ClusterSummaryName) {
		http.NotFound(w, r)
		return
	}
	p.probes.Add(1)
	if p.fail.Load() > 0 {
		p.fail.Add(-1)
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"apiVersion":"multicluster.admiralty.io/v1alpha1","kind":"ClusterSummary","metadata":{"name":"` +
		protocol.ClusterSummaryName + `"}}`))
}

// A target that fails two probes in a row or more gets a new connection
// (a new cache) when it answers again, which keeps the summary last seen;
// one failed probe is not an outage.
func TestConnectionRenewedAfterAnOutage(t *testing.T) {
	cases := []struct {
		name string
		// failedProbes in a row, from a connected, ready target.
		failedProbes int32
		wantRenewed  bool
	}{
		{name: "one failed probe: the connection stays", failedProbes: 1},
		{name: "two failed probes: renewed", failedProbes: 2, wantRenewed: true},
		{name: "five failed probes: renewed", failedProbes: 5, wantRenewed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			target := &probedTarget{}
			srv := httptest.NewServer(target)
			defer srv.Close()

			var mu sync.Mutex
			var healths []bool
			connectionChanges := 0
			key := Key{Name: "t"}
			c := NewConnector(ctx, Options{
				ProbeInterval: 10 * time.Millisecond,
				OnHealthChange: func(k Key, h Health) {
					mu.Lock()
					defer mu.Unlock()
					healths = append(healths, h.Ready)
				},
				OnConnectionChange: func(Key) {
					mu.Lock()
					defer mu.Unlock()
					connectionChanges++
				},
			}, NewCluster)
			first, err := c.Connect(ctx, key, &rest.Config{Host: srv.URL}, "fp")
			if err != nil {
				t.Fatal(err)
			}
			if !first.Health().Ready {
				t.Fatalf("first probe: %+v", first.Health())
			}
			seen := &multiclusterv1alpha1.ClusterSummary{}
			seen.Name = protocol.ClusterSummaryName
			seen.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}
			first.(*connection).setSummary(seen)
			mu.Lock()
			connectionChanges = 0 // Connect's own
			mu.Unlock()

			base := target.probes.Load()
			target.fail.Store(tc.failedProbes)
			// The outage is over once the target has answered a probe
			// after the failed ones, and the loop has acted on it (a
			// renewed connection probes once as it opens, then every
			// interval).
			deadline := time.Now().Add(10 * time.Second)
			for target.fail.Load() > 0 || target.probes.Load() < base+tc.failedProbes+4 {
				if time.Now().After(deadline) {
					t.Fatalf("the target was not probed through its outage: %d probes, %d failures left", target.probes.Load(), target.fail.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}

			now, err := c.Get(key)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if renewed := now != first; renewed != tc.wantRenewed {
				t.Fatalf("connection renewed: %t, want %t", renewed, tc.wantRenewed)
			}
			if !now.Health().Ready {
				t.Errorf("health after the outage: %+v", now.Health())
			}
			if want := []bool{false, true}; len(healths) != 2 || healths[0] != want[0] || healths[1] != want[1] {
				t.Errorf("health changes published: %v, want %v", healths, want)
			}
			wantChanges := 0
			if tc.wantRenewed {
				wantChanges = 1
			}
			if connectionChanges != wantChanges {
				t.Errorf("connection changes published: %d, want %d", connectionChanges, wantChanges)
			}
			if s := now.Summary(); s == nil || !s.Capacity.Cpu().Equal(resource.MustParse("8")) {
				t.Errorf("summary after the outage: %v, want the one seen before", s)
			}
			if tc.wantRenewed {
				select {
				case <-first.(*connection).done:
				default:
					t.Errorf("the replaced connection is still open")
				}
			}
		})
	}
}
