package p2p

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelink/edgelink/tests/unittest"
)

// testManager is a path manager without a network: enough for record,
// Status, pathGen, Open and Ping's early errors. members maps the
// peers that proved membership to their node names (nodeOf names relays
// by them).
func testManager(members map[peer.ID]string) *PathManager {
	g := &Gate{peers: map[peer.ID]*peerState{}}
	for p, node := range members {
		done := make(chan struct{})
		close(done)
		g.peers[p] = &peerState{node: node, done: done, started: true, finished: true}
	}
	return &PathManager{h: &Host{Gate: g}, peers: map[string]*peerPath{}}
}

// addPeer registers a target as SetTargets would, without its goroutine.
func addPeer(m *PathManager, t Target) *peerPath {
	pp := newPeerPath(t, PathNone)
	pp.cancel = func() {}
	m.peers[t.Node] = pp
	return pp
}

func statusOf(t *testing.T, m *PathManager, node string) PeerStatus {
	t.Helper()
	for _, st := range m.Status() {
		if st.Node == node {
			return st
		}
	}
	t.Fatalf("no status for %s in %+v", node, m.Status())
	return PeerStatus{}
}

// The dial and upgrade backoff: due at once when new or reset, doubles
// from min on each failure, never beyond max.
func TestBackoff(t *testing.T) {
	now := time.Unix(1764200000, 0)
	b := backoff{min: time.Second, max: 5 * time.Second}
	if !b.due(now) {
		t.Fatal("a fresh backoff is not due")
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		b.fail(now)
		if b.cur != want {
			t.Fatalf("after %d failures: wait %s, want %s", i+1, b.cur, want)
		}
		if b.due(now.Add(want - time.Nanosecond)) {
			t.Fatalf("after %d failures: due before %s", i+1, want)
		}
		if !b.due(now.Add(want)) {
			t.Fatalf("after %d failures: not due after %s", i+1, want)
		}
	}
	b.reset()
	if !b.due(now) {
		t.Fatal("not due right after reset")
	}
	if b.fail(now); b.cur != time.Second {
		t.Fatalf("first failure after reset waits %s, want the minimum", b.cur)
	}
}

// The choice rules beyond TestBetter: the current connection wins among
// equals even with a worse RTT, whichever side it is on; a connection of
// an unknown kind never beats a known one.
func TestBetterKeepsCurrentAmongEquals(t *testing.T) {
	fast := run(conn("/ip4/198.18.0.101/tcp/1", network.DirOutbound, 0), time.Millisecond)
	slow := run(conn("/ip4/198.18.0.102/tcp/1", network.DirOutbound, 0), 50*time.Millisecond)
	relayed := run(conn("/ip4/198.18.0.11/tcp/1/p2p/"+relayA+"/p2p-circuit", network.DirInbound, 0), time.Millisecond)
	for _, tc := range []struct {
		name    string
		a, b    *probeRun
		current network.Conn
		want    bool
	}{
		{"current stays though slower", slow, fast, slow.conn, true},
		{"slower challenger loses to current", fast, slow, slow.conn, false},
		{"no current: lower RTT", fast, slow, nil, true},
		{"no current: higher RTT loses", slow, fast, nil, false},
		{"relayed current loses to direct", fast, relayed, relayed.conn, true},
		{"equal RTT, no current: no switch", fast, fast, nil, false},
	} {
		if got := better(tc.a, tc.b, tc.current); got != tc.want {
			t.Errorf("%s: better = %v, want %v", tc.name, got, tc.want)
		}
	}
	if PathNone.rank() <= PathRelayed.rank() {
		t.Errorf("rank of %s is %d, not after relayed (%d)", PathNone, PathNone.rank(), PathRelayed.rank())
	}
}

