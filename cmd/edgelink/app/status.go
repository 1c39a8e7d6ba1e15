package app

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go4.org/netipx"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/statusclient"
)

func newStatusCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this node, its segments and pod CIDRs, and every peer: path, RTT, traffic, last activity",
		Long: `Asks the local agent over its status socket. For each peer node: the path
its traffic takes (direct-tcp, direct-quic, or relayed via a relay node),
the round-trip time of the last probe, pod traffic in and out, and when
pod traffic last flowed. -o json prints the same as a JSON document.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *statusclient.Client) error {
				o, err := c.Overview(ctx)
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), o)
				}
				return writeStatus(cmd.OutOrStdout(), o, time.Now())
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

// writeStatus prints o as `edgelink status` does.
func writeStatus(w io.Writer, o *statusclient.Overview, now time.Time) error {
	role := ""
	if o.Relay {
		role = " (relay)"
	}
	fmt.Fprintf(w, "Node:       %s%s, edgelink %s\n", o.Node, role, o.Version)
	if o.PeerID != "" {
		fmt.Fprintf(w, "Peer ID:    %s (reachability %s)\n", o.PeerID, strings.ToLower(orDash(o.Reachability)))
	}
	fmt.Fprintf(w, "Segments:   %s\n", orDash(strings.Join(o.Segments, ", ")))
	fmt.Fprintf(w, "Pod CIDRs:  %s\n", orDash(strings.Join(addrRanges(o.PodCIDRs), ", ")))
	if o.TUN != "" {
		fmt.Fprintf(w, "TUN:        %s, MTU %d\n", o.TUN, o.MTU)
	}
	if len(o.Reservations) > 0 {
		var rs []string
		for _, r := range o.Reservations {
			s := r.Node + " reserved"
			if !r.Reserved {
				s = r.Node + " NOT reserved"
				if r.LastError != "" {
					s += " (" + r.LastError + ")"
				}
			}
			rs = append(rs, s)
		}
		fmt.Fprintf(w, "Relays:     %s\n", strings.Join(rs, "; "))
	}
	sections := make([]string, 0, len(o.Unavailable))
	for s := range o.Unavailable {
		sections = append(sections, s)
	}
	slices.Sort(sections)
	for _, s := range sections {
		fmt.Fprintf(w, "Note:       no %s information: %s\n", s, o.Unavailable[s])
	}
	fmt.Fprintln(w)
	if len(o.Peers) == 0 {
		fmt.Fprintln(w, "No peers yet.")
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "PEER\tPATH\tRTT\tIN\tOUT\tDROPS\tLAST ACTIVITY\tPATH SINCE")
	for _, p := range o.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Node, pathText(p), rttText(p.RTTMillis, p.Path),
			trafficText(p.BytesIn, p.PacketsIn), trafficText(p.BytesOut, p.PacketsOut), p.Drops,
			ago(now, p.LastActivity), ago(now, p.PathSince))
	}
	return tw.Flush()
}

// pathText says how traffic reaches p: "direct-tcp", "relayed via relay-1".
func pathText(p statusclient.Peer) string {
	switch {
	case p.Path == "relayed" && p.Relay != "":
		return "relayed via " + p.Relay
	case p.Path == "" || p.Path == "none":
		if p.LastError != "" {
			return "none (" + shorten(p.LastError, 40) + ")"
		}
		return "none"
	case p.Path == agentapi.PathIdle:
		return "idle (on demand)"
	}
	return p.Path
}

func rttText(ms float64, path string) string {
	if path == "" || path == "none" || path == agentapi.PathIdle || ms <= 0 {
		return "-"
	}
	if ms < 10 {
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}

func trafficText(bytes, packets uint64) string {
	if packets == 0 {
		return humanBytes(bytes)
	}
	return fmt.Sprintf("%s/%d pkts", humanBytes(bytes), packets)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// addrRanges renders prefixes for people: contiguous prefixes (a pool's
// range split into CIDRs, say) become one "first-last" range, or one CIDR
// when they make exactly one; unparsable entries pass through.
func addrRanges(cidrs []string) []string {
	var b netipx.IPSetBuilder
	var out []string
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			b.AddPrefix(p.Masked())
		} else {
			out = append(out, c)
		}
	}
	set, _ := b.IPSet()
	for _, r := range set.Ranges() {
		if p, ok := r.Prefix(); ok {
			out = append(out, p.String())
		} else {
			out = append(out, r.String())
		}
	}
	return out
}
