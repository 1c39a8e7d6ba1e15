package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/cni/install"
	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

func newCNICmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cni", Short: "Manage the edgelink-cni plugin on this node"}
	cmd.AddCommand(newCNIInstallCmd())
	return cmd
}

func newCNIInstallCmd() *cobra.Command {
	var (
		o           install.Options
		agentConfig string
		dryRun      bool
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Copy edgelink-cni into the CNI bin dir and write its conflist, atomically",
		Long: `Copies the edgelink-cni binary into --bin-dir and writes a conflist to
--conf-dir. By default IPAM is delegated to the stock spiderpool binary,
pointed at the agent's ipam socket. With --agent-config the socket path and
MTU come from the agent's config file. --dry-run prints the conflist only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if agentConfig != "" {
				c, err := loadConfig(cmd, agentConfig)
				if err != nil {
					return err
				}
				if !cmd.Flags().Changed("ipam-socket") {
					o.IPAMSocket = c.Modules.IPAM.SocketPath
				}
				if !cmd.Flags().Changed("mtu") {
					o.MTU = c.Modules.EdgeCNI.MTU
				}
			}
			if dryRun {
				conf, err := install.Conflist(o)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(conf)
				return err
			}
			if o.PluginSource == "" {
				src, err := siblingPlugin()
				if err != nil {
					return err
				}
				o.PluginSource = src
			}
			path, err := install.Install(o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installed %s and %s\n",
				filepath.Join(o.BinDir, install.PluginName), path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.BinDir, "bin-dir", install.DefaultBinDir, "CNI plugin directory")
	f.StringVar(&o.ConfDir, "conf-dir", install.DefaultConfDir, "CNI config directory")
	f.StringVar(&o.ConfName, "conf-name", install.DefaultConfName, "conflist file name")
	f.StringVar(&o.PluginSource, "plugin", "", "edgelink-cni binary to install (default: next to this edgelink binary)")
	f.StringVar(&o.NetworkName, "network", install.DefaultNetworkName, "CNI network name")
	f.StringVar(&o.Bridge, "bridge", "", "node bridge name (default edgelink-br0)")
	f.IntVar(&o.MTU, "mtu", 0, "pod MTU (0: kernel default)")
	f.BoolVar(&o.HairpinMode, "hairpin", false, "enable hairpin mode on pod veths")
	f.StringVar(&o.DataDir, "data-dir", "", "plugin state dir (default /var/lib/cni/edgelink)")
	f.StringVar(&o.IPAMType, "ipam", "spiderpool", "IPAM plugin: spiderpool or host-local")
	f.StringVar(&o.IPAMSocket, "ipam-socket", v1.DefaultIPAMSocket, "spiderpool agent socket (the agent's modules.ipam.socketPath)")
	f.StringSliceVar(&o.DefaultIPv4Pool, "default-ipv4-ippool", nil, "spiderpool default_ipv4_ippool")
	f.StringSliceVar(&o.DefaultIPv6Pool, "default-ipv6-ippool", nil, "spiderpool default_ipv6_ippool")
	f.StringSliceVar(&o.Subnets, "subnet", nil, "host-local subnet (repeat for dual stack)")
	f.StringVar(&agentConfig, "agent-config", "", "read the ipam socket and MTU from this agent config")
	f.BoolVar(&dryRun, "dry-run", false, "print the conflist instead of installing")
	return cmd
}

// siblingPlugin finds edgelink-cni next to the running edgelink binary.
func siblingPlugin() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(self), install.PluginName)
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("no edgelink-cni next to this binary; pass --plugin PATH")
	}
	return p, nil
}
