// Command bench runs Flotilla's benchmark on sandboxes of its own (see
// test/bench) and writes results.md, timings.csv and latency plots:
//
//	bench --targets 1,3,10 --pods 200 --rate 20 --fan-out 0,3 --out bench-results
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flotilla-io/flotilla/test/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func ints(s, flagName string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--%s %q: want comma-separated non-negative integers", flagName, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func run() error {
	ctrllog.SetLogger(logr.Discard()) // the framework's clients log nothing worth showing here
	targets := flag.String("targets", "1,3,10", "fleet sizes to measure (targets per sandbox), comma-separated")
	pods := flag.Int("pods", bench.DefaultPods, "pods per measurement")
	rate := flag.Float64("rate", bench.DefaultRate, "offered load of the fixed-rate measurement (pods/s); each size is also measured at saturation")
	fanOut := flag.String("fan-out", "0,3", "proxy maxTargets values compared at the largest size (0 = all targets)")
	qps := flag.Float64("qps", bench.DefaultClientQPS, "client QPS of every component")
	burst := flag.Int("burst", bench.DefaultClientBurst, "client burst of every component")
	out := flag.String("out", filepath.Join("bench-results", time.Now().Format("20060102-150405")), "output folder")
	bin := flag.String("bin", "bin", "folder of the sandbox tools and Flotilla's binaries")
	keep := flag.Bool("keep", false, "keep each sandbox's folder (component logs)")
	profile := flag.Duration("profile", 0, "record CPU profiles this long of the source's and target-1's components during the saturation load (e.g. 10s)")
	flag.Parse()
	o := bench.Options{Pods: *pods, Rate: *rate, ClientQPS: float32(*qps), ClientBurst: int32(*burst), Out: *out, Progress: os.Stdout, Keep: *keep, Profile: *profile}
	var err error
	if o.Targets, err = ints(*targets, "targets"); err != nil {
		return err
	}
	if o.FanOut, err = ints(*fanOut, "fan-out"); err != nil {
		return err
	}
	if o.BinDir, err = filepath.Abs(*bin); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := bench.Run(ctx, o)
	if report != nil {
		fmt.Println()
		report.Markdown(os.Stdout)
	}
	if err != nil {
		return err
	}
	fmt.Printf("\nresults.md, timings.csv and latency-N*.png in %s\n", o.Out)
	return nil
}
