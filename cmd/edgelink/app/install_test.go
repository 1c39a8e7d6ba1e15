package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// fakeBinaries writes stand-ins for edgelink, edgelink-cni and spiderpool.
func fakeBinaries(t *testing.T) (self, cni, ipam string) {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"edgelink", "edgelink-cni", "spiderpool"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\necho "+n+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "edgelink"), filepath.Join(dir, "edgelink-cni"), filepath.Join(dir, "spiderpool")
}

// runInstall runs `edgelink install` with args and returns its stdout.
func runInstall(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs(append([]string{"install"}, args...))
	err := root.Execute()
	if err != nil {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), err
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// A node laid out from flags into a temporary root: every file where the
// agent, the container runtime and systemd look for it, with the modes the
// agent insists on, a config the agent loads, a conflist pointing at the
// agent's IPAM socket; a second run changes nothing but keeps the identity.
func TestInstallLaysOutNode(t *testing.T) {
	root := t.TempDir()
	self, cni, ipamPlugin := fakeBinaries(t)

	// Membership files as `edgelink ca issue` makes them.
	caDir := t.TempDir()
	ca, err := membership.InitCA(caDir, "test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "id.key")
	_, id, err := p2p.LoadOrCreateIdentity(idFile)
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	crt, key, err := ca.Issue("edge-1", id, time.Hour, certDir)
	if err != nil {
		t.Fatal(err)
	}

	args := []string{"--root", root, "--binary", self, "--plugin", cni, "--ipam-plugin", ipamPlugin,
		"--node-name", "edge-1", "--cloud-cidr", "10.244.1.0/24", "--edge-cidr", "10.244.5.0/24,10.244.6.0/24",
		"--relay-node", "relay-1=198.18.0.10,relay.example.com",
		"--ca-file", filepath.Join(caDir, membership.CACertFile), "--cert-file", crt, "--key-file", key,
		"--identity-file", idFile}
	out, err := runInstall(t, args...)
	if err != nil {
		t.Fatal(err)
	}

	at := func(p string) string { return filepath.Join(root, p) }
	for path, want := range map[string]os.FileMode{
		"/usr/local/bin/edgelink":               0o755,
		"/usr/local/bin/edgelink-cni":           0o755,
		"/opt/cni/bin/edgelink-cni":             0o755,
		"/opt/cni/bin/spiderpool":               0o755,
		"/etc/cni/net.d/10-edgelink.conflist":   0o644,
		"/etc/edgelink/edgelink.yaml":           0o644,
		"/etc/edgelink/membership/ca.crt":       0o644,
		"/etc/edgelink/membership/node.crt":     0o644,
		"/etc/edgelink/membership/node.key":     0o600,
		"/etc/edgelink/membership":              0o700,
		"/var/lib/edgelink/tunnel/identity.key": 0o600,
		"/etc/systemd/system/edgelink.service":  0o644,
	} {
		if got := mode(t, at(path)); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	if b, _ := os.ReadFile(at("/usr/local/bin/edgelink")); !strings.Contains(string(b), "echo edgelink\n") {
		t.Errorf("/usr/local/bin/edgelink is not the given binary: %q", b)
	}
	if b, _ := os.ReadFile(at("/opt/cni/bin/edgelink-cni")); !strings.Contains(string(b), "echo edgelink-cni") {
		t.Errorf("/opt/cni/bin/edgelink-cni is not the given plugin: %q", b)
	}

	// The config loads and says what the flags said.
	c, _, err := v1.Load(at("/etc/edgelink/edgelink.yaml"))
	if err != nil {
		t.Fatalf("installed config does not load: %v", err)
	}
	if c.NodeName != "edge-1" || !c.Modules.EdgeCNI.Enable || !c.Modules.IPAM.Enable ||
		strings.Join(c.Modules.EdgeCNI.MeshCIDRConfig.CloudCIDR, ",") != "10.244.1.0/24" ||
		strings.Join(c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR, ",") != "10.244.5.0/24,10.244.6.0/24" {
		t.Errorf("installed config: %+v", c)
	}
	if r := c.Modules.Tunnel.RelayNodes; len(r) != 1 || r[0].NodeName != "relay-1" ||
		strings.Join(r[0].AdvertiseAddress, ",") != "198.18.0.10,relay.example.com" {
		t.Errorf("relay nodes: %+v", r)
	}

	// The membership files installed are a working credential for the
	// installed identity, at the paths the config names.
	creds, err := membership.LoadCredentials(at(c.Modules.Tunnel.CertFile), at(c.Modules.Tunnel.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if creds.Node != "edge-1" {
		t.Errorf("installed certificate names %q", creds.Node)
	}
	if _, err := membership.NewVerifier(at(c.Modules.Tunnel.CAFile), ""); err != nil {
		t.Errorf("installed CA: %v", err)
	}
	_, installedID, err := p2p.LoadOrCreateIdentity(at(c.Modules.Tunnel.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "peer ID: "+installedID.String()) {
		t.Errorf("output does not print the peer ID %s:\n%s", installedID, out)
	}
	// ... the one the certificate is bound to, so peers accept it.
	if bound, err := membership.BoundPeer(creds.Chain[0]); err != nil || bound != installedID {
		t.Errorf("installed certificate is bound to peer %q (%v), the installed identity is %s", bound, err, installedID)
	}
	if installedID != id {
		t.Errorf("installed identity %s is not --identity-file's %s", installedID, id)
	}
	// The report lists node paths.
	for _, want := range []string{"\n  /opt/cni/bin/edgelink-cni\n", "\n  /etc/cni/net.d/10-edgelink.conflist\n", "\n  /var/lib/edgelink/tunnel/identity.key\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not list %q:\n%s", strings.TrimSpace(want), out)
		}
	}

	// The conflist points edgelink-cni's IPAM at the agent's socket.
	var conf struct {
		Plugins []struct {
			Type string
			IPAM map[string]any
		}
	}
	b, _ := os.ReadFile(at("/etc/cni/net.d/10-edgelink.conflist"))
	if err := json.Unmarshal(b, &conf); err != nil || len(conf.Plugins) != 1 {
		t.Fatalf("conflist %s: %v", b, err)
	}
	if p := conf.Plugins[0]; p.Type != "edgelink-cni" || p.IPAM["type"] != "spiderpool" ||
		p.IPAM["ipam_unix_socket_path"] != c.Modules.IPAM.SocketPath {
		t.Errorf("conflist plugin %+v, want edgelink-cni with spiderpool IPAM at %s", p, c.Modules.IPAM.SocketPath)
	}

	// The unit runs the installed binary on the installed config.
	unit, _ := os.ReadFile(at("/etc/systemd/system/edgelink.service"))
	for _, want := range []string{"ExecStart=/usr/local/bin/edgelink agent --config /etc/edgelink/edgelink.yaml",
		"After=network-online.target edgecore.service", "Restart=always", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}

	// Idempotent: the same run again succeeds, keeps the identity and
	// leaves no temporary files behind.
	if _, err := runInstall(t, args...); err != nil {
		t.Fatalf("second run: %v", err)
	}
	_, again, err := p2p.LoadOrCreateIdentity(at(c.Modules.Tunnel.IdentityFile))
	if err != nil || again != installedID {
		t.Errorf("identity changed on re-run: %s -> %s (%v)", installedID, again, err)
	}
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(fi.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// Without certificates the identity is created and the output says how to
// get the certificate issued for it; cloud nodes can skip the CNI.
func TestInstallWithoutCertificates(t *testing.T) {
	root := t.TempDir()
	self, cni, _ := fakeBinaries(t)
	out, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni, "--node-name", "cloud-1",
		"--source", "inCluster", "--skip-cni", "--systemd=false", "--edge-cidr", "10.244.5.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "edgelink ca issue --dir CA_DIR --node cloud-1 --peer-id 12D3KooW") ||
		!strings.Contains(out, "/etc/edgelink/membership/node.key") {
		t.Errorf("output does not say how to issue the missing certificate:\n%s", out)
	}
	for _, p := range []string{"/etc/cni/net.d/10-edgelink.conflist", "/opt/cni/bin/edgelink-cni", "/etc/systemd/system/edgelink.service"} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s installed despite --skip-cni/--systemd=false (%v)", p, err)
		}
	}
	c, _, err := v1.Load(filepath.Join(root, "/etc/edgelink/edgelink.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Modules.IPAM.Enable || c.Modules.MetaSync.Source != v1.SourceInCluster {
		t.Errorf("cloud node config: ipam %v, source %s", c.Modules.IPAM.Enable, c.Modules.MetaSync.Source)
	}
}

// Bad input fails before anything is written, naming what to fix.
func TestInstallErrors(t *testing.T) {
	self, cni, _ := fakeBinaries(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("nodeName: edge-1\nmodules:\n  edgeCNI:\n    enable: true\n    meshCIDRConfig:\n      edgeCIDR: [10.244.5.7/24]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"invalid config file", []string{"--config", bad}, `edgeCIDR[0]: "10.244.5.7/24"`},
		{"invalid flag CIDR", []string{"--node-name", "e", "--edge-cidr", "10.244.5.7/24"}, `edgeCIDR[0]: "10.244.5.7/24"`},
		{"config and flags", []string{"--config", bad, "--edge-cidr", "10.244.5.0/24"}, "--edge-cidr and --config are exclusive"},
		{"bad relay", []string{"--node-name", "e", "--relay-node", "relay-1"}, `--relay-node "relay-1": want NAME=ADDRESS`},
		{"missing key", []string{"--node-name", "e", "--key-file", "/nonexistent/node.key"}, "--key-file: stat /nonexistent/node.key: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			_, err := runInstall(t, append([]string{"--root", root, "--binary", self, "--plugin", cni}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("files written despite the error: %v", entries)
			}
		})
	}
}

// issued makes a CA, an identity key and a certificate for node bound to
// it, the way docs/install.md shows (`edgelink identity`, `edgelink ca
// issue --identity`).
func issued(t *testing.T, node string) (caFile, crt, key, idFile string, id peer.ID) {
	t.Helper()
	caDir := t.TempDir()
	ca, err := membership.InitCA(caDir, "test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	idFile = filepath.Join(t.TempDir(), node+".identity")
	if _, id, err = p2p.LoadOrCreateIdentity(idFile); err != nil {
		t.Fatal(err)
	}
	if crt, key, err = ca.Issue(node, id, time.Hour, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(caDir, membership.CACertFile), crt, key, idFile, id
}

// A certificate bound to another peer ID than the identity the node will
// have is refused before anything is written, naming both IDs and the
// fix; an installed identity is replaced only with --force.
func TestInstallCertificateMustMatchIdentity(t *testing.T) {
	self, cni, _ := fakeBinaries(t)
	caFile, crt, key, idFile, id := issued(t, "edge-1")
	base := func(root string) []string {
		return []string{"--root", root, "--binary", self, "--plugin", cni, "--node-name", "edge-1", "--skip-cni", "--systemd=false"}
	}
	certArgs := []string{"--ca-file", caFile, "--cert-file", crt, "--key-file", key}
	const idPath = "/var/lib/edgelink/tunnel/identity.key"

	// No identity installed and none given: a new one cannot match.
	root := t.TempDir()
	_, err := runInstall(t, append(base(root), certArgs...)...)
	if err == nil || !strings.Contains(err.Error(), "is bound to peer "+id.String()) || !strings.Contains(err.Error(), "--identity-file") {
		t.Errorf("certificate without its identity: error %v", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("files written despite the error: %v", entries)
	}

	// An identity installed earlier (no certificate yet), then the
	// certificate issued for another one.
	out, err := runInstall(t, base(root)...)
	if err != nil {
		t.Fatal(err)
	}
	_, installed, err := p2p.LoadOrCreateIdentity(filepath.Join(root, idPath))
	if err != nil || !strings.Contains(out, "peer ID: "+installed.String()) {
		t.Fatalf("first install: identity %s (%v), output:\n%s", installed, err, out)
	}
	_, err = runInstall(t, append(base(root), certArgs...)...)
	for _, want := range []string{"is bound to peer " + id.String(), "this node's identity is peer " + installed.String(),
		"--identity-file", "edgelink ca issue --node edge-1 --peer-id " + installed.String()} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("mismatched certificate: error %v, want one containing %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "/etc/edgelink/membership/node.crt")); !os.IsNotExist(err) {
		t.Errorf("mismatched certificate installed (%v)", err)
	}

	// --identity-file does not silently replace the installed identity ...
	_, err = runInstall(t, append(base(root), append(certArgs, "--identity-file", idFile)...)...)
	if err == nil || !strings.Contains(err.Error(), "already has identity "+installed.String()) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("replacing the identity without --force: error %v", err)
	}
	// ... but does with --force, and then the pair matches.
	out, err = runInstall(t, append(base(root), append(certArgs, "--identity-file", idFile, "--force")...)...)
	if err != nil {
		t.Fatal(err)
	}
	_, now, err := p2p.LoadOrCreateIdentity(filepath.Join(root, idPath))
	if err != nil || now != id || !strings.Contains(out, "peer ID: "+id.String()) {
		t.Errorf("after --force: identity %s (%v), want %s; output:\n%s", now, err, id, out)
	}
	if m := mode(t, filepath.Join(root, idPath)); m != 0o600 {
		t.Errorf("identity mode %o", m)
	}
	// Re-running with the same files is fine without --force.
	if _, err := runInstall(t, append(base(root), append(certArgs, "--identity-file", idFile)...)...); err != nil {
		t.Errorf("re-run: %v", err)
	}

	// A key that is not the certificate's.
	_, _, otherKey, _, _ := issued(t, "edge-1")
	_, err = runInstall(t, append(base(t.TempDir()), "--cert-file", crt, "--key-file", otherKey, "--identity-file", idFile)...)
	if err == nil || !strings.Contains(err.Error(), "does not belong to certificate") {
		t.Errorf("key of another certificate: error %v", err)
	}
}

// With --kubeedge-certs the config's membership files are EdgeCore's:
// install refuses to write them (or anything else under /etc/kubeedge).
func TestInstallRefusesKubeEdgeDir(t *testing.T) {
	self, cni, _ := fakeBinaries(t)
	caFile, crt, key, idFile, _ := issued(t, "edge-1")
	for name, extra := range map[string][]string{
		"ca":       {"--ca-file", caFile},
		"cert":     {"--cert-file", crt, "--identity-file", idFile},
		"key":      {"--key-file", key},
		"bin dir":  {"--bin-dir", "/etc/kubeedge/bin"},
		"unit dir": {"--unit-path", "/etc/kubeedge/../kubeedge/edgelink.service"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			_, err := runInstall(t, append([]string{"--root", root, "--binary", self, "--plugin", cni,
				"--node-name", "edge-1", "--kubeedge-certs"}, extra...)...)
			if err == nil || !strings.Contains(err.Error(), "/etc/kubeedge, which EdgeCore owns") {
				t.Fatalf("error %v", err)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("files written despite the error: %v", entries)
			}
		})
	}
}

// With --root, a symlink in the image leading out of the root is refused,
// naming the path, and nothing is written outside the root.
func TestInstallStaysInRoot(t *testing.T) {
	self, cni, _ := fakeBinaries(t)
	for _, link := range []string{"/etc", "/var/lib/edgelink", "/opt/cni/bin"} {
		t.Run(link, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			at := filepath.Join(root, link)
			if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, at); err != nil {
				t.Fatal(err)
			}
			_, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni, "--node-name", "edge-1", "--edge-cidr", "10.244.5.0/24")
			if err == nil || !strings.Contains(err.Error(), "leads out of --root "+root) || !strings.Contains(err.Error(), root+link) {
				t.Errorf("error %v", err)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("written outside the root: %v", entries)
			}
		})
	}
	// A symlink that stays inside the root is followed.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if _, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni, "--node-name", "edge-1", "--bin-dir", "/bin", "--skip-cni"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/edgelink")); err != nil {
		t.Error(err)
	}
}

// putEdgeCore places one of pkg/nodeinstall's keadm-written edgecore.yaml
// files at /etc/kubeedge/config/edgecore.yaml under root.
func putEdgeCore(t *testing.T, root, name string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "pkg", "nodeinstall", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "etc", "kubeedge", "config", "edgecore.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// On a keadm-joined node the node name and the metaServer come from
// EdgeCore's config: https, EdgeCore's metaServer CA and a token file with
// requireAuthorization; the output says what is still to be put in place.
func TestInstallReadsKeadmEdgeCore(t *testing.T) {
	root := t.TempDir()
	self, cni, _ := fakeBinaries(t)
	putEdgeCore(t, root, "edgecore-keadm-authorization.yaml")
	out, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni, "--edge-cidr", "10.244.5.0/24")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := v1.Load(filepath.Join(root, "etc", "edgelink", "edgelink.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Modules.MetaSync
	if c.NodeName != "edge-1" || m.MetaServer != "https://127.0.0.1:10550" || m.CAFile != "/etc/kubeedge/pki/metaserver/ca.crt" || m.TokenFile != "/etc/edgelink/metaserver.token" {
		t.Errorf("config: node %s, metaSync %+v", c.NodeName, m)
	}
	for _, want := range []string{"metaServer files not in place yet: /etc/kubeedge/pki/metaserver/ca.crt, /etc/edgelink/metaserver.token", "create token edgelink"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}

	// Flags win over EdgeCore's config; plain http carries no token.
	putEdgeCore(t, root, "edgecore-keadm-metaserver.yaml")
	if _, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni, "--node-name", "other", "--meta-server-token-file", "/x"); err != nil {
		t.Fatal(err)
	}
	if c, _, err = v1.Load(filepath.Join(root, "etc", "edgelink", "edgelink.yaml")); err != nil {
		t.Fatal(err)
	}
	if m := c.Modules.MetaSync; c.NodeName != "other" || m.MetaServer != "http://127.0.0.1:10550" || m.TokenFile != "" || m.CAFile != "" {
		t.Errorf("config: node %s, metaSync %+v", c.NodeName, m)
	}
}

// keadm join without --set leaves EdgeCore's metaServer off: install
// refuses and says how to turn it on, with --config too; cloud nodes
// (--source inCluster) do not need it.
func TestInstallRefusesMetaServerOff(t *testing.T) {
	root := t.TempDir()
	self, cni, _ := fakeBinaries(t)
	putEdgeCore(t, root, "edgecore-keadm-join.yaml")
	_, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni)
	if err == nil || !strings.Contains(err.Error(), "modules.metaManager.metaServer.enable is false") || !strings.Contains(err.Error(), "systemctl restart edgecore") {
		t.Fatalf("got %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "edgelink.yaml")
	c := v1.NewDefault()
	c.NodeName = "edge-1"
	data, err := v1.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni, "--config", cfg); err == nil || !strings.Contains(err.Error(), "metaServer.enable is false") {
		t.Fatalf("--config: got %v", err)
	}
	if _, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni, "--source", "inCluster", "--skip-cni", "--node-name", "cloud-1"); err != nil {
		t.Fatalf("cloud node: %v", err)
	}
	// A named EdgeCore config that is not there is an error.
	if _, err := runInstall(t, "--root", root, "--binary", self, "--plugin", cni, "--edgecore-config", "/nope.yaml"); err == nil || !strings.Contains(err.Error(), "--edgecore-config") {
		t.Fatalf("missing --edgecore-config: got %v", err)
	}
}
