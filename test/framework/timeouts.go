package framework

import "time"

// Timeouts and intervals for Gomega's Eventually and Consistently, in one
// place so that every suite waits alike.
const (
	// ShortTimeout is for what an API server does at once: an object is
	// visible, a controller-manager reconciles.
	ShortTimeout = 15 * time.Second
	// PodTimeout is for a pod or a workload to become Running or Complete.
	PodTimeout = 60 * time.Second
	// LongTimeout is for start-up of whole components.
	LongTimeout = 2 * time.Minute
	// KubectlTimeout bounds one kubectl command run by a test.
	KubectlTimeout = time.Minute
	// Interval is how often Eventually checks.
	Interval = 250 * time.Millisecond
	// ConsistentlyDuration is how long Consistently watches that nothing happens.
	ConsistentlyDuration = 3 * time.Second
)

// TargetLossTimeout is Flotilla's promise for noticing a target that stops
// answering: its virtual node is NotReady within this long (with the default
// 2 s probe interval).
const TargetLossTimeout = 10 * time.Second

// RequeueTimeout is Flotilla's promise for a pending proxy pod once a
// target gains room for it: it is scheduled there within this long, not
// after the scheduler's periodic flush of unschedulable pods (5 min). The
// virtual node's update requeues it at once, but a pod that failed many
// times waits out the rest of its backoff first (kube-scheduler's
// podMaxBackoffSeconds, 10 s by default), and the target's summary takes a
// debounce period (1 s) and a watch to reach the source: 15 s in all (CI
// once saw 10 s run out).
const RequeueTimeout = 15 * time.Second
