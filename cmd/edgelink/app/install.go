package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/cni/install"
	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/atomicfile"
	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// Where `edgelink install` lays a node out (each under --root).
const (
	DefaultInstallBinDir = "/usr/local/bin"
	DefaultConfigPath    = "/etc/edgelink/edgelink.yaml"
	DefaultUnitPath      = "/etc/systemd/system/edgelink.service"
	// IPAMPluginName is the stock SpiderPool IPAM plugin edgelink-cni
	// delegates to by default.
	IPAMPluginName = "spiderpool"
)

// systemdUnit is the unit `edgelink install` writes; build/systemd/
// edgelink.service is this text with the default paths (a test checks it).
const systemdUnit = `# EdgeLink agent for nodes joined with keadm (written by "edgelink install";
# docs/install.md). It runs next to EdgeCore, whose metaServer it reads.
[Unit]
Description=EdgeLink agent (pod network across KubeEdge cloud and edge segments)
Documentation=https://github.com/edgelink/edgelink/blob/main/docs/install.md
Wants=network-online.target
After=network-online.target edgecore.service
# Keep retrying while EdgeCore or the network come up: no start limit.
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart={{BIN}}/edgelink agent --config {{CONFIG}}
# The agent releases its TUN device, routes and iptables rules on SIGTERM
# within its shutdownTimeout (30s by default).
KillSignal=SIGTERM
TimeoutStopSec=45
Restart=always
RestartSec=5
# Root, with only what the agent uses: NET_ADMIN (TUN device, netlink
# routes and rules, iptables), NET_RAW (iptables-legacy's raw socket).
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`

// renderUnit fills the unit's paths.
func renderUnit(binDir, configPath string) []byte {
	r := strings.NewReplacer("{{BIN}}", binDir, "{{CONFIG}}", configPath)
	return []byte(r.Replace(systemdUnit))
}

// nodeInstall is one `edgelink install`: what to lay out under Root. Paths
// other than Root and the sources are as the node will see them; each is
// written at Root+path.
type nodeInstall struct {
	Root string

	// Self and CNIPlugin are the edgelink and edgelink-cni binaries to copy
	// into BinDir; IPAMPlugin, if set, the spiderpool IPAM plugin to copy
	// into the CNI bin dir.
	Self, CNIPlugin, IPAMPlugin string
	BinDir                      string

	// Config is the agent config's content (already validated) and
	// ConfigPath where it goes.
	Config     *v1.AgentConfig
	ConfigData []byte
	ConfigPath string

	// CNI: SkipCNI leaves the CNI plugin and conflist out (cloud nodes
	// keeping their own CNI).
	SkipCNI bool
	CNI     install.Options

	// Membership files to copy to the config's caFile, certFile, keyFile
	// and identityFile.
	CAFile, CertFile, KeyFile, IdentityFile string
	// Force lets IdentityFile replace a different identity already
	// installed.
	Force bool

	// Unit writes the systemd unit at UnitPath.
	Unit     bool
	UnitPath string
}

// installResult reports what was laid out.
type installResult struct {
	Files  []string // node paths written
	PeerID string   // the node's libp2p peer ID (for `edgelink ca issue`)
	// Missing lists membership files the config names that are not in
	// place yet.
	Missing []string
}

// kubeEdgeDir is EdgeCore's: its certificates live there and install
// never writes into it.
const kubeEdgeDir = "/etc/kubeedge"

