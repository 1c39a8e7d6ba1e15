package app

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/statusclient"
)

// errChecksFailed makes diagnose exit non-zero after printing.
var errChecksFailed = errors.New("some checks failed")

func newDiagnoseCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "diagnose",
		Short: "Check the node's mesh set-up and say what is wrong and what to do",
		Long: `The agent checks what one would otherwise check by hand: the TUN is up,
every planned route is in the kernel, the IPAM socket answers, the
metadata is fresh, the relays hold our reservation, the TUN MTU fits the
underlay, and the iptables chains (SNAT exemption, MSS clamp, forward
accept) are in place. Each check prints OK, FAIL (with a suggested fix) or
SKIP (its module is disabled). The exit code is 1 if any check failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *statusclient.Client) error {
				d, err := c.Diagnose(ctx)
				if err != nil {
					return err
				}
				if f.output == "json" {
					err = printJSON(cmd.OutOrStdout(), d)
				} else {
					err = writeDiagnosis(cmd.OutOrStdout(), d)
				}
				if err != nil {
					return err
				}
				if d.Failed() {
					return fmt.Errorf("%w on %s", errChecksFailed, d.Node)
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func writeDiagnosis(w io.Writer, d agentapi.Diagnosis) error {
	failed := 0
	for _, c := range d.Checks {
		fmt.Fprintf(w, "%-4s  %s: %s\n", c.Status, c.Name, c.Detail)
		if c.Status == agentapi.CheckFail {
			failed++
			if c.Fix != "" {
				fmt.Fprintf(w, "      fix: %s\n", c.Fix)
			}
		}
	}
	if failed == 0 {
		fmt.Fprintf(w, "\nAll %d checks passed on %s.\n", len(d.Checks), d.Node)
	} else {
		fmt.Fprintf(w, "\n%d of %d checks failed on %s.\n", failed, len(d.Checks), d.Node)
	}
	return nil
}
