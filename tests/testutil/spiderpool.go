package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// spiderpoolConf is the chart's ConfigMap spiderpool-conf (conf.yml) as
// both SpiderPool daemons read it here (the keys of
// cmd/spiderpool-agent/cmd/config.go and cmd/spiderpool-controller's):
// IPv4 only, no SpiderSubnet, StatefulSet or KubeVirt. socket is the
// agent's API socket (the controller reads the key but never serves it).
func spiderpoolConf(socket string) string {
	return fmt.Sprintf(`ipamUnixSocketPath: %s
enableIPv4: true
enableIPv6: false
enableStatefulSet: false
enableKubevirtStaticIP: false
enableSpiderSubnet: false
clusterSubnetDefaultFlexibleIPNumber: 0
`, socket)
}

// spiderpoolDaemon is one SpiderPool process a test started (`daemon`
// of spiderpool-agent or spiderpool-controller): its output, its exit,
// its readiness endpoint and how it is stopped.
type spiderpoolDaemon struct {
	HealthPort int      // its HTTP API (/v1/runtime/*), asked on loopback
	Env        []string // what it was started with, beside the test's own

	cmd       *exec.Cmd
	logs      *SyncBuffer
	done      chan struct{}
	stopGrace time.Duration // SIGTERM to SIGKILL
}

// start runs bin with args and env (added to the test process's) in its
// own process group, killed with the test process.
func (d *spiderpoolDaemon) start(bin string, args, env []string, stopGrace time.Duration) error {
	d.Env, d.stopGrace = env, stopGrace
	d.logs, d.done = &SyncBuffer{}, make(chan struct{})
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		close(d.done)
		return err
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	return nil
}

// waitReady polls /v1/runtime/readiness until it answers 200 and also
// (if not nil) succeeds, the process exits, or timeout passes.
func (d *spiderpoolDaemon) waitReady(timeout time.Duration, also func() error) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/runtime/readiness", d.HealthPort)
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if !d.running() {
			return fmt.Errorf("exited: %v", d.cmd.ProcessState)
		}
		resp, err := hc.Get(url)
		switch {
		case err != nil:
			last = err
		case resp.StatusCode != http.StatusOK:
			resp.Body.Close()
			last = fmt.Errorf("readiness: HTTP %d", resp.StatusCode)
		default:
			resp.Body.Close()
			if also == nil {
				return nil
			}
			if last = also(); last == nil {
				return nil
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

func (d *spiderpoolDaemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Log is what the process printed so far.
func (d *spiderpoolDaemon) Log() string { return d.logs.String() }

// PID is the process id.
func (d *spiderpoolDaemon) PID() int { return d.cmd.Process.Pid }

// Stop sends SIGTERM (by PID), and SIGKILL after the daemon's grace.
func (d *spiderpoolDaemon) Stop() {
	if !d.running() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(d.stopGrace):
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}
