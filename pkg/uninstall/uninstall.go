// Package uninstall takes Flotilla out of one cluster without leaving
// anything behind: what `helm uninstall` runs first (the chart's pre-delete
// hook) and what `flotillactl uninstall` does for installations without Helm.
//
// Deleting Flotilla's Deployments alone would leave proxy pods holding
// Flotilla's finalizer with nobody to remove it (their namespaces could never
// be deleted), delegates and followers running in targets for sources that
// are gone, and the RBAC that Sources grant to remote identities. So, in
// this cluster, while the controller-manager still runs:
//
//  1. the elect webhook goes first, so that pods created from now on are
//     ordinary pods scheduled here;
//  2. as a source: every Target and ClusterTarget is deleted, and the
//     controller-manager releases them (their chaperons in the targets go,
//     with the delegates and followers; the proxy pods on their virtual
//     nodes are deleted, so their owners make new ones, here); what it has
//     not released within the timeout is released here: the finalizer
//     removed and the pod deleted;
//  3. proxy pods never bound lose the finalizer too, and those with an
//     owner are deleted so it makes ordinary pods instead; pods without an
//     owner are left Pending and reported;
//  4. as a target: every Source and ClusterSource is deleted (and so the
//     permissions they grant), then every PodChaperon, with their delegates
//     and followers (owned by them), and the sources' Leases and the
//     ClusterSummary.
//
// Every step is idempotent: run again, it finds nothing to do. Flotilla's
// CRDs are kept (Helm keeps the CRDs of its crds/ folder too).
package uninstall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;delete
// +kubebuilder:rbac:groups=multicluster.admiralty.io,resources=targets;clustertargets;sources;clustersources;podchaperons;clustersummaries,verbs=list;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=list;delete

// DefaultTimeout is how long Run waits, by default, for the
// controller-manager to release the Targets, and then for the chaperons to
// be gone.
const DefaultTimeout = 2 * time.Minute

// Options of Run.
type Options struct {
	// WebhookConfiguration is the name of the MutatingWebhookConfiguration
	// of the elect webhook, deleted first; empty: none is deleted.
	WebhookConfiguration string
	// Timeout bounds each wait (DefaultTimeout if zero).
	Timeout time.Duration
	// Interval between two looks while waiting (1 s if zero).
	Interval time.Duration
	// Out receives one line per step (nothing if nil).
	Out io.Writer
}

// Report counts what Run did.
type Report struct {
	WebhookDeleted bool
	// Targets and ClusterTargets deleted.
	Targets int
	// Proxy pods the controller-manager did not release in time, released
	// here (finalizer removed, pod deleted).
	ForcedReleases int
	// Proxy pods never bound, deleted for their owners to make ordinary
	// ones.
	Replaced int
	// Proxy pods never bound and without an owner: their finalizer is
	// removed and they are left Pending (namespace/name).
	LeftPending []string
	// Sources and ClusterSources deleted.
	Sources int
	// PodChaperons deleted (their delegates and followers go with them).
	Chaperons int
	// Sources' Leases and ClusterSummaries deleted.
	Leases, Summaries int
}

// NewClient is a client of the cluster cfg reaches that knows Flotilla's
// kinds.
func NewClient(cfg *rest.Config) (client.Client, error) {
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("making a client: %w", err)
	}
	return c, nil
}

func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := multiclusterv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}

// Run uninstalls Flotilla from the cluster of c; see the package doc.
func Run(ctx context.Context, c client.Client, opts Options) (*Report, error) {
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	u := &uninstaller{c: c, opts: opts, report: &Report{}}
	for _, step := range []func(context.Context) error{
		u.deleteWebhook,
		u.releaseTargets,
		u.releaseProxies,
		u.deleteSources,
		u.deleteChaperons,
		u.deleteLeftovers,
	} {
		if err := step(ctx); err != nil {
			return u.report, err
		}
	}
	return u.report, nil
}

type uninstaller struct {
	c      client.Client
	opts   Options
	report *Report
}

func (u *uninstaller) say(format string, args ...any) {
	if u.opts.Out != nil {
		fmt.Fprintf(u.opts.Out, format+"\n", args...)
	}
}

// list lists into list, treating a kind this cluster does not serve (no
// CRD) as empty.
func (u *uninstaller) list(ctx context.Context, list client.ObjectList, opts ...client.ListOption) (bool, error) {
	err := u.c.List(ctx, list, opts...)
	if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("listing %T: %w", list, err)
	}
	return true, nil
}

