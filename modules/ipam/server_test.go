package ipam

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgelink/edgelink/pkg/ipam"
)

const testPools = `
kind: SpiderIPPool
metadata: {name: p4}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.2-10.244.5.3"], gateway: 10.244.5.1, nodeName: [edge-1], default: true,
       routes: [{dst: 10.96.0.0/12, gw: 10.244.5.1}]}
`

func newTestHandler(t *testing.T) http.Handler {
	t.Helper()
	return newMux(&handler{alloc: newTestAllocator(t, testPools)})
}

// newTestAllocator is an allocator for node edge-1 over pools (YAML) with
// a store in a temp dir.
func newTestAllocator(t *testing.T, pools string) *ipam.Allocator {
	t.Helper()
	objs, err := ipam.DecodeObjects(strings.NewReader(pools), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	store, err := ipam.OpenStore(filepath.Join(t.TempDir(), "leases.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return ipam.NewAllocator(store, ipam.NewView("edge-1", objs))
}

func call(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewBufferString(body)))
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

const addBody = `{"containerID":"c1","ifName":"eth0","netNamespace":"/run/netns/x","podNamespace":"default","podName":"web","podUID":"u1"}`

func TestAddResponseShape(t *testing.T) {
	h := newTestHandler(t)
	code, body := call(t, h, "POST", "/v1/ipam/ip", addBody)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	want := `{"ips":[{"address":"10.244.5.2/16","gateway":"10.244.5.1","ipPool":"p4","nic":"eth0","version":4}],"routes":[{"dst":"10.96.0.0/12","gw":"10.244.5.1","ifName":"eth0"}]}`
	if body != want {
		t.Errorf("response\n got %s\nwant %s", body, want)
	}
	// cleanGateway drops the gateway, as SpiderPool does.
	code, body = call(t, h, "POST", "/v1/ipam/ip", strings.Replace(addBody, `"u1"`, `"u2","cleanGateway":true`, 1))
	if code != 200 || strings.Contains(body, "gateway") {
		t.Errorf("cleanGateway: %d %s", code, body)
	}
	// Exhausted: HTTP 500 and a JSON string naming pool and size.
	code, body = call(t, h, "POST", "/v1/ipam/ip", strings.Replace(addBody, `"u1"`, `"u3"`, 1))
	var msg string
	if code != 500 || json.Unmarshal([]byte(body), &msg) != nil || !strings.Contains(msg, "p4 (all 2 addresses allocated)") {
		t.Errorf("exhausted: %d %s", code, body)
	}
}

func TestDeleteEndpoints(t *testing.T) {
	h := newTestHandler(t)
	if code, body := call(t, h, "POST", "/v1/ipam/ip", addBody); code != 200 {
		t.Fatal(code, body)
	}
	del := `{"containerID":"c1","ifName":"eth0","podNamespace":"default","podName":"web","podUID":"u1"}`
	for i := 0; i < 2; i++ { // idempotent
		if code, body := call(t, h, "DELETE", "/v1/ipam/ip", del); code != 200 || body != "" {
			t.Errorf("DELETE %d: %d %q", i, code, body)
		}
	}
	if code, body := call(t, h, "POST", "/v1/ipam/ip", addBody); code != 200 || !strings.Contains(body, "10.244.5.3/16") {
		t.Errorf("after release: %d %s (the cursor moves on to .3)", code, body)
	}
	batch := `{"containerID":"c1","podNamespace":"default","podName":"web","podUID":"u1"}`
	if code, body := call(t, h, "DELETE", "/v1/ipam/ips", batch); code != 200 {
		t.Errorf("batch DELETE: %d %s", code, body)
	}
	if code, body := call(t, h, "DELETE", "/v1/ipam/ips", `{"podUID":"u1"}`); code != 500 || !strings.Contains(body, "containerID is required") {
		t.Errorf("batch DELETE without containerID: %d %s", code, body)
	}
}

func TestProbesAndUnknownRoutes(t *testing.T) {
	h := newTestHandler(t)
	for _, p := range []string{"/v1/ipam/healthy", "/v1/runtime/startup", "/v1/runtime/readiness", "/v1/runtime/liveness"} {
		if code, _ := call(t, h, "GET", p, ""); code != 200 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	if code, _ := call(t, h, "PUT", "/v1/ipam/ip", "{}"); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /v1/ipam/ip: %d, want 405", code)
	}
	if code, body := call(t, h, "GET", "/v1/coordinator/config", ""); code != 501 || !strings.Contains(body, "not implemented") {
		t.Errorf("coordinator: %d %s", code, body)
	}
}

// FuzzDecodeAddArgs: request bodies are untrusted bytes from a socket.
// Decoding and converting never panics, and an accepted request has every
// required field.
func FuzzDecodeAddArgs(f *testing.F) {
	f.Add([]byte(addBody))
	f.Add([]byte(`{"podUID": 7}`))
	f.Add([]byte(`{"defaultIPv4IPPool": ["a", null], "cleanGateway": "yes"}`))
	f.Add([]byte(`null`))
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var args IpamAddArgs
		if err := decodeBody(bytes.NewReader(data), &args); err != nil {
			return
		}
		req, err := args.toRequest()
		if err != nil {
			return
		}
		if req.ContainerID == "" || req.IfName == "" || req.NetNS == "" || req.PodNamespace == "" || req.PodName == "" || req.PodUID == "" {
			t.Fatalf("accepted a request with an empty required field: %+v", req)
		}
	})
}
