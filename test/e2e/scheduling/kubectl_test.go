package scheduling

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/flotilla-io/flotilla/test/framework"
)

// kubectl logs, exec, attach and port-forward on a proxy pod in the source
// act on its delegate: the source's kube-apiserver calls the virtual
// node's kubelet endpoint (the controller-manager), which streams from the
// delegate through the target's kube-apiserver and kwok.
func TestKubectlOnProxyPods(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	src := fleet.Source
	pod := elected(ns, "app", "100m", nil)
	g.Expect(src.Client.Create(ctx, pod)).To(Succeed())
	var target string
	g.Eventually(func(g Gomega) { target = expectDelegated(g, ctx, pod) }, framework.PodTimeout, framework.Interval).Should(Succeed())
	tc := cluster(t, target)

	t.Run("logs", func(t *testing.T) {
		g := NewWithT(t)
		out, err := src.Kubectl(ctx, "logs", "-n", ns, pod.Name, "-c", "main")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(ContainSubstring("Hello from the Flotilla sandbox"))
		out, err = src.Kubectl(ctx, "logs", "--previous", "--timestamps", "-n", ns, pod.Name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(MatchRegexp(`^\d{4}-\d\d-\d\dT\S+ Hello from the Flotilla sandbox`))
		out, err = src.Kubectl(ctx, "logs", "--tail=1", "--since=87600h", "-n", ns, pod.Name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strings.Count(strings.TrimSpace(out), "\n")).To(BeZero(), "--tail=1 gave %q", out)
	})
	t.Run("exec runs in the target", func(t *testing.T) {
		g := NewWithT(t)
		out, err := src.Kubectl(ctx, "exec", "-n", ns, pod.Name, "--", "sh", "-c", "echo exec-ok in $FLOTILLA_SANDBOX_CLUSTER")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strings.TrimSpace(out)).To(Equal("exec-ok in " + target))
	})
	t.Run("exec exit code", func(t *testing.T) {
		g := NewWithT(t)
		_, err := src.Kubectl(ctx, "exec", "-n", ns, pod.Name, "--", "sh", "-c", "exit 3")
		g.Expect(err).To(MatchError(ContainSubstring("exit status 3")))
	})
	t.Run("exec with stdin", func(t *testing.T) {
		g := NewWithT(t)
		// kwok does not pass on the end of stdin: read one line.
		out, err := src.KubectlWithInput(ctx, "from stdin\n", "exec", "-i", "-n", ns, pod.Name, "--", "head", "-n1")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(Equal("from stdin\n"))
	})
	for name, args := range map[string][]string{
		"attach":  {"attach", "-n", ns, pod.Name, "-c", "main"},
		"logs -f": {"logs", "-f", "--tail=0", "-n", ns, pod.Name},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			line := fmt.Sprintf("written in %s at %s for %s", target, time.Now().Format(time.RFC3339Nano), name)
			go func() {
				for range 40 {
					_ = tc.AppendContainerLog(line)
					time.Sleep(250 * time.Millisecond)
				}
			}()
			out, err := src.KubectlStreamUntil(ctx, line, args...)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(out).NotTo(ContainSubstring("Hello from the Flotilla sandbox"), "only new output is streamed")
		})
	}
	t.Run("port-forward", func(t *testing.T) {
		g := NewWithT(t)
		echoed, err := src.PortForwardEcho(ctx, ns, pod.Name, 8080, "ping through the virtual node\n")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(echoed).To(Equal("ping through the virtual node\n"))
	})
	t.Run("clear errors", func(t *testing.T) {
		g := NewWithT(t)
		_, err := src.Kubectl(ctx, "logs", "-n", ns, pod.Name, "-c", "nope")
		g.Expect(err).To(MatchError(ContainSubstring("nope")))
		_, err = src.Kubectl(ctx, "exec", "-n", ns, pod.Name, "-c", "nope", "--", "true")
		g.Expect(err).To(MatchError(ContainSubstring("nope")))
	})
}
