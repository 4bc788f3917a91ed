// Package chaos runs elected Deployments and Jobs over three targets while a
// driver kills (SIGKILL) a random Flotilla process every few seconds and
// restarts it, then checks that every pod ran, none has two delegates, and
// nothing is left behind.
//
// `make test` runs a short version; `make test-chaos` the full one (1000
// pods, 15 kills). FLOTILLA_CHAOS_PODS, FLOTILLA_CHAOS_KILLS,
// FLOTILLA_CHAOS_INTERVAL and FLOTILLA_CHAOS_SEED change it; the seed is
// printed, and the same seed kills the same processes in the same order.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

const targets = 3

// settings of a run.
type settings struct {
	pods     int
	kills    int
	interval time.Duration
	seed     uint64
}

func settingsFromEnv(t *testing.T) settings {
	t.Helper()
	s := settings{pods: 60, kills: 4, interval: 3 * time.Second, seed: uint64(time.Now().UnixNano())}
	intVar := func(name string, into *int) {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("$%s=%q: want a non-negative integer", name, v)
			}
			*into = n
		}
	}
	intVar("FLOTILLA_CHAOS_PODS", &s.pods)
	intVar("FLOTILLA_CHAOS_KILLS", &s.kills)
	if v := os.Getenv("FLOTILLA_CHAOS_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("$FLOTILLA_CHAOS_INTERVAL=%q: want a positive duration", v)
		}
		s.interval = d
	}
	if v := os.Getenv("FLOTILLA_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("$FLOTILLA_CHAOS_SEED=%q: want an unsigned integer", v)
		}
		s.seed = n
	}
	return s
}

func TestChaos(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	set := settingsFromEnv(t)
	t.Logf("chaos: %d pods, %d kills every %s, seed %d (FLOTILLA_CHAOS_SEED=%d repeats the kills)", set.pods, set.kills, set.interval, set.seed, set.seed)

	fleet := startFleet(t, set.pods)
	ns := "chaos"
	g.Expect(fleet.Namespace(ctx, ns)).To(Succeed())
	sampler := framework.SampleDelegates(t, fleet.Targets, ns)

	// Deployments hold two thirds of the pods, Jobs the rest; Deployments
	// mount a ConfigMap, which follows their pods.
	g.Expect(fleet.Source.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data: map[string]string{"greeting": "hello"}})).To(Succeed())
	deployments, jobs := workloads(ns, set.pods)
	start := time.Now()
	for _, d := range deployments {
		g.Expect(fleet.Source.Client.Create(ctx, d)).To(Succeed())
	}
	for _, j := range jobs {
		g.Expect(fleet.Source.Client.Create(ctx, j)).To(Succeed())
	}

	// The driver kills while the pods are placed.
	rng := rand.New(rand.NewPCG(set.seed, 0))
	names := make([]string, 0, len(fleet.Components))
	for name := range fleet.Components {
		names = append(names, name)
	}
	slices.Sort(names)
	for i := range set.kills {
		time.Sleep(set.interval)
		name := names[rng.IntN(len(names))]
		down := time.Duration(rng.IntN(2000)) * time.Millisecond
		t.Logf("kill %d/%d: %s (down %s)", i+1, set.kills, name, down)
		g.Expect(fleet.Kill(name)).To(Succeed())
		time.Sleep(down)
		g.Expect(fleet.Restart(name)).To(Succeed())
	}

	// Every pod runs (Deployments) or has succeeded (Jobs).
	timeout := 5*time.Minute + time.Duration(set.pods)*time.Second
	g.Eventually(func(g Gomega) {
		for _, d := range deployments {
			g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
			g.Expect(d.Status.AvailableReplicas).To(Equal(*d.Spec.Replicas), "deployment %s", d.Name)
		}
		for _, j := range jobs {
			g.Expect(fleet.Source.Client.Get(ctx, client.ObjectKeyFromObject(j), j)).To(Succeed())
			g.Expect(j.Status.Succeeded).To(Equal(*j.Spec.Completions), "job %s", j.Name)
		}
		var proxies corev1.PodList
		g.Expect(fleet.Source.Client.List(ctx, &proxies, client.InNamespace(ns))).To(Succeed())
		for _, p := range proxies.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			g.Expect(p.Spec.NodeName).NotTo(BeEmpty(), "proxy pod %s is stuck", p.Name)
		}
	}, timeout, time.Second).Should(Succeed())
	g.Expect(sampler.Doubles()).To(BeEmpty(), "proxy pods with two delegates")
	g.Expect(fleet.Crashed()).To(Succeed())
	t.Logf("all %d pods ran (or succeeded) %s after the workloads were created; %d delegates seen bound, none twice",
		set.pods, time.Since(start).Round(time.Second), sampler.Count())

	// Nothing is left over: each chaperon and delegate is its proxy pod's
	// one, in the target it is bound to.
	g.Eventually(func(g Gomega) {
		g.Expect(orphans(ctx, fleet, ns)).To(BeEmpty())
	}, 2*time.Minute, time.Second).Should(Succeed())

	// Deleting the workloads cleans the targets up, followers included.
	deleted := time.Now()
	for _, d := range deployments {
		g.Expect(fleet.Source.Client.Delete(ctx, d)).To(Succeed())
	}
	for _, j := range jobs {
		g.Expect(fleet.Source.Client.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		var proxies corev1.PodList
		g.Expect(fleet.Source.Client.List(ctx, &proxies, client.InNamespace(ns))).To(Succeed())
		g.Expect(proxies.Items).To(BeEmpty())
		for _, tc := range fleet.Targets {
			var chs multiclusterv1alpha1.PodChaperonList
			g.Expect(tc.Client.List(ctx, &chs, client.InNamespace(ns))).To(Succeed())
			g.Expect(chs.Items).To(BeEmpty(), "chaperons left in %s", tc.Name)
			var pods corev1.PodList
			g.Expect(tc.Client.List(ctx, &pods, client.InNamespace(ns))).To(Succeed())
			g.Expect(pods.Items).To(BeEmpty(), "pods left in %s", tc.Name)
			var cm corev1.ConfigMap
			err := tc.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "config"}, &cm)
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "the follower ConfigMap is left in %s", tc.Name)
		}
	}, 3*time.Minute+time.Duration(set.pods)*300*time.Millisecond, time.Second).Should(Succeed())
	t.Logf("the targets were clean %s after the workloads were deleted", time.Since(deleted).Round(time.Second))
	g.Expect(sampler.Doubles()).To(BeEmpty(), "proxy pods with two delegates")
	g.Expect(fleet.Crashed()).To(Succeed())
}

