package protocol

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Keys on pods.
const (
	// ElectAnnotation opts a pod (or a pod template) in to multi-cluster
	// scheduling; its value is ignored.
	ElectAnnotation = "multicluster.admiralty.io/elect"
	// SourcePodManifestAnnotation holds the elected pod as the user wrote it,
	// from which candidates and the delegate are made.
	SourcePodManifestAnnotation = "multicluster.admiralty.io/sourcepod-manifest"
	// ProxyPodSchedulingConstraintsAnnotation holds cluster-level scheduling
	// constraints applied to the proxy pod (affinity on virtual-node labels,
	// tolerations, node selector).
	ProxyPodSchedulingConstraintsAnnotation = "multicluster.admiralty.io/proxy-pod-scheduling-constraints"
)

// ProxyPodFinalizer keeps a proxy pod until its delegate is gone.
const ProxyPodFinalizer = "multicluster.admiralty.io/multiclusterForegroundDeletion"

// Scheduler names.
const (
	ProxySchedulerName     = "admiralty-proxy"
	CandidateSchedulerName = "admiralty-candidate"
)

// Keys on namespaces.
const (
	// NamespaceEnabledLabel marks the namespaces where the elect webhook acts.
	NamespaceEnabledLabel      = "multicluster-scheduler"
	NamespaceEnabledLabelValue = "enabled"
)

// Keys and values on virtual nodes.
const (
	// ClusterNameLabel is set on each virtual node to the name of its target.
	ClusterNameLabel = "multicluster.admiralty.io/cluster-name"
	// VirtualKubeletProviderKey is virtual-kubelet's label and taint key.
	VirtualKubeletProviderKey = "virtual-kubelet.io/provider"
	// VirtualKubeletProvider is the value of that label and taint on
	// Flotilla's virtual nodes.
	VirtualKubeletProvider = "admiralty"
	// TargetAnnotation on a virtual node (and on a PodChaperon) names its
	// target in the source: "<namespace>/<name>" for a Target, "<name>" for
	// a ClusterTarget.
	TargetAnnotation = "multicluster.admiralty.io/target"
)

// Names of well-known objects.
const (
	// ClusterSummaryName is the name of the ClusterSummary that a target
	// maintains about its own nodes.
	ClusterSummaryName = "summary"
)

// SourceClusterLabel, on a chaperon and so on its candidate and delegate
// pods, is the ID of the source cluster that made it (see ClusterID). A
// Service that follows its pods to a target selects this source's
// delegates by it.
const SourceClusterLabel = "multicluster.admiralty.io/source-cluster"

// ClusterID identifies a cluster to the others: the UID of its kube-system
// namespace (the convention of the multi-cluster ClusterProperty KEP).
func ClusterID(ctx context.Context, c kubernetes.Interface) (string, error) {
	ns, err := c.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading this cluster's ID (the UID of namespace %s): %w", metav1.NamespaceSystem, err)
	}
	return string(ns.UID), nil
}

// SourceLeaseName is the name of the Lease by which a source says, in a
// target namespace, that it still stands behind the chaperons it made there
// through Target target (a Target's "<namespace>/<name>" or a
// ClusterTarget's name). The Lease carries SourceClusterLabel and
// TargetAnnotation.
func SourceLeaseName(sourceID, target string) string {
	sum := sha256.Sum256([]byte(sourceID + "/" + target))
	return "flotilla-source-" + hex.EncodeToString(sum[:8])
}
