package vk

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// Why the delegate of a proxy pod cannot be reached. Errors of Delegates
// wrap one of them; the kubelet endpoint answers with the matching status.
var (
	// ErrPodNotFound: the source has no such pod (404).
	ErrPodNotFound = errors.New("not found")
	// ErrNotProxy: the pod is not a proxy pod running on a virtual node
	// (400).
	ErrNotProxy = errors.New("not a proxy pod")
	// ErrNotBound: the proxy pod has no delegate yet (400).
	ErrNotBound = errors.New("not running in a target yet")
	// ErrTargetUnreachable: the target of the pod's virtual node is not
	// connected, or does not answer (500: kube-apiserver passes on the
	// message of a 500, not of a 503).
	ErrTargetUnreachable = errors.New("unreachable")
)

// Delegate is where the delegate of a proxy pod runs and its name there.
type Delegate struct {
	// Target is the target of the proxy pod's virtual node.
	Target remote.Key
	// Config dials the target's API server as the source (its identity in
	// the target); it is the caller's to modify.
	Config *rest.Config
	// Namespace and Name of the delegate pod in the target.
	Namespace, Name string
}

func (d Delegate) String() string {
	return fmt.Sprintf("delegate pod %s/%s in target %s", d.Namespace, d.Name, d.Target)
}

// Delegates finds the delegate of a proxy pod: where it runs and its name
// there.
type Delegates interface {
	Delegate(ctx context.Context, namespace, name string) (Delegate, error)
}

// Fleet gives the connection to a target.
type Fleet interface {
	Get(remote.Key) (remote.Cluster, error)
}

// NewDelegates returns Delegates that read proxy pods and virtual nodes from
// the source through reader and connect through fleet.
func NewDelegates(reader client.Reader, fleet Fleet) Delegates {
	return &delegates{reader: reader, fleet: fleet}
}

type delegates struct {
	reader client.Reader
	fleet  Fleet
}

func (d *delegates) Delegate(ctx context.Context, namespace, name string) (Delegate, error) {
	ref := namespace + "/" + name
	pod := &corev1.Pod{}
	if err := d.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return Delegate{}, fmt.Errorf("pod %s %w", ref, ErrPodNotFound)
		}
		return Delegate{}, fmt.Errorf("reading pod %s: %w", ref, err)
	}
	if pod.Spec.SchedulerName != protocol.ProxySchedulerName {
		return Delegate{}, fmt.Errorf("pod %s is %w (its scheduler is %q, not %q)",
			ref, ErrNotProxy, pod.Spec.SchedulerName, protocol.ProxySchedulerName)
	}
	if pod.Spec.NodeName == "" {
		return Delegate{}, fmt.Errorf("pod %s is %w: it is not bound to a virtual node", ref, ErrNotBound)
	}
	node := &corev1.Node{}
	if err := d.reader.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return Delegate{}, fmt.Errorf("pod %s: its virtual node %s is gone (its target was removed): %w",
				ref, pod.Spec.NodeName, ErrTargetUnreachable)
		}
		return Delegate{}, fmt.Errorf("reading node %s of pod %s: %w", pod.Spec.NodeName, ref, err)
	}
	key, ok := remote.KeyOfVirtualNode(node)
	if !ok {
		return Delegate{}, fmt.Errorf("pod %s is %w: node %s is not a virtual node", ref, ErrNotProxy, node.Name)
	}
	cl, err := d.fleet.Get(key)
	if err != nil {
		return Delegate{}, fmt.Errorf("pod %s runs in target %s, which is %w: %w", ref, key, ErrTargetUnreachable, err)
	}
	if h := cl.Health(); !h.Ready {
		return Delegate{}, fmt.Errorf("pod %s runs in target %s, which is %w: %s: %s", ref, key, ErrTargetUnreachable, h.Reason, h.Message)
	}
	return Delegate{Target: key, Config: cl.GetConfig(), Namespace: pod.Namespace, Name: protocol.ChaperonName(pod)}, nil
}
