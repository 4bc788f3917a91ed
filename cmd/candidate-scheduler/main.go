// Command candidate-scheduler is the kube-scheduler that a target cluster runs for
// candidate pods (scheduler name admiralty-candidate), with the Candidate plugin
// (pkg/plugins/candidate). It is kube-scheduler's own command, configured through
// a KubeSchedulerConfiguration (config/scheduler/candidate-scheduler.yaml), so
// every kube-scheduler flag, health and metrics endpoint works as usual.
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

	_ "github.com/flotilla-io/flotilla/pkg/apis/config/scheme" // CandidateArgs
	"github.com/flotilla-io/flotilla/pkg/plugins/candidate"
)

func main() {
	// controller-runtime (the plugin's caches and clients) logs through klog.
	ctrllog.SetLogger(klog.Background())
	command := app.NewSchedulerCommand(app.WithPlugin(candidate.Name, candidate.New))
	command.Use = "candidate-scheduler"
	os.Exit(cli.Run(command))
}