// pruneDuplicates per group: the oldest connection in the kept direction
// survives; a group with none in that direction is left alone (closing
// all would cut the path); single connections and dead ones stay.
func TestPruneDuplicatesGroups(t *testing.T) {
	circuitA := "/ip4/198.18.0.11/tcp/1/p2p/" + relayA + "/p2p-circuit"
	direct := "/ip4/198.18.0.101/tcp/20006"
	type c struct {
		addr   string
		dir    network.Direction
		age    time.Duration
		dead   bool
		closed bool // want
	}
	for _, tc := range []struct {
		name   string
		leader bool
		conns  []c
	}{
		{"leader keeps its oldest outbound", true, []c{
			{direct, network.DirOutbound, time.Second, false, true},
			{direct, network.DirOutbound, 3 * time.Second, false, false},
			{direct, network.DirInbound, 5 * time.Second, false, true},
		}},
		{"follower keeps the oldest inbound", false, []c{
			{direct, network.DirInbound, time.Second, false, true},
			{direct, network.DirInbound, 2 * time.Second, false, false},
			{direct, network.DirOutbound, 9 * time.Second, false, true},
		}},
		{"none in the kept direction: all stay", true, []c{
			{direct, network.DirInbound, time.Second, false, false},
			{direct, network.DirInbound, 2 * time.Second, false, false},
		}},
		{"direct and circuit are different routes", true, []c{
			{direct, network.DirInbound, time.Second, false, false},
			{circuitA, network.DirInbound, time.Second, false, false},
		}},
		{"a dead duplicate is not counted", false, []c{
			{circuitA, network.DirOutbound, time.Second, false, false},
			{circuitA, network.DirInbound, time.Second, true, false},
		}},
	} {
		probes := map[network.Conn]*probeRun{}
		var fakes []*fakeConn
		for _, cc := range tc.conns {
			f := conn(cc.addr, cc.dir, cc.age)
			pr := run(f, 0)
			pr.alive.Store(!cc.dead)
			probes[f] = pr
			fakes = append(fakes, f)
		}
		pruneDuplicates(probes, tc.leader)
		for i, cc := range tc.conns {
			if fakes[i].closed != cc.closed {
				t.Errorf("%s: connection %d (%s, %s, age %s) closed %v, want %v", tc.name, i, cc.addr, cc.dir, cc.age, fakes[i].closed, cc.closed)
			}
		}
	}
}

// record and Status as a user sees them in `edgelink status`: path
// changes are counted when the kind or the relay changes, not when a
// connection is replaced by another of the same route; the path
// generation (what senders watch) changes on every new connection and
// is 0 while there is no path; relays are named by the node they proved.
func TestRecordPathTransitions(t *testing.T) {
	relayAID, _ := peer.Decode(relayA)
	relayB := unittest.NewPeerID(t)
	target := unittest.NewPeerID(t)
	m := testManager(map[peer.ID]string{relayAID: "relay-1"})
	tgt := &Target{Node: "edge-b", ID: target}
	pp := addPeer(m, *tgt)

	viaA := conn("/ip4/198.18.0.11/tcp/1/p2p/"+relayA+"/p2p-circuit", network.DirOutbound, 0)
	viaA2 := conn("/ip4/198.18.0.11/tcp/2/p2p/"+relayA+"/p2p-circuit", network.DirOutbound, 0)
	viaB := conn("/ip4/198.18.0.12/tcp/1/p2p/"+relayB.String()+"/p2p-circuit", network.DirInbound, 0)
	direct := conn("/ip4/198.18.0.101/tcp/20006", network.DirOutbound, 0)
	direct2 := conn("/ip4/198.18.0.101/udp/20006/quic-v1", network.DirInbound, 0)
	probes := map[network.Conn]*probeRun{}
	for _, c := range []*fakeConn{viaA, viaA2, viaB, direct, direct2} {
		probes[c] = run(c, 3*time.Millisecond)
	}

	var prev network.Conn
	seen := map[uint64]int{} // path generations handed out, by step
	for i, step := range []struct {
		cur     *fakeConn
		path    PathKind
		relay   string
		changes int
	}{
		{nil, PathNone, "", 0},
		{viaA, PathRelayed, "relay-1", 1},
		{viaA, PathRelayed, "relay-1", 1},       // same connection: nothing new
		{viaA2, PathRelayed, "relay-1", 1},      // another circuit through the same relay: no path change
		{viaB, PathRelayed, relayB.String(), 2}, // another relay, not a member: named by its peer ID
		{direct, PathDirectTCP, "", 3},          // upgraded
		{nil, PathNone, "", 4},                  // lost
		{direct2, PathDirectQUIC, "", 5},        // back, on QUIC
		{direct, PathDirectTCP, "", 6},          // QUIC to TCP
		{viaA, PathRelayed, "relay-1", 7},       // direct died
		{viaA, PathRelayed, "relay-1", 7},       // steady
	} {
		var cur network.Conn
		if step.cur != nil {
			cur = step.cur
		}
		genBefore := m.pathGen("edge-b")
		m.record(pp, tgt, prev, cur, probes, 0, nil)
		kept := cur != nil && cur == prev
		prev = cur
		st := statusOf(t, m, "edge-b")
		if st.Path != step.path || st.Relay != step.relay || st.PathChanges != step.changes {
			t.Fatalf("step %d: path %s relay %q changes %d, want %s %q %d", i, st.Path, st.Relay, st.PathChanges, step.path, step.relay, step.changes)
		}
		if step.cur != nil && (st.RemoteAddr != step.cur.remote.String() || st.RTTMillis != 3) {
			t.Fatalf("step %d: remote %q rtt %v ms, want %s 3 ms", i, st.RemoteAddr, st.RTTMillis, step.cur.remote)
		}
		if step.cur == nil && (st.RemoteAddr != "" || st.RTTMillis != 0) {
			t.Fatalf("step %d: no path but remote %q rtt %v", i, st.RemoteAddr, st.RTTMillis)
		}
		gen := m.pathGen("edge-b")
		switch {
		case cur == nil:
			if gen != 0 {
				t.Fatalf("step %d: no path but generation %d", i, gen)
			}
		case kept:
			if gen != genBefore {
				t.Fatalf("step %d: the same connection moved from generation %d to %d", i, genBefore, gen)
			}
		default:
			if j, ok := seen[gen]; ok || gen == 0 {
				t.Fatalf("step %d: a new connection got generation %d (step %d had it)", i, gen, j)
			}
			seen[gen] = i
		}
	}
}

