package bench

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Percentiles of a latency distribution.
type Percentiles struct{ P50, P90, P99 time.Duration }

// Result is one measurement: a fleet size, a fan-out, a load.
type Result struct {
	Targets int
	// FanOut is the proxy's maxTargets (0 = all); -1 for vanilla.
	FanOut   int
	Load     string
	Flotilla bool
	Pods     int
	// Throughput from the first pod created to the last one bound, and
	// to the last one Running (pods/s).
	ThroughputBound, ThroughputRunning float64
	// Latencies from creation: to the delegate bound in its target
	// (Flotilla only), to the (proxy) pod bound, to Running.
	DelegateBound, Bound, Running Percentiles
	// PerTarget counts delegates per target.
	PerTarget map[string]int
	// WritesPerPod are the API writes per pod that each cluster's
	// kube-apiserver served during the measurement, from every client.
	WritesPerPod map[string]float64
	// RemoteWritesPerPod are the writes the source's components sent to
	// all targets together, per pod.
	RemoteWritesPerPod float64
	// CreateRetries counts pod creations retried after an error (e.g. the
	// elect webhook timing out on an overloaded machine).
	CreateRetries int
	// PeakRSS of each Flotilla process (bytes), at the end.
	PeakRSS map[string]uint64
	// CPU is the CPU time (seconds) each process of the sandbox and the
	// fleet used during the measurement, and MachineBusy how busy the
	// machine's cores were (0-1).
	CPU         map[string]float64
	MachineBusy float64
	// WritesByResource are the writes per pod that the source's and the
	// first target's kube-apiservers served, by "VERB resource[/sub]"
	// (0.05 per pod or more).
	WritesByResource map[string]map[string]float64
	// Vanilla is the stock scheduler's measurement at the same load.
	Vanilla *Result
	Timings []PodTiming
}

func newResult(o Options, n, k int, rate float64, timings []PodTiming) *Result {
	r := &Result{Targets: n, FanOut: k, Load: loadName(rate), Pods: len(timings), Timings: timings, PerTarget: map[string]int{}}
	slices.SortFunc(r.Timings, func(a, b PodTiming) int { return strings.Compare(a.Pod, b.Pod) })
	var first, lastBound, lastRunning time.Duration = math.MaxInt64, 0, 0
	var del, bnd, run []time.Duration
	for _, t := range timings {
		first = min(first, t.Created)
		lastBound = max(lastBound, t.Bound)
		lastRunning = max(lastRunning, t.Running)
		if t.DelegateBound > 0 {
			del = append(del, t.DelegateBound-t.Created)
		}
		if t.Bound > 0 {
			bnd = append(bnd, t.Bound-t.Created)
		}
		if t.Running > 0 {
			run = append(run, t.Running-t.Created)
		}
		if t.Target != "" {
			r.PerTarget[t.Target]++
		}
	}
	if n := len(timings); n > 0 {
		r.ThroughputBound = float64(n) / (lastBound - first).Seconds()
		r.ThroughputRunning = float64(n) / (lastRunning - first).Seconds()
	}
	r.DelegateBound, r.Bound, r.Running = percentiles(del), percentiles(bnd), percentiles(run)
	return r
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99)}
}

// Report is a whole benchmark run.
type Report struct {
	Options Options
	Started time.Time
	Results []*Result
}

// Write puts results.md, timings.csv and latency-N<n>.png in dir.
func (r *Report) Write(dir string) error {
	f, err := os.Create(filepath.Join(dir, "results.md"))
	if err != nil {
		return err
	}
	r.Markdown(f)
	if err := f.Close(); err != nil {
		return err
	}
	if err := r.writeCSV(filepath.Join(dir, "timings.csv")); err != nil {
		return err
	}
	sizes := map[int]bool{}
	for _, res := range r.Results {
		sizes[res.Targets] = true
	}
	for n := range sizes {
		if err := r.plot(n, filepath.Join(dir, fmt.Sprintf("latency-N%d.png", n))); err != nil {
			return err
		}
	}
	return nil
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64)
}

func trio(p Percentiles) string { return ms(p.P50) + " / " + ms(p.P90) + " / " + ms(p.P99) }

