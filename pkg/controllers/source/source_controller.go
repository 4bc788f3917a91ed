package source

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// sourceLabel tells, on a ClusterRoleBinding made for a (namespaced) Source,
// which Source it is for: "<namespace>.<name>" (for people and tooling; the
// controller finds the binding by name).
const sourceLabel = "multicluster.admiralty.io/source"

// saIndex indexes Sources and ClusterSources by their service account,
// "namespace/name".
const saIndex = "flotilla.serviceAccount"

// Reconciler reconciles Sources, or ClusterSources when ClusterScoped.
type Reconciler struct {
	Client        client.Client
	ClusterScoped bool
}

// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=sources;clustersources,verbs=get;list;watch
// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=sources/status;clustersources/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings;clusterrolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind;escalate,resourceNames=flotilla-source;flotilla-source-cluster

// Reconcile binds the source's identity to the source roles.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	if r.ClusterScoped {
		return r.reconcileClusterSource(ctx, req)
	}
	return r.reconcileSource(ctx, req)
}

func (r *Reconciler) reconcileSource(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	var src multiclusterv1alpha1.Source
	if err := r.Client.Get(ctx, req.NamespacedName, &src); err != nil {
		if apierrors.IsNotFound(err) {
			// Revoke at once rather than wait for garbage collection (the
			// RoleBinding is owned by the Source too; the ClusterRoleBinding
			// cannot be owned by a namespaced object).
			if err := r.deleteIfExists(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: bindingName(req.Name)}}); err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{}, r.deleteIfExists(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: clusterBindingName(req.Namespace, req.Name)}})
		}
		return ctrl.Result{}, err
	}
	if !src.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	subject, cond, err := r.subject(ctx, src.Namespace, src.Spec.UserName, src.Spec.ServiceAccountName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if subject != nil {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: src.Namespace, Name: bindingName(src.Name)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: NamespacedRole},
			Subjects:   []rbacv1.Subject{*subject},
		}
		if err := controllerutil.SetControllerReference(&src, rb, r.Client.Scheme()); err != nil {
			return ctrl.Result{}, err
		}
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: clusterBindingName(src.Namespace, src.Name),
				Labels: map[string]string{sourceLabel: src.Namespace + "." + src.Name}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ClusterRole},
			Subjects: []rbacv1.Subject{*subject},
		}
		for _, obj := range []client.Object{rb, crb} {
			if err := r.apply(ctx, obj); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	return ctrl.Result{}, r.setCondition(ctx, &src, &src.Status.Conditions, cond)
}

func (r *Reconciler) reconcileClusterSource(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	var src multiclusterv1alpha1.ClusterSource
	if err := r.Client.Get(ctx, req.NamespacedName, &src); err != nil {
		if apierrors.IsNotFound(err) {
			// Revoke at once rather than wait for garbage collection.
			for _, suffix := range []string{"", "-cluster"} {
				crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: clusterSourceBindingName(req.Name) + suffix}}
				if err := r.deleteIfExists(ctx, crb); err != nil {
					return ctrl.Result{}, err
				}
			}
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !src.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	ns, name := "", ""
	if sa := src.Spec.ServiceAccount; sa != nil {
		ns, name = sa.Namespace, sa.Name
	}
	subject, cond, err := r.subject(ctx, ns, src.Spec.UserName, name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if subject != nil {
		for suffix, role := range map[string]string{"": NamespacedRole, "-cluster": ClusterRole} {
			crb := &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: clusterSourceBindingName(src.Name) + suffix},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{*subject},
			}
			if err := controllerutil.SetControllerReference(&src, crb, r.Client.Scheme()); err != nil {
				return ctrl.Result{}, err
			}
			if err := r.apply(ctx, crb); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	return ctrl.Result{}, r.setCondition(ctx, &src, &src.Status.Conditions, cond)
}

func bindingName(name string) string              { return "flotilla-source-" + name }
func clusterBindingName(ns, name string) string   { return "flotilla-source-" + ns + "-" + name }
func clusterSourceBindingName(name string) string { return "flotilla-clustersource-" + name }

// subject resolves the identity; a missing service account is reported in
// the condition and yields no subject (no binding to a name that someone
// could create later by surprise).
func (r *Reconciler) subject(ctx context.Context, ns, user, sa string) (*rbacv1.Subject, metav1.Condition, error) {
	cond := metav1.Condition{Type: multiclusterv1alpha1.ConditionReady}
	if user != "" {
		cond.Status, cond.Reason = metav1.ConditionTrue, multiclusterv1alpha1.ReasonPermissionsGranted
		cond.Message = fmt.Sprintf("user %q may act as a source", user)
		return &rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}, cond, nil
	}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: sa}, &corev1.ServiceAccount{})
	if apierrors.IsNotFound(err) {
		cond.Status, cond.Reason = metav1.ConditionFalse, multiclusterv1alpha1.ReasonServiceAccountNotFound
		cond.Message = fmt.Sprintf("service account %s/%s does not exist: create it, and give the source cluster a kubeconfig with its token", ns, sa)
		return nil, cond, nil
	}
	if err != nil {
		return nil, cond, fmt.Errorf("getting service account %s/%s: %w", ns, sa, err)
	}
	cond.Status, cond.Reason = metav1.ConditionTrue, multiclusterv1alpha1.ReasonPermissionsGranted
	cond.Message = fmt.Sprintf("service account %s/%s may act as a source", ns, sa)
	return &rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}, cond, nil
}

