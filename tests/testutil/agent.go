package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/unixsock"
)

// Agent is a running `edgelink agent` process.
type Agent struct {
	t      testing.TB
	Config *v1.AgentConfig
	path   string
	netns  string // `ip netns` name to run in, or ""
	// Env is added to the agent's environment at its next start.
	Env []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *SyncBuffer
	exited chan struct{}
}

// SyncBuffer collects a process's output; safe for concurrent use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// NewAgent writes c to a file and returns an agent ready to Start. If netns
// is not empty the agent runs inside that `ip netns`.
// EDGELINK_TEST_PATH_IDLE_TIMEOUT (a duration) gives every agent whose
// config sets none that modules.tunnel.pathIdleTimeout: the whole suite
// then runs with paths on demand.
func NewAgent(t testing.TB, c *v1.AgentConfig, netns string) *Agent {
	t.Helper()
	if d := os.Getenv("EDGELINK_TEST_PATH_IDLE_TIMEOUT"); d != "" && c.Modules.Tunnel.PathIdleTimeout == "" {
		c.Modules.Tunnel.PathIdleTimeout = d
	}
	if c.StatusSocket == "" || c.StatusSocket == v1.DefaultStatusSocket {
		c.StatusSocket = filepath.Join(t.TempDir(), "agent.sock")
	}
	data, err := v1.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "edgelink.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a := &Agent{t: t, Config: c, path: path, netns: netns}
	t.Cleanup(func() { a.Kill() })
	return a
}

// Run runs the agent to its exit (for configs it must refuse) and
// returns how it exited; it fails the test if the agent still runs after
// timeout.
func (a *Agent) Run(timeout time.Duration) error {
	a.t.Helper()
	a.launch()
	select {
	case <-a.exited:
	case <-time.After(timeout):
		a.Kill()
		a.t.Fatalf("agent still running after %s:\n%s", timeout, a.Log())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.cmd.ProcessState
	a.cmd = nil
	if err.Success() {
		return nil
	}
	return fmt.Errorf("%s", err)
}

func (a *Agent) launch() {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	bin := filepath.Join(Binaries(a.t), "edgelink")
	args := []string{"agent", "--config", a.path, "-v=2"}
	var cmd *exec.Cmd
	if a.netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", a.netns, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	a.log = &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = a.log, a.log
	if len(a.Env) > 0 {
		cmd.Env = append(os.Environ(), a.Env...)
	}
	if err := cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	a.cmd = cmd
	a.exited = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(a.exited)
}

// Start runs the agent and waits until its log shows wantLog (e.g. the
// line a module prints when it serves), failing the test after 20 s.
func (a *Agent) Start(wantLog string) {
	a.t.Helper()
	a.launch()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(a.Log(), wantLog) {
		select {
		case <-a.exited:
			a.t.Fatalf("agent exited before %q:\n%s", wantLog, a.Log())
		default:
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("agent did not log %q within 20s:\n%s", wantLog, a.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the running agent's process ID (0 when stopped).
func (a *Agent) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Log is everything the current (or last) run printed.
func (a *Agent) Log() string {
	if a.log == nil {
		return ""
	}
	return a.log.String()
}

// Stop sends SIGTERM and waits; it fails the test unless the agent exits 0
// within 15 s (then it is killed).
func (a *Agent) Stop() {
	a.t.Helper()
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		// SIGQUIT: the Go runtime prints every goroutine's stack (what
		// the shutdown waits on) to stderr, into the log, and exits.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		a.Kill()
		// Errorf, not Fatalf: a.t may be the parent of the subtest
		// calling Stop, whose goroutine FailNow must not end.
		a.t.Errorf("agent did not stop on SIGTERM within 15 s (goroutines at the end of the log):\n%s", a.Log())
		return
	}
	if !cmd.ProcessState.Success() {
		a.t.Errorf("agent exited with %v:\n%s", cmd.ProcessState, a.Log())
	}
	a.mu.Lock()
	a.cmd = nil
	a.mu.Unlock()
}

// Kill sends SIGKILL (no cleanup by the agent) and waits for the exit.
func (a *Agent) Kill() {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// GetJSON reads path from the agent's status API into v.
func (a *Agent) GetJSON(path string, v any) error {
	c := http.Client{Timeout: 5 * time.Second, Transport: unixsock.HTTPTransport(a.Config.StatusSocket)}
	defer c.CloseIdleConnections()
	return GetJSON(&c, path, v)
}

// GetJSON reads path from an agent's status API, through c (a client on
// its status socket), into v.
func GetJSON(c *http.Client, path string, v any) error {
	resp, err := c.Get("http://agent" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}
