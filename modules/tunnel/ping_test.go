package tunnel

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/tests/unittest"
)

type fakeLocator struct {
	node          string
	local, ok, up bool
}

func (l fakeLocator) Lookup(netip.Addr) (string, bool, bool, bool) {
	return l.node, l.local, l.ok, l.up
}

// POST /v1/ping resolves a pod IP through the data plane's table while it
// is up, else the metadata picture, refuses targets on this node (409)
// and unknown ones (404), and answers 503 while the tunnel is not up,
// also when the module is disabled.
func TestPingResolution(t *testing.T) {
	snap := metadata.Empty()
	snap.Nodes["edge-1"] = &metadata.NodeInfo{Name: "edge-1", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.245.1.0/24")}}
	snap.Nodes["edge-2"] = &metadata.NodeInfo{Name: "edge-2", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.245.2.0/24")}}
	c := v1.NewDefault()
	c.NodeName = "edge-1"
	for _, tc := range []struct {
		name, body string
		pods       PodLocator
		md         metadata.Reader
		code       int
		msg        string
	}{
		{"bad request", `{`, nil, nil, http.StatusBadRequest, "bad ping request"},
		{"no target", `{"target":" "}`, nil, nil, http.StatusBadRequest, "no target"},
		{"this node", `{"target":"edge-1"}`, nil, nil, http.StatusConflict, "edge-1 is this node"},
		{"node, tunnel down", `{"target":"edge-2"}`, nil, nil, http.StatusServiceUnavailable, "the tunnel is not up on this node"},
		{"in no route", `{"target":"10.9.9.9"}`, fakeLocator{up: true}, nil, http.StatusNotFound, "in no route of this node's plan"},
		{"local pod", `{"target":"10.245.1.5"}`, fakeLocator{local: true, ok: true, up: true}, nil, http.StatusConflict, "is a pod on this node (edge-1)"},
		{"routed pod", `{"target":"10.245.2.5"}`, fakeLocator{node: "edge-2", ok: true, up: true}, nil, http.StatusServiceUnavailable, "the tunnel is not up"},
		{"metadata, local", `{"target":"10.245.1.5"}`, fakeLocator{}, fixedReader{snap}, http.StatusConflict, "is a pod on this node"},
		{"metadata, remote", `{"target":"10.245.2.5"}`, nil, fixedReader{snap}, http.StatusServiceUnavailable, "the tunnel is not up"},
		{"metadata, unknown", `{"target":"10.9.9.9"}`, nil, fixedReader{snap}, http.StatusNotFound, "no pod with that IP"},
	} {
		for _, enable := range []bool{true, false} {
			c.Modules.Tunnel.Enable = enable
			m := New(asAgent(t, c), tc.md)
			if tc.pods != nil {
				m.LocatePodsWith(tc.pods)
			}
			rec := httptest.NewRecorder()
			unittest.StatusMux(t, m.StatusRoutes()).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/ping", strings.NewReader(tc.body)))
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Errorf("%s (enabled %v): %d %q, want %d %q", tc.name, enable, rec.Code, rec.Body, tc.code, tc.msg)
			}
		}
	}
}
