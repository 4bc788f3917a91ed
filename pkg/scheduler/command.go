// Package scheduler builds Flotilla's two schedulers' commands: each is
// kube-scheduler (app.Setup, app.Run) with one more plugin, so every
// kube-scheduler flag, health and metrics endpoint works as usual.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/server"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/term"
	"k8s.io/component-base/version/verflag"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/pkg/scheduler"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// DefaultFeatureGates are where Flotilla's schedulers differ from
// kube-scheduler's defaults; --feature-gates overrides them.
//
// NominatedNodeNameForExpectation writes a pod's nominatedNodeName before
// it waits in Permit or goes through PreBind, as every proxy and candidate
// pod does: one more API write per pod (and, for a candidate, one more
// status copy onto its chaperon), for external components that do not
// look at proxies or candidates. Where a candidate is going is in its
// chaperon's reservation mark.
var DefaultFeatureGates = map[string]bool{
	string(features.NominatedNodeNameForExpectation): false,
}

// Quiet picks the scheduling failures that a scheduler neither reports
// nor retries: failures of pods already on their way out, such as a
// candidate whose chaperon the proxy withdrew. kube-scheduler would record
// a FailedScheduling Event and a PodScheduled=False condition for each,
// two API writes per losing candidate that nobody reads.
type Quiet func(*fwk.Status) bool

// NewCommand is kube-scheduler's command, named use, with the plugins,
// Flotilla's default feature gates, and controller-runtime (the plugins'
// caches and clients) logging through klog. Flags, configuration, health,
// metrics and leader election are kube-scheduler's (app.Setup and app.Run);
// only failures that quiet picks (nil: none) are handled differently.
func NewCommand(use string, quiet Quiet, plugins ...app.Option) (*cobra.Command, error) {
	ctrllog.SetLogger(klog.Background())
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(DefaultFeatureGates); err != nil {
		return nil, fmt.Errorf("setting Flotilla's default feature gates: %w", err)
	}
	opts := options.NewOptions()
	command := &cobra.Command{
		Use:  use,
		Long: use + " is kube-scheduler with Flotilla's plugin; it takes kube-scheduler's flags and configuration.",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return opts.ComponentGlobalsRegistry.Set()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, opts, quiet, plugins)
		},
		Args: cobra.NoArgs,
	}
	named := opts.Flags
	verflag.AddFlags(named.FlagSet("global"))
	globalflag.AddGlobalFlags(named.FlagSet("global"), command.Name(), logs.SkipLoggingConfigurationFlags())
	for _, fs := range named.FlagSets {
		command.Flags().AddFlagSet(fs)
	}
	cols, _, _ := term.TerminalSize(command.OutOrStdout())
	cliflag.SetUsageAndHelpFunc(command, *named, cols)
	return command, nil
}

// run does what kube-scheduler's command does (logging, then app.Setup and
// app.Run until a signal), with quiet failures taken out.
func run(cmd *cobra.Command, opts *options.Options, quiet Quiet, plugins []app.Option) error {
	verflag.PrintAndExitIfRequested()
	gates := opts.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	if err := logsapi.ValidateAndApply(opts.Logs, gates); err != nil {
		return fmt.Errorf("logging options: %w", err)
	}
	cliflag.PrintFlags(cmd.Flags())
	if opts.InformerName == nil {
		name, err := toolscache.NewInformerName("kube-scheduler")
		if err != nil {
			return err
		}
		opts.InformerName = name
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-server.SetupSignalHandler()
		cancel()
	}()
	cc, sched, err := app.Setup(ctx, opts, plugins...)
	if err != nil {
		return err
	}
	gates.(featuregate.MutableFeatureGate).AddMetrics()
	opts.ComponentGlobalsRegistry.AddMetrics()
	if quiet != nil {
		gone := goneFrom(cc.InformerFactory.Core().V1().Pods().Lister())
		sched.FailureHandler = quietFailures(sched.FailureHandler, sched.SchedulingQueue, quiet, gone)
	}
	return app.Run(ctx, cc, sched)
}

// doneMarker is the part of kube-scheduler's scheduling queue that
// quietFailures needs.
type doneMarker interface {
	Done(types.UID)
}

// quietFailures handles the failures quiet picks, and the rejections of
// pods that are gone or going, by only telling the queue that the pod's
// scheduling is over (what kube-scheduler's own handler does last), and
// passes the others to next.
func quietFailures(next scheduler.FailureHandlerFn, queue doneMarker, quiet Quiet, gone func(*corev1.Pod) bool) scheduler.FailureHandlerFn {
	return func(ctx context.Context, f framework.Framework, podInfo *framework.QueuedPodInfo, status *fwk.Status, nominating *fwk.NominatingInfo, start time.Time) {
		cause := pluginStatus(status)
		switch {
		case cause != nil && quiet(cause):
		case status != nil && status.IsRejected() && gone(podInfo.Pod):
		default:
			next(ctx, f, podInfo, status, nominating, start)
			return
		}
		klog.FromContext(ctx).V(4).Info("Scheduling ended quietly", "pod", klog.KObj(podInfo.Pod), "status", status.Message())
		queue.Done(podInfo.Pod.UID)
	}
}

// goneFrom reports, from the scheduler's pod informer, whether a pod is
// deleted or being deleted: a pod deleted while it waited in Permit is
// rejected by kube-scheduler itself, which would then report the failure
// on a pod that is gone.
func goneFrom(pods corelisters.PodLister) func(*corev1.Pod) bool {
	return func(pod *corev1.Pod) bool {
		current, err := pods.Pods(pod.Namespace).Get(pod.Name)
		if apierrors.IsNotFound(err) {
			return true
		}
		return err == nil && (current.UID != pod.UID || current.DeletionTimestamp != nil)
	}
}

// pluginStatus is the plugin's own status behind a failure: kube-scheduler
// hands a rejection in Permit to the failure handler as a FitError whose
// one node has the plugin's status; other failures are the status itself.
func pluginStatus(status *fwk.Status) *fwk.Status {
	if status == nil {
		return nil
	}
	var fitErr *framework.FitError
	if !errors.As(status.AsError(), &fitErr) {
		return status
	}
	var only *fwk.Status
	n := 0
	fitErr.Diagnosis.NodeToStatus.ForEachExplicitNode(func(_ string, s *fwk.Status) {
		only = s
		n++
	})
	if n != 1 {
		return nil
	}
	return only
}