// apply creates obj or updates its subjects and labels; a binding whose
// role changed is recreated (roleRef is immutable).
func (r *Reconciler) apply(ctx context.Context, obj client.Object) error {
	existing := obj.DeepCopyObject().(client.Object)
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	if apierrors.IsNotFound(err) {
		return r.Client.Create(ctx, obj)
	}
	if err != nil {
		return err
	}
	haveRef, haveSubjects := bindingParts(existing)
	wantRef, wantSubjects := bindingParts(obj)
	if haveRef == nil || wantRef == nil {
		return fmt.Errorf("unexpected binding type %T", obj)
	}
	if *haveRef != *wantRef {
		if err := r.Client.Delete(ctx, existing); err != nil {
			return err
		}
		return r.Client.Create(ctx, obj)
	}
	if apiequality.Semantic.DeepEqual(*haveSubjects, *wantSubjects) {
		return nil
	}
	*haveSubjects = *wantSubjects
	return r.Client.Update(ctx, existing)
}

// bindingParts returns the role reference and subjects of a RoleBinding or
// ClusterRoleBinding.
func bindingParts(obj client.Object) (*rbacv1.RoleRef, *[]rbacv1.Subject) {
	switch b := obj.(type) {
	case *rbacv1.RoleBinding:
		return &b.RoleRef, &b.Subjects
	case *rbacv1.ClusterRoleBinding:
		return &b.RoleRef, &b.Subjects
	}
	return nil, nil
}

func (r *Reconciler) deleteIfExists(ctx context.Context, obj client.Object) error {
	return client.IgnoreNotFound(r.Client.Delete(ctx, obj))
}

func (r *Reconciler) setCondition(ctx context.Context, obj client.Object, conds *[]metav1.Condition, cond metav1.Condition) error {
	original := obj.DeepCopyObject().(client.Object)
	cond.ObservedGeneration = obj.GetGeneration()
	if !meta.SetStatusCondition(conds, cond) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, obj, client.MergeFrom(original)); err != nil {
		return fmt.Errorf("updating status: %w", err)
	}
	return nil
}

// SetupWithManager watches sources, the bindings they own and service
// accounts (one created later grants the permissions at once).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	var obj client.Object = &multiclusterv1alpha1.Source{}
	name := "source"
	index := func(o client.Object) []string {
		s := o.(*multiclusterv1alpha1.Source)
		if s.Spec.ServiceAccountName == "" {
			return nil
		}
		return []string{s.Namespace + "/" + s.Spec.ServiceAccountName}
	}
	if r.ClusterScoped {
		obj, name = &multiclusterv1alpha1.ClusterSource{}, "clustersource"
		index = func(o client.Object) []string {
			s := o.(*multiclusterv1alpha1.ClusterSource)
			if s.Spec.ServiceAccount == nil {
				return nil
			}
			return []string{s.Spec.ServiceAccount.Namespace + "/" + s.Spec.ServiceAccount.Name}
		}
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), obj, saIndex, index); err != nil {
		return fmt.Errorf("indexing %ss by service account: %w", name, err)
	}
	b := ctrl.NewControllerManagedBy(mgr).Named(name).For(obj).
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.sourcesOfServiceAccount))
	if r.ClusterScoped {
		b = b.Owns(&rbacv1.ClusterRoleBinding{})
	} else {
		b = b.Owns(&rbacv1.RoleBinding{})
	}
	return b.Complete(r)
}

func (r *Reconciler) sourcesOfServiceAccount(ctx context.Context, sa client.Object) []reconcile.Request {
	key := sa.GetNamespace() + "/" + sa.GetName()
	var reqs []reconcile.Request
	if r.ClusterScoped {
		var list multiclusterv1alpha1.ClusterSourceList
		if err := r.Client.List(ctx, &list, client.MatchingFields{saIndex: key}); err == nil {
			for _, s := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
			}
		}
		return reqs
	}
	var list multiclusterv1alpha1.SourceList
	if err := r.Client.List(ctx, &list, client.MatchingFields{saIndex: key}); err == nil {
		for _, s := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
		}
	}
	return reqs
}
