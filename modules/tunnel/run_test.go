package tunnel

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/unittest"
)

// An edge node that restarts while its relay is unreachable (the site's
// uplink is down) comes up from its peer cache: the cached members are
// the path manager's targets at once, the relay is kept under the peer ID
// the cache remembers, the status API shows the tunnel up with the
// members it knows, diagnose names the relay without a reservation, and
// the cache is not rewritten when nothing new was learned. When the agent
// stops, Run returns without error and the status API says the tunnel is
// down again.
func TestRunFromCacheWithRelayDown(t *testing.T) {
	c := memberConfig(t, "edge-a1")
	c.Modules.Tunnel.RelayNodes = []v1.RelayNode{{NodeName: "relay-1", AdvertiseAddress: []string{"127.0.0.1"}}}
	relayID, a2 := unittest.NewPeerID(t).String(), unittest.NewPeerID(t).String()
	m := New(asAgent(t, c), nil)
	// Any free port (which a config file cannot ask for); the relay at
	// 127.0.0.1:0 never answers.
	c.Modules.Tunnel.ListenPort = 0
	cache := m.svc.cachePath()
	if err := saveCache(cache, map[string]p2p.PeerRecord{
		"relay-1": {Node: "relay-1", Peer: relayID, Seen: 100},
		"edge-a2": {Node: "edge-a2", Peer: a2, Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, Seen: 100},
	}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.svc.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of its context ending")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })

	var peers []p2p.PeerStatus
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rec := get(t, m.svc, "/v1/tunnel/peers"); rec.Code == http.StatusOK {
			peers = nil
			if err := json.Unmarshal(rec.Body.Bytes(), &peers); err != nil {
				t.Fatal(err)
			}
			if len(peers) == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cached members never became targets: %+v", peers)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]string{"edge-a2": a2, "relay-1": relayID}
	for _, p := range peers {
		if want[p.Node] != p.Peer {
			t.Errorf("target %s has peer %s, want %s", p.Node, p.Peer, want[p.Node])
		}
	}

	rec := get(t, m.svc, "/v1/tunnel/status")
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("status: %d %v %q", rec.Code, err, rec.Body)
	}
	if st.Node != "edge-a1" || st.Relay || st.KnownPeers != 2 || len(st.Reservations) != 1 ||
		st.Reservations[0].Node != "relay-1" || st.Reservations[0].Relay != relayID || st.Reservations[0].Reserved {
		t.Errorf("status %+v", st)
	}
	if got := m.Diagnose(t.Context()); len(got) != 1 || got[0].Status != agentapi.CheckFail || !strings.Contains(got[0].Detail, "relay-1") {
		t.Errorf("diagnose with the relay down: %+v", got)
	}

	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if rec := get(t, m.svc, "/v1/tunnel/status"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status after Run returned: %d", rec.Code)
	}
	if after, err := os.ReadFile(cache); err != nil || string(after) != string(before) {
		t.Errorf("peers.json changed with nothing new learned:\n%s\nwas\n%s", after, before)
	}
}

// Run refuses to start, before opening any port, when the node's
// identity or membership cannot work, and says which setting is wrong.
func TestRunFailsEarly(t *testing.T) {
	tests := []struct {
		name    string
		spoil   func(c *v1.AgentConfig)
		wantErr string
	}{
		{"identity file is a directory", func(c *v1.AgentConfig) {
			c.Modules.Tunnel.IdentityFile = t.TempDir()
		}, "identity key"},
		{"no certificate", func(c *v1.AgentConfig) {
			c.Modules.Tunnel.CertFile = filepath.Join(t.TempDir(), "node.crt")
		}, "modules.tunnel.certFile/keyFile"},
		{"identity readable by others", func(c *v1.AgentConfig) {
			if err := os.Chmod(c.Modules.Tunnel.IdentityFile, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "chmod 600"},
		{"certificate of another identity (identity file lost)", func(c *v1.AgentConfig) {
			c.Modules.Tunnel.IdentityFile = filepath.Join(t.TempDir(), "new-identity.key")
		}, "would be refused by other members"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := memberConfig(t, "edge-a1")
			tt.spoil(c)
			s := NewService(asAgent(t, c), nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := s.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Run: %v, want an error saying %q", err, tt.wantErr)
			}
			if ctx.Err() != nil {
				t.Error("Run waited for its context instead of failing")
			}
			if s.running.Load() != nil {
				t.Error("the status API sees a tunnel that never came up")
			}
		})
	}
}
