package p2p

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/tests/unittest"
)

// fastPaths shortens the path manager's rounds for a test.
func fastPaths(t *testing.T) {
	t.Helper()
	oi, og := probeInterval, dialGrace
	probeInterval, dialGrace = 100*time.Millisecond, 100*time.Millisecond
	t.Cleanup(func() { probeInterval, dialGrace = oi, og })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodes(sts []PeerStatus) string {
	var out []string
	for _, st := range sts {
		out = append(out, st.Node)
	}
	return strings.Join(out, ",")
}

// SetTargets as the tunnel module calls it when members come and go:
// this node itself and targets without a peer ID are ignored; a node no
// longer listed is let go and its connection closed, unless it is a
// relay (circuits ride on it); a node listed under a new peer ID is
// dialed anew, and a peer that proves another node name than the target
// is disconnected and never becomes the target's path. After Close,
// SetTargets changes nothing.
func TestSetTargets(t *testing.T) {
	fastPaths(t)
	c := newCluster(t)
	a, b, r, d := c.host("edge-a", nil), c.host("edge-b", nil), c.host("relay-1", nil), c.host("edge-d", nil)
	pm := a.NewPathManager(func() []RelayRef { return []RelayRef{{ID: r.ID(), Addrs: r.Addrs()}} }, PathOptions{})
	t.Cleanup(pm.Close)

	pm.SetTargets([]Target{
		{Node: "edge-a", ID: a.ID(), Addrs: a.Addrs()},
		{Node: "edge-c"},
		{Node: "edge-b", ID: b.ID(), Addrs: b.Addrs()},
		{Node: "relay-1", ID: r.ID(), Addrs: r.Addrs()},
	})
	if got := nodes(pm.Status()); got != "edge-b,relay-1" {
		t.Fatalf("targets %s, want edge-b,relay-1", got)
	}
	waitFor(t, "paths to edge-b and relay-1", func() bool { return pm.pathGen("edge-b") != 0 && pm.pathGen("relay-1") != 0 })
	st := statusOf(t, pm, "edge-b")
	if st.Path != PathDirectTCP || st.Peer != b.ID().String() || st.PathChanges != 1 || len(st.Conns) == 0 {
		t.Fatalf("edge-b: %+v", st)
	}
	if res, err := pm.Ping(context.Background(), "edge-b", 5*time.Second); err != nil || res.Path != PathDirectTCP {
		t.Fatalf("ping edge-b: %+v %v", res, err)
	}

	// edge-b now names another peer, one that proves "edge-d"; relay-1
	// is no longer a target.
	pm.SetTargets([]Target{{Node: "edge-b", ID: d.ID(), Addrs: d.Addrs()}})
	waitFor(t, "the old edge-b let go", func() bool { return a.Network().Connectedness(b.ID()) != network.Connected })
	if a.Network().Connectedness(r.ID()) != network.Connected {
		t.Error("the connection to a relay was closed when it stopped being a target")
	}
	waitFor(t, "the wrong peer refused", func() bool {
		return strings.Contains(statusOf(t, pm, "edge-b").LastError, `proved node "edge-d", not "edge-b"`)
	})
	st = statusOf(t, pm, "edge-b")
	if got := nodes(pm.Status()); got != "edge-b" || st.Peer != d.ID().String() || st.Path != PathNone || st.PathChanges != 0 || pm.pathGen("edge-b") != 0 {
		t.Fatalf("after the new identity: targets %s, edge-b %+v", got, st)
	}
	if _, err := pm.Ping(context.Background(), "edge-b", time.Second); err == nil {
		t.Error("a ping reached a peer that proved another node name")
	}

	pm.Close()
	pm.SetTargets([]Target{{Node: "edge-b", ID: b.ID(), Addrs: b.Addrs()}, {Node: "relay-1", ID: r.ID()}})
	if st := pm.Status(); len(st) != 1 || st[0].Peer != d.ID().String() {
		t.Errorf("SetTargets after Close changed the targets: %+v", st)
	}
}

// tcpAnswers, which decides whether a direct QUIC path moves to TCP: only
// a TCP address of the same host as the QUIC connection counts, whether
// the target lists it or the peerstore learned it, and only if something
// accepts a TCP connection there.
func TestTCPAnswers(t *testing.T) {
	c := newCluster(t)
	a := c.host("edge-a", nil)
	pm := a.NewPathManager(func() []RelayRef { return nil }, PathOptions{})
	t.Cleanup(pm.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	tcp := func(ip string, port int) ma.Multiaddr {
		return ma.StringCast("/ip4/" + ip + "/tcp/" + strconv.Itoa(port))
	}

	for _, tc := range []struct {
		name       string
		quicFrom   string // the QUIC connection's remote IP
		addrs      []ma.Multiaddr
		peerstored []ma.Multiaddr
		want       bool
	}{
		{"listed TCP address answers", "127.0.0.1", []ma.Multiaddr{tcp("127.0.0.1", port)}, nil, true},
		{"learned TCP address answers", "127.0.0.1", nil, []ma.Multiaddr{tcp("127.0.0.1", port)}, true},
		{"TCP on another host", "127.0.0.2", []ma.Multiaddr{tcp("127.0.0.1", port)}, nil, false},
		{"nothing listens", "127.0.0.1", []ma.Multiaddr{tcp("127.0.0.1", closedPort)}, nil, false},
		{"no TCP address", "127.0.0.1", []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/" + strconv.Itoa(port) + "/quic-v1")}, nil, false},
		{"second address answers", "127.0.0.1", []ma.Multiaddr{tcp("127.0.0.1", closedPort), tcp("127.0.0.1", port)}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := unittest.NewPeerID(t)
			a.Peerstore().AddAddrs(id, tc.peerstored, time.Minute)
			quic := conn("/ip4/"+tc.quicFrom+"/udp/4242/quic-v1", network.DirOutbound, 0)
			if got := pm.tcpAnswers(context.Background(), &Target{Node: "edge-b", ID: id, Addrs: tc.addrs}, quic); got != tc.want {
				t.Errorf("tcpAnswers = %v, want %v", got, tc.want)
			}
		})
	}
}
