package isolation

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/test/framework"
)

// tenant is one source cluster and its namespace, the only one it is
// granted in the targets.
type tenant struct {
	name   string // "A", "B"
	source *framework.Cluster
	ns     string
}

func tenantA(t *testing.T) tenant { return tenant{name: "A", source: cluster(t, clusterA), ns: nsA} }
func tenantB(t *testing.T) tenant { return tenant{name: "B", source: cluster(t, clusterB), ns: nsB} }

// user is the name under which the target's API server knows the tenant's
// source: its service account there.
func (tn tenant) user() string {
	return "system:serviceaccount:" + tn.ns + ":" + tn.source.Name
}

// in returns the target as the tenant's source reaches it: with the
// credentials in the kubeconfig Secret of its Target there.
func (tn tenant) in(t *testing.T, target *framework.Cluster) *framework.Cluster {
	t.Helper()
	g := NewWithT(t)
	secret := &corev1.Secret{}
	g.Expect(tn.source.Client.Get(t.Context(), client.ObjectKey{Namespace: tn.ns, Name: framework.TenantTargetSecret(target.Name)}, secret)).To(Succeed())
	as, err := target.As(secret.Data["config"], t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	return as
}

// pinned is an elected pod of ns that only the tenant's virtual node of
// target may take.
func pinned(ns, name, target string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{
		protocol.ElectAnnotation: "",
		protocol.ProxyPodSchedulingConstraintsAnnotation: `{"nodeSelector":{"kubernetes.io/hostname":"` +
			framework.VirtualNode(ns, target) + `"}}`,
	}}, Spec: framework.PodSpec()}
}

// withSecret mounts Secret name in the pod.
func withSecret(pod *corev1.Pod, name string) *corev1.Pod {
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}})
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/etc/" + name})
	return pod
}

// withConfigMap takes all of ConfigMap name as environment variables.
func withConfigMap(pod *corev1.Pod, name string) *corev1.Pod {
	c := &pod.Spec.Containers[0]
	c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}}})
	return pod
}

// create creates obj in c, to be deleted at the end of the test.
func create(t *testing.T, c *framework.Cluster, obj client.Object) {
	t.Helper()
	NewWithT(t).Expect(c.Client.Create(t.Context(), obj)).To(Succeed())
	t.Cleanup(func() { _ = c.Client.Delete(context.Background(), obj) })
}

// expectDelegated checks, inside Eventually, that a proxy pod of src is
// bound to its tenant's virtual node of target and Running, with one
// Running delegate there, and returns the delegate and its chaperon as the
// target's admin sees them.
func expectDelegated(g Gomega, ctx context.Context, src *framework.Cluster, proxy *corev1.Pod, target *framework.Cluster) (*corev1.Pod, *multiclusterv1alpha1.PodChaperon) {
	g.Expect(src.Client.Get(ctx, client.ObjectKeyFromObject(proxy), proxy)).To(Succeed())
	g.Expect(proxy.Spec.NodeName).To(Equal(framework.VirtualNode(proxy.Namespace, target.Name)))
	g.Expect(proxy.Status.Phase).To(Equal(corev1.PodRunning))
	delegates := candidates(g, ctx, target, proxy)
	g.Expect(delegates).To(HaveLen(1))
	g.Expect(delegates[0].Status.Phase).To(Equal(corev1.PodRunning))
	var chaperons multiclusterv1alpha1.PodChaperonList
	g.Expect(target.Client.List(ctx, &chaperons, client.InNamespace(proxy.Namespace),
		client.MatchingLabels{protocol.ProxyPodUIDLabel: string(proxy.UID)})).To(Succeed())
	g.Expect(chaperons.Items).To(HaveLen(1))
	return &delegates[0], &chaperons.Items[0]
}

// candidates lists the candidate pods of a proxy pod in target.
func candidates(g Gomega, ctx context.Context, target *framework.Cluster, proxy *corev1.Pod) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(target.Client.List(ctx, &pods, client.InNamespace(proxy.Namespace),
		client.MatchingLabels{protocol.ProxyPodUIDLabel: string(proxy.UID)})).To(Succeed())
	return pods.Items
}

// events returns the messages of the events of reason on an object.
func events(g Gomega, ctx context.Context, c *framework.Cluster, obj client.Object, reason string) []string {
	notes, err := c.Events(ctx, obj, reason)
	g.Expect(err).NotTo(HaveOccurred())
	return notes
}

// refusedTo reports whether err is the API server refusing user (RBAC's
// Forbidden), whether it came back as a Status or through kubectl.
func refusedTo(err error, user string) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return (apierrors.IsForbidden(err) || strings.Contains(msg, "forbidden")) && strings.Contains(msg, `User "`+user+`"`)
}

// absent reports whether err is NotFound.
func absent(err error) bool { return apierrors.IsNotFound(err) }
