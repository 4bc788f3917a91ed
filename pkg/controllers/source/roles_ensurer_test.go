package source

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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
	policies, bindings := Policies()
	// installed are the roles, policies and bindings the install ships,
	// but those named in without.
	installed := func(without ...string) []client.Object {
		var out []client.Object
		for _, r := range Roles() {
			out = append(out, r)
		}
		for _, p := range policies {
			out = append(out, p)
		}
		for _, b := range bindings {
			out = append(out, b)
		}
		return slices.DeleteFunc(out, func(o client.Object) bool {
			return slices.Contains(without, o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName())
		})
	}
	driftedPolicy := policies[0].DeepCopy()
	driftedPolicy.Spec.Validations[0].Expression = "true"
	for _, tc := range []struct {
		name     string
		existing []client.Object
		funcs    interceptor.Funcs
		wantErr  string
	}{
		{name: "creates missing roles when allowed"},
		{name: "installed roles and policies are left alone without creating", existing: installed(), funcs: forbidCreate},
		{name: "drifted rules are corrected", existing: append(installed("ClusterRole/"+NamespacedRole), drifted), funcs: forbidCreate},
		{name: "a drifted policy is corrected", existing: append(installed("ValidatingAdmissionPolicy/"+NamespacedPolicy), driftedPolicy), funcs: forbidCreate},
		{name: "a missing role it may not create is an install error", existing: installed("ClusterRole/" + ClusterRole), funcs: forbidCreate,
			wantErr: "cluster role flotilla-source-cluster is missing and the controller-manager may not create it (install it with the Helm chart or config/rbac/source-roles.yaml)"},
		{name: "a missing policy it may not create is an install error", existing: installed("ValidatingAdmissionPolicyBinding/" + ClusterPolicy), funcs: forbidCreate,
			wantErr: "creating ValidatingAdmissionPolicyBinding flotilla-clustersource-writes (install it with the Helm chart or config/rbac/source-policies.yaml)"},
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
			for _, want := range policies {
				var have admissionregistrationv1.ValidatingAdmissionPolicy
				if err := c.Get(t.Context(), client.ObjectKeyFromObject(want), &have); err != nil {
					t.Fatal(err)
				}
				if !apiequality.Semantic.DeepEqual(have.Spec, want.Spec) {
					t.Errorf("%s spec = %v, want %v", want.Name, have.Spec, want.Spec)
				}
			}
			for _, want := range bindings {
				var have admissionregistrationv1.ValidatingAdmissionPolicyBinding
				if err := c.Get(t.Context(), client.ObjectKeyFromObject(want), &have); err != nil {
					t.Fatal(err)
				}
				if !apiequality.Semantic.DeepEqual(have.Spec, want.Spec) {
					t.Errorf("%s spec = %v, want %v", want.Name, have.Spec, want.Spec)
				}
			}
		})
	}
}
