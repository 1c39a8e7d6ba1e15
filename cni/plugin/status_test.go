package plugin

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// spiderpoolAgent serves the health check of SpiderPool's agent socket on
// a unix socket: GET /v1/ipam/healthy answers status (and body), any other
// path 404. It returns the socket path and the paths it was asked for.
func spiderpoolAgent(t *testing.T, status int, body string) (string, func() []string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "spiderpool.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/v1/ipam/healthy" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), asked...)
	}
}

func (e *ipamEnv) status(conf map[string]any) error {
	e.t.Helper()
	conf["cniVersion"] = "1.1.0"
	_, err := e.run(nil, "STATUS", cmdStatus, conf, attachmentArgs{})
	return err
}

// TestStatusSpiderpool proves STATUS with spiderpool probes the agent's
// socket itself (GET /v1/ipam/healthy, as the spiderpool binary would)
// without running the binary: success when it answers 200, and code 50
// naming the socket and the cause when it is missing or unhealthy.
func TestStatusSpiderpool(t *testing.T) {
	e := newIPAMEnv(t)
	conf := func(sock string) map[string]any {
		c := e.netconf("eltbr0")
		ipamOf(c)["type"] = "spiderpool"
		ipamOf(c)["ipam_unix_socket_path"] = sock
		return c
	}

	sock, asked := spiderpoolAgent(t, http.StatusOK, `{}`)
	if err := e.status(conf(sock)); err != nil {
		t.Errorf("STATUS with a healthy agent: %v", err)
	}
	if got := asked(); len(got) != 1 || got[0] != "GET /v1/ipam/healthy" {
		t.Errorf("agent was asked %q, want one GET /v1/ipam/healthy", got)
	}

	missing := filepath.Join(t.TempDir(), "absent.sock")
	err := e.status(conf(missing))
	wantErrText(t, cniError(t, err, types.ErrPluginNotAvailable), "IPAM not available", missing, "does not answer")

	sick, _ := spiderpoolAgent(t, http.StatusInternalServerError, `{"message":"no IPPool ready"}`)
	err = e.status(conf(sick))
	wantErrText(t, cniError(t, err, types.ErrPluginNotAvailable), sick, "500", `no IPPool ready`)

	if c := e.calls(); len(c) != 0 {
		t.Errorf("STATUS ran the spiderpool binary: %q", c)
	}
}

// TestStatusForwarded proves STATUS with another IPAM is forwarded to the
// delegate, whose error comes back with its code and the IPAM's name.
func TestStatusForwarded(t *testing.T) {
	e := newIPAMEnv(t)
	if err := e.status(e.netconf("eltbr0")); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	if got := e.callsOf("STATUS"); len(got) != 1 || !strings.HasPrefix(got[0], "fakeipam STATUS") {
		t.Errorf("IPAM STATUS calls = %q, want one", got)
	}

	conf := e.netconf("eltbr0")
	ipamOf(conf)["fail"] = map[string]any{"STATUS": map[string]any{"code": 50, "msg": "pool empty", "details": "0 of 254 free"}}
	wantErrText(t, cniError(t, e.status(conf), types.ErrPluginNotAvailable), "IPAM STATUS (fakeipam): pool empty", "0 of 254 free")

	conf = e.netconf("eltbr0")
	ipamOf(conf)["type"] = "nosuch-ipam"
	wantErrText(t, cniError(t, e.status(conf), types.ErrPluginNotAvailable), "IPAM plugin not found", `"nosuch-ipam"`, e.cniPath)
}
