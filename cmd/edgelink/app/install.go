package app

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/cni/install"
	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/nodeinstall"
)

// configFlags build an agent config from flags when no --config is given.
type configFlags struct {
	nodeName, metaServer, source       string
	cloudCIDR, edgeCIDR, routableCIDRs []string
	relays                             []string
	listenPort                         int
	kubeEdgeCerts                      bool
	tokenFile                          string
}

// config builds the agent config from the flags; with ec (EdgeCore's
// config, edge nodes) the node name and metaServer come from EdgeCore's
// config unless given as flags (metaServerSet).
func (f *configFlags) config(ec *nodeinstall.EdgeCore, metaServerSet bool) (*v1.AgentConfig, error) {
	c := v1.NewDefault()
	c.NodeName = f.nodeName
	c.Modules.MetaSync.Source = f.source
	c.Modules.MetaSync.MetaServer = f.metaServer
	if ec != nil {
		ec.Apply(c, f.tokenFile)
		if metaServerSet {
			c.Modules.MetaSync.MetaServer = f.metaServer
		}
	}
	if f.source != v1.SourceMetaServer {
		c.Modules.IPAM.Enable = false // cloud nodes keep their own CNI and IPAM
	}
	c.Modules.EdgeCNI.MeshCIDRConfig.CloudCIDR = f.cloudCIDR
	c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = f.edgeCIDR
	c.Modules.EdgeCNI.Enable = len(f.cloudCIDR)+len(f.edgeCIDR) > 0
	c.Modules.Tunnel.ListenPort = f.listenPort
	c.Modules.Tunnel.RoutableCIDRs = f.routableCIDRs
	if f.kubeEdgeCerts {
		c.Modules.Tunnel.CAFile = "/etc/kubeedge/ca/rootCA.crt"
		c.Modules.Tunnel.CertFile = "/etc/kubeedge/certs/server.crt"
		c.Modules.Tunnel.KeyFile = "/etc/kubeedge/certs/server.key"
	}
	for _, r := range f.relays {
		name, addrs, ok := strings.Cut(r, "=")
		if !ok || name == "" || addrs == "" {
			return nil, fmt.Errorf("--relay-node %q: want NAME=ADDRESS[,ADDRESS...]", r)
		}
		c.Modules.Tunnel.RelayNodes = append(c.Modules.Tunnel.RelayNodes,
			v1.RelayNode{NodeName: name, AdvertiseAddress: strings.Split(addrs, ",")})
	}
	v1.SetDefaults(c)
	return c, nil
}

