package ipam

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgelink/edgelink/pkg/ipam"
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
	mux := http.NewServeMux()
	m.RegisterStatus(mux)
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

	off := http.NewServeMux()
	(&Module{svc: m.svc}).RegisterStatus(off)
	rec := httptest.NewRecorder()
	off.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/ipam", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("disabled module: %d, want 404", rec.Code)
	}
}
