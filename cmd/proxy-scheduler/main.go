// Command proxy-scheduler is the kube-scheduler that a source cluster runs for
// proxy pods (scheduler name admiralty-proxy), with the Proxy plugin
// (pkg/plugins/proxy). It is kube-scheduler's own command, configured through
// a KubeSchedulerConfiguration (config/scheduler/proxy-scheduler.yaml), so
// every kube-scheduler flag, health and metrics endpoint works as usual.
//
// Beside the scheduler it keeps connections to the source's targets (Targets
// and ClusterTargets, read with the scheduler's own credentials), as the
// controller-manager does, without reporting on them.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	_ "github.com/flotilla-io/flotilla/pkg/apis/config/scheme" // ProxyArgs
	"github.com/flotilla-io/flotilla/pkg/plugins/proxy"
)

func main() {
	// controller-runtime (the plugin's caches and clients) logs through klog.
	ctrllog.SetLogger(klog.Background())
	f := &fleet{}
	command := app.NewSchedulerCommand(app.WithPlugin(proxy.Name, proxy.NewFactory(f.start)))
	command.Use = "proxy-scheduler"
	os.Exit(cli.Run(command))
}
