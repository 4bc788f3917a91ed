package target

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/vk"
)

// OrphanNodeCollector deletes, when it starts, the virtual nodes whose
// Target or ClusterTarget was deleted while no controller ran (the
// reconcilers remove the others). Add it to the manager: it runs on the
// leader only.
type OrphanNodeCollector struct {
	Reader client.Reader
	Client kubernetes.Interface
}

// Start deletes orphaned virtual nodes once.
func (c *OrphanNodeCollector) Start(ctx context.Context) error {
	logger := ctrl.LoggerFrom(ctx).WithName("orphan-nodes")
	nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{
		LabelSelector: protocol.VirtualKubeletProviderKey + "=" + protocol.VirtualKubeletProvider,
	})
	if err != nil {
		return fmt.Errorf("listing virtual nodes: %w", err)
	}
	for _, node := range nodes.Items {
		ref, ok := node.Annotations[protocol.TargetAnnotation]
		if !ok {
			continue
		}
		var obj client.Object = &multiclusterv1alpha1.ClusterTarget{}
		key := types.NamespacedName{Name: ref}
		if ns, name, found := strings.Cut(ref, "/"); found {
			obj, key = &multiclusterv1alpha1.Target{}, types.NamespacedName{Namespace: ns, Name: name}
		}
		err := c.Reader.Get(ctx, key, obj)
		if err == nil || !apierrors.IsNotFound(err) {
			continue
		}
		logger.Info("Deleting the virtual node of a deleted target", "node", node.Name, "target", ref)
		if err := vk.DeleteNode(ctx, c.Client, node.Name); err != nil {
			logger.Error(err, "Deleting an orphaned virtual node", "node", node.Name)
		}
	}
	return nil
}
