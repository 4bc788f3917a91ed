package candidate

import (
	"sync"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var (
	permitWaitDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem: "flotilla_candidate", Name: "permit_wait_duration_seconds",
		Help:           "Time a reserved candidate waited in Permit for the proxy's decision (allowed or released).",
		Buckets:        metrics.ExponentialBuckets(0.005, 2, 14),
		StabilityLevel: metrics.ALPHA,
	})
	permitOutcomes = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem: "flotilla_candidate", Name: "permit_outcomes_total",
		Help:           "Outcomes of candidates' waits in Permit: allowed, released (another target chosen).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
)

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(permitWaitDuration, permitOutcomes)
	})
}

func observeWait(since time.Time) {
	if !since.IsZero() {
		permitWaitDuration.Observe(time.Since(since).Seconds())
	}
}
