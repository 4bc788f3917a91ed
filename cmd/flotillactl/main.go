// Command flotillactl joins clusters into a Flotilla fleet: join, unjoin
// and status. Installed as kubectl-flotilla on the PATH, it is also the
// kubectl plugin "kubectl flotilla". See pkg/join.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/flotilla-io/flotilla/pkg/join"
	"github.com/flotilla-io/flotilla/pkg/uninstall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCommand(filepath.Base(os.Args[0]), os.Stdout).ExecuteContext(ctx)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

// newCommand is the command tree; invoked as kubectl-flotilla, it calls
// itself "kubectl flotilla".
func newCommand(invokedAs string, out io.Writer) *cobra.Command {
	var kubeconfig string
	root := &cobra.Command{
		Use:   "flotillactl",
		Short: "Join clusters into a Flotilla fleet",
		Long: `flotillactl joins a source cluster to a target cluster, so that the
source's elected pods may run in the target, undoes it, and shows a source's
targets. Clusters are kubeconfig contexts; --kubeconfig and $KUBECONFIG work
as they do for kubectl.`,
		SilenceUsage: true,
	}
	display := root.Use
	if strings.HasPrefix(invokedAs, "kubectl-") {
		display = "kubectl " + strings.TrimPrefix(invokedAs, "kubectl-")
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: display}
	}
	root.SetOut(out)
	root.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	loader := func() clientcmd.ClientConfigLoader {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = kubeconfig
		return rules
	}
	root.AddCommand(newJoinCommand(display, loader, false), newJoinCommand(display, loader, true), newStatusCommand(display, loader), newUninstallCommand(display, loader))
	return root
}

// newJoinCommand is join, or unjoin with the same flags.
func newJoinCommand(display string, loader func() clientcmd.ClientConfigLoader, unjoin bool) *cobra.Command {
	var sourceContext, targetContext string
	var opts join.Options
	cmd := &cobra.Command{
		Use:   "join --target-context B [--source-context A]",
		Short: "Let a source cluster schedule pods to a target cluster",
		Long: `join lets the source cluster (--source-context, default the current context)
schedule pods to the target cluster (--target-context).

In the target it creates a ServiceAccount for the source, a ClusterSource that
names it (Flotilla grants it what the protocol needs) and a long-lived token
for it; in the source, a Secret with a kubeconfig for that identity (key
"config") and a ClusterTarget that uses it. Cluster-scoped objects live in the
namespace ` + join.SystemNamespace + `, which is created if missing. With --namespace,
a Source and a Target in that namespace instead (it must exist in both
clusters): only the source's pods in it may run in the target, in the
namespace of the same name.

Running join again updates what it made in place and keeps the token. An
object of the same name that join did not make is never taken over.`,
		Example: strings.ReplaceAll(`  CMD join --source-context hub --target-context eu
  CMD join --source-context hub --target-context eu --namespace team-a --name eu
  CMD join --source-context hub --target-context kind-eu --target-server https://172.18.0.3:6443`, "CMD", display),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			source, target, err := loadPair(loader(), sourceContext, targetContext)
			if err != nil {
				return err
			}
			run, verb := join.Join, "joined"
			if unjoin {
				run, verb = join.Unjoin, "unjoined"
			}
			res, err := run(cmd.Context(), source, target, opts)
			if res != nil {
				printResult(cmd.OutOrStdout(), res)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (context %q) -> %s (context %q) as %s, virtual node %s\n",
				verb, source.Name, source.Context, target.Name, target.Context, res.Names.TargetObject(), res.VirtualNode)
			if !unjoin {
				fmt.Fprintf(cmd.OutOrStdout(), "see whether the source connects: %s status --context %s\n", display, source.Context)
			}
			return nil
		},
	}
	if unjoin {
		cmd.Use = "unjoin --target-context B [--source-context A]"
		cmd.Short = "Undo join (with the same flags)"
		cmd.Long = `unjoin undoes join, given the same flags: it deletes the Target (or ClusterTarget)
and its Secret in the source, waits (at most --timeout) for the source's
controller-manager to release the target and remove its virtual node, then
deletes the Source (or ClusterSource), the token and the ServiceAccount in the
target. Objects already gone are fine; objects that join did not make are left
alone.`
		cmd.Example = "  " + display + " unjoin --source-context hub --target-context eu"
	}
	f := cmd.Flags()
	f.StringVar(&sourceContext, "source-context", "", "kubeconfig context of the source cluster (default: the current context)")
	f.StringVar(&targetContext, "target-context", "", "kubeconfig context of the target cluster")
	f.StringVar(&opts.Name, "name", "", "name of the Target or ClusterTarget and its Secret in the source (default: the target's cluster name in the kubeconfig)")
	f.StringVar(&opts.SourceName, "source-name", "", "name of the Source or ClusterSource and its ServiceAccount in the target (default: the source's cluster name in the kubeconfig)")
	f.StringVarP(&opts.Namespace, "namespace", "n", "", "join namespaced: a Source and a Target in this namespace (default: cluster-scoped)")
	f.DurationVar(&opts.Timeout, "timeout", join.DefaultTimeout, timeoutHelp(unjoin))
	if !unjoin {
		f.StringVar(&opts.TargetServer, "target-server", "", "URL at which the source reaches the target's API server (default: the target context's server)")
	}
	_ = cmd.MarkFlagRequired("target-context")
	return cmd
}

func timeoutHelp(unjoin bool) string {
	if unjoin {
		return "how long to wait for the source to remove the target's virtual node"
	}
	return "how long to wait for the target's token controller to issue the token"
}

