package vk

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"

	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// NodeLeaseNamespace holds the virtual nodes' leases, as for kubelets.
const NodeLeaseNamespace = corev1.NamespaceNodeLease

// Options tune the virtual nodes.
type Options struct {
	// LeaseDurationSeconds of the node leases (default 40, as kubelets).
	LeaseDurationSeconds int32
	// Address is the virtual nodes' InternalIP, where kube-apiserver
	// reaches their kubelet endpoint (see KubeletServer); none when empty.
	Address string
	// KubeletPort is the port of that endpoint; none when zero.
	KubeletPort int32
}

// Manager runs the virtual nodes of a source cluster, one per target.
type Manager struct {
	ctx    context.Context
	client kubernetes.Interface
	opts   Options

	mu    sync.Mutex
	nodes map[remote.Key]*virtualNode
}

// NewManager returns a Manager whose nodes run until ctx ends.
func NewManager(ctx context.Context, client kubernetes.Interface, opts Options) *Manager {
	if opts.LeaseDurationSeconds <= 0 {
		opts.LeaseDurationSeconds = 40
	}
	return &Manager{ctx: ctx, client: client, opts: opts, nodes: map[remote.Key]*virtualNode{}}
}

type virtualNode struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	notify  func(*corev1.Node)
	desired *corev1.Node
}

// provider is virtual-kubelet's view of a virtual node: it is alive as long
// as this process is (readiness is a condition, see Desired), and it hands
// status changes over through notify.
type provider struct{ vn *virtualNode }

func (p provider) Ping(ctx context.Context) error { return ctx.Err() }

func (p provider) NotifyNodeStatus(_ context.Context, cb func(*corev1.Node)) {
	p.vn.mu.Lock()
	defer p.vn.mu.Unlock()
	p.vn.notify = cb
}

// Set makes the target's virtual node match summary and health, starting
// its node controller if needed.
func (m *Manager) Set(key remote.Key, summary *multiclusterv1alpha1.ClusterSummary, health remote.Health, excluded *regexp.Regexp) error {
	desired := Desired(key, summary, health, excluded)
	SetKubeletEndpoint(desired, m.opts.Address, m.opts.KubeletPort)
	m.mu.Lock()
	defer m.mu.Unlock()
	if vn, ok := m.nodes[key]; ok {
		vn.mu.Lock()
		vn.desired = desired
		notify := vn.notify
		vn.mu.Unlock()
		if notify != nil {
			notify(desired.DeepCopy())
		}
		return nil
	}
	if m.ctx.Err() != nil {
		return m.ctx.Err()
	}
	vn := &virtualNode{desired: desired, done: make(chan struct{})}
	nc, err := vknode.NewNodeController(provider{vn}, desired.DeepCopy(), m.client.CoreV1().Nodes(),
		vknode.WithNodeEnableLeaseV1(m.client.CoordinationV1().Leases(NodeLeaseNamespace), m.opts.LeaseDurationSeconds),
		vknode.WithNodeStatusUpdateErrorHandler(m.recreateNode(vn)),
	)
	if err != nil {
		return fmt.Errorf("creating the node controller of %s: %w", desired.Name, err)
	}
	ctx, cancel := context.WithCancel(m.ctx)
	vn.cancel = cancel
	logger := klog.FromContext(ctx).WithValues("node", desired.Name)
	go func() {
		defer close(vn.done)
		if err := nc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error(err, "Virtual node controller stopped")
		}
	}()
	m.nodes[key] = vn
	logger.V(2).Info("Started virtual node", "target", key.String())
	return nil
}

// recreateNode handles a virtual node deleted by someone else: virtual-kubelet
// calls it when a status update fails, and it creates the node again.
func (m *Manager) recreateNode(vn *virtualNode) vknode.ErrorHandler {
	return func(ctx context.Context, err error) error {
		if !apierrors.IsNotFound(err) {
			return err
		}
		vn.mu.Lock()
		node := vn.desired.DeepCopy()
		vn.mu.Unlock()
		_, cerr := m.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if cerr != nil && !apierrors.IsAlreadyExists(cerr) {
			return fmt.Errorf("recreating virtual node %s: %w", node.Name, cerr)
		}
		return nil
	}
}

// Remove stops the target's virtual node and deletes it and its lease.
func (m *Manager) Remove(ctx context.Context, key remote.Key) error {
	m.mu.Lock()
	vn, ok := m.nodes[key]
	delete(m.nodes, key)
	m.mu.Unlock()
	if ok {
		vn.cancel()
		<-vn.done
	}
	return DeleteNode(ctx, m.client, NodeName(key))
}

// Keys lists the targets that have a running virtual node.
func (m *Manager) Keys() []remote.Key {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]remote.Key, 0, len(m.nodes))
	for k := range m.nodes {
		keys = append(keys, k)
	}
	return keys
}

// DeleteNode deletes a virtual node and its lease, if they exist.
func DeleteNode(ctx context.Context, client kubernetes.Interface, name string) error {
	if err := client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting virtual node %s: %w", name, err)
	}
	if err := client.CoordinationV1().Leases(NodeLeaseNamespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the lease of virtual node %s: %w", name, err)
	}
	return nil
}
