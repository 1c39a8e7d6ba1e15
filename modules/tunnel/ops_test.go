package tunnel

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/unittest"
)

// The "relays reachable" diagnose check from the reservation states: a
// relay with no relays of its own to reserve on is fine, a node without
// relays is skipped with the reason, all reservations held is OK naming
// the relays, and any missing one fails naming that relay and why (its
// last error, or "no reservation yet") with a fix that names the listen
// port and every relay's advertised addresses.
func TestRelayChecks(t *testing.T) {
	tn := v1.Tunnel{ListenPort: 20006, RelayNodes: []v1.RelayNode{
		{NodeName: "relay-1", AdvertiseAddress: []string{"198.18.0.11"}},
		{NodeName: "relay-2", AdvertiseAddress: []string{"198.18.0.12", "relay-2.example.net"}},
	}}
	tests := []struct {
		name       string
		states     []p2p.ReservationState
		isRelay    bool
		wantStatus string
		wantDetail string
		wantFix    []string
	}{{
		name:       "the only relay",
		isRelay:    true,
		wantStatus: agentapi.CheckOK,
		wantDetail: "this node is the only relay",
	}, {
		name:       "no relay configured",
		wantStatus: agentapi.CheckSkip,
		wantDetail: "no relay is configured (modules.tunnel.relayNodes)",
	}, {
		name: "every reservation held",
		states: []p2p.ReservationState{
			{Node: "relay-1", Reserved: true}, {Node: "relay-2", Reserved: true},
		},
		wantStatus: agentapi.CheckOK,
		wantDetail: "reserved on relay-1, relay-2",
	}, {
		name: "one relay refuses, one not tried yet",
		states: []p2p.ReservationState{
			{Node: "relay-1", Reserved: true},
			{Node: "relay-2", LastError: "dial tcp 198.18.0.12:20006: connection refused"},
			{Node: "relay-3"},
		},
		wantStatus: agentapi.CheckFail,
		wantDetail: "no reservation on relay-2 (dial tcp 198.18.0.12:20006: connection refused); relay-3 (no reservation yet)",
		wantFix:    []string{"port 20006", "relay-1 at 198.18.0.11", "relay-2 at 198.18.0.12,relay-2.example.net"},
	}, {
		name:       "a relay node whose other relays are down still fails",
		isRelay:    true,
		states:     []p2p.ReservationState{{Node: "relay-2", LastError: "reservation refused"}},
		wantStatus: agentapi.CheckFail,
		wantDetail: "no reservation on relay-2 (reservation refused)",
		wantFix:    []string{"port 20006"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := relayChecks(tt.states, tt.isRelay, tn)
			if len(got) != 1 {
				t.Fatalf("%d checks, want 1: %+v", len(got), got)
			}
			c := got[0]
			if c.Name != "relays reachable" || c.Status != tt.wantStatus || !strings.Contains(c.Detail, tt.wantDetail) {
				t.Errorf("check %+v, want %s with detail %q", c, tt.wantStatus, tt.wantDetail)
			}
			for _, f := range tt.wantFix {
				if !strings.Contains(c.Fix, f) {
					t.Errorf("fix %q does not name %q", c.Fix, f)
				}
			}
			if tt.wantStatus != agentapi.CheckFail && c.Fix != "" {
				t.Errorf("a %s check has a fix: %q", c.Status, c.Fix)
			}
		})
	}
}

// Diagnose skips a disabled tunnel, fails a tunnel that is not up with
// where to look, and checks the relays once it is up.
func TestDiagnoseStates(t *testing.T) {
	off := v1.NewDefault()
	off.Modules.Tunnel.Enable = false
	if got := New(asAgent(t, off), nil).Diagnose(t.Context()); len(got) != 1 || got[0].Status != agentapi.CheckSkip ||
		!strings.Contains(got[0].Detail, "disabled") {
		t.Errorf("disabled: %+v", got)
	}

	c := memberConfig(t, "edge-a1")
	m := New(asAgent(t, c), nil)
	if got := m.Diagnose(t.Context()); len(got) != 1 || got[0].Status != agentapi.CheckFail || got[0].Name != "tunnel up" ||
		!strings.Contains(got[0].Fix, "journalctl") {
		t.Errorf("not up: %+v", got)
	}

	m.svc.running.Store(newRunning(t, c, true))
	t.Cleanup(func() { m.svc.running.Store(nil) })
	if got := m.Diagnose(t.Context()); len(got) != 1 || got[0].Status != agentapi.CheckOK || got[0].Detail != "this node is the only relay" {
		t.Errorf("up, the only relay: %+v", got)
	}
}

