// Package target connects a source cluster to its targets. For each Target
// and ClusterTarget it reads the kubeconfig Secret, keeps a connection (a
// client and an informer cache, see pkg/remote) open while the process runs,
// replaces it when the Secret or the spec changes and closes it when the
// target goes. Its Ready condition says whether the target answers and, if
// not, why, in words a user can act on; a change of health updates it at once.
package target
