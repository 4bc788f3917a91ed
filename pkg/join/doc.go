// Package join connects a source cluster to a target cluster the way a user
// would by hand (see the README, "Joining clusters"), and undoes it.
//
// Join creates, in the target, a service account for the source, a
// ClusterSource (or, with a namespace, a Source) that names it, and a
// long-lived token for it (a Secret of type kubernetes.io/service-account-token
// that kube-controller-manager fills); in the source, a Secret holding a
// self-contained kubeconfig with that token, and a ClusterTarget (or Target)
// that points to it. Every object is written by server-side apply with the
// field manager "flotillactl" and labelled app.kubernetes.io/managed-by=flotillactl,
// so joining twice updates in place; an object of the same name that
// flotillactl did not make is never taken over, and Unjoin deletes only what
// carries the label. Status reports, for a source, each target's Ready
// condition, its virtual node and the proxy pods bound to it.
//
// Nothing here runs inside a cluster: it is the library of cmd/flotillactl,
// acting with the credentials of the user's kubeconfig.
package join
