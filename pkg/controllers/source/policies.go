package source

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// Names of the admission policies that keep sources to their own objects.
const (
	// NamespacedPolicy applies to the identities of Sources.
	NamespacedPolicy = "flotilla-source-writes"
	// ClusterPolicy applies to the identities of ClusterSources.
	ClusterPolicy = "flotilla-clustersource-writes"
)

// A source writes followers, Services, Ingresses and Leases in its
// namespaces without reading them (NamespacedRules), but the API server
// answers an update or a patch with the object it wrote, so a no-op patch
// (a JSON patch that only tests a field, or a dry run) would read any Secret
// of the namespace, and a real one change the target's own objects. These
// policies let a source's identity update, patch or delete only objects
// that Flotilla made for a source: followers (protocol.FollowerLabel) and
// Leases (protocol.SourceClusterLabel). Sources that share a namespace
// trust each other there, as with any namespace shared by two tenants.

// writeRules are the requests the policies look at.
var writeRules = []admissionregistrationv1.NamedRuleWithOperations{
	{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update, admissionregistrationv1.Delete},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"*"},
			Resources: []string{"configmaps", "secrets", "services"}}}},
	{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update, admissionregistrationv1.Delete},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"*"},
			Resources: []string{"ingresses"}}}},
	{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update, admissionregistrationv1.Delete},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{"coordination.k8s.io"}, APIVersions: []string{"*"},
			Resources: []string{"leases"}}}},
}

// policy is an admission policy for the identities of the parameter kind,
// listed by identities (a CEL list of user names on params).
func policy(name, paramKind, identities string) *admissionregistrationv1.ValidatingAdmissionPolicy {
	made := fmt.Sprintf("has(oldObject.metadata.labels) && (%q in oldObject.metadata.labels || %q in oldObject.metadata.labels)",
		protocol.FollowerLabel, protocol.SourceClusterLabel)
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "flotilla"}},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind:        &admissionregistrationv1.ParamKind{APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: paramKind},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: writeRules},
			Variables:        []admissionregistrationv1.Variable{{Name: "identities", Expression: identities}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!(request.userInfo.username in variables.identities) || (" + made + ")",
				MessageExpression: fmt.Sprintf(`request.userInfo.username + " is the identity of Flotilla %s " + params.metadata.name + `+
					`": it may update or delete only what Flotilla made for a source (labelled %s or %s), not " + request.resource.resource + " " + request.name`,
					paramKind, protocol.FollowerLabel, protocol.SourceClusterLabel),
				Reason: ptr.To(metav1.StatusReasonForbidden),
			}},
			// Without Flotilla's CRDs (the only case where the parameters
			// cannot be read) there is no Source to restrain.
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore),
		},
	}
}

func binding(policy string) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: policy, Labels: map[string]string{"app.kubernetes.io/part-of": "flotilla"}},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policy,
			// Every (Cluster)Source: for a namespaced kind, those of the
			// request's namespace; none found, nothing to check.
			ParamRef: &admissionregistrationv1.ParamRef{
				Selector:                &metav1.LabelSelector{},
				ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction),
			},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
}

// Policies are the admission policies and bindings that keep sources to
// their own objects (see above). The install ships them
// (config/rbac/source-policies.yaml and the chart); RoleEnsurer creates
// them if missing and corrects them when they drift.
func Policies() (policies []*admissionregistrationv1.ValidatingAdmissionPolicy, bindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	policies = []*admissionregistrationv1.ValidatingAdmissionPolicy{
		policy(NamespacedPolicy, "Source", `(has(params.spec.userName) ? [params.spec.userName] : []) + `+
			`(has(params.spec.serviceAccountName) ? ["system:serviceaccount:" + params.metadata.namespace + ":" + params.spec.serviceAccountName] : [])`),
		policy(ClusterPolicy, "ClusterSource", `(has(params.spec.userName) ? [params.spec.userName] : []) + `+
			`(has(params.spec.serviceAccount) ? ["system:serviceaccount:" + params.spec.serviceAccount.namespace + ":" + params.spec.serviceAccount.name] : [])`),
	}
	return policies, []*admissionregistrationv1.ValidatingAdmissionPolicyBinding{binding(NamespacedPolicy), binding(ClusterPolicy)}
}
