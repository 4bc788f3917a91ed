package framework

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CreateNamespace creates a namespace named after the test in the cluster
// and deletes it when the test ends.
func (c *Cluster) CreateNamespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels}}
	if err := c.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace in %s: %v", c.Name, err)
	}
	t.Cleanup(func() {
		_ = c.Client.Delete(context.Background(), ns)
	})
	if err := c.WaitDefaultServiceAccount(context.Background(), ns.Name); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// WaitDefaultServiceAccount waits until the service account controller has
// created the namespace's "default" ServiceAccount: until then the API
// server's admission refuses pods that do not name another one.
func (c *Cluster) WaitDefaultServiceAccount(ctx context.Context, ns string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var sa corev1.ServiceAccount
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &sa)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("waiting for the default ServiceAccount of namespace %s in %s: %w", ns, c.Name, err)
	}
	return nil
}

// Deployment is a plain Deployment of replicas pods labelled app=name.
func Deployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       PodSpec(),
			},
		},
	}
}

// Job is a Job of completions pods that run once.
func Job(ns, name string, completions int32) *batchv1.Job {
	spec := PodSpec()
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(completions),
			Parallelism: ptr.To(completions),
			Template:    corev1.PodTemplateSpec{Spec: spec},
		},
	}
}

// PodSpec is a one-container spec with modest requests.
func PodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "main",
			Image: "registry.k8s.io/pause:3.10",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			}},
		}},
	}
}

// RunningOnOwnNodes checks that exactly want pods match the selector in ns,
// all Running and Ready on this cluster's kwok nodes. Use it inside
// Eventually.
func (c *Cluster) RunningOnOwnNodes(ctx context.Context, ns string, selector map[string]string, want int) error {
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(selector)); err != nil {
		return err
	}
	if len(pods.Items) != want {
		return fmt.Errorf("%s: %d pods match %v, want %d", c.Name, len(pods.Items), selector, want)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || !podReady(&p) {
			return fmt.Errorf("%s: pod %s is %s (ready=%t)", c.Name, p.Name, p.Status.Phase, podReady(&p))
		}
		if !slices.Contains(c.Nodes, p.Spec.NodeName) {
			return fmt.Errorf("%s: pod %s runs on %q, not on one of %v", c.Name, p.Name, p.Spec.NodeName, c.Nodes)
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
