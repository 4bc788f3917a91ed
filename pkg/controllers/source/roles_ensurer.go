package source

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Roles are the two ClusterRoles that sources are bound to, with exactly
// NamespacedRules and ClusterRules. The install ships them
// (config/rbac/source-roles.yaml, generated from here by `make manifests`,
// and the chart); RoleEnsurer corrects them when they drift.
func Roles() []*rbacv1.ClusterRole {
	role := func(name string, rules []rbacv1.PolicyRule) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "flotilla"}},
			Rules:      rules,
		}
	}
	return []*rbacv1.ClusterRole{role(NamespacedRole, NamespacedRules), role(ClusterRole, ClusterRules)}
}

// RoleEnsurer makes the source roles exist with exactly NamespacedRules and
// ClusterRules when the manager starts, so that the permissions of sources
// are defined in one place, here. Add it to the manager.
//
// The controller-manager holds "escalate" on these two roles only, which
// lets it update them but not create them (Kubernetes checks a create's
// escalation without the object's name): a missing role is an install error,
// reported as such.
type RoleEnsurer struct {
	Client client.Client
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingadmissionpolicies;validatingadmissionpolicybindings,verbs=get;list;watch;create;update

// Start creates or corrects the two roles, then the admission policies
// that keep sources to their own objects (Policies).
func (e *RoleEnsurer) Start(ctx context.Context) error {
	if err := e.ensureRoles(ctx); err != nil {
		return err
	}
	policies, bindings := Policies()
	for _, p := range policies {
		err := ensure(ctx, e.Client, p, &admissionregistrationv1.ValidatingAdmissionPolicy{}, func(have *admissionregistrationv1.ValidatingAdmissionPolicy) bool {
			if apiequality.Semantic.DeepEqual(have.Spec, p.Spec) {
				return false
			}
			have.Spec = p.Spec
			return true
		})
		if err != nil {
			return err
		}
	}
	for _, b := range bindings {
		err := ensure(ctx, e.Client, b, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, func(have *admissionregistrationv1.ValidatingAdmissionPolicyBinding) bool {
			if apiequality.Semantic.DeepEqual(have.Spec, b.Spec) {
				return false
			}
			have.Spec = b.Spec
			return true
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ensure creates want if missing, or updates the object as correct changes
// it (it reports whether it did).
func ensure[T client.Object](ctx context.Context, c client.Client, want T, have T, correct func(have T) bool) error {
	kind := want.GetObjectKind().GroupVersionKind().Kind
	err := c.Get(ctx, client.ObjectKeyFromObject(want), have)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s (install it with the Helm chart or config/rbac/source-policies.yaml): %w", kind, want.GetName(), err)
		}
	case err != nil:
		return fmt.Errorf("getting %s %s: %w", kind, want.GetName(), err)
	case correct(have):
		if err := c.Update(ctx, have); err != nil {
			return fmt.Errorf("updating %s %s: %w", kind, want.GetName(), err)
		}
	}
	return nil
}

func (e *RoleEnsurer) ensureRoles(ctx context.Context) error {
	for _, want := range Roles() {
		var have rbacv1.ClusterRole
		err := e.Client.Get(ctx, client.ObjectKeyFromObject(want), &have)
		switch {
		case apierrors.IsNotFound(err):
			if err := e.Client.Create(ctx, want); err != nil {
				if apierrors.IsForbidden(err) {
					return fmt.Errorf("cluster role %s is missing and the controller-manager may not create it "+
						"(install it with the Helm chart or config/rbac/source-roles.yaml): %w", want.Name, err)
				}
				return fmt.Errorf("creating cluster role %s: %w", want.Name, err)
			}
		case err != nil:
			return fmt.Errorf("getting cluster role %s: %w", want.Name, err)
		case !apiequality.Semantic.DeepEqual(have.Rules, want.Rules):
			have.Rules = want.Rules
			if err := e.Client.Update(ctx, &have); err != nil {
				return fmt.Errorf("updating cluster role %s: %w", want.Name, err)
			}
		}
	}
	return nil
}
