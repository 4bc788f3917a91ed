package follow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

const (
	namespace   = "team-a"
	podName     = "web-0"
	proxyUID    = types.UID("proxy-uid")
	chaperonUID = types.UID("chaperon-uid")
	sourceID    = "source-kube-system-uid"
	configName  = "app-config"
	secretName  = "db"
)

var (
	// keyEU is a ClusterTarget; keyOther a Target in another namespace than
	// the pod's; keyDown is connected but not Ready.
	keyEU    = remote.Key{Name: "eu"}
	keyOther = remote.Key{Namespace: "team-z", Name: "z"}
	keyDown  = remote.Key{Name: "down"}
)

// Builders.

// userSpec is the pod spec as the user wrote it: a ConfigMap volume, a
// Secret in env, and the service-account token volume that admission adds
// (which references the kube-root-ca.crt ConfigMap).
func userSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name: "web", Image: "nginx",
			Env: []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: secretName}, Key: "password",
			}}}},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "config", MountPath: "/etc/app"},
				{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
			},
		}},
		Volumes: []corev1.Volume{
			configMapVolume("config", configName, nil),
			serviceAccountVolume("kube-api-access-x7k2p"),
		},
	}
}

func configMapVolume(volume, name string, optional *bool) corev1.Volume {
	return corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional,
	}}}
}

func serviceAccountVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{}},
		},
	}}}
}

// proxyPodWith is a proxy pod whose saved manifest (the user's pod) has spec.
func proxyPodWith(t *testing.T, spec corev1.PodSpec) *corev1.Pod {
	t.Helper()
	manifest := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: podName, Annotations: map[string]string{protocol.ElectAnnotation: ""}},
		Spec:       spec,
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	proxy := spec.DeepCopy()
	proxy.SchedulerName = protocol.ProxySchedulerName
	// The proxy pod itself references nothing the manifest does not: its
	// dependencies must come from the manifest all the same.
	proxy.Volumes = nil
	proxy.Containers = []corev1.Container{{Name: "web", Image: "nginx"}}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: podName, UID: proxyUID,
			Annotations: map[string]string{protocol.SourcePodManifestAnnotation: string(raw)},
		},
		Spec: *proxy,
	}
}

func proxyPod(t *testing.T) *corev1.Pod { return proxyPodWith(t, userSpec()) }

type chaperonOpt func(*multiclusterv1alpha1.PodChaperon)

// chaperonOf is proxy's chaperon in a target, allowed by the proxy
// scheduler (decided).
func chaperonOf(t *testing.T, proxy *corev1.Pod, opts ...chaperonOpt) *multiclusterv1alpha1.PodChaperon {
	t.Helper()
	ch, err := protocol.NewChaperon(proxy)
	if err != nil {
		t.Fatal(err)
	}
	ch.UID = chaperonUID
	ch.Annotations[protocol.ReservationAnnotation] = protocol.ReservationMark(1, "node-a")
	ch.Annotations[protocol.AllowedAnnotation] = protocol.AllowMark(proxy.UID, 1)
	for _, o := range opts {
		o(ch)
	}
	return ch
}

func undecided(ch *multiclusterv1alpha1.PodChaperon) {
	delete(ch.Annotations, protocol.AllowedAnnotation)
}

func alreadyFollowed(ch *multiclusterv1alpha1.PodChaperon) {
	ch.Annotations[protocol.FollowedAnnotation] = "true"
}

func sourceConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: configName, UID: "source-cm-uid",
			Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{
				"note":                             "kept",
				corev1.LastAppliedConfigAnnotation: `{"apiVersion":"v1","kind":"ConfigMap"}`,
			},
		},
		Data:       map[string]string{"app.yaml": "replicas: 3"},
		BinaryData: map[string][]byte{"logo.png": {0x89, 0x50}},
	}
}

func sourceSecret() *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: secretName, UID: "source-secret-uid", Labels: map[string]string{"app": "web"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte("s3cr3t")},
	}
}

func chaperonRef(name string, uid types.UID) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: name, UID: uid}
}

func ptrBool(b bool) *bool { return &b }

// copyLabels are the labels of a copy of an object labelled app=web.
func copyLabels() map[string]string {
	return map[string]string{"app": "web", protocol.FollowerLabel: sourceID}
}

// configMapCopy is sourceConfigMap() as copied to a target, owned by owners.
func configMapCopy(owners ...metav1.OwnerReference) *corev1.ConfigMap {
	src := sourceConfigMap()
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: configName, Labels: copyLabels(),
			Annotations: map[string]string{"note": "kept"}, OwnerReferences: owners,
		},
		Data: src.Data, BinaryData: src.BinaryData,
	}
}

// secretCopy is sourceSecret() as copied to a target, owned by owners.
func secretCopy(owners ...metav1.OwnerReference) *corev1.Secret {
	src := sourceSecret()
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: secretName, Labels: copyLabels(), OwnerReferences: owners},
		Type:       src.Type, Data: src.Data,
	}
}

// Pure functions.

