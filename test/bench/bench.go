// Package bench measures Flotilla on the local sandbox: throughput, latency
// and API cost of elected pods fanned out to N targets, against a stock
// kube-scheduler placing the same number of plain pods in one cluster of
// the same sandbox. `make bench` (hack/bench) runs it; a short smoke run is
// part of `make test`. It reports what it measures and asserts no timing.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	kubeschedulerconfigv1 "k8s.io/kube-scheduler/config/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// Options of a benchmark run.
type Options struct {
	// Targets are the fleet sizes to measure, one sandbox each (e.g. 1, 3, 10).
	Targets []int
	// Pods per measurement.
	Pods int
	// Rate is the offered load (pods/s) of the fixed-rate measurement; the
	// saturation measurement creates pods as fast as it can.
	Rate float64
	// FanOut are the proxy scheduler's maxTargets values to compare at the
	// largest fleet (0 = all targets); at other sizes only the first.
	FanOut []int
	// ClientQPS and ClientBurst of every component, towards its own API
	// server and towards targets.
	ClientQPS   float32
	ClientBurst int32
	// Out is the folder of results.md, timings.csv and the plots.
	Out string
	// BinDir holds the sandbox tools and Flotilla's binaries.
	BinDir string
	// Keep leaves each sandbox's folder (component logs) behind.
	Keep bool
	// Profile, if set, records CPU profiles this long of the source's and
	// target-1's components while the saturation load runs, into
	// Out/profiles/.
	Profile  time.Duration
	Progress io.Writer
}

// Defaults for Options left zero.
const (
	DefaultPods        = 200
	DefaultRate        = 20
	DefaultClientQPS   = 500
	DefaultClientBurst = 1000
)

func (o *Options) defaults() error {
	if len(o.Targets) == 0 {
		o.Targets = []int{1, 3, 10}
	}
	if o.Pods <= 0 {
		o.Pods = DefaultPods
	}
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if len(o.FanOut) == 0 {
		o.FanOut = []int{0}
	}
	if o.ClientQPS <= 0 {
		o.ClientQPS = DefaultClientQPS
	}
	if o.ClientBurst <= 0 {
		o.ClientBurst = DefaultClientBurst
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	for _, n := range o.Targets {
		if n < 1 {
			return fmt.Errorf("targets %v: each must be 1 or more", o.Targets)
		}
	}
	if o.Out == "" {
		return errors.New("no output folder")
	}
	return os.MkdirAll(o.Out, 0o755)
}

// Run measures every fleet size of o and writes the results to o.Out.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	report := &Report{Options: o, Started: time.Now()}
	largest := slices.Max(o.Targets)
	for _, n := range o.Targets {
		fanOut := o.FanOut[:1]
		if n == largest {
			fanOut = o.FanOut
		}
		results, err := runFleetSize(ctx, o, n, fanOut)
		report.Results = append(report.Results, results...)
		// What was measured so far is written even if a later size fails.
		if werr := report.Write(o.Out); werr != nil {
			return report, werr
		}
		if err != nil {
			return report, fmt.Errorf("%d targets: %w", n, err)
		}
	}
	return report, nil
}

