package proxy

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

const metricsSubsystem = "flotilla_proxy"

var (
	phaseBuckets = metrics.ExponentialBuckets(0.005, 2, 14) // 5ms … 41s

	dispatchDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem: metricsSubsystem, Name: "dispatch_duration_seconds",
		Help:           "Time to create a proxy pod's candidates (PodChaperons) in its targets, per fan-out.",
		Buckets:        phaseBuckets,
		StabilityLevel: metrics.ALPHA,
	})
	verdictDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem: metricsSubsystem, Name: "verdict_duration_seconds",
		Help:           "Time from a fan-out to the last verdict of its targets (or the verdict timeout).",
		Buckets:        phaseBuckets,
		StabilityLevel: metrics.ALPHA,
	})
	decisionDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem: metricsSubsystem, Name: "decision_duration_seconds",
		Help:           "Time from a fan-out to the choice of a target (Reserve on its virtual node).",
		Buckets:        phaseBuckets,
		StabilityLevel: metrics.ALPHA,
	})
	delegateBindDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem: metricsSubsystem, Name: "delegate_bind_duration_seconds",
		Help:           "Time from the allow mark to the delegate pod bound in its target.",
		Buckets:        phaseBuckets,
		StabilityLevel: metrics.ALPHA,
	})
	verdictsTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem: metricsSubsystem, Name: "verdicts_total",
		Help:           "Verdicts received from targets on candidates, by result (Reserved, Unschedulable, Bound).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	decisionsTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem: metricsSubsystem, Name: "decisions_total",
		Help:           "Outcomes of decisions: bound (delegate bound), revoked (choice withdrawn before binding), failed.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
)

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(dispatchDuration, verdictDuration, decisionDuration, delegateBindDuration, verdictsTotal, decisionsTotal)
	})
}
