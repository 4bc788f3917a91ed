// Command proxy-scheduler is the kube-scheduler that a source cluster runs for
// proxy pods (scheduler name admiralty-proxy). It is kube-scheduler's own command,
// configured through a KubeSchedulerConfiguration (see config/), so every
// kube-scheduler flag, health and metrics endpoint works as usual.
//
// The proxy plugin (pkg/plugins/proxy) is not written yet; it will be registered
// here with app.WithPlugin. Until then this binary schedules like the stock
// kube-scheduler.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	command := app.NewSchedulerCommand()
	command.Use = "proxy-scheduler"
	os.Exit(cli.Run(command))
}
