package remote

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	connectionsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "flotilla", Subsystem: "remote", Name: "connections",
		Help: "Open connections to target clusters.",
	})
	targetReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "flotilla", Subsystem: "remote", Name: "target_ready",
		Help: "1 if the target answered its last probe with valid credentials and Flotilla's API, else 0; by target and reason.",
	}, []string{"target", "reason"})
	probeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "flotilla", Subsystem: "remote", Name: "probe_failures_total",
		Help: "Failed probes of target clusters, by target and reason.",
	}, []string{"target", "reason"})
)

func init() {
	metrics.Registry.MustRegister(connectionsOpen, targetReady, probeFailures)
}

func recordHealth(key Key, old, h Health) {
	if old.Reason != "" && old.Reason != h.Reason {
		targetReady.DeleteLabelValues(key.String(), old.Reason)
	}
	v := 0.0
	if h.Ready {
		v = 1
	} else {
		probeFailures.WithLabelValues(key.String(), h.Reason).Inc()
	}
	targetReady.WithLabelValues(key.String(), h.Reason).Set(v)
}

func forgetTarget(key Key) {
	targetReady.DeletePartialMatch(prometheus.Labels{"target": key.String()})
	probeFailures.DeletePartialMatch(prometheus.Labels{"target": key.String()})
}