// runFleetSize starts a sandbox with n targets and measures vanilla and
// Flotilla (for each fan-out) at the fixed rate and at saturation.
func runFleetSize(ctx context.Context, o Options, n int, fanOut []int) ([]*Result, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("flotilla-bench-%d-", n))
	if err != nil {
		return nil, err
	}
	cfg := framework.DefaultConfig(filepath.Join(dir, "sandbox"), o.BinDir, n)
	// Every target fits every pod of a measurement: 100 pods per node.
	nodes := max(2, (o.Pods+99)/100+1)
	for i := range cfg.Clusters {
		for j := range cfg.Clusters[i].Nodes {
			pool := &cfg.Clusters[i].Nodes[j]
			pool.Count, pool.CPU, pool.Memory, pool.Pods = nodes, "64", "256Gi", "110"
		}
	}
	cfg.Progress = o.Progress
	progressf(o.Progress, "N=%d: starting a sandbox (source + %d targets, %d nodes each)", n, n, nodes)
	s, err := framework.Up(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := s.Down(); err != nil {
			progressf(o.Progress, "stopping the sandbox: %v", err)
		}
		if o.Keep {
			progressf(o.Progress, "N=%d: logs kept in %s", n, dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	var results []*Result
	vanilla := map[string]*Result{}
	for _, mode := range []float64{o.Rate, 0} {
		r, err := measureVanilla(ctx, o, s, n, mode)
		if err != nil {
			return results, err
		}
		vanilla[r.Load] = r
	}
	for _, k := range fanOut {
		logDir := filepath.Join(dir, "fleet-"+strconv.Itoa(k))
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return results, err
		}
		progressf(o.Progress, "N=%d: starting Flotilla (fan-out %s, client QPS %g, burst %d)", n, fanOutString(k), o.ClientQPS, o.ClientBurst)
		fleet, err := framework.StartFleetWith(ctx, s, n, logDir, fleetOptions(o, k))
		if err != nil {
			return results, err
		}
		for _, mode := range []float64{o.Rate, 0} {
			r, err := measureFlotilla(ctx, o, s, fleet, n, k, mode)
			if err != nil {
				fleet.Stop()
				return results, err
			}
			r.Vanilla = vanilla[r.Load]
			results = append(results, r)
		}
		fleet.Stop()
	}
	return results, nil
}

func fanOutString(k int) string {
	if k == 0 {
		return "all"
	}
	return strconv.Itoa(k)
}

// fleetOptions sets every component's client rate limits (the proxy
// scheduler's clientConnection also limits its clients of targets) and the
// proxy's fan-out, and quiets the schedulers' logs.
func fleetOptions(o Options, k int) framework.FleetOptions {
	qps, burst := o.ClientQPS, o.ClientBurst
	return framework.FleetOptions{
		ControllerManagerArgs: []string{
			fmt.Sprintf("--kube-api-qps=%g", qps), fmt.Sprintf("--kube-api-burst=%d", burst),
			fmt.Sprintf("--target-api-qps=%g", qps), fmt.Sprintf("--target-api-burst=%d", burst),
			// The defaults, not the e2e fleet's seconds: an overloaded
			// sandbox measures throughput, not garbage collection.
			"--source-lease-duration=1m", "--orphan-grace-period=15m", "--target-probe-interval=2s",
		},
		SchedulerVerbosity: 2,
		SchedulerConfig: func(component string, cfg *kubeschedulerconfigv1.KubeSchedulerConfiguration) {
			cfg.ClientConnection.QPS, cfg.ClientConnection.Burst = qps, burst
			for i := range cfg.Profiles {
				for j := range cfg.Profiles[i].PluginConfig {
					pc := &cfg.Profiles[i].PluginConfig[j]
					if pc.Name != "Proxy" {
						continue
					}
					args := map[string]any{}
					if len(pc.Args.Raw) > 0 {
						_ = json.Unmarshal(pc.Args.Raw, &args)
					}
					args["maxTargets"] = k
					raw, _ := json.Marshal(args)
					pc.Args = runtime.RawExtension{Raw: raw}
				}
			}
		},
	}
}

func loadName(rate float64) string {
	if rate == 0 {
		return "saturation"
	}
	return fmt.Sprintf("%g pods/s", rate)
}

// benchClient is a clientset for creating pods that does not throttle
// the offered load.
func benchClient(c *framework.Cluster) (kubernetes.Interface, error) {
	cfg := *c.RESTConfig
	cfg.QPS, cfg.Burst = 2000, 4000
	return kubernetes.NewForConfig(&cfg)
}

func podSpec() corev1.PodSpec {
	spec := framework.PodSpec()
	spec.TerminationGracePeriodSeconds = new(int64)
	return spec
}

// measureVanilla creates plain pods in target-1 for its stock scheduler.
func measureVanilla(ctx context.Context, o Options, s *framework.Sandbox, n int, rate float64) (*Result, error) {
	c, err := s.Cluster(framework.TargetName(1))
	if err != nil {
		return nil, err
	}
	ns := fmt.Sprintf("bench-vanilla-%d", int(rate))
	if err := createNamespace(ctx, c, ns, nil); err != nil {
		return nil, err
	}
	cs, err := benchClient(c)
	if err != nil {
		return nil, err
	}
	rec := newRecorder(time.Now())
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := rec.watchPods(wctx, c.Clientset, ns, c.Name, false); err != nil {
		return nil, err
	}
	label := fmt.Sprintf("N=%d vanilla %s", n, loadName(rate))
	rec.start = time.Now()
	if err := load(ctx, o, label, cs, ns, rate, rec, func(i int) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("plain-%05d", i), Namespace: ns}, Spec: podSpec()}
	}); err != nil {
		return nil, err
	}
	r := newResult(o, n, -1, rate, rec.timings())
	r.Flotilla = false
	r.CreateRetries = rec.retries()
	return r, deleteNamespace(ctx, c, ns)
}

