package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// SpiderpoolAgent is SpiderPool's own node agent (`spiderpool-agent
// daemon`, github.com/spidernet-io/spiderpool v0.9.3, built by
// tests/tools/build.sh) running on the host against a test kube-apiserver,
// as a cloud node's agent would: it serves SpiderPool's agent API (what the
// stock `spiderpool` IPAM plugin calls) on Socket and allocates from
// SpiderIPPools by writing their status.allocatedIPs. It runs without
// spiderpool-controller and its webhook: pools must be created complete
// (spec.ipVersion set, as the webhook's mutation would). Stopped in
// t.Cleanup; its log is printed when the test failed.
type SpiderpoolAgent struct {
	Socket     string // the agent API's unix socket
	HealthPort int    // its HTTP API (/v1/runtime/*), asked on loopback
	Config     string // its config file (the chart's spiderpool-conf ConfigMap)
	Env        []string

	t    testing.TB
	cmd  *exec.Cmd
	logs *SyncBuffer
	done chan struct{}
}

// StartSpiderpoolAgent writes the agent's config under a temp dir and
// starts it with kubeconfig, waiting (at most 60s) until its readiness
// endpoint answers and its socket accepts connections. podName names the
// agent's own pod (SPIDERPOOL_POD_NAME; nothing looks it up).
func StartSpiderpoolAgent(t testing.TB, kubeconfig, podName string) *SpiderpoolAgent {
	t.Helper()
	bin := Tool(t, "spiderpool-agent")
	dir := t.TempDir()
	a := &SpiderpoolAgent{
		t:      t,
		Socket: filepath.Join(dir, "spiderpool.sock"),
		Config: filepath.Join(dir, "conf.yml"),
		logs:   &SyncBuffer{},
		done:   make(chan struct{}),
	}
	// The keys of the chart's ConfigMap spiderpool-conf (conf.yml) that the
	// agent reads (cmd/spiderpool-agent/cmd/config.go).
	conf := fmt.Sprintf(`ipamUnixSocketPath: %s
enableIPv4: true
enableIPv6: false
enableStatefulSet: false
enableKubevirtStaticIP: false
enableSpiderSubnet: false
clusterSubnetDefaultFlexibleIPNumber: 0
`, a.Socket)
	if err := os.WriteFile(a.Config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := freeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	a.HealthPort = port
	a.Env = []string{
		"KUBECONFIG=" + kubeconfig,
		"SPIDERPOOL_LOG_LEVEL=info",
		"SPIDERPOOL_POD_NAMESPACE=kube-system",
		"SPIDERPOOL_POD_NAME=" + podName,
		// its HTTP API (/v1/runtime/*, the probes): the agent binds it on
		// all addresses (it never sets go-swagger's Host); only loopback
		// is used
		"SPIDERPOOL_HEALTH_PORT=" + strconv.Itoa(port),
		// metrics are off (SPIDERPOOL_ENABLED_METRIC defaults to false);
		// the port is required all the same and never opened
		"SPIDERPOOL_ENABLED_METRIC=false",
		"SPIDERPOOL_METRIC_HTTP_PORT=" + strconv.Itoa(port),
		// empty: no gops listener
		"SPIDERPOOL_GOPS_LISTEN_PORT=",
		"GOLANG_ENV_MAXPROCS=2",
	}
	a.cmd = exec.Command(bin, "daemon", "--config-path", a.Config)
	a.cmd.Env = append(os.Environ(), a.Env...)
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("spiderpool-agent log (tail):\n%s", tail(a.logs.String(), 120))
		}
	})
	if err := a.waitReady(60 * time.Second); err != nil {
		t.Fatalf("spiderpool-agent: %v\n%s", err, tail(a.logs.String(), 60))
	}
	return a
}

func (a *SpiderpoolAgent) waitReady(timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/runtime/readiness", a.HealthPort)
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return fmt.Errorf("exited: %v", a.cmd.ProcessState)
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				conn, err := net.DialTimeout("unix", a.Socket, time.Second)
				if err == nil {
					conn.Close()
					return nil
				}
				last = err
			} else {
				last = fmt.Errorf("readiness: HTTP %d", resp.StatusCode)
			}
		} else {
			last = err
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

// Log is what the agent printed so far.
func (a *SpiderpoolAgent) Log() string { return a.logs.String() }

// PID is the agent's process id.
func (a *SpiderpoolAgent) PID() int { return a.cmd.Process.Pid }

// Stop sends SIGTERM to the agent (by PID) and SIGKILL after 5s.
func (a *SpiderpoolAgent) Stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.done
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
