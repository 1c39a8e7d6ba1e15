package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/statusclient"
)

func newPingCmd() *cobra.Command {
	var f agentFlags
	var count int
	var interval, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "ping <podIP|node>",
		Short: "Probe a pod's node (or a node) through the mesh and say which path answered",
		Long: `Like tailscale ping: the local agent resolves a pod IP to its node (the
data plane's route table, else the metadata), sends a probe over the
tunnel path that node's traffic takes now, and reports that path (direct
TCP, direct QUIC, or relayed via a relay) and the round-trip time. It tests
the tunnel, not the pod itself: use ping inside a pod for that.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 1 {
				return fmt.Errorf("-c %d: give at least 1", count)
			}
			if err := agentapi.CheckPingTimeout(timeout); err != nil {
				return fmt.Errorf("--timeout %w", err)
			}
			return f.run(cmd, func(ctx context.Context, c *statusclient.Client) error {
				var results []agentapi.PingResult
				answered := 0
				for i := 0; i < count && ctx.Err() == nil; i++ {
					if i > 0 {
						select {
						case <-ctx.Done():
						case <-time.After(interval):
						}
					}
					res, err := c.Ping(ctx, args[0], timeout)
					if err != nil {
						if fatalPingError(err) {
							return err
						}
						if f.output != "json" {
							fmt.Fprintf(cmd.OutOrStdout(), "no pong from %s: %v\n", args[0], err)
						}
						continue
					}
					answered++
					results = append(results, res)
					if f.output != "json" {
						writePong(cmd.OutOrStdout(), res)
					}
				}
				if f.output == "json" {
					if results == nil {
						results = []agentapi.PingResult{}
					}
					if err := printJSON(cmd.OutOrStdout(), results); err != nil {
						return err
					}
				}
				if answered == 0 {
					return fmt.Errorf("no answer from %s in %d tries", args[0], count)
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().IntVarP(&count, "count", "c", 3, "number of probes")
	cmd.Flags().DurationVarP(&interval, "interval", "i", time.Second, "time between probes")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for each answer (1ms to 60s)")
	return cmd
}

// fatalPingError tells errors that retrying cannot fix: no agent, an
// unknown target, a target on this node, a bad request.
func fatalPingError(err error) bool {
	var nr *statusclient.NotRunningError
	if errors.As(err, &nr) {
		return true
	}
	var he *statusclient.HTTPError
	if errors.As(err, &he) {
		return he.Status == http.StatusNotFound || he.Status == http.StatusConflict || he.Status == http.StatusBadRequest
	}
	return false
}

// writePong prints one answer: "pong from edge-2 (10.245.1.2) via
// direct-tcp /ip4/198.18.0.3/tcp/20006 in 0.42ms".
func writePong(w io.Writer, r agentapi.PingResult) {
	who := r.Node
	if r.Target != r.Node {
		who = fmt.Sprintf("%s (%s)", r.Node, r.Target)
	}
	via := r.Path + " " + r.RemoteAddr
	if r.Path == "relayed" {
		via = "relay " + orDash(r.Relay)
	}
	fmt.Fprintf(w, "pong from %s via %s in %s\n", who, via, rttText(r.RTTMillis, r.Path))
}