func TestDesiredCopy(t *testing.T) {
	ch := &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web-0-1a2b3c4d", UID: chaperonUID}}
	own := chaperonRef(ch.Name, ch.UID)
	other := chaperonRef("web-1-5e6f7a8b", "other-chaperon-uid")
	controller := metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "elsewhere", UID: "pod-uid", Controller: ptrBool(true)}
	immutableConfigMap := sourceConfigMap()
	immutableConfigMap.Immutable = ptrBool(true)
	tlsSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "tls", ResourceVersion: "12", UID: "src-uid"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": []byte("crt"), "tls.key": []byte("key")},
		Immutable:  ptrBool(true),
	}
	cases := []struct {
		name    string
		kind    protocol.DependencyKind
		src     client.Object
		current client.Object
		want    client.Object
	}{
		{
			name: "ConfigMap, new copy",
			kind: protocol.ConfigMap,
			src:  sourceConfigMap(),
			want: configMapCopy(own),
		},
		{
			name: "immutable ConfigMap",
			kind: protocol.ConfigMap,
			src:  immutableConfigMap,
			want: func() client.Object {
				c := configMapCopy(own)
				c.Immutable = ptrBool(true)
				return c
			}(),
		},
		{
			name: "Secret, new copy: type, data and immutability",
			kind: protocol.Secret,
			src:  tlsSecret,
			want: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: namespace, Name: "tls", Labels: map[string]string{protocol.FollowerLabel: sourceID},
					OwnerReferences: []metav1.OwnerReference{own},
				},
				Type: corev1.SecretTypeTLS, Data: tlsSecret.Data, Immutable: ptrBool(true),
			},
		},
		{
			name:    "current copy owned by another chaperon: both own it",
			kind:    protocol.ConfigMap,
			src:     sourceConfigMap(),
			current: configMapCopy(other),
			want:    configMapCopy(other, own),
		},
		{
			name:    "current copy owned by this chaperon: owned once",
			kind:    protocol.Secret,
			src:     sourceSecret(),
			current: secretCopy(other, own, controller),
			want:    secretCopy(other, own, controller),
		},
		{
			name: "source without labels nor annotations",
			kind: protocol.ConfigMap,
			src:  &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "bare"}, Data: map[string]string{"k": "v"}},
			want: &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: namespace, Name: "bare", Labels: map[string]string{protocol.FollowerLabel: sourceID},
					OwnerReferences: []metav1.OwnerReference{own},
				},
				Data: map[string]string{"k": "v"},
			},
		},
		{
			name: "a source's object that is itself a copy of another source's: labelled as this source's",
			kind: protocol.ConfigMap,
			src: func() client.Object {
				cm := sourceConfigMap()
				cm.Labels[protocol.FollowerLabel] = "upstream-source-id"
				return cm
			}(),
			want: configMapCopy(own),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src.DeepCopyObject().(client.Object)
			var current client.Object
			if tc.current != nil {
				current = tc.current.DeepCopyObject().(client.Object)
			}
			got := desiredCopy(tc.kind, src, sourceID, current, ch)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("desiredCopy() (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.src, src); diff != "" {
				t.Errorf("desiredCopy() changed the source (-before,+after):\n%s", diff)
			}
			if tc.current != nil {
				if diff := cmp.Diff(tc.current, current); diff != "" {
					t.Errorf("desiredCopy() changed the current copy (-before,+after):\n%s", diff)
				}
			}
			if _, ok := got.GetAnnotations()[corev1.LastAppliedConfigAnnotation]; ok {
				t.Errorf("desiredCopy() kept %s", corev1.LastAppliedConfigAnnotation)
			}
		})
	}
}

func TestSame(t *testing.T) {
	own := chaperonRef("web-0-1a2b3c4d", chaperonUID)
	cmOpt := func(f func(*corev1.ConfigMap)) client.Object {
		c := configMapCopy(own)
		f(c)
		return c
	}
	secretOpt := func(f func(*corev1.Secret)) client.Object {
		s := secretCopy(own)
		f(s)
		return s
	}
	cases := []struct {
		name          string
		current, want client.Object
		same          bool
	}{
		{name: "ConfigMap, identical", current: configMapCopy(own), want: configMapCopy(own), same: true},
		{
			name: "ConfigMap, server-set metadata only differs",
			current: cmOpt(func(c *corev1.ConfigMap) {
				c.ResourceVersion, c.UID, c.Generation = "42", "target-uid", 3
				c.CreationTimestamp = metav1.Unix(1700000000, 0)
				c.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "flotilla"}}
			}),
			want: configMapCopy(own),
			same: true,
		},
		{
			name:    "ConfigMap, no annotations vs empty annotations",
			current: cmOpt(func(c *corev1.ConfigMap) { c.Annotations = nil }),
			want:    cmOpt(func(c *corev1.ConfigMap) { c.Annotations = map[string]string{} }),
			same:    true,
		},
		{
			name:    "ConfigMap, no data vs empty data",
			current: cmOpt(func(c *corev1.ConfigMap) { c.Data, c.BinaryData = nil, nil }),
			want:    cmOpt(func(c *corev1.ConfigMap) { c.Data, c.BinaryData = map[string]string{}, map[string][]byte{} }),
			same:    true,
		},
		{
			name:    "ConfigMap, a label differs",
			current: cmOpt(func(c *corev1.ConfigMap) { c.Labels["app"] = "old" }),
			want:    configMapCopy(own),
		},
		{
			name:    "ConfigMap, follower label missing",
			current: cmOpt(func(c *corev1.ConfigMap) { delete(c.Labels, protocol.FollowerLabel) }),
			want:    configMapCopy(own),
		},
		{
			name:    "ConfigMap, an annotation differs",
			current: cmOpt(func(c *corev1.ConfigMap) { c.Annotations["note"] = "old" }),
			want:    configMapCopy(own),
		},
		{
			name:    "ConfigMap, owners differ",
			current: configMapCopy(),
			want:    configMapCopy(own),
		},
		{
			name:    "ConfigMap, data differs",
			current: cmOpt(func(c *corev1.ConfigMap) { c.Data = map[string]string{"app.yaml": "replicas: 1"} }),
			want:    configMapCopy(own),
		},
		{
			name:    "ConfigMap, binary data differs",
			current: cmOpt(func(c *corev1.ConfigMap) { c.BinaryData = map[string][]byte{"logo.png": {0x00}} }),
			want:    configMapCopy(own),
		},
		{
			name:    "ConfigMap, immutability differs",
			current: configMapCopy(own),
			want:    cmOpt(func(c *corev1.ConfigMap) { c.Immutable = ptrBool(true) }),
		},
		{name: "Secret, identical", current: secretCopy(own), want: secretCopy(own), same: true},
		{
			name:    "Secret, no data vs empty data",
			current: secretOpt(func(s *corev1.Secret) { s.Data = nil }),
			want:    secretOpt(func(s *corev1.Secret) { s.Data = map[string][]byte{} }),
			same:    true,
		},
		{
			name:    "Secret, a label differs",
			current: secretOpt(func(s *corev1.Secret) { s.Labels = map[string]string{protocol.FollowerLabel: sourceID} }),
			want:    secretCopy(own),
		},
		{
			name:    "Secret, an annotation differs",
			current: secretOpt(func(s *corev1.Secret) { s.Annotations = map[string]string{"note": "old"} }),
			want:    secretCopy(own),
		},
		{
			name:    "Secret, owners differ",
			current: secretCopy(own, chaperonRef("web-1-5e6f7a8b", "other-chaperon-uid")),
			want:    secretCopy(own),
		},
		{
			name:    "Secret, type differs",
			current: secretOpt(func(s *corev1.Secret) { s.Type = corev1.SecretTypeBasicAuth }),
			want:    secretCopy(own),
		},
		{
			name:    "Secret, data differs",
			current: secretOpt(func(s *corev1.Secret) { s.Data = map[string][]byte{"password": []byte("old")} }),
			want:    secretCopy(own),
		},
		{
			name:    "Secret, immutability differs",
			current: secretOpt(func(s *corev1.Secret) { s.Immutable = ptrBool(false) }),
			want:    secretOpt(func(s *corev1.Secret) { s.Immutable = ptrBool(true) }),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := same(tc.current, tc.want); got != tc.same {
				t.Errorf("same() = %t, want %t", got, tc.same)
			}
		})
	}
}