// Ping tells the cases `edgelink ping` reports differently apart: the
// tunnel is disabled or not up (ErrNotUp), the node is not a peer
// (p2p.ErrUnknownPeer), or it is a peer without a live path yet
// (p2p.ErrNoPath); each error names the node.
func TestPingErrors(t *testing.T) {
	ctx := context.Background()
	off := v1.NewDefault()
	off.Modules.Tunnel.Enable = false
	offM := New(asAgent(t, off), nil)
	if _, err := offM.Ping(ctx, "edge-a2", time.Second); !errors.Is(err, ErrNotUp) {
		t.Errorf("disabled: %v, want ErrNotUp", err)
	}

	c := memberConfig(t, "edge-a1")
	m := New(asAgent(t, c), nil)
	if _, err := m.Ping(ctx, "edge-a2", time.Second); !errors.Is(err, ErrNotUp) {
		t.Errorf("not up: %v, want ErrNotUp", err)
	}

	r := newRunning(t, c, false)
	m.svc.running.Store(r)
	t.Cleanup(func() { m.svc.running.Store(nil) })
	// edge-a2 is a member with no address and no relay: known, never reachable.
	r.paths.SetTargets([]p2p.Target{{Node: "edge-a2", ID: unittest.NewPeerID(t)}})

	tests := []struct {
		node string
		want error
	}{
		{"edge-a2", p2p.ErrNoPath},
		{"edge-zz", p2p.ErrUnknownPeer},
	}
	for _, tt := range tests {
		_, err := m.Ping(ctx, tt.node, time.Second)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.node) {
			t.Errorf("Ping(%s) = %v, want %v naming the node", tt.node, err, tt.want)
		}
		for _, other := range []error{ErrNotUp, p2p.ErrNoPath, p2p.ErrUnknownPeer} {
			if other != tt.want && errors.Is(err, other) {
				t.Errorf("Ping(%s) = %v, also %v", tt.node, err, other)
			}
		}
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// The data plane's view of the tunnel: before the tunnel is up, opening a
// stream fails with ErrNotUp, the path generation is 0 (no path) and
// counting is a no-op; an inbound stream with no forwarder to take it is
// closed (not leaked), and once the forwarder accepts, it gets the stream
// and the sending node.
func TestPacketsBeforeUpAndDelivery(t *testing.T) {
	s := NewService(asAgent(t, v1.NewDefault()), nil)
	p := s.Packets()
	w, changed, err := p.Open(context.Background(), "edge-a2")
	if !errors.Is(err, ErrNotUp) || w != nil {
		t.Errorf("Open before up: %v %v, want ErrNotUp", w, err)
	}
	select { // the forwarder asks again later
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Error("Open before up: no signal to ask again")
	}

	orphan := &closeRecorder{Reader: strings.NewReader("x")}
	s.packets.deliver("edge-a2", orphan)
	if !orphan.closed {
		t.Error("an inbound stream without a forwarder was not closed")
	}

	var gotNode string
	var gotStream io.ReadCloser
	p.Accept(func(node string, r io.ReadCloser) { gotNode, gotStream = node, r })
	in := &closeRecorder{Reader: strings.NewReader("x")}
	s.packets.deliver("edge-a3", in)
	if gotNode != "edge-a3" || gotStream != io.ReadCloser(in) || in.closed {
		t.Errorf("delivered to the forwarder: node %q stream %v closed %v", gotNode, gotStream, in.closed)
	}
}
