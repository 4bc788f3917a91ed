package source

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

func TestApplyBinding(t *testing.T) {
	sa := func(name string) []rbacv1.Subject {
		return []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "ns", Name: name}}
	}
	ref := func(role string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}
	}
	binding := func(role, subject string) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"}, RoleRef: ref(role), Subjects: sa(subject)}
	}
	cases := []struct {
		name     string
		existing *rbacv1.RoleBinding
		want     *rbacv1.RoleBinding
	}{
		{"created", nil, binding(NamespacedRole, "a")},
		{"unchanged", binding(NamespacedRole, "a"), binding(NamespacedRole, "a")},
		{"subjects updated", binding(NamespacedRole, "old"), binding(NamespacedRole, "a")},
		{"role changed: recreated", binding("something-else", "a"), binding(NamespacedRole, "a")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(protocol.Scheme)
			if tc.existing != nil {
				b = b.WithObjects(tc.existing)
			}
			r := &Reconciler{Client: b.Build()}
			if err := r.apply(t.Context(), tc.want.DeepCopy()); err != nil {
				t.Fatal(err)
			}
			var got rbacv1.RoleBinding
			if err := r.Client.Get(t.Context(), client.ObjectKeyFromObject(tc.want), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want.RoleRef, got.RoleRef); diff != "" {
				t.Errorf("roleRef (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want.Subjects, got.Subjects); diff != "" {
				t.Errorf("subjects (-want,+got):\n%s", diff)
			}
		})
	}
}
