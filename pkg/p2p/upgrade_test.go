package p2p

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// punchingHost starts a member with DCUtR (Config.HolePunching), on
// loopback; close is idempotent and also runs at cleanup.
func punchingHost(t *testing.T, c *cluster, node string) (*Host, func()) {
	t.Helper()
	h := c.start(node, nil, Config{HolePunching: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}})
	if h.HolePunch == nil {
		t.Fatal("no hole punching service")
	}
	var once sync.Once
	closeH := func() { once.Do(func() { h.Close() }) }
	t.Cleanup(closeH)
	return h, closeH
}

// relayedPair starts relay-1 and two punching members, edge-a and edge-b,
// with fast path timing and upgrade backoff; edge-b holds a reservation on
// relay-1, with observed (if any) as its addresses seen by relays. It
// returns the hosts, their closers, and a path manager on each using
// relay-1 (no targets yet; the caller closes them).
func relayedPair(t *testing.T, observed []ma.Multiaddr) (a, b *Host, closeA, closeB func(), pmA, pmB *PathManager) {
	t.Helper()
	fastPaths(t)
	omin, omax := upgradeBackoffMin, upgradeBackoffMax
	upgradeBackoffMin, upgradeBackoffMax = 100*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() { upgradeBackoffMin, upgradeBackoffMax = omin, omax })

	c := newCluster(t)
	r, _ := relayHost(t, c, "relay-1", nil)
	a, closeA = punchingHost(t, c, "edge-a")
	b, closeB = punchingHost(t, c, "edge-b")
	if observed != nil {
		b.SetObserved(observed)
	}
	relays := func() []RelayRef { return []RelayRef{{ID: r.ID(), Addrs: r.Addrs()}} }
	keeper := b.KeepReservations([]RelayTarget{{Node: "relay-1", ID: r.ID(), Addrs: r.Addrs()}}, nil)
	t.Cleanup(keeper.Close)
	waitFor(t, "edge-b's reservation", func() bool { return len(keeper.Reserved()) == 1 })
	return a, b, closeA, closeB, a.NewPathManager(relays, PathOptions{}), b.NewPathManager(relays, PathOptions{})
}

// While only a relayed path exists, the peer that accepted the relayed
// connection keeps trying to upgrade it to a direct one (DCUtR), with
// backoff, counting the attempts and showing why the last one failed;
// the peer that dialed the circuit never starts one (both punching at
// each other would fail). Here no punch can work (the peer has no public
// address to punch to), so the path stays relayed.
func TestUpgradeRelayedPath(t *testing.T) {
	// edge-b's relays saw it behind a public NAT mapping (no datagram
	// goes there: edge-a, with no public address, runs no DCUtR handler,
	// so every punch ends at the protocol negotiation). Without a public
	// address libp2p's DirectConnect would wait for one for good.
	a, b, closeA, closeB, pmA, pmB := relayedPair(t, []ma.Multiaddr{ma.StringCast("/ip4/1.2.3.4/udp/40001/quic-v1")})
	t.Cleanup(func() {
		// An upgrade in flight ends when its host closes.
		pmA.Stop()
		pmB.Stop()
		closeA()
		closeB()
		pmA.Close()
		pmB.Close()
	})
	pmA.SetTargets([]Target{{Node: "edge-b", ID: b.ID()}}) // no direct address: a circuit
	waitFor(t, "edge-a's relayed path", func() bool { return pmA.pathGen("edge-b") != 0 })
	pmB.SetTargets([]Target{{Node: "edge-a", ID: a.ID()}})
	waitFor(t, "edge-b's upgrade retries", func() bool {
		st := statusOf(t, pmB, "edge-a")
		return st.Upgrades >= 3 && strings.HasPrefix(st.LastError, "upgrade to direct: ")
	})
	stA, stB := statusOf(t, pmA, "edge-b"), statusOf(t, pmB, "edge-a")
	t.Logf("edge-b: %d upgrade attempts, the last: %s", stB.Upgrades, stB.LastError)
	if stA.Upgrades != 0 {
		t.Errorf("the dialing side attempted %d upgrades", stA.Upgrades)
	}
	if stA.Path != PathRelayed || stA.Relay != "relay-1" || stB.Path != PathRelayed || stB.Relay != "relay-1" {
		t.Errorf("paths %s via %q and %s via %q, want relayed via relay-1 on both ends", stA.Path, stA.Relay, stB.Path, stB.Relay)
	}
	if len(stB.Conns) == 0 || stB.Conns[0].Direction != "Inbound" {
		t.Errorf("edge-b's connection: %+v", stB.Conns)
	}
}

// Without a public address to punch from (no relay observed one), the
// accepting side does not start a DCUtR upgrade (libp2p's DirectConnect
// would wait for such an address for good, past Close) and says why; the
// path managers and hosts then close.
func TestNoUpgradeWithoutPublicAddress(t *testing.T) {
	a, b, closeA, closeB, pmA, pmB := relayedPair(t, nil)
	closed := make(chan struct{})
	t.Cleanup(func() {
		go func() {
			pmA.Close()
			pmB.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Error("the path managers did not close within 30s (an upgrade waiting for a public address?)")
		}
		closeA()
		closeB()
	})
	pmA.SetTargets([]Target{{Node: "edge-b", ID: b.ID()}})
	waitFor(t, "edge-a's relayed path", func() bool { return pmA.pathGen("edge-b") != 0 })
	pmB.SetTargets([]Target{{Node: "edge-a", ID: a.ID()}})
	waitFor(t, "edge-b saying why it does not upgrade", func() bool {
		return strings.Contains(statusOf(t, pmB, "edge-a").LastError, "no public address to punch from")
	})
	if st := statusOf(t, pmB, "edge-a"); st.Upgrades != 0 || st.Path != PathRelayed {
		t.Errorf("edge-b: %d upgrade attempts, path %s; want none, relayed", st.Upgrades, st.Path)
	}
}

// A host closes promptly while a hole punch it started is stalled: the
// peer took the DCUtR stream and never answers (as one behind a link
// that just died looks). libp2p's host closes its hole punching service,
// which waits for the attempt, before its connections, and the attempt
// would block for holepunch.StreamTimeout: an agent stopped with its
// uplink cut hung in its shutdown.
func TestCloseDuringStalledHolePunch(t *testing.T) {
	old := holepunch.StreamTimeout
	holepunch.StreamTimeout = 30 * time.Second
	t.Cleanup(func() { holepunch.StreamTimeout = old })
	a, b, closeA, closeB, pmA, pmB := relayedPair(t, []ma.Multiaddr{ma.StringCast("/ip4/1.2.3.4/udp/40001/quic-v1")})
	stalled := make(chan struct{}, 1)
	release := make(chan struct{})
	a.SetStreamHandler(holepunch.Protocol, func(s network.Stream) {
		select {
		case stalled <- struct{}{}:
		default:
		}
		<-release
		_ = s.Reset()
	})
	t.Cleanup(func() {
		close(release)
		pmA.Stop()
		pmB.Stop()
		closeA()
		pmA.Close()
		pmB.Close()
	})
	pmA.SetTargets([]Target{{Node: "edge-b", ID: b.ID()}}) // a circuit: inbound and relayed at edge-b
	pmB.SetTargets([]Target{{Node: "edge-a", ID: a.ID()}})
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		t.Fatal("edge-b never started a hole punch to edge-a")
	}
	start := time.Now()
	closeB()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("edge-b's host took %v to close with a hole punch stalled, want under 5s", took.Round(time.Millisecond))
	}
}
