// Package nodeinstall lays EdgeLink out on a node joined with keadm (the
// work of `edgelink install`): the edgelink and edgelink-cni binaries, the
// agent config, the CNI plugin and conflist (cni/install), the identity
// key and membership files, and the systemd unit. Every file is written
// atomically under a root, never under /etc/kubeedge.
package nodeinstall

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

	"github.com/edgelink/edgelink/cni/install"
	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/atomicfile"
	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// Where `edgelink install` lays a node out (each under --root).
const (
	DefaultBinDir     = "/usr/local/bin"
	DefaultConfigPath = "/etc/edgelink/edgelink.yaml"
	DefaultUnitPath   = "/etc/systemd/system/edgelink.service"
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
# Wants: starting edgelink starts EdgeCore too (its metaServer is the
# agent's source); After: the agent starts once EdgeCore has.
Wants=network-online.target edgecore.service
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

// Unit is the systemd unit with its paths filled in.
func Unit(binDir, configPath string) []byte {
	r := strings.NewReplacer("{{BIN}}", binDir, "{{CONFIG}}", configPath)
	return []byte(r.Replace(systemdUnit))
}

// Options are one `edgelink install`: what to lay out under Root. Paths
// other than Root and the sources are as the node will see them; each is
// written at Root+path.
type Options struct {
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

// Result reports what was laid out.
type Result struct {
	Files  []string // node paths written
	PeerID string   // the node's libp2p peer ID (for `edgelink ca issue`)
	// Missing lists membership files the config names that are not in
	// place yet.
	Missing []string
	// MetaServerMissing lists the metaServer CA and token files the config
	// names that are not in place yet (EdgeCore writes the CA once it
	// serves HTTPS; the token is the operator's).
	MetaServerMissing []string
}

// kubeEdgeDir is EdgeCore's: its certificates live there and install
// never writes into it.
const kubeEdgeDir = "/etc/kubeedge"

// Run lays the node out. Every file is written atomically (temporary file,
// fsync, rename) so a re-run replaces files in place and nothing ever sees
// a torn one; the identity key is created once and then kept. Everything
// that can be checked is checked before the first file is written.
func (n *Options) Run() (*Result, error) {
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

	res := &Result{}
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

	for _, p := range []string{n.Config.Modules.MetaSync.CAFile, n.Config.Modules.MetaSync.TokenFile} {
		if p == "" {
			continue
		}
		if _, err := d.stat(p); err != nil {
			res.MetaServerMissing = append(res.MetaServerMissing, p)
		}
	}

	// systemd unit.
	if n.Unit {
		if err := write(n.UnitPath, Unit(n.BinDir, n.ConfigPath), 0o644, "systemd unit"); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// checkCertificate checks that the membership certificate the node will
// use (--cert-file, else the one installed at certPath) is bound to
// nodeID, the identity the node will have; fresh says that identity is
// about to be created. Certificates that bind no peer (KubeEdge's) pass.
func (n *Options) checkCertificate(d *dest, certPath string, nodeID peer.ID, fresh bool) error {
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
