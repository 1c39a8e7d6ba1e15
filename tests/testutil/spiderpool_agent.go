package testutil

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
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
	Socket string // the agent API's unix socket
	Config string // its config file (the chart's spiderpool-conf ConfigMap)
	spiderpoolDaemon

	t testing.TB
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
	}
	if err := os.WriteFile(a.Config, []byte(spiderpoolConf(a.Socket)), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := freeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	a.HealthPort = port
	env := []string{
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
	if err := a.start(bin, []string{"daemon", "--config-path", a.Config}, env, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("spiderpool-agent log (tail):\n%s", tail(a.logs.String(), 120))
		}
	})
	// Ready once its API socket accepts connections too.
	socketUp := func() error {
		conn, err := net.DialTimeout("unix", a.Socket, time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := a.waitReady(60*time.Second, socketUp); err != nil {
		t.Fatalf("spiderpool-agent: %v\n%s", err, tail(a.logs.String(), 60))
	}
	return a
}
