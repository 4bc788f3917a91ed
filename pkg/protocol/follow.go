package protocol

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// Keys of followers: the copies, in a target, of the ConfigMaps and Secrets
// that delegates there reference.
const (
	// FollowerLabel marks a copy that a source made; its value is the
	// source cluster's ID (the UID of its kube-system namespace). A source
	// only ever updates or deletes an object that carries its own ID, so it
	// never overwrites the target's own objects nor another source's copies.
	FollowerLabel = "multicluster.admiralty.io/follower-of"
	// FollowedAnnotation is written on a chaperon by its source once every
	// ConfigMap and Secret its pod references (and that exists in the
	// source) has been copied to the target. A candidate whose pod
	// references any is not allowed to bind before.
	FollowedAnnotation = "multicluster.admiralty.io/dependencies-followed"
	// FollowConflictAnnotation is written on a chosen chaperon by its
	// source when a dependency cannot be copied because the target has its
	// own object of that name: the proxy scheduler then withdraws the
	// choice and tries the pod elsewhere. Its value says what is in the way.
	FollowConflictAnnotation = "multicluster.admiralty.io/follow-conflict"
)

// DependencyKind is the kind of object a pod depends on.
type DependencyKind string

// Kinds of dependencies.
const (
	ConfigMap DependencyKind = "ConfigMap"
	Secret    DependencyKind = "Secret"
)

// Dependency is a ConfigMap or Secret that a pod references, in the pod's
// namespace.
type Dependency struct {
	Kind DependencyKind
	Name string
	// Optional is true when every reference to it is optional: the pod
	// starts without it.
	Optional bool
}

// rootCAConfigMap is published in every namespace of every cluster by
// kube-controller-manager: a pod in a target uses the target's own.
const rootCAConfigMap = "kube-root-ca.crt"

// Dependencies lists the ConfigMaps and Secrets that a pod spec references
// (volumes, projected volumes, env, envFrom and image pull secrets, in all
// containers), each once, sorted by kind and name; kube-root-ca.crt is not
// one (every namespace has its own).
func Dependencies(spec *corev1.PodSpec) []Dependency {
	type key struct {
		kind DependencyKind
		name string
	}
	optional := map[key]bool{}
	add := func(kind DependencyKind, name string, opt *bool) {
		if name == "" || kind == ConfigMap && name == rootCAConfigMap {
			return
		}
		k := key{kind, name}
		o := opt != nil && *opt
		if prev, ok := optional[k]; ok {
			optional[k] = prev && o
			return
		}
		optional[k] = o
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			add(ConfigMap, v.ConfigMap.Name, v.ConfigMap.Optional)
		}
		if v.Secret != nil {
			add(Secret, v.Secret.SecretName, v.Secret.Optional)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add(ConfigMap, s.ConfigMap.Name, s.ConfigMap.Optional)
				}
				if s.Secret != nil {
					add(Secret, s.Secret.Name, s.Secret.Optional)
				}
			}
		}
	}
	containers := func(env []corev1.EnvVar, from []corev1.EnvFromSource) {
		for _, e := range env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add(ConfigMap, r.Name, r.Optional)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add(Secret, r.Name, r.Optional)
			}
		}
		for _, f := range from {
			if f.ConfigMapRef != nil {
				add(ConfigMap, f.ConfigMapRef.Name, f.ConfigMapRef.Optional)
			}
			if f.SecretRef != nil {
				add(Secret, f.SecretRef.Name, f.SecretRef.Optional)
			}
		}
	}
	for _, c := range spec.InitContainers {
		containers(c.Env, c.EnvFrom)
	}
	for _, c := range spec.Containers {
		containers(c.Env, c.EnvFrom)
	}
	for _, c := range spec.EphemeralContainers {
		containers(c.Env, c.EnvFrom)
	}
	for _, s := range spec.ImagePullSecrets {
		// The kubelet pulls without a missing pull secret.
		yes := true
		add(Secret, s.Name, &yes)
	}
	deps := make([]Dependency, 0, len(optional))
	for k, o := range optional {
		deps = append(deps, Dependency{Kind: k.kind, Name: k.name, Optional: o})
	}
	slices.SortFunc(deps, func(a, b Dependency) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return deps
}

// References reports whether spec references the object of kind named name.
func References(spec *corev1.PodSpec, kind DependencyKind, name string) bool {
	return slices.ContainsFunc(Dependencies(spec), func(d Dependency) bool { return d.Kind == kind && d.Name == name })
}

// Followed reports whether ch's candidate may bind as far as dependencies
// go: its pod references none, or its source has copied them.
func Followed(ch *multiclusterv1alpha1.PodChaperon) bool {
	if _, ok := ch.Annotations[FollowedAnnotation]; ok {
		return true
	}
	return len(Dependencies(&ch.Spec)) == 0
}