func TestIndexDependencies(t *testing.T) {
	plain := proxyPod(t)
	plain.Spec.SchedulerName = corev1.DefaultSchedulerName
	// A pod that chose the proxy scheduler itself has no saved manifest:
	// its own spec counts.
	own := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "job-x"},
		Spec: func() corev1.PodSpec {
			s := userSpec()
			s.SchedulerName = protocol.ProxySchedulerName
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
			return s
		}(),
	}
	badManifest := proxyPod(t)
	badManifest.Annotations[protocol.SourcePodManifestAnnotation] = "{not json"
	userCA := userSpec()
	userCA.Volumes = append(userCA.Volumes, corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
		}}},
	}}})
	cases := []struct {
		name string
		obj  client.Object
		want []string
	}{
		{name: "not a proxy pod", obj: plain},
		{name: "not a pod", obj: sourceConfigMap()},
		{name: "proxy pod: from its manifest", obj: proxyPod(t), want: []string{"ConfigMap/" + configName, "Secret/" + secretName}},
		{
			name: "proxy pod without manifest: from its spec",
			obj:  own,
			want: []string{"ConfigMap/" + configName, "Secret/" + secretName, "Secret/registry"},
		},
		{name: "proxy pod whose manifest references nothing", obj: proxyPodWith(t, corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}})},
		{name: "proxy pod with an unreadable manifest", obj: badManifest},
		{
			name: "the user's own volume of kube-root-ca.crt does not count (every namespace has its own)",
			obj:  proxyPodWith(t, userCA),
			want: []string{"ConfigMap/" + configName, "Secret/" + secretName},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, indexDependencies(tc.obj), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("indexDependencies() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestDependencies(t *testing.T) {
	optionalSpec := userSpec()
	optionalSpec.Volumes[0].ConfigMap.Optional = ptrBool(true)
	cases := []struct {
		name string
		pod  *corev1.Pod
		want []protocol.Dependency
	}{
		{
			// The token volume's kube-root-ca.crt is the target's own.
			name: "service-account token volume left out",
			pod:  proxyPod(t),
			want: []protocol.Dependency{{Kind: protocol.ConfigMap, Name: configName}, {Kind: protocol.Secret, Name: secretName}},
		},
		{
			name: "optional reference",
			pod:  proxyPodWith(t, optionalSpec),
			want: []protocol.Dependency{{Kind: protocol.ConfigMap, Name: configName, Optional: true}, {Kind: protocol.Secret, Name: secretName}},
		},
		{
			name: "only the token volume",
			pod: proxyPodWith(t, corev1.PodSpec{
				Containers: []corev1.Container{{Name: "web"}},
				Volumes:    []corev1.Volume{serviceAccountVolume("kube-api-access-abcde")},
			}),
		},
		{
			name: "a volume named like the token's but not projected counts",
			pod: proxyPodWith(t, corev1.PodSpec{
				Containers: []corev1.Container{{Name: "web"}},
				Volumes:    []corev1.Volume{configMapVolume("kube-api-access-mine", "mine", nil)},
			}),
			want: []protocol.Dependency{{Kind: protocol.ConfigMap, Name: "mine"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			if diff := cmp.Diff(tc.want, dependencies(tc.pod), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("dependencies() (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.pod); diff != "" {
				t.Errorf("dependencies() changed the pod (-before,+after):\n%s", diff)
			}
		})
	}
}

// Reconcile, against fake API servers.

// env is a source (a fake API server holding proxy pods, ConfigMaps and
// Secrets) and its targets (fake API servers holding chaperons and copies).
type env struct {
	source   client.WithWatch
	targets  map[remote.Key]client.WithWatch
	recorder *events.FakeRecorder
	r        *Reconciler
	// writes are the reconciler's writes to the targets.
	writes []string
}

// newEnv starts a source holding copies of source, and targets holding
// copies of theirs.
func newEnv(t *testing.T, source []client.Object, targets map[remote.Key][]client.Object) *env {
	t.Helper()
	// The fake client sets resourceVersions on the objects it is given.
	copies := func(objs []client.Object) []client.Object {
		out := make([]client.Object, 0, len(objs))
		for _, o := range objs {
			out = append(out, o.DeepCopyObject().(client.Object))
		}
		return out
	}
	source = copies(source)
	_, ctx := ktesting.NewTestContext(t)
	e := &env{
		source:   fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(source...).Build(),
		targets:  map[remote.Key]client.WithWatch{},
		recorder: events.NewFakeRecorder(20),
	}
	fleet := &remote.Fake{
		Clients: map[remote.Key]client.Client{},
		Healths: map[remote.Key]remote.Health{keyDown: {Ready: false, Reason: "Unreachable", Message: "no answer"}},
	}
	for key, objs := range targets {
		e.targets[key] = fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(copies(objs)...).Build()
		fleet.Clients[key] = interceptor.NewClient(e.targets[key], interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				e.writes = append(e.writes, fmt.Sprintf("create %s %s/%s", key, kindOf(obj), obj.GetName()))
				return c.Create(ctx, obj, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				e.writes = append(e.writes, fmt.Sprintf("update %s %s/%s", key, kindOf(obj), obj.GetName()))
				return c.Update(ctx, obj, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				e.writes = append(e.writes, fmt.Sprintf("delete %s %s/%s", key, kindOf(obj), obj.GetName()))
				return c.Delete(ctx, obj, opts...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				e.writes = append(e.writes, fmt.Sprintf("patch %s %s/%s %s", key, kindOf(obj), obj.GetName(), patch.Type()))
				return remote.FakeJSONPatchError(c.Patch(ctx, obj, patch, opts...), patch)
			},
		})
		if _, err := fleet.Connect(ctx, key, nil, "test"); err != nil {
			t.Fatal(err)
		}
	}
	e.r = &Reconciler{Client: e.source, Fleet: fleet, SourceID: sourceID, Recorder: e.recorder}
	return e
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *corev1.Secret:
		return "Secret"
	case *multiclusterv1alpha1.PodChaperon:
		return "PodChaperon"
	}
	return fmt.Sprintf("%T", obj)
}

func (e *env) reconcile(t *testing.T) (ctrl.Result, error) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	return e.r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: podName}})
}

