package p2p

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/tests/unittest"
)

// relayHost starts a member host running the relay service; stop (also
// run at cleanup) closes both.
func relayHost(t *testing.T, c *cluster, node string, issuer *membership.CA) (*Host, func()) {
	t.Helper()
	r := c.host(node, issuer)
	rel, err := r.StartRelay()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { rel.Close(); r.Close() }) }
	t.Cleanup(stop)
	return r, stop
}

func stateOf(k *ReservationKeeper, node string) ReservationState {
	for _, st := range k.States() {
		if st.Node == node {
			return st
		}
	}
	return ReservationState{}
}

func tcpAddrs(h *Host) []ma.Multiaddr {
	return slices.DeleteFunc(slices.Clone(h.Addrs()), func(a ma.Multiaddr) bool { k, _ := Classify(a); return k != PathDirectTCP })
}

// Relays the keeper must not hold a reservation on, each with the reason
// a user reads in `edgelink status`: one that proves another node name
// than configured, an address that answers with this node's own identity
// (the same listenPort everywhere behind one NAT), a relay without a TCP
// address to learn its ID from, an address where nothing listens, a
// member that runs no relay service, and a relay that is not a member.
func TestKeeperRefusesWrongRelays(t *testing.T) {
	c := newCluster(t)
	a := c.host("edge-a", nil)
	other, _ := relayHost(t, c, "relay-2", nil)
	plain := c.host("relay-3", nil) // a member, no relay service
	rogueCA, err := membership.InitCA(filepath.Join(c.dir, "rogue-ca"), "rogue", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := relayHost(t, c, "relay-1", rogueCA)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var quicOnly []ma.Multiaddr
	for _, addr := range other.Addrs() {
		if k, _ := Classify(addr); k == PathDirectQUIC {
			quicOnly = append(quicOnly, addr)
		}
	}

	for _, tc := range []struct {
		name    string
		target  RelayTarget
		wantErr string
	}{
		{"proves another node name", RelayTarget{Node: "relay-1", ID: other.ID(), Addrs: other.Addrs()},
			`proved node "relay-2", configured as "relay-1"`},
		{"own identity", RelayTarget{Node: "relay-1", Addrs: tcpAddrs(a)}, "answers with this node's own identity"},
		{"no TCP address", RelayTarget{Node: "relay-1", Addrs: quicOnly}, "no TCP address among"},
		{"nothing listens", RelayTarget{Node: "relay-1", Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(closedPort))}},
			"learning the peer ID of relay relay-1"},
		{"no relay service", RelayTarget{Node: "relay-3", ID: plain.ID(), Addrs: plain.Addrs()}, "protocol"},
		{"not a member", RelayTarget{Node: "relay-1", Addrs: rogue.Addrs()}, membership.ErrNotMember.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reserved sync.Map
			k := a.KeepReservations([]RelayTarget{tc.target}, func(_ context.Context, p peer.ID) { reserved.Store(p, true) })
			defer k.Close()
			waitFor(t, "a refusal", func() bool { return stateOf(k, tc.target.Node).LastError != "" })
			st := stateOf(k, tc.target.Node)
			if !strings.Contains(st.LastError, tc.wantErr) {
				t.Errorf("last error %q, want it to contain %q", st.LastError, tc.wantErr)
			}
			if st.Reserved || st.Renewals != 0 || len(k.Reserved()) != 0 {
				t.Errorf("reservation held on a wrong relay: %+v, reserved %v", st, k.Reserved())
			}
			// Whoever answers at a relay's address is not the relay until
			// it proved membership under the relay's name.
			if tc.target.ID == "" && st.Relay != "" {
				t.Errorf("peer %s recorded as relay %s without proving it", st.Relay, tc.target.Node)
			}
			reserved.Range(func(p, _ any) bool { t.Errorf("onReserved ran for %s", p); return true })
		})
	}
}

// A relay that comes back with another identity under its configured
// name and address (its key was lost): the peer ID the keeper knew fails
// to connect, the keeper learns the new one after two failures and holds
// the reservation there, and onReserved is told the new ID.
func TestKeeperRelearnsRelayIdentity(t *testing.T) {
	c := newCluster(t)
	a := c.host("edge-a", nil)
	r, _ := relayHost(t, c, "relay-1", nil)
	stale := unittest.NewPeerID(t)
	got := make(chan peer.ID, 16)
	k := a.KeepReservations([]RelayTarget{{Node: "relay-1", ID: stale, Addrs: r.Addrs()}}, func(_ context.Context, p peer.ID) { got <- p })
	t.Cleanup(k.Close)
	waitFor(t, "the reservation under the new identity", func() bool { return stateOf(k, "relay-1").Reserved })
	st := stateOf(k, "relay-1")
	if st.Relay != r.ID() || st.LastError != "" || st.Renewals != 1 || !st.Expires.After(time.Now()) {
		t.Fatalf("state %+v, want reserved on %s", st, r.ID())
	}
	if p := <-got; p != r.ID() {
		t.Errorf("onReserved told %s, want %s", p, r.ID())
	}
	if refs := k.Reserved(); len(refs) != 1 || refs[0].ID != r.ID() {
		t.Errorf("reserved relays %+v", refs)
	}
}

// Two relays, one lost: States lists both sorted by node name; the lost
// one shows not reserved with the reason, and Reserved (the relays
// circuits go through) keeps only the live one.
func TestKeeperLosesOneOfTwoRelays(t *testing.T) {
	c := newCluster(t)
	a := c.host("edge-a", nil)
	r1, _ := relayHost(t, c, "relay-1", nil)
	// relay-2 on TCP only: once it is gone, a dial fails at once (a QUIC
	// dial to a dead address waits for the dial timeout).
	r2 := c.hostAt("relay-2", []string{"/ip4/127.0.0.1/tcp/0"})
	rel2, err := r2.StartRelay()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop2 := func() { once.Do(func() { rel2.Close(); r2.Close() }) }
	t.Cleanup(stop2)
	k := a.KeepReservations([]RelayTarget{
		{Node: "relay-2", ID: r2.ID(), Addrs: r2.Addrs()},
		{Node: "relay-1", ID: r1.ID(), Addrs: r1.Addrs()},
	}, nil)
	t.Cleanup(k.Close)
	waitFor(t, "both reservations", func() bool { return len(k.Reserved()) == 2 })
	if sts := k.States(); len(sts) != 2 || sts[0].Node != "relay-1" || sts[1].Node != "relay-2" {
		t.Fatalf("states not sorted by node: %+v", sts)
	}

	stop2()
	waitFor(t, "relay-2 lost", func() bool { return !stateOf(k, "relay-2").Reserved })
	if st := stateOf(k, "relay-2"); st.LastError == "" || st.Relay != r2.ID() {
		t.Errorf("lost relay: %+v", st)
	}
	if st := stateOf(k, "relay-1"); !st.Reserved || st.LastError != "" {
		t.Errorf("the other relay: %+v", st)
	}
	refs := k.Reserved()
	if len(refs) != 1 || refs[0].ID != r1.ID() || !slices.EqualFunc(refs[0].Addrs, r1.Addrs(), ma.Multiaddr.Equal) {
		t.Errorf("reserved relays %+v, want relay-1 only", refs)
	}
}
