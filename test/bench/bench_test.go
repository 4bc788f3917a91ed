package bench

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-io/flotilla/test/framework"
)

// TestSmoke runs the benchmark end to end at a tiny size (2 targets, a few
// pods) and checks that it measured every step of every pod and wrote its
// outputs. It asserts no timing: figures come from `make bench`.
func TestSmoke(t *testing.T) {
	bin, err := framework.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var progress bytes.Buffer
	const pods = 6
	report, err := Run(t.Context(), Options{Targets: []int{2}, Pods: pods, Rate: 10, Out: out, BinDir: bin, Progress: &progress})
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Results) != 2 {
		t.Fatalf("%d results, want 2 (fixed rate and saturation)", len(report.Results))
	}
	for _, r := range report.Results {
		if r.Pods != pods || r.Vanilla == nil || r.Vanilla.Pods != pods {
			t.Fatalf("%s: %d pods (vanilla %v), want %d each", r.Load, r.Pods, r.Vanilla, pods)
		}
		for _, p := range r.Timings {
			// The proxy pod is bound once its candidate commits, so it may be
			// seen bound a moment before its delegate.
			if p.Created <= 0 || p.DelegateBound < p.Created || p.Bound < p.Created || p.Running < p.Bound || p.Target == "" {
				t.Errorf("%s: pod %s: steps missing or out of order: %+v", r.Load, p.Pod, p)
			}
		}
		for _, p := range r.Vanilla.Timings {
			if p.Created <= 0 || p.Bound < p.Created || p.Running < p.Bound || p.DelegateBound != 0 {
				t.Errorf("vanilla %s: pod %s: %+v", r.Load, p.Pod, p)
			}
		}
		if r.ThroughputBound <= 0 || r.Vanilla.ThroughputBound <= 0 {
			t.Errorf("%s: throughput %v, vanilla %v", r.Load, r.ThroughputBound, r.Vanilla.ThroughputBound)
		}
		for _, c := range []string{"source", "target-1", "target-2"} {
			if r.WritesPerPod[c] <= 0 {
				t.Errorf("%s: no API writes counted in %s: %v", r.Load, c, r.WritesPerPod)
			}
		}
		// At least a chaperon per target and an allow mark per pod.
		if r.RemoteWritesPerPod < 2 {
			t.Errorf("%s: %.1f remote writes per pod, want at least 2", r.Load, r.RemoteWritesPerPod)
		}
		// The source's controller-manager and proxy scheduler, a
		// controller-manager and a candidate scheduler per target.
		if len(r.PeakRSS) != 6 {
			t.Errorf("%s: peak RSS of %d processes, want 6: %v", r.Load, len(r.PeakRSS), r.PeakRSS)
		}
		// Every API server worked, and so did the proxy scheduler.
		for _, name := range []string{"source/kube-apiserver", "target-1/kube-apiserver", "target-2/kube-apiserver", "proxy-scheduler"} {
			if r.CPU[name] <= 0 {
				t.Errorf("%s: no CPU time for %s: %v", r.Load, name, r.CPU)
			}
		}
		if r.MachineBusy <= 0 || r.MachineBusy > 1 {
			t.Errorf("%s: machine busy %.2f, want in (0, 1]", r.Load, r.MachineBusy)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pods/s", "vanilla", "| 2 | all | 10 pods/s |", "| 2 | all | saturation |", "machine busy"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	f, err := os.Open(filepath.Join(out, "timings.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + 4*pods; len(rows) != want {
		t.Errorf("timings.csv has %d rows, want %d (header, Flotilla and vanilla pods of both loads)", len(rows), want)
	}
	png, err := os.ReadFile(filepath.Join(out, "latency-N2.png"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("latency-N2.png is not a PNG")
	}
}
