package ipam

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/unixsock"
	"github.com/edgelink/edgelink/tests/unittest"
)

// GET /v1/ipam on the status socket: 503 until the module serves, then
// pool usage, refused pools and the lease count; absent when disabled.
func TestStatusEndpoint(t *testing.T) {
	pools := testPools + `
---
kind: SpiderIPPool
metadata: {name: broken}
spec: {subnet: 10.244.0.0/16, ips: ["10.245.9.2-10.245.9.9"], nodeName: [edge-1]}
`
	alloc := newTestAllocator(t, pools)

	m := &Module{enable: true, svc: &Service{SocketPath: "/var/run/edgelink/ipam.sock"}}
	mux := unittest.StatusMux(t, m.StatusRoutes())
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/ipam", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != http.StatusServiceUnavailable {
		t.Errorf("before serving: %d %s, want 503", code, body)
	}

	m.svc.live.Store(alloc)
	if code, body := call(t, newMux(&handler{alloc: alloc}), "POST", "/v1/ipam/ip", addBody); code != 200 {
		t.Fatal(code, body)
	}
	code, body := get()
	var st Status
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("GET /v1/ipam: %d %s", code, body)
	}
	if st.Socket != "/var/run/edgelink/ipam.sock" || st.Leases != 1 || len(st.Pools) != 1 ||
		st.Pools[0] != (ipam.PoolUsage{Pool: "p4", Allocated: 1, Size: "2"}) || st.Invalid["broken"] == "" {
		t.Errorf("GET /v1/ipam: %+v", st)
	}

	off := unittest.StatusMux(t, (&Module{svc: m.svc}).StatusRoutes())
	rec := httptest.NewRecorder()
	off.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/ipam", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("disabled module: %d, want 404", rec.Code)
	}
}

// `edgelink diagnose` fails a node that a shared pool serves but that
// holds no block of it, naming the pool and what to do.
func TestBlocksCheck(t *testing.T) {
	view := func(yaml string) *ipam.View {
		objs, err := ipam.DecodeObjects(strings.NewReader(yaml), "edge-1")
		if err != nil {
			t.Fatal(err)
		}
		return ipam.NewView("edge-1", objs)
	}
	const shared = `{kind: SpiderIPPool, metadata: {name: default-v4}, spec: {subnet: 10.244.0.0/16, ips: ["10.244.0.0-10.244.20.200"], default: true}}`
	c := blocksCheck(view(shared))
	if c.Status != agentapi.CheckFail || !strings.Contains(c.Detail, "default-v4") || !strings.Contains(c.Fix, "edgelink controller") || !strings.Contains(c.Fix, ipam.AnnoSegment) {
		t.Errorf("no block: %+v", c)
	}
	c = blocksCheck(view(shared + "\n---\n" + `{kind: SpiderIPPool, metadata: {name: default-v4-10-244-5-0-26, annotations: {edgelink.io/block-of: default-v4}}, spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.0-10.244.5.63"], excludeIPs: [10.244.5.0], gateway: 10.244.5.0, nodeName: [edge-1]}}`))
	if c.Status != agentapi.CheckOK || !strings.Contains(c.Detail, "default-v4-10-244-5-0-26") {
		t.Errorf("with a block: %+v", c)
	}
	c = blocksCheck(view(`{kind: SpiderIPPool, metadata: {name: mine}, spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.2"], nodeName: [edge-1]}}`))
	if c.Status != agentapi.CheckOK {
		t.Errorf("pinned pools only: %+v", c)
	}
}

// Diagnose asks the IPAM socket first, then checks the blocks; both are
// skipped when the module is disabled.
func TestDiagnoseSocket(t *testing.T) {
	if d := (&Module{svc: &Service{}}).Diagnose(t.Context()); len(d) != 2 || d[0].Name != socketCheckName ||
		d[0].Status != agentapi.CheckSkip || d[1].Status != agentapi.CheckSkip {
		t.Errorf("disabled: %+v", d)
	}
	sock := filepath.Join(t.TempDir(), "ipam.sock")
	d := (&Module{enable: true, svc: &Service{SocketPath: sock}}).Diagnose(t.Context())
	if len(d) != 2 || d[0].Status != agentapi.CheckFail || !strings.Contains(d[0].Detail, sock) || d[1].Status != agentapi.CheckFail {
		t.Errorf("nothing serving: %+v", d)
	}
	ln, err := unixsock.Listen(sock, "IPAM socket", "socketPath")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: newMux(&handler{})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if d := (&Module{enable: true, svc: &Service{SocketPath: sock}}).Diagnose(t.Context()); d[0].Status != agentapi.CheckOK {
		t.Errorf("serving: %+v", d[0])
	}
}
