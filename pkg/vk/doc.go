// Package vk runs one virtual node per target in a source cluster, with
// virtual-kubelet's node controller and lease. A virtual node carries the
// target's common node labels and its capacity from the target's
// ClusterSummary, the taint that keeps ordinary pods away, and a Ready
// condition that follows the target's health: NotReady as soon as the target
// stops answering, so that taint-based eviction can re-place pods.
//
// The virtual nodes' kubelet endpoint (KubeletServer) serves kube-apiserver's
// kubectl logs, exec, attach and port-forward on a proxy pod: Delegates finds
// the proxy pod's delegate, and Streams streams from it through the target's
// API server, with the source's identity there.
package vk
