package source

import (
	"context"
	"errors"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestRoleEnsurer(t *testing.T) {
	forbidCreate := interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Group: rbacv1.GroupName, Resource: "clusterroles"}, obj.GetName(),
			errors.New("attempting to grant RBAC permissions not currently held"))
	}}
	drifted := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: NamespacedRole},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
	for _, tc := range []struct {
		name     string
		existing []client.Object
		funcs    interceptor.Funcs
		wantErr  string
	}{
		{name: "creates missing roles when allowed"},
		{name: "installed roles are left alone without creating", existing: []client.Object{Roles()[0], Roles()[1]}, funcs: forbidCreate},
		{name: "drifted rules are corrected", existing: []client.Object{drifted, Roles()[1]}, funcs: forbidCreate},
		{name: "a missing role it may not create is an install error", existing: []client.Object{Roles()[0]}, funcs: forbidCreate,
			wantErr: "cluster role flotilla-source-cluster is missing and the controller-manager may not create it (install it with the Helm chart or config/rbac/source-roles.yaml)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := clientgoscheme.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			var objs []client.Object
			for _, o := range tc.existing {
				objs = append(objs, o.DeepCopyObject().(client.Object))
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(tc.funcs).Build()
			err := (&RoleEnsurer{Client: c}).Start(t.Context())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Start() = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start() = %v", err)
			}
			for _, want := range Roles() {
				var have rbacv1.ClusterRole
				if err := c.Get(t.Context(), client.ObjectKeyFromObject(want), &have); err != nil {
					t.Fatal(err)
				}
				if !apiequality.Semantic.DeepEqual(have.Rules, want.Rules) {
					t.Errorf("%s rules = %v, want %v", want.Name, have.Rules, want.Rules)
				}
			}
		})
	}
}
