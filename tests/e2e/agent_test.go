package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/testutil"
)

func edgelink(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testutil.Binaries(t), "edgelink"), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "edgelink.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaultValidates(t *testing.T) {
	out, _, code := edgelink(t, "config", "default")
	if code != 0 || !strings.Contains(out, "tunName: edgelink0") {
		t.Fatalf("config default: code %d\n%s", code, out)
	}
	out, errOut, code := edgelink(t, "config", "validate", writeFile(t, out))
	if code != 0 || !strings.Contains(out, ": valid") {
		t.Fatalf("default config does not validate: %s%s", out, errOut)
	}
}

// An invalid file: every problem reported at once, each with its field path
// and value, and a non-zero exit; duplicates are warnings.
func TestConfigValidateReportsEveryProblem(t *testing.T) {
	path := writeFile(t, `
nodeName: edge-1
modules:
  edgeCNI:
    enable: true
    mtu: 20
    meshCIDRConfig:
      cloudCIDR: ["10.244.1.0/24"]
      edgeCIDR:  ["10.244.2.0/24", "10.244.2.0/24", "10.244.0.0/16", "nonsense"]
  tunnel:
    listenPort: 0
    relayNodes:
    - {nodeName: relay-1}
`)
	_, errOut, code := edgelink(t, "config", "validate", path)
	if code == 0 {
		t.Fatal("invalid config validated")
	}
	for _, want := range []string{
		`warning: modules.edgeCNI.meshCIDRConfig.edgeCIDR[1]: "10.244.2.0/24" repeats`,
		`modules.edgeCNI.meshCIDRConfig.edgeCIDR[2]: "10.244.0.0/16" overlaps modules.edgeCNI.meshCIDRConfig.cloudCIDR[0]`,
		`modules.edgeCNI.meshCIDRConfig.edgeCIDR[2]: "10.244.0.0/16" overlaps modules.edgeCNI.meshCIDRConfig.edgeCIDR[0]`,
		`edgeCIDR[3]: "nonsense" is not a CIDR`,
		`modules.edgeCNI.mtu: "20" must be 0`,
		`modules.tunnel.relayNodes[0].advertiseAddress: needs at least one address`,
		"5 problem(s) in config",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// listenPort 0 takes the default; it is not an error.
	if strings.Contains(errOut, "listenPort") {
		t.Errorf("listenPort 0 should default to 20006:\n%s", errOut)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := edgelink(t, "version")
	if code != 0 || !strings.HasPrefix(out, "edgelink ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// The agent refuses an invalid config before starting anything.
func TestAgentRejectsInvalidConfig(t *testing.T) {
	_, errOut, code := edgelink(t, "agent", "--config", writeFile(t, "nodeName: Bad_Name\n"))
	if code == 0 || !strings.Contains(errOut, `nodeName: "Bad_Name" is not a valid node name`) {
		t.Fatalf("code %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = edgelink(t, "agent")
	if code == 0 || !strings.Contains(errOut, "--config is required") {
		t.Fatalf("code %d, stderr:\n%s", code, errOut)
	}
}

// SIGTERM and SIGINT stop the agent cleanly, with exit code 0.
func TestAgentStopsOnSignal(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, "nodeName: edge-1\ndataDir: "+dir+"\nstatusSocket: "+dir+"/agent.sock\n")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(filepath.Join(testutil.Binaries(t), "edgelink"), "agent", "--config", cfg)
		var e bytes.Buffer
		cmd.Stderr = &e
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(e.String(), "Agent running") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%v: agent exited with %v\n%s", sig, err, e.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: agent did not stop\n%s", sig, e.String())
		}
		if !strings.Contains(e.String(), "All modules stopped") {
			t.Errorf("%v: no clean shutdown in log:\n%s", sig, e.String())
		}
	}
}

// `edgelink ca init` / `ca issue` / `identity`: a member certificate for a
// node's identity, verified as the tunnel will verify it.
func TestCACommands(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "identity.key")
	id, errOut, code := edgelink(t, "identity", "--key", key)
	if code != 0 || !strings.HasPrefix(id, "12D3KooW") {
		t.Fatalf("identity: %d %q %s", code, id, errOut)
	}
	if _, errOut, code := edgelink(t, "ca", "init", "--dir", filepath.Join(dir, "ca")); code != 0 {
		t.Fatalf("ca init: %s", errOut)
	}
	if _, errOut, code := edgelink(t, "ca", "init", "--dir", filepath.Join(dir, "ca")); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second ca init: %d %s", code, errOut)
	}
	out, errOut, code := edgelink(t, "ca", "issue", "--dir", filepath.Join(dir, "ca"), "--node", "edge-1", "--identity", key, "--out", dir)
	if code != 0 || !strings.Contains(out, "peer "+strings.TrimSpace(id)) {
		t.Fatalf("ca issue: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := edgelink(t, "ca", "issue", "--dir", filepath.Join(dir, "ca"), "--node", "edge-1", "--peer-id", "nonsense"); code == 0 || !strings.Contains(errOut, `--peer-id "nonsense"`) {
		t.Fatalf("bad peer id: %d %s", code, errOut)
	}
	if fi, err := os.Stat(filepath.Join(dir, "edge-1.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("member key: %v %v", fi, err)
	}
}
