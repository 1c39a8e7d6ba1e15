package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Controller is `edgelink controller` running against a test
// kube-apiserver, stopped (kill -9) in t.Cleanup; its log is printed when
// the test failed.
type Controller struct {
	t    testing.TB
	cfg  string
	cmd  *exec.Cmd
	logs *SyncBuffer
}

// StartController writes a controller config (kubeconfig, then the YAML
// given) and starts the controller.
func StartController(t testing.TB, kubeconfig, yaml string) *Controller {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "controller.yaml")
	if err := os.WriteFile(cfg, []byte("kubeconfig: "+kubeconfig+"\n"+yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Controller{t: t, cfg: cfg, logs: &SyncBuffer{}}
	c.Start()
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("controller log:\n%s", c.logs.String())
		}
	})
	return c
}

// Start starts the controller (again).
func (c *Controller) Start() {
	c.t.Helper()
	c.cmd = EdgelinkCmd(c.t, "controller", "--config", c.cfg, "-v=2")
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// Kill stops the controller with SIGKILL (no lease released, as a crash).
func (c *Controller) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
		c.cmd = nil
	}
}

// Log is what the controller printed so far.
func (c *Controller) Log() string { return c.logs.String() }
