package protocol

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
)

// Builders of the places a pod spec references ConfigMaps and Secrets.

func configMapVolume(name string, optional *bool) corev1.Volume {
	return corev1.Volume{Name: "cm-" + name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional,
	}}}
}

func secretVolume(name string, optional *bool) corev1.Volume {
	return corev1.Volume{Name: "secret-" + name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: name, Optional: optional,
	}}}
}

func projectedVolume(sources ...corev1.VolumeProjection) corev1.Volume {
	return corev1.Volume{Name: "projected", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}}
}

func configMapProjection(name string, optional *bool) corev1.VolumeProjection {
	return corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional,
	}}
}

func secretProjection(name string, optional *bool) corev1.VolumeProjection {
	return corev1.VolumeProjection{Secret: &corev1.SecretProjection{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional,
	}}
}

func configMapEnv(name string, optional *bool) corev1.EnvVar {
	return corev1.EnvVar{Name: "FROM_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k", Optional: optional,
	}}}
}

func secretEnv(name string, optional *bool) corev1.EnvVar {
	return corev1.EnvVar{Name: "FROM_SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k", Optional: optional,
	}}}
}

func configMapEnvFrom(name string, optional *bool) corev1.EnvFromSource {
	return corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional,
	}}
}

func secretEnvFrom(name string, optional *bool) corev1.EnvFromSource {
	return corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional,
	}}
}

func container(env []corev1.EnvVar, from ...corev1.EnvFromSource) corev1.Container {
	return corev1.Container{Name: "app", Image: "nginx", Env: env, EnvFrom: from}
}

func ephemeralContainer(env []corev1.EnvVar, from ...corev1.EnvFromSource) corev1.EphemeralContainer {
	return corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "busybox", Env: env, EnvFrom: from,
	}}
}

func pullSecrets(names ...string) []corev1.LocalObjectReference {
	var refs []corev1.LocalObjectReference
	for _, n := range names {
		refs = append(refs, corev1.LocalObjectReference{Name: n})
	}
	return refs
}

func required(kind DependencyKind, name string) Dependency {
	return Dependency{Kind: kind, Name: name}
}

func optional(kind DependencyKind, name string) Dependency {
	return Dependency{Kind: kind, Name: name, Optional: true}
}