// run lays the node out. Every file is written atomically (temporary file,
// fsync, rename) so a re-run replaces files in place and nothing ever sees
// a torn one; the identity key is created once and then kept. Everything
// that can be checked is checked before the first file is written.
func (n *nodeInstall) run() (*installResult, error) {
	// Every source must be there before anything is written.
	for _, s := range []struct{ path, what string }{
		{n.Self, "edgelink binary"}, {n.CNIPlugin, "edgelink-cni binary"}, {n.IPAMPlugin, "--ipam-plugin"},
		{n.CAFile, "--ca-file"}, {n.CertFile, "--cert-file"}, {n.KeyFile, "--key-file"}, {n.IdentityFile, "--identity-file"},
	} {
		if s.path == "" {
			continue
		}
		if fi, err := os.Stat(s.path); err != nil {
			return nil, fmt.Errorf("%s: %w", s.what, err)
		} else if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %s is not a regular file", s.what, s.path)
		}
	}
	t := n.Config.Modules.Tunnel
	membershipFiles := []struct {
		src, dst string
		mode     os.FileMode
		what     string
	}{
		{n.CAFile, t.CAFile, 0o644, "--ca-file"},
		{n.CertFile, t.CertFile, 0o644, "--cert-file"},
		{n.KeyFile, t.KeyFile, 0o600, "--key-file"},
	}

	// Nothing goes into EdgeCore's directory: with --kubeedge-certs the
	// agent uses EdgeCore's certificate as it is.
	dsts := []struct{ path, what string }{
		{n.BinDir, "--bin-dir"}, {n.ConfigPath, "--config-path"}, {t.IdentityFile, "modules.tunnel.identityFile"},
	}
	if !n.SkipCNI {
		dsts = append(dsts, struct{ path, what string }{n.CNI.BinDir, "--cni-bin-dir"}, struct{ path, what string }{n.CNI.ConfDir, "--cni-conf-dir"})
	}
	if n.Unit {
		dsts = append(dsts, struct{ path, what string }{n.UnitPath, "--unit-path"})
	}
	for _, c := range membershipFiles {
		if c.src != "" {
			dsts = append(dsts, struct{ path, what string }{c.dst, c.what})
		}
	}
	for _, d := range dsts {
		if p := filepath.Clean(d.path); p == kubeEdgeDir || strings.HasPrefix(p, kubeEdgeDir+"/") {
			return nil, fmt.Errorf("%s: would write %s, inside %s, which EdgeCore owns; "+
				"with --kubeedge-certs the agent uses EdgeCore's certificate as it is, so drop --ca-file, --cert-file and --key-file "+
				"(or drop --kubeedge-certs to install EdgeLink's own certificates under /etc/edgelink/membership/)", d.what, d.path, kubeEdgeDir)
		}
	}

	d, err := openDest(n.Root)
	if err != nil {
		return nil, err
	}
	defer d.close()

	// The node's identity: --identity-file, else the one installed, else a
	// new one. The certificate it will use must be bound to it.
	var (
		nodeID      peer.ID
		newIdentity []byte // written at t.IdentityFile; nil keeps the one there
	)
	if t.Enable {
		var existingID peer.ID
		switch data, err := d.readFile(t.IdentityFile); {
		case err == nil:
			if _, existingID, err = p2p.ParseIdentity(data); err != nil {
				return nil, fmt.Errorf("identity key %s %w (move it away to generate a new identity, or install one with --identity-file)", t.IdentityFile, err)
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("identity key: %w", err)
		}
		switch {
		case n.IdentityFile != "":
			data, err := os.ReadFile(n.IdentityFile)
			if err != nil {
				return nil, fmt.Errorf("--identity-file: %w", err)
			}
			_, id, err := p2p.ParseIdentity(data)
			if err != nil {
				return nil, fmt.Errorf("--identity-file %s %w", n.IdentityFile, err)
			}
			if existingID != "" && existingID != id && !n.Force {
				return nil, fmt.Errorf("--identity-file %s is peer %s, but this node already has identity %s at %s: "+
					"pass --force to replace it (certificates issued for %s stop working)", n.IdentityFile, id, existingID, t.IdentityFile, existingID)
			}
			nodeID, newIdentity = id, data
		case existingID != "":
			fi, err := d.stat(t.IdentityFile)
			if err != nil {
				return nil, fmt.Errorf("identity key: %w", err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				return nil, fmt.Errorf("identity key %s is readable by others (mode %o); run chmod 600 %s", t.IdentityFile, fi.Mode().Perm(), d.at(t.IdentityFile))
			}
			nodeID = existingID
		default:
			key, data, err := p2p.NewIdentity()
			if err != nil {
				return nil, err
			}
			if nodeID, err = peer.IDFromPrivateKey(key); err != nil {
				return nil, err
			}
			newIdentity = data
		}
		if err := n.checkCertificate(d, t.CertFile, nodeID, existingID == "" && n.IdentityFile == ""); err != nil {
			return nil, err
		}
	}
	if n.CertFile != "" && n.KeyFile != "" {
		if _, err := membership.LoadCredentials(n.CertFile, n.KeyFile); err != nil {
			return nil, fmt.Errorf("--cert-file and --key-file: %w", err)
		}
	}

	res := &installResult{}
	copyFile := func(src, dst string, mode os.FileMode, what string) error {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		defer f.Close()
		if err := d.write(dst, f, mode); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		res.Files = append(res.Files, dst)
		return nil
	}
	write := func(dst string, data []byte, mode os.FileMode, what string) error {
		if err := d.write(dst, bytes.NewReader(data), mode); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		res.Files = append(res.Files, dst)
		return nil
	}

	// Binaries.
	if err := copyFile(n.Self, filepath.Join(n.BinDir, "edgelink"), 0o755, "edgelink binary"); err != nil {
		return nil, err
	}
	if err := copyFile(n.CNIPlugin, filepath.Join(n.BinDir, install.PluginName), 0o755, "edgelink-cni binary"); err != nil {
		return nil, err
	}

	// Config.
	if err := write(n.ConfigPath, n.ConfigData, 0o644, "config"); err != nil {
		return nil, err
	}

	// CNI plugin and conflist (the conflist `edgelink cni install` writes).
	if !n.SkipCNI {
		o := n.CNI
		if o.IPAMSocket == "" {
			o.IPAMSocket = n.Config.Modules.IPAM.SocketPath
		}
		if o.MTU == 0 {
			o.MTU = n.Config.Modules.EdgeCNI.MTU
		}
		if o.ConfName == "" {
			o.ConfName = install.DefaultConfName
		}
		conf, err := install.Conflist(o)
		if err != nil {
			return nil, fmt.Errorf("cni: %w", err)
		}
		if err := copyFile(n.CNIPlugin, filepath.Join(o.BinDir, install.PluginName), 0o755, "cni"); err != nil {
			return nil, err
		}
		if err := write(filepath.Join(o.ConfDir, o.ConfName), conf, 0o644, "cni"); err != nil {
			return nil, err
		}
		if n.IPAMPlugin != "" {
			if err := copyFile(n.IPAMPlugin, filepath.Join(o.BinDir, IPAMPluginName), 0o755, "spiderpool IPAM plugin"); err != nil {
				return nil, err
			}
		}
	}

	// Membership: the certificates and key the config names (their
	// directory created 0700 first: it holds the key), and this node's
	// identity (created on first install, then kept).
	if n.CAFile != "" || n.CertFile != "" || n.KeyFile != "" {
		if err := d.mkdirAll(filepath.Dir(t.KeyFile), 0o700); err != nil {
			return nil, fmt.Errorf("membership directory: %w", err)
		}
	}
	for _, c := range membershipFiles {
		if c.src == "" {
			if _, err := d.stat(c.dst); err != nil {
				res.Missing = append(res.Missing, c.dst)
			}
			continue
		}
		if err := copyFile(c.src, c.dst, c.mode, c.what); err != nil {
			return nil, err
		}
	}
	if t.Enable {
		if newIdentity != nil {
			if err := d.mkdirAll(filepath.Dir(t.IdentityFile), 0o700); err != nil {
				return nil, fmt.Errorf("identity key: %w", err)
			}
			if err := write(t.IdentityFile, newIdentity, 0o600, "identity key"); err != nil {
				return nil, err
			}
		} else {
			res.Files = append(res.Files, t.IdentityFile)
		}
		res.PeerID = nodeID.String()
	}

	// systemd unit.
	if n.Unit {
		if err := write(n.UnitPath, renderUnit(n.BinDir, n.ConfigPath), 0o644, "systemd unit"); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// checkCertificate checks that the membership certificate the node will
// use (--cert-file, else the one installed at certPath) is bound to
// nodeID, the identity the node will have; fresh says that identity is
// about to be created. Certificates that bind no peer (KubeEdge's) pass.
func (n *nodeInstall) checkCertificate(d *dest, certPath string, nodeID peer.ID, fresh bool) error {
	what := "--cert-file " + n.CertFile
	data, err := os.ReadFile(n.CertFile)
	if n.CertFile == "" {
		what = "the installed certificate " + certPath
		if data, err = d.readFile(certPath); err != nil {
			return nil // none installed yet (reported as missing)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	chain, err := membership.ParseChain(data)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	bound, err := membership.BoundPeer(chain[0])
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case bound == "" || bound == nodeID:
		return nil
	case fresh:
		return fmt.Errorf("%s is bound to peer %s, but this node has no identity yet (a new one would be peer %s) and peers would refuse it: "+
			"pass --identity-file with the identity key the certificate was issued for (edgelink ca issue --identity FILE), "+
			"or install without --cert-file first and issue the certificate for the peer ID it prints", what, bound, nodeID)
	default:
		return fmt.Errorf("%s is bound to peer %s, but this node's identity is peer %s and peers would refuse it: "+
			"pass --identity-file with the identity key the certificate was issued for, "+
			"or issue a certificate for this identity (edgelink ca issue --node %s --peer-id %s)", what, bound, nodeID, n.Config.NodeName, nodeID)
	}
}

// dest writes the node's files under the install root. With a root other
// than "/" (an image being prepared) every path is resolved inside it
// (os.Root): a symlink in the image that leads out of the root, absolute
// ones included, is refused instead of followed.
type dest struct {
	prefix string   // the root, cleaned
	root   *os.Root // nil for "/"
}

func openDest(root string) (*dest, error) {
	d := &dest{prefix: filepath.Clean(root)}
	if d.prefix == "/" {
		return d, nil
	}
	r, err := os.OpenRoot(d.prefix)
	if err != nil {
		return nil, fmt.Errorf("--root: %w", err)
	}
	d.root = r
	return d, nil
}

func (d *dest) close() {
	if d.root != nil {
		d.root.Close()
	}
}

// at is node path p on this machine.
func (d *dest) at(p string) string { return filepath.Join(d.prefix, p) }

// name is node path p relative to the root.
func (d *dest) name(p string) string {
	if rel, err := filepath.Rel("/", filepath.Join("/", p)); err == nil {
		return rel
	}
	return p
}

// wrap names a path that leads out of the root in err.
func (d *dest) wrap(p string, err error) error {
	if err == nil || d.root == nil || !d.escapes(p) {
		return err
	}
	return fmt.Errorf("%s leads out of --root %s through a symlink; refusing to write outside the root (%w)", d.at(p), d.prefix, err)
}

// escapes reports whether node path p, or its longest existing parent,
// resolves outside the root.
func (d *dest) escapes(p string) bool {
	base, err := filepath.EvalSymlinks(d.prefix)
	if err != nil {
		return false
	}
	for full := d.at(p); ; full = filepath.Dir(full) {
		if real, err := filepath.EvalSymlinks(full); err == nil {
			rel, err := filepath.Rel(base, real)
			return err != nil || rel == ".." || strings.HasPrefix(rel, "../")
		} else if fi, lerr := os.Lstat(full); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return true // dangling, and the root could not resolve it either
		}
		if full == d.prefix || full == "/" {
			return false
		}
	}
}

func (d *dest) write(p string, r io.Reader, mode os.FileMode) error {
	if d.root == nil {
		return atomicfile.Write(p, r, mode)
	}
	return d.wrap(p, atomicfile.WriteIn(d.root, d.name(p), r, mode))
}

func (d *dest) mkdirAll(p string, mode os.FileMode) error {
	if d.root == nil {
		return os.MkdirAll(p, mode)
	}
	return d.wrap(p, d.root.MkdirAll(d.name(p), mode))
}

func (d *dest) readFile(p string) ([]byte, error) {
	if d.root == nil {
		return os.ReadFile(p)
	}
	b, err := d.root.ReadFile(d.name(p))
	return b, d.wrap(p, err)
}

func (d *dest) stat(p string) (fs.FileInfo, error) {
	if d.root == nil {
		return os.Stat(p)
	}
	fi, err := d.root.Stat(d.name(p))
	return fi, d.wrap(p, err)
}

// configFlags build an agent config from flags when no --config is given.
type configFlags struct {
	nodeName, metaServer, source       string
	cloudCIDR, edgeCIDR, routableCIDRs []string
	relays                             []string
	listenPort                         int
	kubeEdgeCerts                      bool
}

func (f *configFlags) config() (*v1.AgentConfig, error) {
	c := v1.NewDefault()
	c.NodeName = f.nodeName
	c.Modules.MetaSync.Source = f.source
	c.Modules.MetaSync.MetaServer = f.metaServer
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
		n          = nodeInstall{CNI: install.Options{BinDir: install.DefaultBinDir, ConfDir: install.DefaultConfDir}}
		cf         configFlags
		configFile string
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
  /etc/systemd/system/edgelink.service         After=edgecore.service

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
			if configFile != "" {
				for _, name := range []string{"node-name", "cloud-cidr", "edge-cidr", "relay-node", "routable-cidr", "listen-port", "meta-server", "source", "kubeedge-certs"} {
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
				n.Config, n.ConfigData = c, data
			} else {
				c, err := cf.config()
				if err != nil {
					return err
				}
				for _, w := range v1.Normalize(c) {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
				}
				if err := v1.Validate(c); err != nil {
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
			res, err := n.run()
			if err != nil {
				return err
			}
			report(cmd.OutOrStdout(), &n, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&n.Root, "root", "/", "destination prefix (a chroot or image being prepared; tests)")
	f.StringVar(&n.BinDir, "bin-dir", DefaultInstallBinDir, "where edgelink and edgelink-cni go")
	f.StringVar(&n.Self, "binary", "", "edgelink binary to install (default: this one)")
	f.StringVar(&n.CNIPlugin, "plugin", "", "edgelink-cni binary to install (default: next to this edgelink binary)")
	f.StringVar(&n.IPAMPlugin, "ipam-plugin", "", "also install this spiderpool IPAM plugin binary into the CNI bin dir")
	f.StringVar(&n.ConfigPath, "config-path", DefaultConfigPath, "where the agent config goes")
	f.StringVar(&configFile, "config", "", "agent config file to install (validated); otherwise one is built from the flags below")
	f.StringVar(&cf.nodeName, "node-name", "", "this node's name (default: $NODE_NAME, else the host name)")
	f.StringVar(&cf.source, "source", v1.SourceMetaServer, "metadata source: metaServer (edge nodes) or kubeconfig/inCluster (cloud nodes; disables IPAM)")
	f.StringVar(&cf.metaServer, "meta-server", v1.DefaultMetaServer, "EdgeCore's metaServer")
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
	f.StringVar(&n.UnitPath, "unit-path", DefaultUnitPath, "where the systemd unit goes")
	return cmd
}

func report(w io.Writer, n *nodeInstall, res *installResult) {
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
	if n.Unit {
		fmt.Fprintln(w, "next: systemctl daemon-reload && systemctl enable --now edgelink")
	}
}
