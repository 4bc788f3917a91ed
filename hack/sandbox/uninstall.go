package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/flotilla-io/flotilla/test/framework"
)

const (
	hookAnnotation       = "helm.sh/hook"
	hookWeightAnnotation = "helm.sh/hook-weight"
)

func isHook(o *unstructured.Unstructured) bool {
	_, ok := o.GetAnnotations()[hookAnnotation]
	return ok
}

// hookTimeout bounds one hook Job, as `helm uninstall --timeout` does
// (default 5m).
const hookTimeout = 5 * time.Minute

// uninstallDemo does in every cluster of the demo, sources first, what
// `helm uninstall flotilla -n flotilla-system` does: the chart's pre-delete
// hooks run (their Job as a local process under the hook's service account,
// the way the demo runs the Deployments), then the release's objects are
// deleted, except its CRDs (Helm keeps those of crds/), and the processes
// of its Deployments stop, as their pods would.
func uninstallDemo(ctx context.Context, out io.Writer, dir, bin, root string) error {
	s, err := framework.Load(dir)
	if err != nil {
		return fmt.Errorf("no demo in %s: %w", dir, err)
	}
	d := &demoRun{s: s, out: out, bin: bin, root: root, start: time.Now()}
	for _, name := range append([]string{framework.SourceCluster}, s.Targets()...) {
		c, err := s.Cluster(name)
		if err != nil {
			return err
		}
		if err := d.uninstall(ctx, c); err != nil {
			return fmt.Errorf("uninstalling Flotilla from %s: %w", name, err)
		}
	}
	d.step("Flotilla is uninstalled from every cluster (its CRDs stay, as with Helm); the sandbox still runs: make demo-down stops it")
	return nil
}

func (d *demoRun) uninstall(ctx context.Context, c *framework.Cluster) error {
	objs, err := d.chart(ctx)
	if err != nil {
		return err
	}
	var hooks, release []*unstructured.Unstructured
	for _, o := range objs {
		switch {
		case isHook(o):
			if slices.Contains(strings.Split(o.GetAnnotations()[hookAnnotation], ","), "pre-delete") {
				hooks = append(hooks, o)
			}
		case o.GetKind() != "CustomResourceDefinition":
			release = append(release, o)
		}
	}
	// Helm runs hooks by weight, then by kind and name.
	weight := func(o *unstructured.Unstructured) int {
		w, _ := strconv.Atoi(o.GetAnnotations()[hookWeightAnnotation])
		return w
	}
	slices.SortStableFunc(hooks, func(a, b *unstructured.Unstructured) int { return weight(a) - weight(b) })
	for _, h := range hooks {
		if h.GetKind() == "Job" {
			if err := d.runHookJob(ctx, c, h); err != nil {
				return err
			}
			continue
		}
		data, err := framework.JoinManifests([]*unstructured.Unstructured{h})
		if err != nil {
			return err
		}
		if _, err := c.ApplyServerSide(ctx, data); err != nil {
			return fmt.Errorf("creating hook %s %s: %w", h.GetKind(), h.GetName(), err)
		}
	}
	// The hooks succeeded: their delete policy (hook-succeeded) removes
	// them, then the release's objects go.
	for _, set := range [][]*unstructured.Unstructured{hooks, release} {
		if err := deleteObjects(ctx, c, set); err != nil {
			return err
		}
	}
	for _, p := range d.s.Processes {
		if p.Cluster == c.Name && isDemoProcess(p) && p.Alive() {
			if err := d.s.StopProcess(c.Name, p.Name); err != nil {
				return err
			}
		}
	}
	d.step("%s: helm uninstall: %d pre-delete hooks run, the release's %d objects deleted (CRDs kept), its processes stopped",
		c.Name, len(hooks), len(release))
	return nil
}

// runHookJob runs a hook Job's container as a process, authenticated as
// its service account, and waits for it, as Helm waits for the Job.
func (d *demoRun) runHookJob(ctx context.Context, c *framework.Cluster, o *unstructured.Unstructured) error {
	var job batchv1.Job
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &job); err != nil {
		return fmt.Errorf("decoding Job %s: %w", o.GetName(), err)
	}
	container := job.Spec.Template.Spec.Containers[0]
	if len(container.Command) == 0 {
		return fmt.Errorf("hook Job %s has no command", job.Name)
	}
	token, err := c.ServiceAccountToken(ctx, job.Namespace, job.Spec.Template.Spec.ServiceAccountName)
	if err != nil {
		return err
	}
	kubeconfig, err := c.KubeconfigFor(token, c.Name)
	if err != nil {
		return err
	}
	stateDir := filepath.Join(d.s.Dir, c.Name, "flotilla")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	kubeconfigFile := filepath.Join(stateDir, job.Name+".kubeconfig")
	if err := os.WriteFile(kubeconfigFile, kubeconfig, 0o600); err != nil {
		return err
	}
	args := overrideFlags(container.Args, map[string]string{"kubeconfig": kubeconfigFile})
	binary := filepath.Join(d.bin, filepath.Base(container.Command[0]))
	d.step("%s: pre-delete hook Job %s: %s %s (as service account %s)", c.Name, job.Name,
		filepath.Base(binary), strings.Join(args, " "), job.Spec.Template.Spec.ServiceAccountName)
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	var output bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdout, cmd.Stderr = &output, &output
	err = cmd.Run()
	fmt.Fprint(d.out, indent(output.String()))
	if err != nil {
		return fmt.Errorf("hook Job %s failed: %w", job.Name, err)
	}
	return nil
}

// deleteObjects deletes objs from c as `helm uninstall` does, ignoring
// those already gone.
func deleteObjects(ctx context.Context, c *framework.Cluster, objs []*unstructured.Unstructured) error {
	if len(objs) == 0 {
		return nil
	}
	data, err := framework.JoinManifests(objs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if out, err := c.DeleteManifests(ctx, data, "--wait=false"); err != nil {
		return fmt.Errorf("deleting the release's objects: %w: %s", err, out)
	}
	return nil
}
