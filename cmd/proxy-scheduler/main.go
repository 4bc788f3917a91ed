// Command proxy-scheduler is the kube-scheduler that a source cluster runs for
// proxy pods (scheduler name admiralty-proxy), with the Proxy plugin
// (pkg/plugins/proxy). It is kube-scheduler's own command, configured through
// a KubeSchedulerConfiguration (config/scheduler/proxy-scheduler.yaml), so
// every kube-scheduler flag, health and metrics endpoint works as usual
// (feature gates default as in pkg/scheduler).
//
// Beside the scheduler it keeps connections to the source's targets (Targets
// and ClusterTargets, read with the scheduler's own credentials), as the
// controller-manager does, without reporting on them.
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	_ "github.com/flotilla-io/flotilla/pkg/apis/config/scheme" // ProxyArgs
	"github.com/flotilla-io/flotilla/pkg/plugins/proxy"
	"github.com/flotilla-io/flotilla/pkg/scheduler"
)

func main() {
	f := &fleet{}
	command, err := scheduler.NewCommand("proxy-scheduler", nil, app.WithPlugin(proxy.Name, proxy.NewFactory(f.start)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(cli.Run(command))
}
