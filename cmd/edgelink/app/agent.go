package app

import (
	"context"
	"errors"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubeedge/beehive/pkg/core"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/ipam"
	"github.com/edgelink/edgelink/modules/metasync"
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
			timeout, _ := time.ParseDuration(c.ShutdownTimeout) // validated
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			klog.InfoS("Starting edgelink agent", "version", version.String(), "node", c.NodeName, "config", configPath)
			return agenthost.Run(ctx, agentModules(c), timeout)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "agent config file (YAML)")
	return cmd
}

// agentModules builds every module the agent knows, each told by the config
// whether it is enabled; the host registers and starts the enabled ones.
func agentModules(c *v1.AgentConfig) []core.Module {
	// Modules plug in here as they land: edgecni, tunnel.
	var subscribers []string
	if c.Modules.IPAM.Enable {
		subscribers = append(subscribers, ipam.ModuleName)
	}
	meta := metasync.New(c, subscribers)
	return []core.Module{
		meta,
		ipam.New(c, meta.Reader()),
	}
}