// events are the events recorded so far, as "type reason note".
func (e *env) events() []string {
	var got []string
	for {
		select {
		case ev := <-e.recorder.Events:
			got = append(got, ev)
		default:
			return got
		}
	}
}

// reasons are the reasons of evs.
func reasons(evs []string) []string {
	var got []string
	for _, ev := range evs {
		if f := strings.Fields(ev); len(f) > 1 {
			got = append(got, f[1])
		}
	}
	return got
}

// get reads obj from target key, nil if it is not there; what the API
// server sets itself is cleared.
func get[T client.Object](t *testing.T, e *env, key remote.Key, obj T) T {
	t.Helper()
	var zero T
	if err := e.targets[key].Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		if apierrors.IsNotFound(err) {
			return zero
		}
		t.Fatal(err)
	}
	obj.SetResourceVersion("")
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	return obj
}

func targetConfigMap(t *testing.T, e *env, key remote.Key) *corev1.ConfigMap {
	return get(t, e, key, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: configName}})
}

func targetSecret(t *testing.T, e *env, key remote.Key) *corev1.Secret {
	return get(t, e, key, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: secretName}})
}

// followedMark is the chaperon's dependencies-followed mark in target key,
// "<none>" without one, "<gone>" without chaperon.
func followedMark(t *testing.T, e *env, key remote.Key, proxy *corev1.Pod) string {
	t.Helper()
	ch := get(t, e, key, &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: protocol.ChaperonName(proxy)}})
	if ch == nil {
		return "<gone>"
	}
	if v, ok := ch.Annotations[protocol.FollowedAnnotation]; ok {
		return v
	}
	return "<none>"
}

