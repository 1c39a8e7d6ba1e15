package statusclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
)

// serve answers the given handlers on a unix socket, as the agent does.
func serve(t *testing.T, mux *http.ServeMux) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func TestNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	c := New(sock)
	defer c.Close()
	_, err := c.Agent(context.Background())
	var nr *NotRunningError
	if !errors.As(err, &nr) || nr.Socket != sock {
		t.Fatalf("error %v (%T), want a NotRunningError for %s", err, err, sock)
	}
	for _, want := range []string{sock, "systemctl status edgelink", "--socket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestHTTPErrorCarriesTheAgentsMessage(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ping", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no node has 10.9.9.9", http.StatusNotFound)
	})
	c := New(serve(t, mux))
	defer c.Close()
	_, err := c.Ping(context.Background(), "10.9.9.9", time.Second)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusNotFound || err.Error() != "no node has 10.9.9.9" || !IsUnavailable(err) {
		t.Errorf("error %v", err)
	}
}

// Overview works with whatever is up: here no tunnel (503) and a data
// plane with one peer it has traffic counters for.
func TestOverviewPartial(t *testing.T) {
	mux := http.NewServeMux()
	json := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }
	}
	mux.HandleFunc("GET /v1/agent", json(`{"node":"edge-1","version":"v1"}`))
	mux.HandleFunc("GET /v1/tunnel/status", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "tunnel is not up", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /v1/dataplane", json(`{"mtu":1420,"segments":["10.245.0.0/16"],"stats":{"TxBytes":5}}`))
	mux.HandleFunc("GET /v1/dataplane/routes", json(`{"tun":"edgelink0","local":[{"dst":"10.245.5.0/24","kind":"node"}]}`))
	mux.HandleFunc("GET /v1/dataplane/peers", json(`[{"node":"edge-2","txBytes":100,"txPackets":2,"rxBytes":50,"rxPackets":1,"dropQueue":3}]`))
	c := New(serve(t, mux))
	defer c.Close()
	o, err := c.Overview(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if o.Node != "edge-1" || o.MTU != 1420 || o.TUN != "edgelink0" || strings.Join(o.PodCIDRs, ",") != "10.245.5.0/24" ||
		o.Unavailable["tunnel"] != "tunnel is not up" || o.Totals == nil || o.Totals.TxBytes != 5 {
		t.Errorf("overview %+v", o)
	}
	if len(o.Peers) != 1 || o.Peers[0].Path != "none" || o.Peers[0].BytesOut != 100 || o.Peers[0].Drops != 3 {
		t.Errorf("peers %+v", o.Peers)
	}
}

func TestMergePeers(t *testing.T) {
	now := time.Unix(1000, 0)
	peers := []agentapi.Peer{
		{Node: "b", Path: agentapi.PathRelayed, Relay: "relay-1", RTTMillis: 3, BytesIn: 999, LastActivity: now},
		{Node: "a", Path: "direct-tcp", RTTMillis: 0.5, BytesIn: 7, BytesOut: 8, LastActivity: now},
	}
	traffic := []agentapi.PeerTraffic{{Node: "b", RxBytes: 10, TxBytes: 20, RxPackets: 1, TxPackets: 2, DropSpoof: 1,
		LastTx: now.Add(-time.Minute), LastRx: now.Add(-time.Second)}}
	got := MergePeers(peers, traffic, true)
	if len(got) != 2 || got[0].Node != "a" || got[1].Node != "b" {
		t.Fatalf("order: %+v", got)
	}
	// With the data plane up, bytes are pod traffic only: a has none.
	if a := got[0]; a.BytesIn != 0 || !a.LastActivity.IsZero() || a.Path != "direct-tcp" {
		t.Errorf("a: %+v", a)
	}
	if b := got[1]; b.BytesIn != 10 || b.BytesOut != 20 || b.Drops != 1 || !b.LastActivity.Equal(now.Add(-time.Second)) || b.Relay != "relay-1" {
		t.Errorf("b: %+v", b)
	}
	// Without it (a relay node), the tunnel's counts.
	if got := MergePeers(peers, nil, false); got[0].BytesIn != 7 || !got[0].LastActivity.Equal(now) {
		t.Errorf("tunnel counts: %+v", got[0])
	}
}

// A ping waits as long as its own timeout (plus a margin), not the
// client's default request timeout; timeouts out of bounds are refused.
func TestPingTimeout(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ping", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(300 * time.Millisecond) // a slow probe
		_, _ = w.Write([]byte(`{"target":"edge-2","node":"edge-2","path":"direct-tcp"}`))
	})
	mux.HandleFunc("GET /v1/agent", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(300 * time.Millisecond)
		_, _ = w.Write([]byte(`{"node":"edge-1"}`))
	})
	c := New(serve(t, mux))
	defer c.Close()
	c.Timeout = 100 * time.Millisecond // stands in for the 30 s default
	if _, err := c.Agent(context.Background()); err == nil {
		t.Error("a request without deadline outlived the client's timeout")
	}
	res, err := c.Ping(context.Background(), "edge-2", 200*time.Millisecond)
	if err != nil || res.Node != "edge-2" {
		t.Errorf("ping longer than the client's timeout: %+v, %v", res, err)
	}
	for _, bad := range []time.Duration{0, 500 * time.Microsecond, 61 * time.Second} {
		if _, err := c.Ping(context.Background(), "edge-2", bad); err == nil || !strings.Contains(err.Error(), "give between 1ms and 1m0s") {
			t.Errorf("timeout %s: error %v", bad, err)
		}
	}
}

// An error from the peers request is reported, not dropped.
func TestOverviewNotesPeersError(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agent", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"node":"edge-1"}`)) })
	mux.HandleFunc("GET /v1/tunnel/status", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"peer":"12D3KooW"}`)) })
	mux.HandleFunc("GET /v1/tunnel/peers", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "peer table locked", http.StatusInternalServerError)
	})
	c := New(serve(t, mux))
	defer c.Close()
	o, err := c.Overview(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if o.Unavailable["peers"] != "peer table locked" {
		t.Errorf("unavailable %v, want the peers error", o.Unavailable)
	}
}
