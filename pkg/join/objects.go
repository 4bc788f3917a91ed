package join

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// FieldManager is the field manager of flotillactl's server-side applies.
const FieldManager = "flotillactl"

// ManagedByLabel, set to FieldManager, marks what flotillactl made: join
// updates only objects that carry it and unjoin deletes only those.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// KubeconfigKey is the key of the kubeconfig in the source's Secret.
const KubeconfigKey = "config"

var (
	serviceAccounts = corev1.SchemeGroupVersion.WithResource("serviceaccounts")
	secrets         = corev1.SchemeGroupVersion.WithResource("secrets")
	sources         = multiclusterv1alpha1.GroupVersion.WithResource("sources")
	clusterSources  = multiclusterv1alpha1.GroupVersion.WithResource("clustersources")
	targets         = multiclusterv1alpha1.GroupVersion.WithResource("targets")
	clusterTargets  = multiclusterv1alpha1.GroupVersion.WithResource("clustertargets")
)

// ref is one object that a join makes.
type ref struct {
	resource  schema.GroupVersionResource
	kind      string
	namespace string // "" if cluster-scoped
	name      string
	// flag is the option that names it, for messages.
	flag string
}

func (r ref) String() string {
	if r.namespace == "" {
		return r.kind + " " + r.name
	}
	return r.kind + " " + r.namespace + "/" + r.name
}

// Refs of what a join makes, in the order join writes them (unjoin deletes
// in the opposite order).
func (n Names) serviceAccount() ref {
	return ref{serviceAccounts, "ServiceAccount", n.Namespace, n.Source, "--source-name"}
}

func (n Names) tokenSecret() ref {
	return ref{secrets, "Secret", n.Namespace, n.TokenSecret, "--source-name"}
}

func (n Names) source() ref {
	if n.ClusterScoped {
		return ref{clusterSources, "ClusterSource", "", n.Source, "--source-name"}
	}
	return ref{sources, "Source", n.Namespace, n.Source, "--source-name"}
}

func (n Names) kubeconfigSecret() ref {
	return ref{secrets, "Secret", n.Namespace, n.Target, "--name"}
}

func (n Names) target() ref {
	if n.ClusterScoped {
		return ref{clusterTargets, "ClusterTarget", "", n.Target, "--name"}
	}
	return ref{targets, "Target", n.Namespace, n.Target, "--name"}
}

// TargetObject is the kind and name of the Target or ClusterTarget, as
// "ClusterTarget eu" or "Target team-a/eu".
func (n Names) TargetObject() string { return n.target().String() }

func (n Names) targetSide() []ref { return []ref{n.serviceAccount(), n.source(), n.tokenSecret()} }
func (n Names) sourceSide() []ref { return []ref{n.kubeconfigSecret(), n.target()} }

// managedLabels are the labels of every object flotillactl makes.
func managedLabels() map[string]string { return map[string]string{ManagedByLabel: FieldManager} }

func typeMeta(gv schema.GroupVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind}
}

func objectMeta(r ref) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: r.namespace, Name: r.name, Labels: managedLabels()}
}

func (n Names) serviceAccountObject() *corev1.ServiceAccount {
	r := n.serviceAccount()
	return &corev1.ServiceAccount{
		TypeMeta:   typeMeta(corev1.SchemeGroupVersion, r.kind),
		ObjectMeta: objectMeta(r),
	}
}

// tokenSecretObject is a long-lived token for the service account, which
// kube-controller-manager's token controller fills.
func (n Names) tokenSecretObject() *corev1.Secret {
	r := n.tokenSecret()
	s := &corev1.Secret{
		TypeMeta:   typeMeta(corev1.SchemeGroupVersion, r.kind),
		ObjectMeta: objectMeta(r),
		Type:       corev1.SecretTypeServiceAccountToken,
	}
	s.Annotations = map[string]string{corev1.ServiceAccountNameKey: n.Source}
	return s
}

func (n Names) sourceObject() runtime.Object {
	r := n.source()
	if n.ClusterScoped {
		return &multiclusterv1alpha1.ClusterSource{
			TypeMeta:   typeMeta(multiclusterv1alpha1.GroupVersion, r.kind),
			ObjectMeta: objectMeta(r),
			Spec: multiclusterv1alpha1.ClusterSourceSpec{ServiceAccount: &multiclusterv1alpha1.ServiceAccountReference{
				Namespace: n.Namespace, Name: n.Source}},
		}
	}
	return &multiclusterv1alpha1.Source{
		TypeMeta:   typeMeta(multiclusterv1alpha1.GroupVersion, r.kind),
		ObjectMeta: objectMeta(r),
		Spec:       multiclusterv1alpha1.SourceSpec{ServiceAccountName: n.Source},
	}
}

func (n Names) kubeconfigSecretObject(kubeconfig []byte) *corev1.Secret {
	r := n.kubeconfigSecret()
	return &corev1.Secret{
		TypeMeta:   typeMeta(corev1.SchemeGroupVersion, r.kind),
		ObjectMeta: objectMeta(r),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{KubeconfigKey: kubeconfig},
	}
}

func (n Names) targetObject() runtime.Object {
	r := n.target()
	if n.ClusterScoped {
		return &multiclusterv1alpha1.ClusterTarget{
			TypeMeta:   typeMeta(multiclusterv1alpha1.GroupVersion, r.kind),
			ObjectMeta: objectMeta(r),
			Spec: multiclusterv1alpha1.ClusterTargetSpec{KubeconfigSecret: &multiclusterv1alpha1.ClusterKubeconfigSecret{
				Namespace: n.Namespace, Name: n.Target, Key: KubeconfigKey}},
		}
	}
	return &multiclusterv1alpha1.Target{
		TypeMeta:   typeMeta(multiclusterv1alpha1.GroupVersion, r.kind),
		ObjectMeta: objectMeta(r),
		Spec:       multiclusterv1alpha1.TargetSpec{KubeconfigSecret: &multiclusterv1alpha1.KubeconfigSecret{Name: n.Target, Key: KubeconfigKey}},
	}
}

// applyConfiguration turns a typed object into what server-side apply
// sends: only the fields set, no status (it is the controllers') and no
// creationTimestamp.
func applyConfiguration(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", obj, err)
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return &unstructured.Unstructured{Object: m}, nil
}