// deleteAll deletes objs (background propagation), ignoring those already
// gone, and returns how many it deleted.
func (u *uninstaller) deleteAll(ctx context.Context, objs []client.Object) (int, error) {
	n := 0
	var errs []error
	for _, o := range objs {
		err := u.c.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground))
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			errs = append(errs, fmt.Errorf("deleting %T %s: %w", o, client.ObjectKeyFromObject(o), err))
		default:
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (u *uninstaller) deleteWebhook(ctx context.Context) error {
	if u.opts.WebhookConfiguration == "" {
		return nil
	}
	wh := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: u.opts.WebhookConfiguration}}
	if err := u.c.Delete(ctx, wh); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("deleting the elect webhook's MutatingWebhookConfiguration %s: %w", wh.Name, err)
	}
	u.report.WebhookDeleted = true
	u.say("deleted MutatingWebhookConfiguration %s: pods created from now on are scheduled here", wh.Name)
	return nil
}

// virtualNodes are the names of the nodes that stand for targets here.
func (u *uninstaller) virtualNodes(ctx context.Context) (map[string]bool, error) {
	nodes := &corev1.NodeList{}
	if _, err := u.list(ctx, nodes, client.MatchingLabels{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider}); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, n := range nodes.Items {
		if _, ok := n.Annotations[protocol.TargetAnnotation]; ok {
			names[n.Name] = true
		}
	}
	return names, nil
}

// proxyPods are the pods holding Flotilla's finalizer.
func (u *uninstaller) proxyPods(ctx context.Context) ([]corev1.Pod, error) {
	pods := &corev1.PodList{}
	if _, err := u.list(ctx, pods); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if slices.Contains(p.Finalizers, protocol.ProxyPodFinalizer) {
			out = append(out, p)
		}
	}
	return out, nil
}

// releaseTargets deletes the Targets and ClusterTargets and waits for the
// controller-manager to release them: no virtual node left, no proxy pod
// bound to one. Then it releases what is left itself.
func (u *uninstaller) releaseTargets(ctx context.Context) error {
	var objs []client.Object
	targets := &multiclusterv1alpha1.TargetList{}
	if _, err := u.list(ctx, targets); err != nil {
		return err
	}
	for i := range targets.Items {
		objs = append(objs, &targets.Items[i])
	}
	clusterTargets := &multiclusterv1alpha1.ClusterTargetList{}
	if _, err := u.list(ctx, clusterTargets); err != nil {
		return err
	}
	for i := range clusterTargets.Items {
		objs = append(objs, &clusterTargets.Items[i])
	}
	n, err := u.deleteAll(ctx, objs)
	u.report.Targets = n
	if err != nil {
		return err
	}
	vnodes, err := u.virtualNodes(ctx)
	if err != nil {
		return err
	}
	if n == 0 && len(vnodes) == 0 {
		return nil
	}
	u.say("deleted %d Targets and ClusterTargets; waiting up to %s for the controller-manager to release them", n, u.opts.Timeout)
	// Waiting for the controller-manager: a timeout is not an error, what is
	// left is released below.
	released := func(ctx context.Context) (bool, error) {
		nodes, err := u.virtualNodes(ctx)
		if err != nil {
			return false, err
		}
		if len(nodes) > 0 {
			return false, nil
		}
		pods, err := u.proxyPods(ctx)
		if err != nil {
			return false, err
		}
		for _, p := range pods {
			if vnodes[p.Spec.NodeName] {
				return false, nil
			}
		}
		return true, nil
	}
	err = wait.PollUntilContextTimeout(ctx, u.opts.Interval, u.opts.Timeout, true, released)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("waiting for the Targets to be released: %w", ctx.Err())
	}
	if err != nil && !wait.Interrupted(err) {
		return fmt.Errorf("waiting for the Targets to be released: %w", err)
	}
	if err != nil {
		u.say("the controller-manager did not release every target within %s (is it running?): releasing the rest here", u.opts.Timeout)
	}
	return nil
}

