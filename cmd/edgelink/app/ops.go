package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/statusclient"
)

// opsCommands are the commands that ask the local agent over its status
// socket: status, ping, routes, diagnose.
func opsCommands() []*cobra.Command {
	return []*cobra.Command{newStatusCmd(), newPingCmd(), newRoutesCmd(), newDiagnoseCmd()}
}

// agentFlags are the flags every ops command has.
type agentFlags struct {
	socket, config, output string
}

func (f *agentFlags) add(cmd *cobra.Command, output bool) {
	cmd.Flags().StringVar(&f.socket, "socket", v1.DefaultStatusSocket, "the agent's status socket (its config's statusSocket)")
	cmd.Flags().StringVar(&f.config, "config", "", "read the status socket's path from this agent config file")
	if output {
		cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	}
}

// client returns a client for the socket the flags name.
func (f *agentFlags) client(cmd *cobra.Command) (*statusclient.Client, error) {
	if f.output != "" && f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("--output %q: use table or json", f.output)
	}
	socket := f.socket
	if f.config != "" && !cmd.Flags().Changed("socket") {
		c, err := loadConfig(cmd, f.config)
		if err != nil {
			return nil, err
		}
		socket = c.StatusSocket
	}
	return statusclient.New(socket), nil
}

// run calls do with a client for the flags' socket and a context that
// ends on Ctrl-C or SIGTERM: the body of every command that asks the
// agent.
func (f *agentFlags) run(cmd *cobra.Command, do func(ctx context.Context, c *statusclient.Client) error) error {
	c, err := f.client(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := signalContext(cmd)
	defer cancel()
	return do(ctx, c)
}

// signalContext ends on SIGINT/SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// humanBytes renders n in binary units ("1.5 MiB").
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ago renders how long before now t was ("-" for never).
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
