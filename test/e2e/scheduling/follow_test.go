package scheduling

import (
	"context"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/controllers/follow"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// withDependencies is an elected pod that mounts ConfigMap config, takes an
// env var from Secret creds and all of ConfigMap env as env vars.
func withDependencies(ns, name string) *corev1.Pod {
	pod := elected(ns, name, "100m", nil)
	pod.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "config"}}}}}
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = []corev1.VolumeMount{{Name: "config", MountPath: "/etc/config"}}
	c.Env = []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}}}
	c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env"}}}}
	return pod
}

// bindWatch records, for each target, whether the dependencies were there
// when the first delegate of ns was seen bound to a node.
type bindWatch struct {
	mu      sync.Mutex
	present map[string]map[string]bool // target → "Kind/name" → present at bind
}

func watchBinds(t *testing.T, ns string, deps map[string]client.Object) *bindWatch {
	t.Helper()
	w := &bindWatch{present: map[string]map[string]bool{}}
	for _, tc := range fleet.Targets {
		wi, err := tc.Clientset.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{LabelSelector: protocol.ProxyPodUIDLabel})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(wi.Stop)
		go func() {
			for ev := range wi.ResultChan() {
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok || pod.Spec.NodeName == "" {
					continue
				}
				w.mu.Lock()
				if _, seen := w.present[tc.Name]; !seen {
					got := map[string]bool{}
					for name, obj := range deps {
						o := obj.DeepCopyObject().(client.Object)
						err := tc.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: obj.GetName()}, o)
						got[name] = err == nil && o.GetLabels()[protocol.FollowerLabel] != ""
					}
					w.present[tc.Name] = got
				}
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *bindWatch) at(target string) map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.present[target]
}

// The ConfigMaps and Secrets a pod references are in its target before its
// delegate is bound there, follow changes, and go with the pod; the other
// target never gets them.
func TestDependenciesFollow(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	deps := map[string]client.Object{
		"ConfigMap/config": &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config", Labels: map[string]string{"app": "demo"}},
			Data: map[string]string{"greeting": "hello"}},
		"ConfigMap/env": &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "env"}, Data: map[string]string{"MODE": "blue"}},
		"Secret/creds": &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
			Data: map[string][]byte{"password": []byte("s3cret")}},
	}
	for _, obj := range deps {
		g.Expect(src.Client.Create(ctx, obj.DeepCopyObject().(client.Object))).To(Succeed())
	}
	binds := watchBinds(t, ns, deps)
	pod := withDependencies(ns, "app")
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
	var target string
	g.Eventually(func(g Gomega) { target = expectDelegated(g, ctx, pod) }, framework.PodTimeout, framework.Interval).Should(Succeed())

	g.Expect(binds.at(target)).To(Equal(map[string]bool{"ConfigMap/config": true, "ConfigMap/env": true, "Secret/creds": true}),
		"dependencies present in %s when the delegate was bound", target)
	tc := cluster(t, target)
	secret := &corev1.Secret{}
	g.Expect(tc.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "creds"}, secret)).To(Succeed())
	g.Expect(secret.Data).To(HaveKeyWithValue("password", []byte("s3cret")))
	g.Expect(secret.OwnerReferences).To(ContainElement(HaveField("Kind", "PodChaperon")))
	for _, other := range fleet.Targets {
		if other.Name == target {
			continue
		}
		err := other.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "creds"}, &corev1.Secret{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the secret followed to %s, which does not run the pod (%v)", other.Name, err)
	}

	cm := &corev1.ConfigMap{}
	g.Expect(src.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "config"}, cm)).To(Succeed())
	cm.Data["greeting"] = "bonjour"
	g.Expect(src.Client.Update(ctx, cm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		copied := &corev1.ConfigMap{}
		g.Expect(tc.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "config"}, copied)).To(Succeed())
		g.Expect(copied.Data).To(HaveKeyWithValue("greeting", "bonjour"))
		g.Expect(copied.Labels).To(HaveKeyWithValue("app", "demo"))
	}, framework.ShortTimeout, framework.Interval).Should(Succeed())

	g.Expect(src.Client.Delete(ctx, pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		for name, obj := range deps {
			o := obj.DeepCopyObject().(client.Object)
			err := tc.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: obj.GetName()}, o)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s is still in %s after its pod was deleted (%v)", name, target, err)
		}
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	for name, obj := range deps {
		o := obj.DeepCopyObject().(client.Object)
		g.Expect(src.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: obj.GetName()}, o)).To(Succeed(), "source %s", name)
	}
}

// A target's own object of a dependency's name is never overwritten: the
// pod does not start there (an event says why) until it is gone.
func TestFollowerNeverOverwritesATargetsObject(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	g.Expect(src.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data: map[string]string{"owner": "source"}})).To(Succeed())
	for _, tc := range fleet.Targets {
		g.Expect(tc.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
			Data: map[string]string{"owner": tc.Name}})).To(Succeed())
	}
	pod := elected(ns, "app", "100m", nil)
	pod.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "config"}}}}}
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		g.Expect(events(g, ctx, src, pod, follow.ReasonFollowerConflict)).NotTo(BeEmpty())
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		for _, candidates := range candidatesOf(g, ctx, ns, pod.UID) {
			for _, c := range candidates {
				g.Expect(c.Spec.NodeName).To(BeEmpty(), "a delegate was bound without its ConfigMap")
			}
		}
		for _, tc := range fleet.Targets {
			cm := &corev1.ConfigMap{}
			g.Expect(tc.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "config"}, cm)).To(Succeed())
			g.Expect(cm.Data).To(Equal(map[string]string{"owner": tc.Name}), "the target's own ConfigMap was overwritten")
			g.Expect(cm.Labels).NotTo(HaveKey(protocol.FollowerLabel))
		}
	}, framework.ConsistentlyDuration, framework.Interval).Should(Succeed())

	for _, tc := range fleet.Targets {
		g.Expect(tc.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"}})).To(Succeed())
	}
	var target string
	g.Eventually(func(g Gomega) { target = expectDelegated(g, ctx, pod) }, framework.LongTimeout, framework.Interval).Should(Succeed())
	cm := &corev1.ConfigMap{}
	g.Expect(cluster(t, target).Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "config"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(Equal(map[string]string{"owner": "source"}))
}

// A pod whose preferred target has its own object of a dependency's name
// runs in another target: the conflict withdraws the choice at once.
func TestFollowerConflictSendsThePodElsewhere(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	preferred, other := fleet.Targets[1], fleet.Targets[0]
	g.Expect(src.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data: map[string]string{"owner": "source"}})).To(Succeed())
	g.Expect(preferred.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data: map[string]string{"owner": preferred.Name}})).To(Succeed())
	pod := elected(ns, "app", "100m", map[string]string{
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"affinity":{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[` +
			`{"weight":100,"preference":{"matchExpressions":[{"key":"` + protocol.ClusterNameLabel + `","operator":"In","values":["` + preferred.Name + `"]}]}}]}}}`,
	})
	pod.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "config"}}}}}
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(expectDelegated(g, ctx, pod)).To(Equal(other.Name))
		g.Expect(events(g, ctx, src, pod, follow.ReasonFollowerConflict)).To(ContainElement(ContainSubstring(preferred.Name)))
	}, framework.PodTimeout, framework.Interval).Should(Succeed())
	cm := &corev1.ConfigMap{}
	g.Expect(preferred.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "config"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(Equal(map[string]string{"owner": preferred.Name}), "the target's own ConfigMap was overwritten")
	g.Expect(other.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "config"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(Equal(map[string]string{"owner": "source"}))
}