// releasePod removes Flotilla's finalizer from p and, if del, deletes it.
func (u *uninstaller) releasePod(ctx context.Context, p *corev1.Pod, del bool) error {
	// A strategic merge patch removes this finalizer only, whatever else
	// holds the pod; the UID precondition spares a pod of the same name.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":                                 p.UID,
		"$deleteFromPrimitiveList/finalizers": []string{protocol.ProxyPodFinalizer}}})
	if err != nil {
		return err
	}
	if err := u.c.Patch(ctx, p, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("removing the finalizer of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	if !del {
		return nil
	}
	err = u.c.Delete(ctx, p, client.GracePeriodSeconds(0), client.Preconditions{UID: &p.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// releaseProxies removes Flotilla's finalizer from the pods that still hold
// it. Those bound (to a virtual node: the controller-manager did not release
// them) are deleted, their delegates left to their targets' cleanup
// controllers (once this cluster's Leases there run out); those never bound
// are deleted if they have an owner, which makes ordinary pods now that the
// webhook is gone, else left Pending.
func (u *uninstaller) releaseProxies(ctx context.Context) error {
	pods, err := u.proxyPods(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i := range pods {
		p := &pods[i]
		bound := p.Spec.NodeName != ""
		owned := metav1.GetControllerOf(p) != nil
		if err := u.releasePod(ctx, p, bound || owned); err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case bound:
			u.report.ForcedReleases++
		case owned:
			u.report.Replaced++
		case p.DeletionTimestamp == nil:
			u.report.LeftPending = append(u.report.LeftPending, p.Namespace+"/"+p.Name)
		}
	}
	if n := u.report.ForcedReleases; n > 0 {
		u.say("released %d proxy pods bound to virtual nodes (finalizer removed, pod deleted)", n)
	}
	if n := u.report.Replaced; n > 0 {
		u.say("deleted %d proxy pods never scheduled, for their owners to make ordinary pods", n)
	}
	if n := len(u.report.LeftPending); n > 0 {
		u.say("%d proxy pods without an owner stay Pending (no scheduler will take them; delete them): %v", n, u.report.LeftPending)
	}
	return errors.Join(errs...)
}

func (u *uninstaller) deleteSources(ctx context.Context) error {
	var objs []client.Object
	sources := &multiclusterv1alpha1.SourceList{}
	if _, err := u.list(ctx, sources); err != nil {
		return err
	}
	for i := range sources.Items {
		objs = append(objs, &sources.Items[i])
	}
	clusterSources := &multiclusterv1alpha1.ClusterSourceList{}
	if _, err := u.list(ctx, clusterSources); err != nil {
		return err
	}
	for i := range clusterSources.Items {
		objs = append(objs, &clusterSources.Items[i])
	}
	n, err := u.deleteAll(ctx, objs)
	u.report.Sources = n
	if n > 0 {
		u.say("deleted %d Sources and ClusterSources: the sources they let in lose their access", n)
	}
	return err
}

// deleteChaperons deletes every PodChaperon and waits for them to be gone
// (their delegates and followers are deleted by the garbage collector).
func (u *uninstaller) deleteChaperons(ctx context.Context) error {
	chs := &multiclusterv1alpha1.PodChaperonList{}
	if _, err := u.list(ctx, chs); err != nil {
		return err
	}
	var objs []client.Object
	for i := range chs.Items {
		objs = append(objs, &chs.Items[i])
	}
	n, err := u.deleteAll(ctx, objs)
	u.report.Chaperons = n
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return nil
	}
	u.say("deleted %d PodChaperons (their delegates and followers go with them); waiting up to %s for them to be gone", n, u.opts.Timeout)
	err = wait.PollUntilContextTimeout(ctx, u.opts.Interval, u.opts.Timeout, true, func(ctx context.Context) (bool, error) {
		left := &multiclusterv1alpha1.PodChaperonList{}
		if _, err := u.list(ctx, left); err != nil {
			return false, err
		}
		return len(left.Items) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the PodChaperons to be gone (is the garbage collector running?): %w", err)
	}
	return nil
}

// deleteLeftovers deletes the sources' Leases and the ClusterSummary.
func (u *uninstaller) deleteLeftovers(ctx context.Context) error {
	var objs []client.Object
	leases := &coordinationv1.LeaseList{}
	if _, err := u.list(ctx, leases, client.HasLabels{protocol.SourceClusterLabel}); err != nil {
		return err
	}
	for i := range leases.Items {
		objs = append(objs, &leases.Items[i])
	}
	n, err := u.deleteAll(ctx, objs)
	u.report.Leases = n
	if err != nil {
		return err
	}
	summaries := &multiclusterv1alpha1.ClusterSummaryList{}
	if _, err := u.list(ctx, summaries); err != nil {
		return err
	}
	objs = objs[:0]
	for i := range summaries.Items {
		objs = append(objs, &summaries.Items[i])
	}
	n, err = u.deleteAll(ctx, objs)
	u.report.Summaries = n
	return err
}