func TestReconcile(t *testing.T) {
	proxy := proxyPod(t)
	own := chaperonRef(protocol.ChaperonName(proxy), chaperonUID)
	other := chaperonRef("web-1-5e6f7a8b", "other-chaperon-uid")
	// foreign is the target's own ConfigMap of the same name.
	foreign := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: configName, Labels: map[string]string{"team": "target"}},
		Data:       map[string]string{"app.yaml": "theirs"},
	}
	// anotherSources is another source's copy of a ConfigMap of that name.
	anotherSources := configMapCopy(other)
	anotherSources.Labels[protocol.FollowerLabel] = "another-source-id"
	optionalSpec := userSpec()
	optionalSpec.Volumes[0].ConfigMap.Optional = ptrBool(true)
	notProxy := proxyPod(t)
	notProxy.Spec.SchedulerName = corev1.DefaultSchedulerName
	noDeps := proxyPodWith(t, corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Image: "nginx"}},
		Volumes:    []corev1.Volume{serviceAccountVolume("kube-api-access-abcde")},
	})
	deleting := proxyPod(t)
	deleting.DeletionTimestamp = &metav1.Time{Time: metav1.Now().Time}
	deleting.Finalizers = []string{protocol.ProxyPodFinalizer}

	cases := []struct {
		name    string
		proxy   *corev1.Pod
		source  []client.Object
		targets map[remote.Key][]client.Object
		// key is the target whose objects are checked; keyEU if unset.
		key           remote.Key
		wantConfigMap *corev1.ConfigMap
		wantSecret    *corev1.Secret
		// wantFollowed is the chaperon's mark: "true", "<none>" or "<gone>".
		wantFollowed string
		wantRequeue  bool
		wantErr      bool
		wantReasons  []string
		// wantNotes are substrings of the events' notes, in order.
		wantNotes []string
		// wantWrites, if set, are the reconciler's writes to the targets.
		wantWrites []string
	}{
		{
			name:          "copies made, chaperon marked followed",
			source:        []client.Object{sourceConfigMap(), sourceSecret()},
			targets:       map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy)}},
			wantConfigMap: configMapCopy(own),
			wantSecret:    secretCopy(own),
			wantFollowed:  "true",
			wantWrites: []string{
				"patch eu ConfigMap/app-config application/json-patch+json", "create eu ConfigMap/app-config",
				"patch eu Secret/db application/json-patch+json", "create eu Secret/db",
				"patch eu PodChaperon/" + protocol.ChaperonName(proxy) + " application/merge-patch+json",
			},
		},
		{
			name:          "already followed: copies kept in sync, chaperon not written",
			source:        []client.Object{sourceConfigMap(), sourceSecret()},
			targets:       map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy, alreadyFollowed)}},
			wantConfigMap: configMapCopy(own),
			wantSecret:    secretCopy(own),
			wantFollowed:  "true",
			wantWrites: []string{
				"patch eu ConfigMap/app-config application/json-patch+json", "create eu ConfigMap/app-config",
				"patch eu Secret/db application/json-patch+json", "create eu Secret/db",
			},
		},
		{
			name:   "own copy owned by another chaperon: this one added, content updated",
			source: []client.Object{sourceConfigMap(), sourceSecret()},
			targets: map[remote.Key][]client.Object{keyEU: {
				chaperonOf(t, proxy),
				func() client.Object {
					c := configMapCopy(other)
					c.Data = map[string]string{"app.yaml": "stale"}
					return c
				}(),
			}},
			wantConfigMap: configMapCopy(other, own),
			wantSecret:    secretCopy(own),
			wantFollowed:  "true",
		},
		{
			name:          "own copy up to date: not written",
			source:        []client.Object{sourceConfigMap(), sourceSecret()},
			targets:       map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy, alreadyFollowed), configMapCopy(own), secretCopy(own)}},
			wantConfigMap: configMapCopy(own),
			wantSecret:    secretCopy(own),
			wantFollowed:  "true",
			wantWrites: []string{
				"patch eu ConfigMap/app-config application/json-patch+json",
				"patch eu Secret/db application/json-patch+json",
			},
		},
		{
			name:          "target's own ConfigMap: not overwritten, chaperon not marked",
			source:        []client.Object{sourceConfigMap(), sourceSecret()},
			targets:       map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy), foreign}},
			wantConfigMap: foreign,
			wantSecret:    secretCopy(own),
			wantFollowed:  "<none>",
			wantRequeue:   true,
			wantReasons:   []string{ReasonFollowerConflict},
			wantNotes:     []string{"ConfigMap app-config already exist in target eu"},
		},
		{
			name:          "another source's copy: not overwritten, chaperon not marked",
			source:        []client.Object{sourceConfigMap(), sourceSecret()},
			targets:       map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy), anotherSources}},
			wantConfigMap: anotherSources,
			wantSecret:    secretCopy(own),
			wantFollowed:  "<none>",
			wantRequeue:   true,
			wantReasons:   []string{ReasonFollowerConflict},
			wantNotes:     []string{"ConfigMap app-config already exist in target eu"},
		},
		{
			name:         "chaperon not decided: nothing copied",
			source:       []client.Object{sourceConfigMap(), sourceSecret()},
			targets:      map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy, undecided)}},
			wantFollowed: "<none>",
			wantWrites:   []string{},
		},
		{
			name:   "committed chaperon (allow mark gone): followed",
			source: []client.Object{sourceConfigMap(), sourceSecret()},
			targets: map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy, undecided, func(ch *multiclusterv1alpha1.PodChaperon) {
				ch.Annotations[protocol.BindingAnnotation] = protocol.BindingMark(1, "node-a")
			})}},
			wantConfigMap: configMapCopy(own),
			wantSecret:    secretCopy(own),
			wantFollowed:  "true",
		},
		{
			name:   "chaperon of another proxy pod of the same name: nothing copied",
			source: []client.Object{sourceConfigMap(), sourceSecret()},
			targets: map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy, func(ch *multiclusterv1alpha1.PodChaperon) {
				ch.Labels[protocol.ProxyPodUIDLabel] = "older-proxy-uid"
			})}},
			wantFollowed: "<none>",
			wantWrites:   []string{},
		},
		{
			name:   "chaperon made through another target to the same cluster: nothing copied",
			source: []client.Object{sourceConfigMap(), sourceSecret()},
			targets: map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy, func(ch *multiclusterv1alpha1.PodChaperon) {
				ch.Annotations[protocol.TargetAnnotation] = "team-a/eu"
			})}},
			wantFollowed: "<none>",
			wantWrites:   []string{},
		},
		{
			name:         "no chaperon: nothing copied",
			source:       []client.Object{sourceConfigMap(), sourceSecret()},
			targets:      map[remote.Key][]client.Object{keyEU: {}},
			wantFollowed: "<gone>",
			wantWrites:   []string{},
		},
		{
			name:         "Target of another namespace: not even read",
			source:       []client.Object{sourceConfigMap(), sourceSecret()},
			targets:      map[remote.Key][]client.Object{keyOther: {chaperonOf(t, proxy)}},
			key:          keyOther,
			wantFollowed: "<none>",
			wantWrites:   []string{},
		},
		{
			name:         "target not Ready: skipped",
			source:       []client.Object{sourceConfigMap(), sourceSecret()},
			targets:      map[remote.Key][]client.Object{keyDown: {chaperonOf(t, proxy)}},
			key:          keyDown,
			wantFollowed: "<none>",
			wantWrites:   []string{},
		},
		{
			name:         "missing ConfigMap: the pod waits for it in the target, as it would here",
			source:       []client.Object{sourceSecret()},
			targets:      map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy)}},
			wantSecret:   secretCopy(own),
			wantFollowed: "true",
			wantReasons:  []string{ReasonDependencyNotFound},
			wantNotes:    []string{"ConfigMap app-config not found"},
		},
		{
			name:         "missing ConfigMap and Secret: one event",
			targets:      map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy)}},
			wantFollowed: "true",
			wantReasons:  []string{ReasonDependencyNotFound},
			wantNotes:    []string{"ConfigMap app-config, Secret db not found"},
		},
		{
			name:         "missing optional ConfigMap: no event",
			proxy:        proxyPodWith(t, optionalSpec),
			source:       []client.Object{sourceSecret()},
			targets:      map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxyPodWith(t, optionalSpec))}},
			wantSecret:   secretCopy(own),
			wantFollowed: "true",
		},
		{
			name:         "not a proxy pod: nothing",
			proxy:        notProxy,
			source:       []client.Object{sourceConfigMap(), sourceSecret()},
			targets:      map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy)}},
			wantFollowed: "<none>",
			wantWrites:   []string{},
		},
		{
			name:         "proxy pod being deleted: nothing",
			proxy:        deleting,
			source:       []client.Object{sourceConfigMap(), sourceSecret()},
			targets:      map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy)}},
			wantFollowed: "<none>",
			wantWrites:   []string{},
		},
		{
			name:    "no dependencies (but the token volume): nothing",
			proxy:   noDeps,
			source:  []client.Object{sourceConfigMap(), sourceSecret()},
			targets: map[remote.Key][]client.Object{keyEU: {chaperonOf(t, noDeps)}},
			// The candidate does not need the mark.
			wantFollowed: "<none>",
			wantWrites:   []string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.proxy
			if p == nil {
				p = proxy
			}
			key := tc.key
			if key == (remote.Key{}) {
				key = keyEU
			}
			e := newEnv(t, append([]client.Object{p}, tc.source...), tc.targets)
			res, err := e.reconcile(t)
			if (err != nil) != tc.wantErr {
				t.Errorf("Reconcile() error = %v, want error: %t", err, tc.wantErr)
			}
			if got := res.RequeueAfter > 0; got != tc.wantRequeue {
				t.Errorf("Reconcile() = %+v, want requeue after a while: %t", res, tc.wantRequeue)
			}
			if diff := cmp.Diff(tc.wantConfigMap, targetConfigMap(t, e, key), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("target ConfigMap (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSecret, targetSecret(t, e, key), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("target Secret (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFollowed, followedMark(t, e, key, p)); diff != "" {
				t.Errorf("chaperon's followed mark (-want,+got):\n%s", diff)
			}
			evs := e.events()
			if diff := cmp.Diff(tc.wantReasons, reasons(evs), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("event reasons (-want,+got):\n%s\nevents: %q", diff, evs)
			}
			for i, note := range tc.wantNotes {
				if i >= len(evs) || !strings.Contains(evs[i], note) {
					t.Errorf("events = %q, want #%d to say %q", evs, i, note)
				}
			}
			if tc.wantWrites != nil {
				if diff := cmp.Diff(tc.wantWrites, e.writes, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("writes to the targets (-want,+got):\n%s", diff)
				}
			}
		})
	}
}

