package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flotilla-io/flotilla/test/framework"
)

// writeVerbs are the apiserver_request_total verbs that change state.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true, "DELETECOLLECTION": true}

// clientWriteMethods are the rest_client_requests_total methods that
// change state.
var clientWriteMethods = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true}

// parseMetrics parses the Prometheus text format.
func parseMetrics(text string) (map[string]*dto, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	out := map[string]*dto{}
	for name, f := range families {
		d := &dto{}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			d.samples = append(d.samples, sample{labels: labels, value: v})
		}
		out[name] = d
	}
	return out, nil
}

type sample struct {
	labels map[string]string
	value  float64
}

// dto is one metric family's samples.
type dto struct{ samples []sample }

// apiWrites is the number of write requests a cluster's kube-apiserver has
// served (apiserver_request_total), from every client, in all and by
// "VERB resource[/subresource]".
func apiWrites(ctx context.Context, c *framework.Cluster) (float64, map[string]float64, error) {
	body, err := c.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("metrics of %s's kube-apiserver: %w", c.Name, err)
	}
	m, err := parseMetrics(string(body))
	if err != nil {
		return 0, nil, err
	}
	total, by := 0.0, map[string]float64{}
	if d := m["apiserver_request_total"]; d != nil {
		for _, s := range d.samples {
			if !writeVerbs[s.labels["verb"]] {
				continue
			}
			key := s.labels["verb"] + " " + s.labels["resource"]
			if sub := s.labels["subresource"]; sub != "" {
				key += "/" + sub
			}
			total += s.value
			by[key] += s.value
		}
	}
	return total, by, nil
}

// clientWrites is the number of write requests a component has sent, per
// API server host (rest_client_requests_total of client-go's metrics).
func clientWrites(ctx context.Context, f *framework.Fleet, component string) (map[string]float64, error) {
	text, err := f.Metrics(ctx, component)
	if err != nil {
		return nil, err
	}
	m, err := parseMetrics(text)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	if d := m["rest_client_requests_total"]; d != nil {
		for _, s := range d.samples {
			if clientWriteMethods[s.labels["method"]] {
				out[s.labels["host"]] += s.value
			}
		}
	}
	return out, nil
}

// hostOf is the host:port of an API server URL, as client-go's metrics
// label it.
func hostOf(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return server
	}
	return u.Host
}

// peakRSS is a process's peak resident set size in bytes (VmHWM).
func peakRSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fields := strings.Fields(rest)
			if len(fields) != 2 || fields[1] != "kB" {
				return 0, fmt.Errorf("VmHWM of pid %d: %q", pid, rest)
			}
			kb, err := strconv.ParseUint(fields[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// clockTicks is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// Linux for every architecture Go supports here).
const clockTicks = 100

// cpuSeconds is the CPU time (user + system) a process has used.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields start
	// after the last ')', with the state (field 3 of proc(5)).
	i := strings.LastIndexByte(string(data), ')')
	fields := strings.Fields(string(data[i+1:]))
	if i < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(utime+stime) / clockTicks, nil
}

// machineCPU is the machine's busy and total CPU time so far, in seconds
// (every core), from /proc/stat.
func machineCPU() (busy, total float64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: %q", line)
	}
	for i, f := range fields[1:] {
		if i >= 8 { // guest, guest_nice: already counted in user, nice
			break
		}
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += float64(v)
		if i != 3 && i != 4 { // idle, iowait
			busy += float64(v)
		}
	}
	return busy / clockTicks, total / clockTicks, nil
}

// cpuSample is the CPU time of every process of the sandbox and the fleet,
// by name, and the machine's.
type cpuSample struct {
	procs       map[string]float64
	busy, total float64
}

func sampleCPU(s *framework.Sandbox, f *framework.Fleet) cpuSample {
	out := cpuSample{procs: map[string]float64{}}
	add := func(name string, pid int) {
		if v, err := cpuSeconds(pid); err == nil {
			out.procs[name] = v
		}
	}
	for _, p := range s.Processes {
		add(p.ID(), p.PID)
	}
	for name, p := range f.Components {
		add(name, p.PID)
	}
	out.busy, out.total, _ = machineCPU()
	return out
}

// cpuUse is what each process used between two samples (seconds), and how
// busy the machine was (0-1, all cores).
func cpuUse(before, after cpuSample) (map[string]float64, float64) {
	use := map[string]float64{}
	for name, v := range after.procs {
		if b, ok := before.procs[name]; ok && v > b {
			use[name] = v - b
		}
	}
	busy := 0.0
	if d := after.total - before.total; d > 0 {
		// The kernel's idle count can step back a little (idle time
		// accounted late on tickless cores), which would make a fully
		// busy machine more than 100% busy.
		busy = min(max((after.busy-before.busy)/d, 0), 1)
	}
	return use, busy
}