// loadPair loads the source and target contexts, naming the flag of one
// that is missing.
func loadPair(loader clientcmd.ClientConfigLoader, sourceContext, targetContext string) (*join.Cluster, *join.Cluster, error) {
	source, err := join.ClusterFromKubeconfig(loader, sourceContext)
	if err != nil {
		return nil, nil, fmt.Errorf("--source-context: %w", err)
	}
	target, err := join.ClusterFromKubeconfig(loader, targetContext)
	if err != nil {
		return nil, nil, fmt.Errorf("--target-context: %w", err)
	}
	return source, target, nil
}

func printResult(w io.Writer, res *join.Result) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range res.Changes {
		fmt.Fprintf(tw, "%s (%s)\t%s\t%s\n", c.Cluster, c.Context, c.Object, c.Action)
	}
	_ = tw.Flush()
	for _, n := range res.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func newStatusCommand(display string, loader func() clientcmd.ClientConfigLoader) *cobra.Command {
	var context, output string
	cmd := &cobra.Command{
		Use:   "status [--context A] [-o json]",
		Short: "Show a source cluster's targets",
		Long: `status shows the Targets and ClusterTargets of a source cluster (--context,
default the current context): their Ready condition, their virtual node
(admiralty-<name>, admiralty-<namespace>-<name> for a Target), whether it is
Ready, and the proxy pods bound to it, by phase; -o json prints the same as
a JSON list.`,
		Example: "  " + display + " status --context hub\n  " + display + " status --context hub -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("--output %q: want json (or nothing, for a table)", output)
			}
			c, err := join.ClusterFromKubeconfig(loader(), context)
			if err != nil {
				return fmt.Errorf("--context: %w", err)
			}
			rows, err := join.Status(cmd.Context(), c)
			if err != nil {
				return err
			}
			if output == "json" {
				if rows == nil {
					rows = []join.TargetStatus{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			if len(rows) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "No Targets or ClusterTargets in %s (context %q).\n", c.Name, c.Context)
				return nil
			}
			return join.WriteStatus(cmd.OutOrStdout(), rows)
		},
	}
	cmd.Flags().StringVar(&context, "context", "", "kubeconfig context of the source cluster (default: the current context)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (default: a table)")
	return cmd
}

func newUninstallCommand(display string, loader func() clientcmd.ClientConfigLoader) *cobra.Command {
	var context string
	opts := uninstall.Options{Timeout: uninstall.DefaultTimeout}
	cmd := &cobra.Command{
		Use:   "uninstall [--context A] [--webhook-configuration NAME]",
		Short: "Take Flotilla out of a cluster, leaving nothing behind",
		Long: `uninstall prepares a cluster (--context, default the current context; inside
a pod without a kubeconfig, its own cluster) for Flotilla's components to be
deleted: Helm's chart runs it as its pre-delete hook, so ` + "`helm uninstall`" + ` does
it; run it yourself before deleting an installation made without Helm.

While the controller-manager still runs, it deletes the elect webhook's
configuration (--webhook-configuration; pods created from then on are
ordinary pods), every Target and ClusterTarget (the controller-manager
deletes their chaperons in the targets, and so the delegates and followers,
and the proxy pods on their virtual nodes, whose owners make new ones here),
waiting up to --timeout; then it removes Flotilla's finalizer from every pod
left (proxy pods bound or with an owner are deleted, others left Pending),
and, as a target, deletes every Source and ClusterSource (revoking the
sources' access), every PodChaperon (their delegates and followers go with
them), the sources' Leases and the ClusterSummary. Run again, it finds
nothing to do. Flotilla's CRDs stay.`,
		Example: "  " + display + " uninstall --context hub --webhook-configuration flotilla-elect",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, where, err := configFor(loader(), context)
			if err != nil {
				return err
			}
			c, err := uninstall.NewClient(cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Uninstalling Flotilla from %s\n", where)
			opts.Out = out
			r, err := uninstall.Run(cmd.Context(), c, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Done: %d Targets released (%d proxy pods released here), %d unscheduled proxy pods replaced, "+
				"%d left Pending, %d Sources, %d PodChaperons, %d Leases and %d ClusterSummaries deleted.\n",
				r.Targets, r.ForcedReleases, r.Replaced, len(r.LeftPending), r.Sources, r.Chaperons, r.Leases, r.Summaries)
			return nil
		},
	}
	cmd.Flags().StringVar(&context, "context", "", "kubeconfig context of the cluster (default: the current context)")
	cmd.Flags().StringVar(&opts.WebhookConfiguration, "webhook-configuration", "",
		"name of the elect webhook's MutatingWebhookConfiguration, deleted first (the chart's: <release>-elect)")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", opts.Timeout,
		"how long to wait for the controller-manager to release the Targets, and for the PodChaperons to be gone")
	return cmd
}

// configFor is the client configuration of a kubeconfig context (the
// current one if context is empty) or, when there is no kubeconfig at all
// and this runs in a pod, of the pod's own cluster; and a description of it
// for messages.
func configFor(loader clientcmd.ClientConfigLoader, context string) (*rest.Config, string, error) {
	if raw, err := loader.Load(); err == nil && len(raw.Contexts) == 0 && context == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, "this pod's cluster", nil
		}
	}
	c, err := join.ClusterFromKubeconfig(loader, context)
	if err != nil {
		return nil, "", fmt.Errorf("--context: %w", err)
	}
	return c.Config, fmt.Sprintf("%s (context %q)", c.Name, c.Context), nil
}