// TestReconcileFollowsChanges: a copy follows its source's changes; an
// unchanged source costs no write (the reconciler remembers the source
// resourceVersion each copy holds).
func TestReconcileFollowsChanges(t *testing.T) {
	ctx := context.Background()
	proxy := proxyPod(t)
	own := chaperonRef(protocol.ChaperonName(proxy), chaperonUID)
	e := newEnv(t, []client.Object{proxy, sourceConfigMap(), sourceSecret()},
		map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy)}})

	steps := []struct {
		name          string
		change        func(t *testing.T)
		wantConfigMap *corev1.ConfigMap
		wantWrites    []string
	}{
		{
			name:          "first",
			wantConfigMap: configMapCopy(own),
			wantWrites: []string{
				"patch eu ConfigMap/app-config application/json-patch+json", "create eu ConfigMap/app-config",
				"patch eu Secret/db application/json-patch+json", "create eu Secret/db",
				"patch eu PodChaperon/" + protocol.ChaperonName(proxy) + " application/merge-patch+json",
			},
		},
		{
			name:          "nothing changed",
			wantConfigMap: configMapCopy(own),
			wantWrites:    []string{},
		},
		{
			name: "source ConfigMap updated",
			change: func(t *testing.T) {
				cm := &corev1.ConfigMap{}
				if err := e.source.Get(ctx, client.ObjectKeyFromObject(sourceConfigMap()), cm); err != nil {
					t.Fatal(err)
				}
				cm.Data["app.yaml"] = "replicas: 5"
				if err := e.source.Update(ctx, cm); err != nil {
					t.Fatal(err)
				}
			},
			wantConfigMap: func() *corev1.ConfigMap {
				c := configMapCopy(own)
				c.Data = map[string]string{"app.yaml": "replicas: 5"}
				return c
			}(),
			wantWrites: []string{"patch eu ConfigMap/app-config application/json-patch+json", "update eu ConfigMap/app-config"},
		},
		{
			name: "source ConfigMap relabelled",
			change: func(t *testing.T) {
				cm := &corev1.ConfigMap{}
				if err := e.source.Get(ctx, client.ObjectKeyFromObject(sourceConfigMap()), cm); err != nil {
					t.Fatal(err)
				}
				cm.Labels["tier"] = "front"
				if err := e.source.Update(ctx, cm); err != nil {
					t.Fatal(err)
				}
			},
			wantConfigMap: func() *corev1.ConfigMap {
				c := configMapCopy(own)
				c.Data = map[string]string{"app.yaml": "replicas: 5"}
				c.Labels["tier"] = "front"
				return c
			}(),
			wantWrites: []string{"patch eu ConfigMap/app-config application/json-patch+json", "update eu ConfigMap/app-config"},
		},
	}
	for _, step := range steps {
		if step.change != nil {
			step.change(t)
		}
		e.writes = nil
		if _, err := e.reconcile(t); err != nil {
			t.Fatalf("%s: Reconcile() = %v", step.name, err)
		}
		if diff := cmp.Diff(step.wantConfigMap, targetConfigMap(t, e, keyEU), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: target ConfigMap (-want,+got):\n%s", step.name, diff)
		}
		if diff := cmp.Diff(step.wantWrites, e.writes, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: writes to the targets (-want,+got):\n%s", step.name, diff)
		}
		if diff := cmp.Diff("true", followedMark(t, e, keyEU, proxy)); diff != "" {
			t.Errorf("%s: chaperon's followed mark (-want,+got):\n%s", step.name, diff)
		}
		if evs := e.events(); len(evs) != 0 {
			t.Errorf("%s: events = %q, want none", step.name, evs)
		}
	}
}

