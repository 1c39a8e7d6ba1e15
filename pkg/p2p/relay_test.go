package p2p

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/tests/unittest"
)

func circuitTo(t *testing.T, relay, target *Host) peer.AddrInfo {
	t.Helper()
	var addrs []ma.Multiaddr
	for _, a := range relay.Addrs() {
		c, err := ma.NewMultiaddr(a.String() + "/p2p/" + relay.ID().String() + "/p2p-circuit")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, c)
	}
	return peer.AddrInfo{ID: target.ID(), Addrs: addrs}
}

// A member relay serves members (reservation, circuit, membership proven
// over the circuit, a guarded protocol through it) and refuses a
// non-member both a reservation and a circuit.
func TestRelayForMembersOnly(t *testing.T) {
	c := newCluster(t)
	r, a, b := c.host("relay-1", nil), c.host("edge-a", nil), c.host("edge-b", nil)
	rel, err := r.StartRelay()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rel.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := connect(t, a, r); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, a.Host, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatalf("member reservation: %v", err)
	}
	if err := b.Connect(ctx, circuitTo(t, r, a)); err != nil {
		t.Fatalf("member circuit: %v", err)
	}
	if node, err := a.Gate.WaitMember(ctx, b.ID()); err != nil || node != "edge-b" {
		t.Fatalf("membership over the circuit: %q %v", node, err)
	}
	conns := b.Network().ConnsToPeer(a.ID())
	if len(conns) == 0 || !strings.Contains(conns[0].RemoteMultiaddr().String(), "/p2p-circuit") {
		t.Fatalf("b's connection to a is not relayed: %v", conns)
	}
	if err := echo(ctx, b, a); err != nil {
		t.Fatalf("guarded protocol over the relay: %v", err)
	}

	rogueCA, _ := membership.InitCA(t.TempDir(), "rogue", time.Hour)
	rogue := c.host("rogue", rogueCA)
	if err := connect(t, rogue, r); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, rogue.Host, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err == nil {
		t.Error("a non-member got a reservation")
	}
	short, cancelShort := context.WithTimeout(ctx, 5*time.Second)
	defer cancelShort()
	if err := rogue.Connect(short, circuitTo(t, r, a)); err == nil {
		if err := echo(short, rogue, a); err == nil {
			t.Error("a non-member reached a member through the relay")
		}
	}
}

// A relay restart: the reservation comes back by itself, and members can
// reach the reserving node through the restarted relay.
func TestReservationSurvivesRelayRestart(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("edge-a", nil), c.host("edge-b", nil)
	startRelay := func(port string) (*Host, func()) {
		r := c.hostAt("relay-1", []string{"/ip4/127.0.0.1/tcp/" + port})
		rel, err := r.StartRelay()
		if err != nil {
			t.Fatal(err)
		}
		return r, func() { rel.Close(); r.Close() }
	}
	r, stop := startRelay("0")
	port := strings.Split(r.Addrs()[0].String(), "/")[4]
	keeper := a.KeepReservations([]RelayTarget{{Node: "relay-1", Addrs: r.Addrs()}}, nil)
	t.Cleanup(keeper.Close)
	waitReserved := func(minRenewals int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st := keeper.States()[0]
			if st.Reserved && st.Renewals >= minRenewals {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no reservation: %+v", st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitReserved(1)

	stop()
	time.Sleep(time.Second)
	r2, stop2 := startRelay(port) // same identity, same address
	t.Cleanup(stop2)
	start := time.Now()
	waitReserved(2)
	t.Logf("reservation back %s after the relay restarted", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, circuitTo(t, r2, a)); err != nil {
		t.Fatalf("circuit through the restarted relay: %v", err)
	}
	if err := echo(ctx, b, a); err != nil {
		t.Fatal(err)
	}
}

// A member asking a relay for circuits to invented peer IDs gets none, and
// the relay keeps nothing for them: no membership state, no waiting (each
// CONNECT used to hold an entry forever and a goroutine for proveTimeout).
func TestRelayConnectToInventedPeers(t *testing.T) {
	c := newCluster(t)
	r, a := c.host("relay-1", nil), c.host("edge-a", nil)
	rel, err := r.StartRelay()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rel.Close() })
	if err := connect(t, a, r); err != nil {
		t.Fatal(err)
	}
	before := gatePeers(r.Gate)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		invented := unittest.NewPeerID(t)
		info := peer.AddrInfo{ID: invented, Addrs: circuitTo(t, r, a).Addrs}
		if err := a.Connect(ctx, info); err == nil {
			t.Fatalf("CONNECT %d: a circuit to invented peer %s", i, invented)
		}
	}
	if after := gatePeers(r.Gate); after != before {
		t.Errorf("the relay's gate tracks %d peers after 20 CONNECTs to invented IDs, %d before", after, before)
	}
	if ctx.Err() != nil {
		t.Error("the CONNECTs took the whole 20 s: the relay waited for peers that do not exist")
	}
}

func gatePeers(g *Gate) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.peers)
}
