package bench

import (
	"bufio"
	"context"
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

// sum adds the samples whose labels match.
func (d *dto) sum(match func(map[string]string) bool) float64 {
	if d == nil {
		return 0
	}
	total := 0.0
	for _, s := range d.samples {
		if match(s.labels) {
			total += s.value
		}
	}
	return total
}

// apiWrites is the number of write requests a cluster's kube-apiserver has
// served (apiserver_request_total), from every client.
func apiWrites(ctx context.Context, c *framework.Cluster) (float64, error) {
	body, err := c.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("metrics of %s's kube-apiserver: %w", c.Name, err)
	}
	m, err := parseMetrics(string(body))
	if err != nil {
		return 0, err
	}
	return m["apiserver_request_total"].sum(func(l map[string]string) bool { return writeVerbs[l["verb"]] }), nil
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
