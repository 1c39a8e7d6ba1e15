package p2p

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// fakeConn is a connection as the path manager sees it (unit tests of
// its choices only; the e2e tests use real ones).
type fakeConn struct {
	network.Conn
	remote ma.Multiaddr
	stat   network.ConnStats
	closed bool
}

func (c *fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }
func (c *fakeConn) Stat() network.ConnStats       { return c.stat }
func (c *fakeConn) IsClosed() bool                { return c.closed }
func (c *fakeConn) Close() error                  { c.closed = true; return nil }

const relayA = "12D3KooWPFHX6VsiWzAR3yKp1r3rBjULXy1aPRxgKChE6WD2Kjaw"

func conn(addr string, dir network.Direction, age time.Duration) *fakeConn {
	return &fakeConn{remote: ma.StringCast(addr), stat: network.ConnStats{Stats: network.Stats{Direction: dir, Opened: time.Now().Add(-age)}}}
}

func run(c *fakeConn, rtt time.Duration) *probeRun {
	pr := &probeRun{connProbe: connProbe{conn: c}}
	pr.alive.Store(true)
	pr.rtt.Store(int64(rtt))
	return pr
}

func TestClassify(t *testing.T) {
	for addr, want := range map[string]PathKind{
		"/ip4/198.18.0.101/tcp/20006":                                       PathDirectTCP,
		"/ip4/198.18.0.101/udp/20006/quic-v1":                               PathDirectQUIC,
		"/ip4/198.18.0.11/udp/20006/quic-v1/p2p/" + relayA + "/p2p-circuit": PathRelayed,
		"/ip6/fd00::1/tcp/20006/p2p/" + relayA + "/p2p-circuit":             PathRelayed,
	} {
		kind, relay := Classify(ma.StringCast(addr))
		if kind != want {
			t.Errorf("%s: %s, want %s", addr, kind, want)
		}
		if (kind == PathRelayed) != (relay.String() == relayA) {
			t.Errorf("%s: relay %q", addr, relay)
		}
	}
}

// Direct beats relayed whatever the RTT; TCP beats QUIC; among equals
// the current connection stays (no flapping), else the lower RTT wins.
func TestBetter(t *testing.T) {
	relayed := run(conn("/ip4/198.18.0.11/udp/1/quic-v1/p2p/"+relayA+"/p2p-circuit", network.DirOutbound, 0), time.Microsecond)
	quic := run(conn("/ip4/198.18.0.101/udp/1/quic-v1", network.DirOutbound, 0), 5*time.Millisecond)
	tcp := run(conn("/ip4/198.18.0.101/tcp/1", network.DirOutbound, 0), 9*time.Millisecond)
	quic2 := run(conn("/ip4/198.18.0.102/udp/1/quic-v1", network.DirOutbound, 0), time.Millisecond)
	for _, tc := range []struct {
		name    string
		a, b    *probeRun
		current network.Conn
		want    bool
	}{
		{"direct over relayed despite RTT", quic, relayed, nil, true},
		{"relayed never over direct", relayed, quic, relayed.conn, false},
		{"TCP over QUIC", tcp, quic, quic.conn, true},
		{"lower RTT among equals", quic2, quic, nil, true},
		{"current stays among equals", quic2, quic, quic.conn, false},
	} {
		if got := better(tc.a, tc.b, tc.current); got != tc.want {
			t.Errorf("%s: better = %v", tc.name, got)
		}
	}
}

// Both ends keep the same duplicate: the one the smaller peer ID dialed.
// Connections through different relays and of different kinds stay.
func TestPruneDuplicates(t *testing.T) {
	circuit := "/ip4/198.18.0.11/udp/1/quic-v1/p2p/" + relayA + "/p2p-circuit"
	mine := conn(circuit, network.DirOutbound, time.Second)
	theirs := conn(circuit, network.DirInbound, 2*time.Second)
	direct := conn("/ip4/198.18.0.101/udp/1/quic-v1", network.DirInbound, 0)
	dead := conn(circuit, network.DirInbound, 0)
	probes := map[network.Conn]*probeRun{mine: run(mine, 0), theirs: run(theirs, 0), direct: run(direct, 0), dead: run(dead, 0)}
	probes[dead].alive.Store(false)

	pruneDuplicates(probes, true) // we are the smaller ID: our outbound one stays
	if mine.closed || !theirs.closed || direct.closed || dead.closed {
		t.Fatalf("leader kept the wrong ones: mine closed %v, theirs %v, direct %v, dead %v", mine.closed, theirs.closed, direct.closed, dead.closed)
	}

	// The other end sees the same two with directions swapped.
	mine2 := conn(circuit, network.DirInbound, time.Second)
	theirs2 := conn(circuit, network.DirOutbound, 2*time.Second)
	pruneDuplicates(map[network.Conn]*probeRun{mine2: run(mine2, 0), theirs2: run(theirs2, 0)}, false)
	if mine2.closed || !theirs2.closed {
		t.Fatalf("follower closed the survivor: inbound closed %v, outbound %v", mine2.closed, theirs2.closed)
	}
}
