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
