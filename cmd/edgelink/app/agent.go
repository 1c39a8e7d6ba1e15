package app

import (
	"context"
	"errors"
	"os/signal"
	"syscall"

	"github.com/kubeedge/beehive/pkg/core"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/ipam"
	"github.com/edgelink/edgelink/modules/metasync"
	"github.com/edgelink/edgelink/modules/routing"
	"github.com/edgelink/edgelink/modules/tunnel"
	"github.com/edgelink/edgelink/pkg/agenthost"
	"github.com/edgelink/edgelink/pkg/version"
)

func newAgentCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the EdgeLink agent (its beehive modules) until SIGTERM or SIGINT",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required (see `edgelink config default`)")
			}
			c, err := loadConfig(cmd, configPath)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			klog.InfoS("Starting edgelink agent", "version", version.String(), "node", c.NodeName, "config", configPath)
			mods, ops := agentModules(c)
			reg := newRegistry(ops)
			status, err := agenthost.StatusMux(statusRoutes(c.AgentConfig, reg, ops)...) // agentops.go
			if err != nil {
				return err
			}
			stopStatus, err := agenthost.ServeStatus(c.StatusSocket, status)
			if err != nil {
				return err
			}
			defer stopStatus()
			if c.MetricsAddress != "" {
				stopMetrics, err := serveMetrics(c.MetricsAddress, reg)
				if err != nil {
					return err
				}
				defer stopMetrics()
			}
			return agenthost.Run(ctx, mods, c.Parsed.ShutdownTimeout)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "agent config file (YAML)")
	return cmd
}

// agentModules builds every module the agent knows, each told by the config
// whether it is enabled; the host registers and starts the enabled ones.
func agentModules(c *v1.Agent) ([]core.Module, opsModules) {
	meta := metasync.New(c)
	tun := tunnel.New(c, meta.Reader())
	rt := routing.New(c, meta.Reader(), tun.Packets())
	tun.LocatePodsWith(rt) // ping resolves pod IPs through the forwarder's table
	ops := opsModules{meta: meta, ipam: ipam.New(c, meta.Reader()), tun: tun, rt: rt}
	return []core.Module{ops.meta, ops.ipam, ops.tun, ops.rt}, ops
}