func newInstallCmd() *cobra.Command {
	var (
		n              = nodeinstall.Options{CNI: install.Options{BinDir: install.DefaultBinDir, ConfDir: install.DefaultConfDir}}
		cf             configFlags
		configFile     string
		edgeCoreConfig string
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Lay out a keadm-joined node: binaries, config, CNI, identity, certificates, systemd unit",
		Long: `Installs EdgeLink on a node that runs EdgeCore outside Kubernetes' control
(joined with keadm), under --root (default /):

  <bin-dir>/edgelink, <bin-dir>/edgelink-cni   this binary and the edgelink-cni next to it
  /etc/edgelink/edgelink.yaml                  from --config FILE, or built from the flags; validated
  /opt/cni/bin/edgelink-cni, /etc/cni/net.d/10-edgelink.conflist   as "edgelink cni install" (not with --skip-cni)
  the config's modules.tunnel.identityFile     copied from --identity-file (0600), else created once,
                                               then kept; its peer ID is printed
  the config's caFile, certFile, keyFile       copied from --ca-file, --cert-file, --key-file (key 0600)
  /etc/systemd/system/edgelink.service         Wants= and After=edgecore.service

On an edge node (--source metaServer) it reads EdgeCore's config as keadm
join writes it (--edgecore-config, under --root): the node name from
modules.edged.hostnameOverride (unless --node-name), the metaServer from
modules.metaManager.metaServer.server (unless --meta-server): https with
EdgeCore's metaServer CA and --meta-server-token-file when
featureGates.requireAuthorization is on, else http. It refuses a node whose
metaServer is off. With --config it checks the file against EdgeCore's.

A certificate from "edgelink ca issue" is bound to one identity: install it
with the identity key it was issued for (--identity-file); install refuses a
certificate bound to another peer ID. Nothing is written under /etc/kubeedge
(EdgeCore's). With --root, paths that lead out of the root through a symlink
are refused.

Every file is written atomically; running it again updates the files in
place and keeps the identity. It does not start anything: run
"systemctl daemon-reload && systemctl enable --now edgelink" afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ec, err := nodeinstall.ReadEdgeCore(n.Root, edgeCoreConfig)
			switch {
			case err == nil:
			case errors.Is(err, fs.ErrNotExist) && !cmd.Flags().Changed("edgecore-config"):
				ec = nil // not a keadm-joined edge node (a cloud node, or an image prepared before keadm join)
			default:
				return fmt.Errorf("--edgecore-config: %w", err)
			}
			if configFile != "" {
				for _, name := range []string{"node-name", "cloud-cidr", "edge-cidr", "relay-node", "routable-cidr", "listen-port", "meta-server", "meta-server-token-file", "source", "kubeedge-certs"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s and --config are exclusive: put the setting in %s", name, configFile)
					}
				}
				data, err := os.ReadFile(configFile)
				if err != nil {
					return fmt.Errorf("--config: %w", err)
				}
				c, err := loadConfig(cmd, configFile)
				if err != nil {
					return err
				}
				if c.Modules.MetaSync.Enable && c.Modules.MetaSync.Source == v1.SourceMetaServer && ec != nil {
					if err := ec.CheckMetaServer(); err != nil {
						return err
					}
					for _, w := range ec.Mismatches(c.AgentConfig) {
						fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
					}
				}
				n.Config, n.ConfigData = c.AgentConfig, data
			} else {
				if cf.source != v1.SourceMetaServer {
					ec = nil // cloud nodes read the kube-apiserver
				}
				if ec != nil {
					if err := ec.CheckMetaServer(); err != nil {
						return err
					}
				}
				c, err := cf.config(ec, cmd.Flags().Changed("meta-server"))
				if err != nil {
					return err
				}
				for _, w := range v1.Normalize(c) {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
				}
				if _, err := v1.Validate(c); err != nil {
					return fmt.Errorf("the config built from the flags: %w", err)
				}
				data, err := v1.Marshal(c)
				if err != nil {
					return err
				}
				n.Config, n.ConfigData = c, data
			}
			if n.Self == "" {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				n.Self = self
			}
			if n.CNIPlugin == "" {
				p, err := siblingPlugin()
				if err != nil {
					return err
				}
				n.CNIPlugin = p
			}
			res, err := n.Run()
			if err != nil {
				return err
			}
			report(cmd.OutOrStdout(), &n, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&n.Root, "root", "/", "destination prefix (a chroot or image being prepared; tests)")
	f.StringVar(&n.BinDir, "bin-dir", nodeinstall.DefaultBinDir, "where edgelink and edgelink-cni go")
	f.StringVar(&n.Self, "binary", "", "edgelink binary to install (default: this one)")
	f.StringVar(&n.CNIPlugin, "plugin", "", "edgelink-cni binary to install (default: next to this edgelink binary)")
	f.StringVar(&n.IPAMPlugin, "ipam-plugin", "", "also install this spiderpool IPAM plugin binary into the CNI bin dir")
	f.StringVar(&n.ConfigPath, "config-path", nodeinstall.DefaultConfigPath, "where the agent config goes")
	f.StringVar(&configFile, "config", "", "agent config file to install (validated); otherwise one is built from the flags below")
	f.StringVar(&cf.nodeName, "node-name", "", "this node's name (default: $NODE_NAME, else the host name)")
	f.StringVar(&cf.source, "source", v1.SourceMetaServer, "metadata source: metaServer (edge nodes) or kubeconfig/inCluster (cloud nodes; disables IPAM)")
	f.StringVar(&cf.metaServer, "meta-server", v1.DefaultMetaServer, "EdgeCore's metaServer (default: from --edgecore-config when it is there)")
	f.StringVar(&edgeCoreConfig, "edgecore-config", nodeinstall.DefaultEdgeCoreConfig, "EdgeCore's config as keadm join writes it: node name, metaServer address and authorization come from it (read under --root; skipped when absent)")
	f.StringVar(&cf.tokenFile, "meta-server-token-file", nodeinstall.DefaultMetaServerTokenFile, "bearer token file for a metaServer with requireAuthorization (modules.metaSync.tokenFile)")
	f.StringSliceVar(&cf.cloudCIDR, "cloud-cidr", nil, "pod CIDR of the cloud segment (repeat or comma-separate)")
	f.StringSliceVar(&cf.edgeCIDR, "edge-cidr", nil, "pod CIDR of an edge segment (repeat or comma-separate)")
	f.StringSliceVar(&cf.routableCIDRs, "routable-cidr", nil, "underlay range routable between sites (modules.tunnel.routableCIDRs)")
	f.StringArrayVar(&cf.relays, "relay-node", nil, "relay node as NAME=ADDRESS[,ADDRESS...] (repeat)")
	f.IntVar(&cf.listenPort, "listen-port", v1.DefaultListenPort, "tunnel port (TCP and UDP)")
	f.BoolVar(&cf.kubeEdgeCerts, "kubeedge-certs", false, "prove membership with EdgeCore's certificate (/etc/kubeedge/certs/server.crt, CA /etc/kubeedge/ca/rootCA.crt)")
	f.StringVar(&n.CAFile, "ca-file", "", "cluster CA certificate to install at the config's caFile")
	f.StringVar(&n.CertFile, "cert-file", "", "this node's member certificate to install at the config's certFile")
	f.StringVar(&n.KeyFile, "key-file", "", "its private key, installed with mode 0600 at the config's keyFile")
	f.StringVar(&n.IdentityFile, "identity-file", "", "the node's identity key the certificate was issued for (edgelink ca issue --identity), installed with mode 0600 at the config's identityFile")
	f.BoolVar(&n.Force, "force", false, "let --identity-file replace a different identity already installed")
	f.BoolVar(&n.SkipCNI, "skip-cni", false, "do not install edgelink-cni and its conflist (cloud nodes with their own CNI)")
	f.StringVar(&n.CNI.BinDir, "cni-bin-dir", install.DefaultBinDir, "CNI plugin directory")
	f.StringVar(&n.CNI.ConfDir, "cni-conf-dir", install.DefaultConfDir, "CNI config directory")
	f.StringSliceVar(&n.CNI.DefaultIPv4Pool, "default-ipv4-ippool", nil, "spiderpool default_ipv4_ippool")
	f.StringSliceVar(&n.CNI.DefaultIPv6Pool, "default-ipv6-ippool", nil, "spiderpool default_ipv6_ippool")
	f.BoolVar(&n.Unit, "systemd", true, "write the systemd unit")
	f.StringVar(&n.UnitPath, "unit-path", nodeinstall.DefaultUnitPath, "where the systemd unit goes")
	return cmd
}

func report(w io.Writer, n *nodeinstall.Options, res *nodeinstall.Result) {
	fmt.Fprintf(w, "installed under %s:\n", filepath.Clean(n.Root))
	for _, f := range res.Files {
		fmt.Fprintln(w, " ", f)
	}
	if res.PeerID != "" {
		fmt.Fprintf(w, "peer ID: %s\n", res.PeerID)
	}
	if len(res.Missing) > 0 {
		fmt.Fprintf(w, "not in place yet: %s\n", strings.Join(res.Missing, ", "))
		if res.PeerID != "" {
			fmt.Fprintf(w, "  issue them: edgelink ca issue --dir CA_DIR --node %s --peer-id %s --out DIR\n", n.Config.NodeName, res.PeerID)
			fmt.Fprintln(w, "  then re-run this command with --ca-file, --cert-file and --key-file (or use --kubeedge-certs on edge nodes)")
		}
	}
	if len(res.MetaServerMissing) > 0 {
		fmt.Fprintf(w, "metaServer files not in place yet: %s\n", strings.Join(res.MetaServerMissing, ", "))
		m := n.Config.Modules.MetaSync
		if m.CAFile == nodeinstall.MetaServerCAFile {
			fmt.Fprintf(w, "  %s: EdgeCore writes it when its metaServer starts serving HTTPS (featureGates.requireAuthorization)\n", m.CAFile)
		}
		if m.TokenFile != "" {
			fmt.Fprintf(w, "  %s: a ServiceAccount token the metaServer accepts, e.g. kubectl -n kube-system create token edgelink --duration 8760h > %s (docs/metadata.md#authorization)\n", m.TokenFile, m.TokenFile)
		}
	}
	if n.Unit {
		fmt.Fprintln(w, "next: systemctl daemon-reload && systemctl enable --now edgelink")
	}
}