// TestReconcileConflictResolved: once the target's own object of the name
// is gone, the copy is made and the chaperon marked.
func TestReconcileConflictResolved(t *testing.T) {
	proxy := proxyPod(t)
	own := chaperonRef(protocol.ChaperonName(proxy), chaperonUID)
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: configName}, Data: map[string]string{"k": "theirs"}}
	e := newEnv(t, []client.Object{proxy, sourceConfigMap(), sourceSecret()},
		map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy), foreign}})

	res, err := e.reconcile(t)
	if err != nil || res.RequeueAfter <= 0 {
		t.Fatalf("Reconcile() = %+v, %v; want a requeue after a while, no error", res, err)
	}
	if diff := cmp.Diff("<none>", followedMark(t, e, keyEU, proxy)); diff != "" {
		t.Errorf("chaperon's followed mark (-want,+got):\n%s", diff)
	}

	if err := e.targets[keyEU].Delete(context.Background(), foreign.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	res, err = e.reconcile(t)
	if err != nil || res.RequeueAfter != 0 {
		t.Fatalf("second Reconcile() = %+v, %v; want done", res, err)
	}
	if diff := cmp.Diff(configMapCopy(own), targetConfigMap(t, e, keyEU), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("target ConfigMap (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff("true", followedMark(t, e, keyEU, proxy)); diff != "" {
		t.Errorf("chaperon's followed mark (-want,+got):\n%s", diff)
	}
}

// TestReconcileSharedCopy: two pods that reference the same ConfigMap,
// delegated to the same target, own its one copy together.
func TestReconcileSharedCopy(t *testing.T) {
	first := proxyPod(t)
	second := proxyPod(t)
	second.Name, second.UID = "web-1", "proxy-uid-1"
	secondChaperon := chaperonOf(t, second, func(ch *multiclusterv1alpha1.PodChaperon) { ch.UID = "chaperon-uid-1" })
	e := newEnv(t, []client.Object{first, second, sourceConfigMap(), sourceSecret()},
		map[remote.Key][]client.Object{keyEU: {chaperonOf(t, first), secondChaperon}})

	_, ctx := ktesting.NewTestContext(t)
	for _, p := range []*corev1.Pod{first, second} {
		if _, err := e.r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)}); err != nil {
			t.Fatalf("Reconcile(%s) = %v", p.Name, err)
		}
		if diff := cmp.Diff("true", followedMark(t, e, keyEU, p)); diff != "" {
			t.Errorf("%s's chaperon's followed mark (-want,+got):\n%s", p.Name, diff)
		}
	}
	owners := []metav1.OwnerReference{
		chaperonRef(protocol.ChaperonName(first), chaperonUID), chaperonRef(protocol.ChaperonName(second), "chaperon-uid-1"),
	}
	if diff := cmp.Diff(configMapCopy(owners...), targetConfigMap(t, e, keyEU), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("target ConfigMap (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(secretCopy(owners...), targetSecret(t, e, keyEU), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("target Secret (-want,+got):\n%s", diff)
	}
}