// measureFlotilla creates elected pods in the source and follows them to
// their delegates, with the API writes they cost and the components' RSS.
func measureFlotilla(ctx context.Context, o Options, s *framework.Sandbox, f *framework.Fleet, n, k int, rate float64) (*Result, error) {
	ns := fmt.Sprintf("bench-k%d-%d", k, int(rate))
	if err := f.Namespace(ctx, ns); err != nil {
		return nil, err
	}
	cs, err := benchClient(f.Source)
	if err != nil {
		return nil, err
	}
	rec := newRecorder(time.Now())
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := rec.watchPods(wctx, f.Source.Clientset, ns, f.Source.Name, false); err != nil {
		return nil, err
	}
	for _, t := range f.Targets {
		if err := rec.watchPods(wctx, t.Clientset, ns, t.Name, true); err != nil {
			return nil, err
		}
	}
	before, err := costs(ctx, f)
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("N=%d fan-out %s %s", n, fanOutString(k), loadName(rate))
	measurement := fmt.Sprintf("N%d-fanout-%s-%s", n, fanOutString(k), strings.NewReplacer(" ", "", "/", "-").Replace(loadName(rate)))
	var profiles sync.WaitGroup
	if o.Profile > 0 && rate == 0 {
		dir := filepath.Join(o.Out, "profiles", measurement)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		for _, name := range []string{"proxy-scheduler", "source-controller-manager",
			"controller-manager/" + framework.TargetName(1), "candidate-scheduler/" + framework.TargetName(1)} {
			profiles.Go(func() {
				data, err := f.CPUProfile(ctx, name, o.Profile)
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".pprof"), data, 0o644)
				}
				if err != nil {
					progressf(o.Progress, "%s: profiling %s: %v", label, name, err)
				}
			})
		}
	}
	cpuBefore := sampleCPU(s, f)
	rec.start = time.Now()
	if err := load(ctx, o, label, cs, ns, rate, rec, func(i int) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("elected-%05d", i), Namespace: ns,
			Annotations: map[string]string{protocol.ElectAnnotation: ""}}, Spec: podSpec()}
	}); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, diagnose(ctx, f, ns, rec))
	}
	cpuAfter := sampleCPU(s, f)
	profiles.Wait()
	after, err := costs(ctx, f)
	if err != nil {
		return nil, err
	}
	// Every component's metrics (workqueue depths and waits, reconcile and
	// plugin durations) for finding the slowest phase.
	metricsDir := filepath.Join(o.Out, "metrics", measurement)
	if err := os.MkdirAll(metricsDir, 0o755); err != nil {
		return nil, err
	}
	for name := range f.Components {
		text, err := f.Metrics(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(metricsDir, strings.ReplaceAll(name, "/", "-")+".txt"), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	r := newResult(o, n, k, rate, rec.timings())
	r.Flotilla = true
	r.CreateRetries = rec.retries()
	r.setCosts(before, after, f)
	r.CPU, r.MachineBusy = cpuUse(cpuBefore, cpuAfter)
	for name, p := range f.Components {
		rss, err := peakRSS(p.PID)
		if err == nil {
			if r.PeakRSS == nil {
				r.PeakRSS = map[string]uint64{}
			}
			r.PeakRSS[name] = rss
		}
	}
	return r, deleteFleetNamespace(ctx, f, ns)
}

// load creates o.Pods pods at rate (0: as fast as it can, 32 at a time)
// and waits until all are Running, printing progress.
func load(ctx context.Context, o Options, label string, cs kubernetes.Interface, ns string, rate float64, rec *recorder, pod func(int) *corev1.Pod) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 1)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
		cancel()
	}
	var wg sync.WaitGroup
	create := func(i int) {
		p := pod(i)
		// An overloaded machine can time out the elect webhook: retry a
		// few times (counted), as a controller would.
		for attempt := 1; ; attempt++ {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				break
			}
			if attempt == 5 || ctx.Err() != nil {
				fail(fmt.Errorf("creating pod %s (%d attempts): %w", p.Name, attempt, err))
				return
			}
			rec.retried()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		rec.set(p.Name, created, time.Now())
	}
	if rate > 0 {
		interval := time.Duration(float64(time.Second) / rate)
		wg.Go(func() {
			next := time.Now()
			for i := range o.Pods {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				wg.Go(func() { create(i) })
				next = next.Add(interval)
			}
		})
	} else {
		work := make(chan int)
		for range 32 {
			wg.Go(func() {
				for i := range work {
					create(i)
				}
			})
		}
		wg.Go(func() {
			defer close(work)
			for i := range o.Pods {
				select {
				case work <- i:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	defer wg.Wait()

	// Wait, saying where things stand every 2 s; give up when nothing moved
	// for 2 minutes.
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	lastMove, last := time.Now(), [4]int{}
	for {
		c, d, b, r := rec.counts()
		if r >= o.Pods {
			progressf(o.Progress, "%s: %d pods Running after %.1fs", label, r, time.Since(rec.start).Seconds())
			return nil
		}
		if now := [4]int{c, d, b, r}; now != last {
			last, lastMove = now, time.Now()
		} else if time.Since(lastMove) > 2*time.Minute {
			return fmt.Errorf("%s: stuck at %d created, %d delegates bound, %d bound, %d Running; not Running: %s",
				label, c, d, b, r, strings.Join(rec.notRunning(10), ", "))
		}
		select {
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-rec.changed:
		case <-tick.C:
			progressf(o.Progress, "%s: %d/%d created, %d delegates bound, %d bound, %d Running (%.0fs)",
				label, c, o.Pods, d, b, r, time.Since(rec.start).Seconds())
		}
	}
}

func progressf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func createNamespace(ctx context.Context, c *framework.Cluster, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s in %s: %w", name, c.Name, err)
	}
	return nil
}

// deleteNamespace deletes a namespace and waits (at most 2 minutes) until
// it is gone, so that the next measurement starts on a quiet cluster.
func deleteNamespace(ctx context.Context, c *framework.Cluster, name string) error {
	if err := c.Clientset.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting namespace %s in %s: %w", name, c.Name, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		_, err := c.Clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("namespace %s in %s still there after 2 minutes", name, c.Name)
}

// deleteFleetNamespace deletes a measurement's namespace in the source
// (proxy pods and so delegates) and then in every target.
func deleteFleetNamespace(ctx context.Context, f *framework.Fleet, name string) error {
	if err := deleteNamespace(ctx, f.Source, name); err != nil {
		return err
	}
	for _, t := range f.Targets {
		if err := deleteNamespace(ctx, t, name); err != nil {
			return err
		}
	}
	return nil
}

// snapshot is the API write counters at one moment.
type snapshot struct {
	// server writes per cluster name (apiserver_request_total), in all
	// and by verb and resource.
	server     map[string]float64
	byResource map[string]map[string]float64
	// remote writes of the source's components per target host.
	remote map[string]float64
}

func costs(ctx context.Context, f *framework.Fleet) (snapshot, error) {
	s := snapshot{server: map[string]float64{}, byResource: map[string]map[string]float64{}, remote: map[string]float64{}}
	for _, c := range append([]*framework.Cluster{f.Source}, f.Targets...) {
		w, by, err := apiWrites(ctx, c)
		if err != nil {
			return s, err
		}
		s.server[c.Name] = w
		s.byResource[c.Name] = by
	}
	for _, component := range []string{"proxy-scheduler", "source-controller-manager"} {
		w, err := clientWrites(ctx, f, component)
		if err != nil {
			return s, err
		}
		for host, v := range w {
			s.remote[host] += v
		}
	}
	return s, nil
}

func (r *Result) setCosts(before, after snapshot, f *framework.Fleet) {
	pods := float64(max(len(r.Timings), 1))
	r.WritesPerPod = map[string]float64{}
	for name := range maps.Keys(after.server) {
		r.WritesPerPod[name] = (after.server[name] - before.server[name]) / pods
	}
	// By resource, in the source and the first target.
	r.WritesByResource = map[string]map[string]float64{}
	for _, name := range []string{f.Source.Name, f.Targets[0].Name} {
		by := map[string]float64{}
		for key, v := range after.byResource[name] {
			if d := (v - before.byResource[name][key]) / pods; d >= 0.05 {
				by[key] = d
			}
		}
		r.WritesByResource[name] = by
	}
	remote := 0.0
	for _, t := range f.Targets {
		host := hostOf(t.Server)
		remote += after.remote[host] - before.remote[host]
	}
	r.RemoteWritesPerPod = remote / pods
}

// diagnose says, for a few pods that are not Running, where each stands:
// the proxy pod's phase in the source, its chaperon's reported phase and
// its delegate's phase and node in the target.
func diagnose(ctx context.Context, f *framework.Fleet, ns string, rec *recorder) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var lines []string
	for _, name := range rec.notRunning(5) {
		name, _, _ = strings.Cut(name, " ")
		line := name + ":"
		proxy := &corev1.Pod{}
		if err := f.Source.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, proxy); err != nil {
			lines = append(lines, line+" "+err.Error())
			continue
		}
		line += fmt.Sprintf(" proxy %s on %q;", proxy.Status.Phase, proxy.Spec.NodeName)
		for _, t := range f.Targets {
			var chs multiclusterv1alpha1.PodChaperonList
			if err := t.Client.List(ctx, &chs, client.InNamespace(ns), client.MatchingLabels{protocol.ProxyPodUIDLabel: string(proxy.UID)}); err != nil {
				line += fmt.Sprintf(" %s: %v;", t.Name, err)
				continue
			}
			for _, ch := range chs.Items {
				line += fmt.Sprintf(" %s chaperon %s status %q", t.Name, ch.Name, ch.Status.Phase)
				d := &corev1.Pod{}
				if err := t.Client.Get(ctx, client.ObjectKeyFromObject(&ch), d); err != nil {
					line += fmt.Sprintf(", delegate: %v;", err)
					continue
				}
				line += fmt.Sprintf(", delegate %s on %q;", d.Status.Phase, d.Spec.NodeName)
			}
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}
