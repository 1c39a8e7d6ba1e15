package app

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/statusclient"
)

func newRoutesCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Show the routes the agent programmed and why (segment, node, pool, pod)",
		Long: `Three tables from the agent's current route plan: this node's own pod
prefixes; the kernel routes it owns (main table, protocol 77), each marked
present or MISSING in the kernel; and the forwarder's table inside the TUN
that maps every remote prefix to the node whose tunnel carries it.
Kinds: segment (another cloudCIDR/edgeCIDR), node (a node's pod CIDR), pool
(a SpiderIPPool pinned to a node), pod (one pod IP outside both).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *statusclient.Client) error {
				rs, err := c.Routes(ctx)
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), rs)
				}
				return writeRoutes(cmd.OutOrStdout(), rs)
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func writeRoutes(w io.Writer, rs agentapi.Routes) error {
	fmt.Fprintf(w, "Segments of this node: %s\n", orDash(strings.Join(rs.Segments, ", ")))
	if rs.Errors != "" {
		fmt.Fprintf(w, "Last reconcile failed: %s\n", rs.Errors)
	}
	fmt.Fprintln(w, "\nThis node's pods:")
	tw := newTable(w)
	fmt.Fprintln(tw, "PREFIX\tKIND")
	for _, r := range rs.Local {
		fmt.Fprintf(tw, "%s\t%s\n", r.Dst, orDash(r.Kind))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nKernel routes (main table, proto 77):")
	tw = newTable(w)
	fmt.Fprintln(tw, "DESTINATION\tVIA\tKIND\tNODE\tKERNEL\tWHY")
	for _, r := range rs.Kernel {
		via := "dev " + r.Dev
		if r.Via != "" {
			via = r.Via
		}
		in := "present"
		if !r.InKernel {
			in = "MISSING"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Dst, via, orDash(r.Kind), orDash(r.Node), in, r.Why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nTunnel forwarding table (inside %s):\n", orDash(rs.TUN))
	tw = newTable(w)
	fmt.Fprintln(tw, "DESTINATION\tNODE\tKIND")
	for _, r := range rs.Forward {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Dst, r.Node, orDash(r.Kind))
	}
	if err := tw.Flush(); err != nil || len(rs.Ignored) == 0 {
		return err
	}
	fmt.Fprintln(w, "\nPod IPs not routed (a pod status cannot draw another node's traffic):")
	tw = newTable(w)
	fmt.Fprintln(tw, "IP\tPOD\tWHY")
	for _, r := range rs.Ignored {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Dst, r.Node, r.Why)
	}
	return tw.Flush()
}
