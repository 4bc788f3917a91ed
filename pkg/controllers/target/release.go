package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
	"github.com/flotilla-io/flotilla/pkg/vk"
)

// removalTimeout bounds the deletion of a removed target's chaperons.
const removalTimeout = 10 * time.Second

// ReasonTargetRemoved is the reason of the event on a proxy pod deleted
// because its target was removed.
const ReasonTargetRemoved = "TargetRemoved"

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch;delete

// release undoes what a removed target held: the chaperons made through it
// in its cluster (if it answers; otherwise that cluster collects them
// itself, see the cleanup controller) and the proxy pods bound to its
// virtual node, whose finalizers are removed and which are deleted, so that
// their owners make new ones elsewhere and nothing blocks a namespace or an
// uninstall.
func (r *Reconciler) release(ctx context.Context, key remote.Key) error {
	// The pods first: a chaperon deleted first would have them deleted as
	// pods whose delegate is gone.
	pods := &corev1.PodList{}
	if err := r.SecretReader.List(ctx, pods, client.MatchingFields{"spec.nodeName": vk.NodeName(key)}); err != nil {
		return fmt.Errorf("listing the pods of the removed target's virtual node: %w", err)
	}
	var errs []error
	for i := range pods.Items {
		errs = append(errs, r.releasePod(ctx, key, &pods.Items[i]))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if cl, err := r.Connector.Get(key); err == nil && cl.Health().Ready {
		// Best effort: what is left there, its cluster collects itself.
		if err := deleteChaperons(ctx, cl); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Leaving the chaperons of a removed target to its cluster's cleanup", "target", key.String())
		}
	}
	return nil
}

// deleteChaperons deletes, in the target of cl, the chaperons made through
// this very Target (two Targets may lead to one cluster).
func deleteChaperons(ctx context.Context, cl remote.Cluster) error {
	ctx, cancel := context.WithTimeout(ctx, removalTimeout)
	defer cancel()
	// Directly, not through the cache: it may not watch chaperons (yet).
	c, err := client.New(cl.GetConfig(), client.Options{Scheme: protocol.Scheme})
	if err != nil {
		return err
	}
	list := &multiclusterv1alpha1.PodChaperonList{}
	var opts []client.ListOption
	if ns := cl.Key().Namespace; ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, list, opts...); err != nil {
		return fmt.Errorf("listing chaperons in the removed target %s: %w", cl.Key(), err)
	}
	var errs []error
	for i := range list.Items {
		ch := &list.Items[i]
		if protocol.ChaperonTarget(ch) != cl.Key().String() || !ch.DeletionTimestamp.IsZero() {
			continue
		}
		err := c.Delete(ctx, ch, client.Preconditions{UID: &ch.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("deleting chaperon %s/%s in the removed target %s: %w", ch.Namespace, ch.Name, cl.Key(), err))
		}
	}
	ctrl.LoggerFrom(ctx).V(2).Info("Deleted the chaperons of a removed target", "target", cl.Key().String(), "count", len(list.Items))
	return errors.Join(errs...)
}

// releasePod removes the proxy finalizer of a pod bound to a removed
// target's virtual node and deletes it (at once: no kubelet will).
func (r *Reconciler) releasePod(ctx context.Context, key remote.Key, pod *corev1.Pod) error {
	if slices.Contains(pod.Finalizers, protocol.ProxyPodFinalizer) {
		// A strategic merge patch removes this finalizer only, whatever
		// else changed meanwhile.
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"$deleteFromPrimitiveList/finalizers": []string{protocol.ProxyPodFinalizer}}})
		if err != nil {
			return err
		}
		if err := r.Client.Patch(ctx, pod, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
			return client.IgnoreNotFound(fmt.Errorf("releasing pod %s/%s of the removed target %s: %w", pod.Namespace, pod.Name, key, err))
		}
	}
	err := r.Client.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &pod.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting pod %s/%s of the removed target %s: %w", pod.Namespace, pod.Name, key, err)
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonTargetRemoved, "Delete",
			"Deleted: its target %s was removed", key)
	}
	ctrl.LoggerFrom(ctx).V(2).Info("Deleted a pod of a removed target", "pod", client.ObjectKeyFromObject(pod), "target", key.String())
	return nil
}