// What Status shows besides the path: every connection with its route,
// direction and liveness, sorted; probe traffic split in and out plus the
// data plane's counted bytes; the latest activity of either; the last
// error stays until another replaces it; peers come sorted by node.
func TestStatusConnsAndCounters(t *testing.T) {
	relayAID, _ := peer.Decode(relayA)
	m := testManager(map[peer.ID]string{relayAID: "relay-1"})
	tgt := &Target{Node: "edge-b", ID: unittest.NewPeerID(t)}
	pp := addPeer(m, *tgt)
	addPeer(m, Target{Node: "edge-a", ID: unittest.NewPeerID(t)})

	viaA := conn("/ip4/198.18.0.11/tcp/1/p2p/"+relayA+"/p2p-circuit", network.DirInbound, 0)
	direct := conn("/ip4/198.18.0.101/tcp/20006", network.DirOutbound, 0)
	dead := conn("/ip4/198.18.0.101/udp/20006/quic-v1", network.DirOutbound, 0)
	probes := map[network.Conn]*probeRun{viaA: run(viaA, 2*time.Millisecond), direct: run(direct, time.Millisecond), dead: run(dead, 0)}
	probes[dead].alive.Store(false)
	lastOK := time.Unix(1764200000, 0)
	probes[viaA].bytes.Store(160)
	probes[viaA].lastOK.Store(lastOK.UnixNano())
	probes[direct].bytes.Store(40)
	probes[direct].lastOK.Store(lastOK.Add(-time.Minute).UnixNano())

	boom := "connect to edge-b: boom"
	m.record(pp, tgt, nil, direct, probes, 2, &boom)
	st := statusOf(t, m, "edge-b")
	want := []ConnStatus{ // sorted by remote address
		{Path: PathDirectTCP, RemoteAddr: direct.remote.String(), Direction: "Outbound", Alive: true, RTTMillis: 1},
		{Path: PathDirectQUIC, RemoteAddr: dead.remote.String(), Direction: "Outbound", Alive: false},
		{Path: PathRelayed, Relay: "relay-1", RemoteAddr: viaA.remote.String(), Direction: "Inbound", Alive: true, RTTMillis: 2},
	}
	if len(st.Conns) != len(want) {
		t.Fatalf("conns %+v, want %+v", st.Conns, want)
	}
	for i := range want {
		if st.Conns[i] != want[i] {
			t.Errorf("conn %d: %+v, want %+v", i, st.Conns[i], want[i])
		}
	}
	if st.BytesIn != 100 || st.BytesOut != 100 || !st.LastActivity.Equal(lastOK) || st.LastError != boom || st.Upgrades != 2 {
		t.Errorf("bytes %d/%d, last activity %s, error %q, upgrades %d", st.BytesIn, st.BytesOut, st.LastActivity, st.LastError, st.Upgrades)
	}

	// No new error: the last one stays; a new one replaces it.
	m.record(pp, tgt, direct, direct, probes, 2, nil)
	if st := statusOf(t, m, "edge-b"); st.LastError != boom {
		t.Errorf("last error %q after a round without one, want %q", st.LastError, boom)
	}
	other := "upgrade to direct: no"
	m.record(pp, tgt, direct, direct, probes, 3, &other)
	if st := statusOf(t, m, "edge-b"); st.LastError != other || st.Upgrades != 3 {
		t.Errorf("last error %q upgrades %d, want %q 3", st.LastError, st.Upgrades, other)
	}

	// A closed connection is shown dead; Status hands out copies.
	direct.closed = true
	m.record(pp, tgt, direct, nil, probes, 3, nil)
	all := m.Status()
	if len(all) != 2 || all[0].Node != "edge-a" || all[1].Node != "edge-b" {
		t.Fatalf("status not sorted by node: %+v", all)
	}
	if c := all[1].Conns[0]; c.RemoteAddr != direct.remote.String() || c.Alive {
		t.Errorf("closed connection shown as %+v", c)
	}
	all[1].Conns[0].RemoteAddr = "changed"
	if statusOf(t, m, "edge-b").Conns[0].RemoteAddr == "changed" {
		t.Error("Status shares its connection list with the caller")
	}
}

