// Command candidate-scheduler is the kube-scheduler that a target cluster runs for
// candidate pods (scheduler name admiralty-candidate). It is kube-scheduler's own command,
// configured through a KubeSchedulerConfiguration (see config/), so every
// kube-scheduler flag, health and metrics endpoint works as usual.
//
// The candidate plugin (pkg/plugins/candidate) is not written yet; it will be registered
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
	command.Use = "candidate-scheduler"
	os.Exit(cli.Run(command))
}
