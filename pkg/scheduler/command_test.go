package scheduler

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// TestNewCommandFeatureGates: Flotilla's schedulers start without
// nominatedNodeName writes, and --feature-gates still decides. The gates
// are applied as the command does before it runs (PersistentPreRunE).
func TestNewCommandFeatureGates(t *testing.T) {
	gate := features.NominatedNodeNameForExpectation
	for _, tc := range []struct {
		flag string
		want bool
	}{
		{flag: "", want: false},
		{flag: string(gate) + "=true", want: true},
		{flag: string(gate) + "=false", want: false},
	} {
		command, err := NewCommand("proxy-scheduler", nil)
		if err != nil {
			t.Fatal(err)
		}
		if command.Use != "proxy-scheduler" {
			t.Errorf("Use = %q", command.Use)
		}
		if tc.flag != "" {
			if err := command.Flags().Set("feature-gates", tc.flag); err != nil {
				t.Fatalf("--feature-gates=%s: %v", tc.flag, err)
			}
		}
		if err := command.PersistentPreRunE(command, nil); err != nil {
			t.Fatalf("--feature-gates=%s: applying the gates: %v", tc.flag, err)
		}
		if got := utilfeature.DefaultFeatureGate.Enabled(gate); got != tc.want {
			t.Errorf("--feature-gates=%q: %s enabled %v, want %v", tc.flag, gate, got, tc.want)
		}
	}
}

// permitRejection is the status kube-scheduler's binding cycle hands to
// the failure handler when a plugin rejects a pod waiting in Permit.
func permitRejection(s *fwk.Status) *fwk.Status {
	fitErr := &framework.FitError{
		NumAllNodes: 1,
		Diagnosis: framework.Diagnosis{
			NodeToStatus:         framework.NewDefaultNodeToStatus(),
			UnschedulablePlugins: sets.New(s.Plugin()),
		},
	}
	fitErr.Diagnosis.NodeToStatus.Set("node-a", s)
	return fwk.NewStatus(s.Code()).WithError(fitErr)
}

type doneQueue []types.UID

func (q *doneQueue) Done(uid types.UID) { *q = append(*q, uid) }

// TestQuietFailures: a failure that quiet picks, or a rejection of a pod
// that is gone, only ends the pod's scheduling in the queue; every other
// failure goes to kube-scheduler's handler, which reports it and retries
// the pod.
func TestQuietFailures(t *testing.T) {
	released := fwk.NewStatus(fwk.Unschedulable, "released").WithPlugin("Candidate")
	removed := fwk.NewStatus(fwk.Unschedulable, "removed")
	quiet := func(s *fwk.Status) bool { return s.Plugin() == "Candidate" && s.Message() == "released" }
	cases := []struct {
		name     string
		status   *fwk.Status
		gone     bool
		wantNext bool
	}{
		{name: "picked: quiet", status: released},
		{name: "picked, rejected in Permit (a FitError): quiet", status: permitRejection(released)},
		{name: "not picked, rejected in Permit: handled", status: permitRejection(fwk.NewStatus(fwk.Unschedulable, "rejected due to timeout").WithPlugin("Candidate")), wantNext: true},
		{name: "not picked: handled", status: fwk.NewStatus(fwk.Unschedulable, "0/3 nodes are available").WithPlugin("NodeResourcesFit"), wantNext: true},
		{name: "pod deleted while waiting: quiet", status: permitRejection(removed), gone: true},
		{name: "rejected, pod still there: handled", status: permitRejection(removed), wantNext: true},
		{name: "an error, pod gone: handled", status: fwk.AsStatus(errors.New("binding: connection refused")), gone: true, wantNext: true},
		{name: "no status: handled", wantNext: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var queue doneQueue
			nextCalled := false
			next := func(context.Context, framework.Framework, *framework.QueuedPodInfo, *fwk.Status, *fwk.NominatingInfo, time.Time) {
				nextCalled = true
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "candidate", UID: "uid-1"}}
			info := &framework.QueuedPodInfo{PodInfo: &framework.PodInfo{Pod: pod}}
			gone := func(*corev1.Pod) bool { return tc.gone }
			quietFailures(next, &queue, quiet, gone)(context.Background(), nil, info, tc.status, nil, time.Now())
			if nextCalled != tc.wantNext {
				t.Errorf("kube-scheduler's handler called: %v, want %v", nextCalled, tc.wantNext)
			}
			var wantDones []types.UID
			if !tc.wantNext {
				wantDones = []types.UID{"uid-1"}
			}
			if !slices.Equal(queue, wantDones) {
				t.Errorf("Done(%v), want Done(%v)", queue, wantDones)
			}
		})
	}
}

func TestGoneFrom(t *testing.T) {
	now := metav1.Now()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "candidate", UID: "uid-1"}}
	deleting := pod.DeepCopy()
	deleting.DeletionTimestamp = &now
	replaced := pod.DeepCopy()
	replaced.UID = "uid-2"
	cases := []struct {
		name     string
		informer *corev1.Pod
		want     bool
	}{
		{"there", pod, false},
		{"being deleted", deleting, true},
		{"deleted", nil, true},
		{"replaced by a pod of the same name", replaced, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			indexer := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{})
			if tc.informer != nil {
				if err := indexer.Add(tc.informer); err != nil {
					t.Fatal(err)
				}
			}
			if got := goneFrom(corelisters.NewPodLister(indexer))(pod); got != tc.want {
				t.Errorf("gone = %v, want %v", got, tc.want)
			}
		})
	}
}
