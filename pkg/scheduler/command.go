// Package scheduler builds Flotilla's two schedulers' commands: each is
// kube-scheduler's own command with one more plugin, so every
// kube-scheduler flag, health and metrics endpoint works as usual.
package scheduler

import (
	"fmt"

	"github.com/spf13/cobra"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/pkg/features"
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

// NewCommand is kube-scheduler's command, named use, with Flotilla's
// default feature gates, and controller-runtime (the plugins' caches and
// clients) logging through klog.
func NewCommand(use string, opts ...app.Option) (*cobra.Command, error) {
	ctrllog.SetLogger(klog.Background())
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(DefaultFeatureGates); err != nil {
		return nil, fmt.Errorf("setting Flotilla's default feature gates: %w", err)
	}
	command := app.NewSchedulerCommand(opts...)
	command.Use = use
	return command, nil
}
