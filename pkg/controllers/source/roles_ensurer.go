package source

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RoleEnsurer makes the source roles exist with exactly NamespacedRules and
// ClusterRules when the manager starts, so that the permissions of sources
// are defined in one place, here. Add it to the manager.
type RoleEnsurer struct {
	Client client.Client
}

// Start creates or corrects the two roles.
func (e *RoleEnsurer) Start(ctx context.Context) error {
	for name, rules := range map[string][]rbacv1.PolicyRule{NamespacedRole: NamespacedRules, ClusterRole: ClusterRules} {
		want := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "flotilla"}},
			Rules:      rules,
		}
		var have rbacv1.ClusterRole
		err := e.Client.Get(ctx, client.ObjectKeyFromObject(want), &have)
		switch {
		case apierrors.IsNotFound(err):
			if err := e.Client.Create(ctx, want); err != nil {
				return fmt.Errorf("creating cluster role %s: %w", name, err)
			}
		case err != nil:
			return fmt.Errorf("getting cluster role %s: %w", name, err)
		case !apiequality.Semantic.DeepEqual(have.Rules, rules):
			have.Rules = rules
			if err := e.Client.Update(ctx, &have); err != nil {
				return fmt.Errorf("updating cluster role %s: %w", name, err)
			}
		}
	}
	return nil
}
