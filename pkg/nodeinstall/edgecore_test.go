package nodeinstall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

// The testdata files are edgecore.yaml exactly as keadm join (KubeEdge
// v1.20.0) writes it, made by tests/tools/kubeedge/keadmconfig (keadm's
// createEdgeConfigFiles with its defaults; keadm join itself pulls images
// through a CRI runtime and starts a systemd service, see
// docs/development.md):
//
//	edgecore-keadm-join.yaml           keadm join --cloudcore-ipport=198.18.0.1:10000 --edgenode-name=edge-1
//	edgecore-keadm-metaserver.yaml     ... --set modules.metaManager.metaServer.enable=true
//	edgecore-keadm-authorization.yaml  ... and featureGates.requireAuthorization: true added to the file
func readTestdata(t *testing.T, name string) *EdgeCore {
	t.Helper()
	e, err := ReadEdgeCore("testdata", name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEdgeCoreAsKeadmWritesIt(t *testing.T) {
	for _, tc := range []struct {
		file    string
		enabled bool
		auth    bool
		url     string
	}{
		{"edgecore-keadm-join.yaml", false, false, "http://127.0.0.1:10550"},
		{"edgecore-keadm-metaserver.yaml", true, false, "http://127.0.0.1:10550"},
		{"edgecore-keadm-authorization.yaml", true, true, "https://127.0.0.1:10550"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			e := readTestdata(t, tc.file)
			if e.NodeName != "edge-1" || e.MetaServerEnabled != tc.enabled || e.RequireAuthorization != tc.auth ||
				e.MetaServerAddr != "127.0.0.1:10550" || e.MetaServerURL() != tc.url || e.Path != tc.file {
				t.Fatalf("got %+v (url %s), want node edge-1, enabled %v, authorization %v, %s", e, e.MetaServerURL(), tc.enabled, tc.auth, tc.url)
			}
		})
	}
}

// keadm join without --set leaves the metaServer off: the error says
// which field, in which file, and the fix.
func TestEdgeCoreMetaServerOffIsRefused(t *testing.T) {
	e := readTestdata(t, "edgecore-keadm-join.yaml")
	err := e.CheckMetaServer()
	if err == nil {
		t.Fatal("a disabled metaServer passed")
	}
	for _, want := range []string{"modules.metaManager.metaServer.enable is false", "edgecore-keadm-join.yaml", "systemctl restart edgecore",
		"--set modules.metaManager.metaServer.enable=true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := readTestdata(t, "edgecore-keadm-metaserver.yaml").CheckMetaServer(); err != nil {
		t.Errorf("enabled metaServer: %v", err)
	}
}

func TestEdgeCoreApply(t *testing.T) {
	c := v1.NewDefault()
	c.NodeName = ""
	readTestdata(t, "edgecore-keadm-authorization.yaml").Apply(c, "/etc/edgelink/tok")
	m := c.Modules.MetaSync
	if c.NodeName != "edge-1" || m.MetaServer != "https://127.0.0.1:10550" || m.CAFile != MetaServerCAFile || m.TokenFile != "/etc/edgelink/tok" {
		t.Fatalf("authorized: node %q, metaSync %+v", c.NodeName, m)
	}
	if mm := readTestdata(t, "edgecore-keadm-authorization.yaml").Mismatches(c); len(mm) != 0 {
		t.Errorf("a config made from the file disagrees with it: %v", mm)
	}

	// Plain http: no token goes over it; a node name already set is kept.
	c.NodeName = "given"
	readTestdata(t, "edgecore-keadm-metaserver.yaml").Apply(c, "/etc/edgelink/tok")
	if m := c.Modules.MetaSync; c.NodeName != "given" || m.MetaServer != "http://127.0.0.1:10550" || m.CAFile != "" || m.TokenFile != "" {
		t.Fatalf("plain: node %q, metaSync %+v", c.NodeName, m)
	}
	if _, err := v1.Validate(c); err != nil {
		t.Errorf("applied config does not validate: %v", err)
	}
}

func TestEdgeCoreMismatches(t *testing.T) {
	e := readTestdata(t, "edgecore-keadm-authorization.yaml")
	c := v1.NewDefault()
	c.NodeName = "edge-9"
	got := strings.Join(e.Mismatches(c), "\n")
	for _, want := range []string{"modules.metaSync.metaServer is http://127.0.0.1:10550, but EdgeCore", "serves https://127.0.0.1:10550",
		"modules.metaSync.tokenFile is empty", "nodeName is edge-9, but EdgeCore", "is node edge-1"} {
		if !strings.Contains(got, want) {
			t.Errorf("mismatches %q do not say %q", got, want)
		}
	}
	c.Modules.MetaSync.Source = v1.SourceKubeconfig
	if mm := e.Mismatches(c); mm != nil {
		t.Errorf("a cloud node's config was compared with EdgeCore's: %v", mm)
	}
}

func TestEdgeCoreBadFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, data, want string }{
		{"notyaml", "kind: [", "EdgeCore config notyaml"},
		{"kind", "kind: CloudCore\n", `kind is "CloudCore", want EdgeCore`},
		{"server", "kind: EdgeCore\nmodules: {metaManager: {metaServer: {enable: true, server: 10550}}}\n", `modules.metaManager.metaServer.server "10550": want HOST:PORT`},
	} {
		if err := os.WriteFile(filepath.Join(dir, tc.name), []byte(tc.data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadEdgeCore(dir, tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	// Sections left out are KubeEdge's defaults; 0.0.0.0 is dialled on loopback.
	e, err := ParseEdgeCore("x", []byte("kind: EdgeCore\nmodules: {metaManager: {metaServer: {enable: true, server: '0.0.0.0:10551'}}}\n"))
	if err != nil || e.MetaServerURL() != "http://127.0.0.1:10551" || e.NodeName != "" {
		t.Errorf("got %+v, %v", e, err)
	}
	if e, err := ParseEdgeCore("x", []byte("kind: EdgeCore\n")); err != nil || e.MetaServerEnabled || e.MetaServerAddr != "127.0.0.1:10550" {
		t.Errorf("defaults: %+v, %v", e, err)
	}
}