// Ping, Open and pathGen before there is anything to use: an unknown node
// and a known one without a live path are told apart (ErrUnknownPeer,
// ErrNoPath), and nothing is dialed.
func TestNoPathErrors(t *testing.T) {
	m := testManager(nil)
	pp := addPeer(m, Target{Node: "edge-b", ID: unittest.NewPeerID(t)})
	ctx := context.Background()

	if _, err := m.Ping(ctx, "edge-x", time.Second); !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), `"edge-x"`) {
		t.Errorf("ping of an unknown node: %v", err)
	}
	if g := m.pathGen("edge-x"); g != 0 {
		t.Errorf("generation of an unknown node: %d", g)
	}
	if _, changed, err := m.Open(ctx, "edge-x"); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("OpenPath to an unknown node: %v", err)
	} else {
		select { // ask again later: it may become a target
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Error("OpenPath to an unknown node: its change signal never fired")
		}
	}

	closed := conn("/ip4/198.18.0.101/tcp/20006", network.DirOutbound, 0)
	closed.closed = true
	for name, cur := range map[string]*currentConn{
		"never had a path": {changed: make(chan struct{})},
		"path lost":        {conn: nil, gen: 4},
		"path closed":      {conn: closed, gen: 5},
	} {
		pp.current.Store(cur)
		if _, err := m.Ping(ctx, "edge-b", time.Second); !errors.Is(err, ErrNoPath) || errors.Is(err, ErrUnknownPeer) {
			t.Errorf("%s: ping: %v, want ErrNoPath", name, err)
		}
		if cur.conn == nil {
			if _, changed, err := m.Open(ctx, "edge-b"); !errors.Is(err, ErrNoPath) || changed != (<-chan struct{})(cur.changed) {
				t.Errorf("%s: OpenPath: %v, want ErrNoPath and the path's change signal", name, err)
			}
			if g := m.pathGen("edge-b"); g != 0 {
				t.Errorf("%s: generation %d, want 0", name, g)
			}
		}
	}
}

// A sender learns of every path change from the channel OpenPath gave it,
// without asking again: it closes when another connection takes over,
// when the path is lost, and not while the path stays.
func TestPathChangeSignal(t *testing.T) {
	m := testManager(nil)
	tgt := &Target{Node: "edge-b", ID: unittest.NewPeerID(t)}
	pp := addPeer(m, *tgt)
	direct := conn("/ip4/198.18.0.101/tcp/20006", network.DirOutbound, 0)
	quic := conn("/ip4/198.18.0.101/udp/20006/quic-v1", network.DirOutbound, 0)
	probes := map[network.Conn]*probeRun{direct: {}, quic: {}}
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	first := pp.current.Load().changed
	m.record(pp, tgt, nil, nil, probes, 0, nil)
	if closed(first) {
		t.Fatal("signalled a change while there was still no path")
	}
	m.record(pp, tgt, nil, quic, probes, 0, nil)
	if !closed(first) {
		t.Fatal("no signal when the first path came")
	}
	onQUIC := pp.current.Load().changed
	m.record(pp, tgt, quic, quic, probes, 0, nil)
	if closed(onQUIC) {
		t.Fatal("signalled a change while the path stayed")
	}
	m.record(pp, tgt, quic, direct, probes, 0, nil)
	if !closed(onQUIC) {
		t.Fatal("no signal when TCP took over from QUIC")
	}
	onTCP := pp.current.Load().changed
	m.record(pp, tgt, direct, nil, probes, 0, nil)
	if !closed(onTCP) || pp.current.Load().conn != nil {
		t.Fatal("no signal when the path was lost")
	}
}