// startFleet starts a sandbox of three targets with room for pods, and
// Flotilla on it.
func startFleet(t *testing.T, pods int) *framework.Fleet {
	t.Helper()
	ctx := context.Background()
	binDir, err := framework.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := framework.DefaultConfig(filepath.Join(dir, "sandbox"), binDir, targets)
	// Any target can take every pod: 100 per node.
	nodes := max(2, pods/100+1)
	for i := range cfg.Clusters[1:] {
		for j := range cfg.Clusters[i+1].Nodes {
			pool := &cfg.Clusters[i+1].Nodes[j]
			pool.Count, pool.CPU, pool.Memory, pool.Pods = nodes, "64", "256Gi", "110"
		}
	}
	s, err := framework.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("starting the sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Down(); err != nil {
			t.Errorf("stopping the sandbox: %v", err)
		}
	})
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := framework.StartFleet(ctx, s, targets, logDir)
	if err != nil {
		t.Fatalf("starting Flotilla: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range f.Components {
				t.Logf("==== last lines of %s\n%s", p.Name, p.Tail(40))
			}
		}
		f.Stop()
	})
	return f
}

// workloads splits pods into Deployments (two thirds, mounting the
// ConfigMap "config") and Jobs of at most 50 pods each.
func workloads(ns string, pods int) ([]*appsv1.Deployment, []*batchv1.Job) {
	var ds []*appsv1.Deployment
	var js []*batchv1.Job
	inDeployments := pods * 2 / 3
	for i := 0; inDeployments > 0; i++ {
		n := min(50, inDeployments)
		inDeployments -= n
		d := framework.Deployment(ns, fmt.Sprintf("web-%d", i), int32(n))
		d.Spec.Template.Annotations = map[string]string{protocol.ElectAnnotation: ""}
		d.Spec.Template.Spec = small(d.Spec.Template.Spec)
		d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "config"}}}}}
		ds = append(ds, d)
	}
	inJobs := pods - pods*2/3
	for i := 0; inJobs > 0; i++ {
		n := min(50, inJobs)
		inJobs -= n
		j := framework.Job(ns, fmt.Sprintf("batch-%d", i), int32(n))
		j.Spec.Template.Annotations = map[string]string{protocol.ElectAnnotation: "",
			// kwok completes the pods this long after they start.
			"pod-complete.stage.kwok.x-k8s.io/delay": "3s"}
		j.Spec.Template.Spec = small(j.Spec.Template.Spec)
		js = append(js, j)
	}
	return ds, js
}

// small requests little, so that many pods fit a node.
func small(spec corev1.PodSpec) corev1.PodSpec {
	spec.Containers[0].Resources.Requests = corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi"),
	}
	return spec
}

// orphans lists what the targets hold that no proxy pod accounts for: a
// chaperon or candidate pod whose proxy pod is gone, or is bound to
// another target.
func orphans(ctx context.Context, fleet *framework.Fleet, ns string) ([]string, error) {
	var proxies corev1.PodList
	if err := fleet.Source.Client.List(ctx, &proxies, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	boundTo := map[string]string{}
	for _, p := range proxies.Items {
		boundTo[string(p.UID)] = p.Spec.NodeName
	}
	var out []string
	for _, tc := range fleet.Targets {
		node := "admiralty-" + tc.Name
		var chs multiclusterv1alpha1.PodChaperonList
		if err := tc.Client.List(ctx, &chs, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, ch := range chs.Items {
			if boundTo[ch.Labels[protocol.ProxyPodUIDLabel]] != node {
				out = append(out, fmt.Sprintf("chaperon %s in %s", ch.Name, tc.Name))
			}
		}
		var pods corev1.PodList
		if err := tc.Client.List(ctx, &pods, client.InNamespace(ns), client.HasLabels{protocol.ProxyPodUIDLabel}); err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			if boundTo[p.Labels[protocol.ProxyPodUIDLabel]] != node {
				out = append(out, fmt.Sprintf("pod %s in %s", p.Name, tc.Name))
			}
		}
	}
	return out, nil
}
