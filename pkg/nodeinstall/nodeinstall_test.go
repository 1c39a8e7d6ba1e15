package nodeinstall

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgelink/edgelink/cni/install"
	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

// build/systemd/edgelink.service is what `edgelink install` writes with
// the default paths.
func TestSystemdUnitFileMatches(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "build", "systemd", "edgelink.service"))
	if err != nil {
		t.Fatal(err)
	}
	if want := Unit(DefaultBinDir, DefaultConfigPath); !bytes.Equal(b, want) {
		t.Errorf("build/systemd/edgelink.service differs from the unit edgelink install writes; regenerate it:\n%s", want)
	}
}

// fakeSources writes stand-ins for the edgelink and edgelink-cni binaries.
func fakeSources(t *testing.T) (self, cni string) {
	t.Helper()
	dir := t.TempDir()
	self, cni = filepath.Join(dir, "edgelink"), filepath.Join(dir, "edgelink-cni")
	for _, p := range []string{self, cni} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return self, cni
}

// A keadm-joined edge node with requireAuthorization laid out into a
// root: the config points at EdgeCore's https metaServer, the identity is
// created 0600, the unit is written, and the metaServer CA and token the
// config names are reported as not in place yet.
func TestRunKeadmNodeWithAuthorization(t *testing.T) {
	root := t.TempDir()
	self, cni := fakeSources(t)
	c := v1.NewDefault()
	c.NodeName = ""
	e, err := ReadEdgeCore("testdata", "edgecore-keadm-authorization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e.Apply(c, DefaultMetaServerTokenFile)
	v1.SetDefaults(c)
	if _, err := v1.Validate(c); err != nil {
		t.Fatal(err)
	}
	data, err := v1.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	o := &Options{Root: root, Self: self, CNIPlugin: cni, BinDir: DefaultBinDir, Config: c, ConfigData: data, ConfigPath: DefaultConfigPath,
		CNI: install.Options{BinDir: "/opt/cni/bin", ConfDir: "/etc/cni/net.d"}, Unit: true, UnitPath: DefaultUnitPath}
	res, err := o.Run()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.MetaServerMissing, ","); got != MetaServerCAFile+","+DefaultMetaServerTokenFile {
		t.Errorf("metaServer files reported missing: %q", got)
	}
	if res.PeerID == "" {
		t.Error("no peer ID")
	}
	got, _, err := v1.Load(filepath.Join(root, DefaultConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	if m := got.Modules.MetaSync; got.NodeName != "edge-1" || m.MetaServer != "https://127.0.0.1:10550" || m.TokenFile != DefaultMetaServerTokenFile {
		t.Errorf("installed config: node %s, metaSync %+v", got.NodeName, m)
	}
	fi, err := os.Stat(filepath.Join(root, c.Modules.Tunnel.IdentityFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("identity: %v %v", fi, err)
	}
	unit, err := os.ReadFile(filepath.Join(root, DefaultUnitPath))
	if err != nil || !bytes.Contains(unit, []byte("Wants=network-online.target edgecore.service")) || !bytes.Contains(unit, []byte("After=network-online.target edgecore.service")) {
		t.Errorf("unit: %v\n%s", err, unit)
	}

	// Once the token is there (and EdgeCore wrote its CA) nothing is missing.
	for _, p := range []string{MetaServerCAFile, DefaultMetaServerTokenFile} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if res, err = o.Run(); err != nil || len(res.MetaServerMissing) != 0 {
		t.Errorf("second run: %v, missing %v", err, res.MetaServerMissing)
	}
}

// Sources are checked before anything is written.
func TestRunMissingSource(t *testing.T) {
	root := t.TempDir()
	self, _ := fakeSources(t)
	c := v1.NewDefault()
	o := &Options{Root: root, Self: self, CNIPlugin: filepath.Join(t.TempDir(), "nope"), Config: c, BinDir: DefaultBinDir, ConfigPath: DefaultConfigPath}
	if _, err := o.Run(); err == nil || !strings.Contains(err.Error(), "edgelink-cni binary") {
		t.Fatalf("got %v", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("wrote %v before failing", entries)
	}
}
