package v1alpha1

// ConditionReady is the condition type that Targets, ClusterTargets, Sources
// and ClusterSources report.
const ConditionReady = "Ready"

// Reasons of a Target's or ClusterTarget's Ready condition. Each comes with a
// message that says what to fix.
const (
	// ReasonConnected: the target answers with the credentials given.
	ReasonConnected = "Connected"
	// ReasonSecretNotFound: the kubeconfig Secret does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyNotFound: the Secret has no such key.
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	// ReasonKubeconfigInvalid: the key's value is not a usable kubeconfig.
	ReasonKubeconfigInvalid = "KubeconfigInvalid"
	// ReasonContextNotFound: the kubeconfig has no such context.
	ReasonContextNotFound = "ContextNotFound"
	// ReasonInvalidSpec: a field cannot be used as written (e.g. a bad regexp).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonNotInstalled: the target does not serve Flotilla's API.
	ReasonNotInstalled = "NotInstalled"
	// ReasonUnreachable: the target's API server does not answer.
	ReasonUnreachable = "Unreachable"
	// ReasonUnauthorized: the target does not accept the credentials.
	ReasonUnauthorized = "Unauthorized"
	// ReasonForbidden: the credentials lack a permission Flotilla needs.
	ReasonForbidden = "Forbidden"
)

// Reasons of a Source's or ClusterSource's Ready condition.
const (
	// ReasonPermissionsGranted: the source's identity is bound to its roles.
	ReasonPermissionsGranted = "PermissionsGranted"
	// ReasonServiceAccountNotFound: the named service account does not exist.
	ReasonServiceAccountNotFound = "ServiceAccountNotFound"
)
