// Command candidate-scheduler is the kube-scheduler that a target cluster runs for
// candidate pods (scheduler name admiralty-candidate), with the Candidate plugin
// (pkg/plugins/candidate). It is kube-scheduler's own command, configured through
// a KubeSchedulerConfiguration (config/scheduler/candidate-scheduler.yaml), so
// every kube-scheduler flag, health and metrics endpoint works as usual
// (feature gates default as in pkg/scheduler).
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	_ "github.com/flotilla-io/flotilla/pkg/apis/config/scheme" // CandidateArgs
	"github.com/flotilla-io/flotilla/pkg/plugins/candidate"
	"github.com/flotilla-io/flotilla/pkg/scheduler"
)

func main() {
	command, err := scheduler.NewCommand("candidate-scheduler", candidate.Withdrawn, app.WithPlugin(candidate.Name, candidate.New))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(cli.Run(command))
}