func TestDependencies(t *testing.T) {
	yes, no := ptrBool(true), ptrBool(false)
	cases := []struct {
		name string
		spec corev1.PodSpec
		want []Dependency
	}{
		{name: "empty spec", spec: corev1.PodSpec{}, want: nil},
		{
			name: "no references",
			spec: corev1.PodSpec{
				Containers: []corev1.Container{container([]corev1.EnvVar{
					{Name: "PLAIN", Value: "v"},
					{Name: "FIELD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				})},
				Volumes: []corev1.Volume{
					{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					projectedVolume(corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}),
				},
			},
			want: nil,
		},
		{
			name: "configMap volume",
			spec: corev1.PodSpec{Volumes: []corev1.Volume{configMapVolume("app-config", nil)}},
			want: []Dependency{required(ConfigMap, "app-config")},
		},
		{
			name: "optional configMap volume",
			spec: corev1.PodSpec{Volumes: []corev1.Volume{configMapVolume("app-config", yes)}},
			want: []Dependency{optional(ConfigMap, "app-config")},
		},
		{
			name: "configMap volume, optional false",
			spec: corev1.PodSpec{Volumes: []corev1.Volume{configMapVolume("app-config", no)}},
			want: []Dependency{required(ConfigMap, "app-config")},
		},
		{
			name: "secret volume",
			spec: corev1.PodSpec{Volumes: []corev1.Volume{secretVolume("tls", nil)}},
			want: []Dependency{required(Secret, "tls")},
		},
		{
			name: "optional secret volume",
			spec: corev1.PodSpec{Volumes: []corev1.Volume{secretVolume("tls", yes)}},
			want: []Dependency{optional(Secret, "tls")},
		},
		{
			name: "projected sources",
			spec: corev1.PodSpec{Volumes: []corev1.Volume{projectedVolume(
				configMapProjection("proj-cm", nil),
				secretProjection("proj-secret", yes),
				corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				corev1.VolumeProjection{DownwardAPI: &corev1.DownwardAPIProjection{}},
			)}},
			want: []Dependency{required(ConfigMap, "proj-cm"), optional(Secret, "proj-secret")},
		},
		{
			name: "env valueFrom",
			spec: corev1.PodSpec{Containers: []corev1.Container{container([]corev1.EnvVar{
				configMapEnv("env-cm", yes), secretEnv("env-secret", nil),
			})}},
			want: []Dependency{optional(ConfigMap, "env-cm"), required(Secret, "env-secret")},
		},
		{
			name: "envFrom",
			spec: corev1.PodSpec{Containers: []corev1.Container{container(nil,
				configMapEnvFrom("from-cm", nil), secretEnvFrom("from-secret", yes),
			)}},
			want: []Dependency{required(ConfigMap, "from-cm"), optional(Secret, "from-secret")},
		},
		{
			name: "init containers",
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{container([]corev1.EnvVar{configMapEnv("init-cm", nil)}, secretEnvFrom("init-secret", nil))},
				Containers:     []corev1.Container{container(nil)},
			},
			want: []Dependency{required(ConfigMap, "init-cm"), required(Secret, "init-secret")},
		},
		{
			name: "ephemeral containers",
			spec: corev1.PodSpec{
				Containers:          []corev1.Container{container(nil)},
				EphemeralContainers: []corev1.EphemeralContainer{ephemeralContainer([]corev1.EnvVar{secretEnv("debug-secret", nil)}, configMapEnvFrom("debug-cm", yes))},
			},
			want: []Dependency{optional(ConfigMap, "debug-cm"), required(Secret, "debug-secret")},
		},
		{
			name: "several containers",
			spec: corev1.PodSpec{Containers: []corev1.Container{
				container([]corev1.EnvVar{configMapEnv("first", nil)}),
				container([]corev1.EnvVar{configMapEnv("second", nil)}),
			}},
			want: []Dependency{required(ConfigMap, "first"), required(ConfigMap, "second")},
		},
		{
			name: "image pull secrets are always optional",
			spec: corev1.PodSpec{ImagePullSecrets: pullSecrets("registry-b", "registry-a")},
			want: []Dependency{optional(Secret, "registry-a"), optional(Secret, "registry-b")},
		},
		{
			name: "image pull secret also mounted: required",
			spec: corev1.PodSpec{
				Volumes:          []corev1.Volume{secretVolume("registry", nil)},
				ImagePullSecrets: pullSecrets("registry"),
			},
			want: []Dependency{required(Secret, "registry")},
		},
		{
			name: "referenced twice, both optional: optional, once",
			spec: corev1.PodSpec{
				Volumes:    []corev1.Volume{configMapVolume("shared", yes)},
				Containers: []corev1.Container{container([]corev1.EnvVar{configMapEnv("shared", yes)})},
			},
			want: []Dependency{optional(ConfigMap, "shared")},
		},
		{
			name: "optional, then required: required, once",
			spec: corev1.PodSpec{
				Volumes:    []corev1.Volume{configMapVolume("shared", yes)},
				Containers: []corev1.Container{container([]corev1.EnvVar{configMapEnv("shared", nil)})},
			},
			want: []Dependency{required(ConfigMap, "shared")},
		},
		{
			name: "required, then optional: required, once",
			spec: corev1.PodSpec{
				Volumes:    []corev1.Volume{configMapVolume("shared", nil)},
				Containers: []corev1.Container{container([]corev1.EnvVar{configMapEnv("shared", yes)}, configMapEnvFrom("shared", yes))},
			},
			want: []Dependency{required(ConfigMap, "shared")},
		},
		{
			name: "one required reference among many optional ones",
			spec: corev1.PodSpec{
				Volumes:          []corev1.Volume{secretVolume("creds", yes), projectedVolume(secretProjection("creds", yes))},
				InitContainers:   []corev1.Container{container([]corev1.EnvVar{secretEnv("creds", yes)})},
				Containers:       []corev1.Container{container(nil, secretEnvFrom("creds", yes))},
				ImagePullSecrets: pullSecrets("creds"),
				EphemeralContainers: []corev1.EphemeralContainer{
					ephemeralContainer([]corev1.EnvVar{secretEnv("creds", no)}),
				},
			},
			want: []Dependency{required(Secret, "creds")},
		},
		{
			name: "a ConfigMap and a Secret of the same name are two dependencies",
			spec: corev1.PodSpec{Volumes: []corev1.Volume{secretVolume("app", yes), configMapVolume("app", nil)}},
			want: []Dependency{required(ConfigMap, "app"), optional(Secret, "app")},
		},
		{
			name: "sorted by kind, then name",
			spec: corev1.PodSpec{
				ImagePullSecrets: pullSecrets("z-pull"),
				Volumes: []corev1.Volume{
					secretVolume("b-secret", nil), configMapVolume("y-cm", nil),
					projectedVolume(secretProjection("a-secret", nil), configMapProjection("x-cm", nil)),
				},
				Containers: []corev1.Container{container([]corev1.EnvVar{configMapEnv("a-cm", nil)})},
			},
			want: []Dependency{
				required(ConfigMap, "a-cm"), required(ConfigMap, "x-cm"), required(ConfigMap, "y-cm"),
				required(Secret, "a-secret"), required(Secret, "b-secret"), optional(Secret, "z-pull"),
			},
		},
		{
			name: "references without a name are ignored",
			spec: corev1.PodSpec{
				Volumes:          []corev1.Volume{configMapVolume("", nil), secretVolume("", nil)},
				ImagePullSecrets: pullSecrets(""),
			},
			want: nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec.DeepCopy()
			got := Dependencies(spec)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Dependencies (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(&tc.spec, spec); diff != "" {
				t.Errorf("Dependencies changed its input (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestReferences(t *testing.T) {
	spec := &corev1.PodSpec{
		Volumes:          []corev1.Volume{configMapVolume("app-config", ptrBool(true))},
		Containers:       []corev1.Container{container([]corev1.EnvVar{secretEnv("db", nil)})},
		ImagePullSecrets: pullSecrets("registry"),
	}
	cases := []struct {
		name string
		kind DependencyKind
		ref  string
		want bool
	}{
		{name: "optional ConfigMap", kind: ConfigMap, ref: "app-config", want: true},
		{name: "Secret from env", kind: Secret, ref: "db", want: true},
		{name: "image pull secret", kind: Secret, ref: "registry", want: true},
		{name: "the name of a ConfigMap, as a Secret", kind: Secret, ref: "app-config", want: false},
		{name: "the name of a Secret, as a ConfigMap", kind: ConfigMap, ref: "db", want: false},
		{name: "another name", kind: ConfigMap, ref: "other", want: false},
		{name: "no name", kind: ConfigMap, ref: "", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, References(spec, tc.kind, tc.ref)); diff != "" {
				t.Errorf("References(%s, %q) (-want,+got):\n%s", tc.kind, tc.ref, diff)
			}
		})
	}
}

func TestFollowed(t *testing.T) {
	withDeps := corev1.PodSpec{
		Containers: []corev1.Container{container(nil)},
		Volumes:    []corev1.Volume{configMapVolume("app-config", nil)},
	}
	optionalOnly := corev1.PodSpec{
		Containers: []corev1.Container{container([]corev1.EnvVar{secretEnv("db", ptrBool(true))})},
	}
	pullOnly := corev1.PodSpec{Containers: []corev1.Container{container(nil)}, ImagePullSecrets: pullSecrets("registry")}
	noDeps := corev1.PodSpec{Containers: []corev1.Container{container([]corev1.EnvVar{{Name: "PLAIN", Value: "v"}})}}
	cases := []struct {
		name        string
		spec        corev1.PodSpec
		annotations map[string]string
		want        bool
	}{
		{name: "no dependencies, no mark", spec: noDeps, want: true},
		{name: "empty spec", want: true},
		{name: "dependencies, no mark", spec: withDeps, want: false},
		{
			name:        "dependencies, other marks only",
			spec:        withDeps,
			annotations: map[string]string{AllowedAnnotation: "uid-1/1", ReservationAnnotation: "1/node-a"},
			want:        false,
		},
		{name: "dependencies, followed", spec: withDeps, annotations: map[string]string{FollowedAnnotation: "true"}, want: true},
		{name: "dependencies, followed mark of any value", spec: withDeps, annotations: map[string]string{FollowedAnnotation: ""}, want: true},
		{name: "no dependencies, followed", spec: noDeps, annotations: map[string]string{FollowedAnnotation: "true"}, want: true},
		// Optional references still wait for the source to copy what it has.
		{name: "optional dependencies only, no mark", spec: optionalOnly, want: false},
		{name: "image pull secrets only, no mark", spec: pullOnly, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := makeChaperon("uid-1", tc.annotations)
			ch.Spec = tc.spec
			if diff := cmp.Diff(tc.want, Followed(ch)); diff != "" {
				t.Errorf("Followed (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestFollowedMarkNeverReachesPods: the dependencies-followed mark is the
// source's word to the target's scheduler; it is neither copied from a
// chaperon to its candidate pod nor taken from a user's pod into a chaperon
// (a user cannot mark their own pod followed).
func TestFollowedMarkNeverReachesPods(t *testing.T) {
	spec := corev1.PodSpec{
		Containers: []corev1.Container{container(nil)},
		Volumes:    []corev1.Volume{configMapVolume("app-config", nil)},
	}
	cases := []struct {
		name        string
		annotations map[string]string
	}{
		{name: "followed", annotations: map[string]string{FollowedAnnotation: "true", "keep": "me"}},
		{name: "followed, empty value", annotations: map[string]string{FollowedAnnotation: "", "keep": "me"}},
		{
			name: "followed, with the other marks",
			annotations: map[string]string{
				FollowedAnnotation: "true", "keep": "me",
				ReservationAnnotation: "3/node-a", AllowedAnnotation: "uid-1/3", BindingAnnotation: "3/node-a",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := makeChaperon("uid-1", tc.annotations)
			ch.Spec = *spec.DeepCopy()
			pod := CandidatePod(ch)
			if v, ok := pod.Annotations[FollowedAnnotation]; ok {
				t.Errorf("CandidatePod carries %s=%q", FollowedAnnotation, v)
			}
			if diff := cmp.Diff("me", pod.Annotations["keep"]); diff != "" {
				t.Errorf("CandidatePod annotation keep (-want,+got):\n%s", diff)
			}
			if _, ok := ch.Annotations[FollowedAnnotation]; !ok {
				t.Errorf("CandidatePod removed %s from the chaperon", FollowedAnnotation)
			}

			proxy := &corev1.Pod{}
			proxy.Name = "web-0"
			proxy.Namespace = "default"
			proxy.UID = "uid-1"
			proxy.Annotations = tc.annotations
			proxy.Spec = *spec.DeepCopy()
			got, err := NewChaperon(proxy)
			if err != nil {
				t.Fatalf("NewChaperon: %v", err)
			}
			if v, ok := got.Annotations[FollowedAnnotation]; ok {
				t.Errorf("NewChaperon carries %s=%q from the user's pod", FollowedAnnotation, v)
			}
			if Followed(got) {
				t.Errorf("Followed(NewChaperon) = true for a pod that references a ConfigMap")
			}
		})
	}
}

func ptrBool(b bool) *bool { return &b }