// TestProbeFakeClient pins what the Reconcile tests assume of the fake
// client: it applies a JSON patch's "test" operation (answering with the
// object when it passes, changing nothing), and asAPIServer makes its
// failure the API server's 422.
func TestProbeFakeClient(t *testing.T) {
	ctx := context.Background()
	own := configMapCopy()
	theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "theirs"}, Data: map[string]string{"k": "v"}}
	c := fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(own, theirs).Build()
	r := &Reconciler{SourceID: sourceID}
	probing := interceptor.NewClient(c, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			return remote.FakeJSONPatchError(c.Patch(ctx, obj, patch, opts...), patch)
		},
	})
	cases := []struct {
		name     string
		src      client.Object
		wantData map[string]string
		wantErr  func(error) bool
	}{
		{name: "own copy", src: sourceConfigMap(), wantData: own.Data},
		{name: "foreign", src: theirs, wantErr: func(err error) bool { return errors.Is(err, errForeign) }},
		{
			name:    "missing",
			src:     &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "missing"}},
			wantErr: apierrors.IsNotFound,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.probe(ctx, probing, protocol.ConfigMap, tc.src)
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("probe() = %v, %v; want another error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("probe() = %v", err)
			}
			if diff := cmp.Diff(tc.wantData, got.(*corev1.ConfigMap).Data); diff != "" {
				t.Errorf("probe() data (-want,+got):\n%s", diff)
			}
		})
	}
	// Without asAPIServer, the fake's failed test is no API error at all.
	if _, err := r.probe(ctx, c, protocol.ConfigMap, theirs); err == nil || errors.Is(err, errForeign) {
		t.Errorf("probe() through the bare fake client = %v, want a non-API error (else drop asAPIServer)", err)
	}
	// The probe changed nothing.
	for _, want := range []*corev1.ConfigMap{own, theirs} {
		got := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Data, got.Data); diff != "" {
			t.Errorf("%s data after probing (-want,+got):\n%s", want.Name, diff)
		}
		if diff := cmp.Diff(want.Labels, got.Labels); diff != "" {
			t.Errorf("%s labels after probing (-want,+got):\n%s", want.Name, diff)
		}
	}
}

// TestReconcileLateDependency: a ConfigMap created in the source after its
// pod was delegated (the pod waits for it there, as it would here) is copied
// on the next Reconcile.
func TestReconcileLateDependency(t *testing.T) {
	proxy := proxyPod(t)
	own := chaperonRef(protocol.ChaperonName(proxy), chaperonUID)
	e := newEnv(t, []client.Object{proxy, sourceSecret()}, map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy)}})
	if _, err := e.reconcile(t); err != nil {
		t.Fatalf("Reconcile() = %v", err)
	}
	if got := targetConfigMap(t, e, keyEU); got != nil {
		t.Fatalf("target ConfigMap = %v before it exists in the source", got)
	}
	if diff := cmp.Diff([]string{ReasonDependencyNotFound}, reasons(e.events())); diff != "" {
		t.Errorf("event reasons (-want,+got):\n%s", diff)
	}

	if err := e.source.Create(context.Background(), sourceConfigMap()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reconcile(t); err != nil {
		t.Fatalf("second Reconcile() = %v", err)
	}
	if diff := cmp.Diff(configMapCopy(own), targetConfigMap(t, e, keyEU), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("target ConfigMap (-want,+got):\n%s", diff)
	}
	if evs := e.events(); len(evs) != 0 {
		t.Errorf("events = %q, want none", evs)
	}
}

// A pod that projects the kube-root-ca.crt ConfigMap itself (the usual way
// to mount a service-account token of another audience, with
// automountServiceAccountToken: false) starts in a target with the target's
// own kube-root-ca.crt (made by its root-ca-cert-publisher, without the
// follower label): it is no dependency, so no FollowerConflict holds the
// delegate back, and the target's CA is left alone.
func TestKubeRootCAIsTheTargets(t *testing.T) {
	spec := corev1.PodSpec{
		AutomountServiceAccountToken: ptrBool(false),
		Containers: []corev1.Container{{
			Name: "web", Image: "nginx",
			VolumeMounts: []corev1.VolumeMount{{Name: "vault-token", MountPath: "/var/run/secrets/vault"}},
		}},
		Volumes: []corev1.Volume{{Name: "vault-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
			},
		}}}},
	}
	proxy := proxyPodWith(t, spec)
	rootCA := func(cluster string) *corev1.ConfigMap {
		return &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "kube-root-ca.crt"},
			Data:       map[string]string{"ca.crt": cluster + " CA"},
		}
	}
	e := newEnv(t, []client.Object{proxy, rootCA("source")}, map[remote.Key][]client.Object{keyEU: {chaperonOf(t, proxy), rootCA("eu")}})
	res, err := e.reconcile(t)
	if err != nil {
		t.Fatalf("Reconcile() = %v", err)
	}
	if deps := protocol.Dependencies(&chaperonOf(t, proxy).Spec); len(deps) != 0 {
		t.Errorf("Dependencies() = %v, want none: the delegate may bind at once", deps)
	}
	if evs := e.events(); len(evs) != 0 {
		t.Errorf("Reconcile() = %+v, events %q, want none", res, evs)
	}
	got := get(t, e, keyEU, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "kube-root-ca.crt"}})
	if diff := cmp.Diff(rootCA("eu"), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the target's kube-root-ca.crt (-want,+got):\n%s", diff)
	}
}