// Markdown writes the results table, the settings and the peak RSS.
func (r *Report) Markdown(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "# Flotilla benchmark, %s\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "%d pods per measurement; fixed load %g pods/s and saturation; client QPS %g, burst %d for every component "+
		"(controller-managers: --kube-api-qps/--target-api-qps; schedulers: clientConnection, which also limits the proxy's clients of targets). "+
		"Latencies in ms from pod creation (p50 / p90 / p99), as observed by watches. Vanilla: a stock kube-scheduler placing the same "+
		"number of plain pods in target-1 of the same sandbox.\n\n", o.Pods, o.Rate, o.ClientQPS, o.ClientBurst)
	fmt.Fprintln(w, "| targets | fan-out | load | Flotilla pods/s (bound) | pods/s (Running) | vanilla pods/s (bound) | Flotilla/vanilla | delegate bound | proxy bound | vanilla bound | added p50 / p99 | writes/pod source | writes/pod targets | remote writes/pod |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, res := range r.Results {
		v := res.Vanilla
		vanillaTP, ratio, vanillaLat, added := "-", "-", "-", "-"
		if v != nil {
			vanillaTP = fmt.Sprintf("%.1f", v.ThroughputBound)
			ratio = fmt.Sprintf("%.2f", res.ThroughputBound/v.ThroughputBound)
			vanillaLat = trio(v.Bound)
			added = ms(res.Bound.P50-v.Bound.P50) + " / " + ms(res.Bound.P99-v.Bound.P99)
		}
		source, targets := 0.0, 0.0
		for name, w := range res.WritesPerPod {
			if name == "source" {
				source = w
			} else {
				targets += w
			}
		}
		fmt.Fprintf(w, "| %d | %s | %s | %.1f | %.1f | %s | %s | %s | %s | %s | %s | %.1f | %.1f | %.1f |\n",
			res.Targets, fanOutString(res.FanOut), res.Load, res.ThroughputBound, res.ThroughputRunning, vanillaTP, ratio,
			trio(res.DelegateBound), trio(res.Bound), vanillaLat, added, source, targets, res.RemoteWritesPerPod)
	}
	fmt.Fprintln(w, "\nDelegates per target and peak RSS (MiB) of each Flotilla process at the end of each measurement:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| targets | fan-out | load | delegates per target | create retries | peak RSS |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, res := range r.Results {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %d | %s |\n", res.Targets, fanOutString(res.FanOut), res.Load, counts(res.PerTarget), res.CreateRetries, rss(res.PeakRSS))
	}
	fmt.Fprintln(w, "\nCPU during each measurement: how busy the machine's cores were, the CPU seconds of Flotilla's processes and of the "+
		"sandbox's (API servers, etcd, controller-managers, schedulers, kwok), and the processes that used the most:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| targets | fan-out | load | machine busy | Flotilla CPU s | sandbox CPU s | top processes (CPU s) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, res := range r.Results {
		flotilla := cpuOf(res.CPU, func(name string) bool { _, ok := res.PeakRSS[name]; return ok })
		total := cpuOf(res.CPU, func(string) bool { return true })
		fmt.Fprintf(w, "| %d | %s | %s | %.0f%% | %.1f | %.1f | %s |\n", res.Targets, fanOutString(res.FanOut), res.Load,
			100*res.MachineBusy, flotilla, total-flotilla, byValue(res.CPU, 6))
	}
	fmt.Fprintln(w, "\nAPI writes per pod by verb and resource, as the source's and target-1's kube-apiservers served them (every client):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| targets | fan-out | load | cluster | writes per pod |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, res := range r.Results {
		for _, cluster := range slices.Sorted(maps.Keys(res.WritesByResource)) {
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", res.Targets, fanOutString(res.FanOut), res.Load, cluster,
				byValue(res.WritesByResource[cluster], 0))
		}
	}
}

// byValue formats "key value, ..." of the n largest values of m (all if n
// is 0), largest first.
func byValue(m map[string]float64, n int) string {
	names := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	if n > 0 && len(names) > n {
		names = names[:n]
	}
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %.1f", name, m[name])
	}
	return strings.Join(parts, ", ")
}

// cpuOf sums the CPU seconds of the processes whose name matches.
func cpuOf(m map[string]float64, match func(string) bool) float64 {
	sum := 0.0
	for name, v := range m {
		if match(name) {
			sum += v
		}
	}
	return sum
}

func counts(m map[string]int) string {
	return byKey(m, func(n int) string { return strconv.Itoa(n) })
}

func rss(m map[string]uint64) string {
	return byKey(m, func(b uint64) string { return strconv.FormatUint(b>>20, 10) })
}

// byKey formats "key value, ..." in key order.
func byKey[V any](m map[string]V, format func(V) string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+format(m[k]))
	}
	return strings.Join(parts, ", ")
}

// writeCSV writes every pod's timings (ms from the start of its
// measurement).
func (r *Report) writeCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"targets", "fan_out", "load", "scheduler", "pod", "target", "created_ms", "delegate_bound_ms", "bound_ms", "running_ms"})
	write := func(res *Result, scheduler string) {
		for _, t := range res.Timings {
			_ = w.Write([]string{strconv.Itoa(res.Targets), fanOutString(res.FanOut), res.Load, scheduler, t.Pod, t.Target,
				ms(t.Created), ms(t.DelegateBound), ms(t.Bound), ms(t.Running)})
		}
	}
	seen := map[*Result]bool{}
	for _, res := range r.Results {
		write(res, "flotilla")
		if res.Vanilla != nil && !seen[res.Vanilla] {
			seen[res.Vanilla] = true
			write(res.Vanilla, "vanilla")
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// plot draws, for fleet size n, the distribution (CDF) of the latency
// from creation to bound of every measurement and of vanilla.
func (r *Report) plot(n int, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Pod created → bound, %d target(s)", n)
	p.X.Label.Text = "latency (ms)"
	p.Y.Label.Text = "fraction of pods"
	var lines []any
	seen := map[*Result]bool{}
	add := func(name string, res *Result) {
		var d []float64
		for _, t := range res.Timings {
			if t.Bound > 0 {
				d = append(d, float64(t.Bound-t.Created)/float64(time.Millisecond))
			}
		}
		if len(d) == 0 {
			return
		}
		slices.Sort(d)
		pts := make(plotter.XYs, len(d))
		for i, v := range d {
			pts[i] = plotter.XY{X: v, Y: float64(i+1) / float64(len(d))}
		}
		lines = append(lines, name, pts)
	}
	for _, res := range r.Results {
		if res.Targets != n {
			continue
		}
		add(fmt.Sprintf("Flotilla, fan-out %s, %s", fanOutString(res.FanOut), res.Load), res)
		if v := res.Vanilla; v != nil && !seen[v] {
			seen[v] = true
			add("vanilla, "+v.Load, v)
		}
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return err
	}
	p.Legend.Top = false
	p.Legend.Left = false
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
