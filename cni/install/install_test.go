package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

func TestConflistDefaults(t *testing.T) {
	out, err := Conflist(Options{IPAMSocket: "/var/run/edgelink/ipam.sock"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(out)
	if err != nil {
		t.Fatalf("libcni rejects the conflist: %v\n%s", err, out)
	}
	if list.CNIVersion != "1.1.0" {
		t.Errorf("current libcni picked cniVersion %q, want 1.1.0 from cniVersions", list.CNIVersion)
	}
	var m struct {
		CNIVersion  string   `json:"cniVersion"`
		CNIVersions []string `json:"cniVersions"`
		Plugins     []struct {
			Type string         `json:"type"`
			IPAM map[string]any `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.CNIVersion != "1.0.0" {
		t.Errorf("cniVersion = %q: containerd 1.6 needs 1.0.0", m.CNIVersion)
	}
	if strings.Join(m.CNIVersions, ",") != "1.0.0,1.1.0" {
		t.Errorf("cniVersions = %v", m.CNIVersions)
	}
	if len(m.Plugins) != 1 || m.Plugins[0].Type != PluginName ||
		m.Plugins[0].IPAM["type"] != "spiderpool" || m.Plugins[0].IPAM["ipam_unix_socket_path"] != "/var/run/edgelink/ipam.sock" {
		t.Errorf("plugins = %+v", m.Plugins)
	}
}

func TestConflistErrors(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{IPAMType: "dhcp"}, `ipam type "dhcp"`},
		{Options{IPAMType: "host-local"}, "needs at least one subnet"},
		{Options{Bridge: "bad/name"}, `bridge: "bad/name"`},
		{Options{IPAMSocket: "relative.sock"}, `ipam.ipam_unix_socket_path: "relative.sock"`},
	} {
		if _, err := Conflist(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Conflist(%+v) err = %v, want %q", tt.o, err, tt.want)
		}
	}
}

func TestInstallIsAtomicAndReplaces(t *testing.T) {
	bin, conf := t.TempDir(), t.TempDir()
	src := filepath.Join(t.TempDir(), "edgelink-cni")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{BinDir: bin, ConfDir: conf, PluginSource: src}
	for i := 0; i < 2; i++ { // a second install replaces in place
		if _, err := Install(o); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(bin, PluginName))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("plugin: %v %v", fi, err)
	}
	for _, d := range []string{bin, conf} {
		entries, _ := os.ReadDir(d)
		if len(entries) != 1 {
			t.Errorf("%s holds %d entries, want 1 (no temp files left)", d, len(entries))
		}
	}
}
