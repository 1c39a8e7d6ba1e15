package p2p

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	"k8s.io/klog/v2"
)

// PathKind is how a connection reaches a peer.
type PathKind string

const (
	PathNone       PathKind = "none"
	PathDirectTCP  PathKind = "direct-tcp"
	PathDirectQUIC PathKind = "direct-quic"
	PathRelayed    PathKind = "relayed"
	// PathIdle is a known member without a path: with paths on demand
	// (PathOptions.IdleTimeout) nothing is kept to a peer nobody talks to.
	PathIdle PathKind = "idle"
)

// rank orders kinds by preference: direct before relayed; TCP before QUIC
// on a direct path, as TCP+TLS carried about twice QUIC's throughput here
// (docs/benchmarks.md, "Measurements behind design choices").
func (k PathKind) rank() int {
	switch k {
	case PathDirectTCP:
		return 0
	case PathDirectQUIC:
		return 1
	case PathRelayed:
		return 2
	}
	return 3
}

// Classify tells a connection's kind from its remote address, and for a
// relayed one the relay's peer ID.
func Classify(remote ma.Multiaddr) (PathKind, peer.ID) {
	if isRelayed(remote) {
		before, _ := ma.SplitFunc(remote, func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT })
		var relay peer.ID
		if v, err := before.ValueForProtocol(ma.P_P2P); err == nil {
			relay, _ = peer.Decode(v)
		}
		return PathRelayed, relay
	}
	if _, err := remote.ValueForProtocol(ma.P_QUIC_V1); err == nil {
		return PathDirectQUIC, ""
	}
	return PathDirectTCP, ""
}

// Target is a peer the path manager keeps a path to.
type Target struct {
	Node  string
	ID    peer.ID
	Addrs []ma.Multiaddr // direct addresses to try
	// Keep holds a path to the target even when paths are on demand and
	// nobody talks to it (relays: circuits ride on them).
	Keep bool
}

// PathOptions tune a PathManager.
type PathOptions struct {
	// IdleTimeout > 0 makes paths on demand: a target gets a path only
	// once Open or Ping asks for one (a Keep target always has one), and
	// a path that carried no packet stream, in either direction, for
	// IdleTimeout is let go: its loop ends and its connections close, so
	// an idle member costs nothing but its entry. 0: every target has a
	// path all the time.
	IdleTimeout time.Duration
}

// RelayRef is a relay that may carry circuits to targets.
type RelayRef struct {
	ID    peer.ID
	Addrs []ma.Multiaddr
}

// ConnStatus is one connection to a peer.
type ConnStatus struct {
	Path       PathKind `json:"path"`
	Relay      string   `json:"relay,omitempty"`
	RemoteAddr string   `json:"remoteAddr"`
	Direction  string   `json:"direction"`
	Alive      bool     `json:"alive"`
	RTTMillis  float64  `json:"rttMs"`
}

// PeerStatus is what the path manager knows of one peer.
type PeerStatus struct {
	Node       string   `json:"node"`
	Peer       string   `json:"peer"`
	Path       PathKind `json:"path"`
	Relay      string   `json:"relay,omitempty"` // node name of the relay carrying a relayed path
	RemoteAddr string   `json:"remoteAddr,omitempty"`
	RTTMillis  float64  `json:"rttMs"`
	// BytesIn, BytesOut and LastActivity are the probes' (pod traffic is
	// counted once, by the data plane, which the status merges in).
	BytesIn      uint64       `json:"bytesIn"`
	BytesOut     uint64       `json:"bytesOut"`
	LastActivity time.Time    `json:"lastActivity,omitzero"`
	PathSince    time.Time    `json:"pathSince,omitzero"`
	PathChanges  int          `json:"pathChanges"`
	Upgrades     int          `json:"upgradeAttempts"`
	LastError    string       `json:"lastError,omitempty"`
	Conns        []ConnStatus `json:"conns"`
}

// Path-manager timing.
var (
	dialBackoffMin    = time.Second
	dialBackoffMax    = 30 * time.Second
	upgradeBackoffMin = 2 * time.Second
	upgradeBackoffMax = 30 * time.Second
	dialTimeout       = 15 * time.Second
	dialGrace         = 3 * time.Second
)

// PathManager keeps one path to every target: it dials (direct addresses
// and circuits through every relay at once; libp2p ranks direct first),
// probes every connection (ProbeProtocol), closes the ones that stop
// answering, picks the best live one, and while only a relayed path exists
// keeps trying to upgrade to direct (DCUtR) with backoff. When a direct
// path dies, the relayed connection the punch started from, or a new
// circuit, takes over; when a relay dies, a circuit through another.
//
// Locking: mu guards peers; each peerPath guards its status with its own
// mutex.
type PathManager struct {
	h      *Host
	relays func() []RelayRef
	opts   PathOptions

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	peers map[string]*peerPath // by node name
}

type peerPath struct {
	target atomic.Pointer[Target]
	// cancel ends the running loop, nil while there is none (idle);
	// done is closed when the last loop started has returned (nil: none
	// ever ran). Both guarded by PathManager.mu.
	cancel context.CancelFunc
	done   chan struct{}
	// started is when the running loop started, used when a packet
	// stream last ran (or Open or Ping asked); unix nanoseconds.
	started, used atomic.Int64

	// current is the connection traffic should use; gen counts its
	// changes (0: never had one), so senders notice a new path.
	current atomic.Pointer[currentConn]

	mu     sync.Mutex // guards status
	status PeerStatus
}

// newPeerPath is target t's state, with no path and no loop yet.
func newPeerPath(t Target, path PathKind) *peerPath {
	pp := &peerPath{}
	pp.target.Store(&t)
	pp.current.Store(&currentConn{changed: make(chan struct{})})
	pp.status = PeerStatus{Node: t.Node, Peer: t.ID.String(), Path: path}
	return pp
}

// NewPathManager manages paths on h; relays lists the relays currently
// usable for circuits.
func (h *Host) NewPathManager(relays func() []RelayRef, opts PathOptions) *PathManager {
	ctx, cancel := context.WithCancel(context.Background())
	return &PathManager{h: h, relays: relays, opts: opts, ctx: ctx, cancel: cancel, peers: map[string]*peerPath{}}
}

// onDemand reports whether t gets a path only when asked.
func (m *PathManager) onDemand(t *Target) bool { return m.opts.IdleTimeout > 0 && !t.Keep }

// startLocked starts pp's loop unless one runs; it reports whether it
// started one. A new loop waits for the one before it to have returned,
// so only one ever touches pp's path. m.mu held.
func (m *PathManager) startLocked(pp *peerPath) bool {
	if pp.cancel != nil || m.ctx.Err() != nil {
		return false
	}
	ctx, cancel := context.WithCancel(m.ctx)
	prev, done := pp.done, make(chan struct{})
	pp.cancel, pp.done = cancel, done
	now := time.Now().UnixNano()
	pp.started.Store(now)
	pp.used.Store(now)
	m.wg.Add(1)
	go func() { // routinePeer, one per target with a path
		defer m.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		m.runPeer(ctx, pp)
	}()
	return true
}

// want marks node's path as used now and starts its loop if it has none
// (paths on demand). It returns the node's state (nil: no such target)
// and whether a path is being set up, not there yet: started now, or
// started within dialTimeout and no path since.
func (m *PathManager) want(node string) (pp *peerPath, connecting bool) {
	m.mu.Lock()
	pp = m.peers[node]
	started := false
	if pp != nil {
		pp.used.Store(time.Now().UnixNano())
		started = m.startLocked(pp)
	}
	m.mu.Unlock()
	if pp == nil {
		return nil, false
	}
	c := pp.current.Load()
	recent := time.Since(time.Unix(0, pp.started.Load())) < dialTimeout
	return pp, started || (c.conn == nil && recent && m.opts.IdleTimeout > 0)
}

// retire ends pp's loop for idleness, unless the loop was already told to
// end or a packet stream or a caller used the path since idle was seen.
// It reports whether the loop should return.
func (m *PathManager) retire(ctx context.Context, pp *peerPath, idleSince time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ctx.Err() != nil || time.Unix(0, pp.used.Load()).After(idleSince) {
		return false // told to end already, or used again
	}
	pp.cancel()
	pp.cancel = nil
	return true
}

// SetTargets replaces the set of peers to keep paths to. Peers no longer
// listed are let go (their connections closed unless they are relays).
func (m *PathManager) SetTargets(targets []Target) {
	want := map[string]Target{}
	for _, t := range targets {
		if t.ID != m.h.ID() && t.ID != "" {
			want[t.Node] = t
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	for node, pp := range m.peers {
		t, ok := want[node]
		if ok && t.ID == pp.target.Load().ID {
			continue
		}
		if pp.cancel != nil {
			pp.cancel()
		}
		delete(m.peers, node)
		old := pp.target.Load().ID
		if !m.isRelay(old) {
			_ = m.h.Network().ClosePeer(old)
		}
	}
	for node, t := range want {
		onDemand := m.onDemand(&t)
		pp, ok := m.peers[node]
		if ok {
			pp.target.Store(&t)
		} else {
			path := PathNone
			if onDemand {
				path = PathIdle
			}
			pp = newPeerPath(t, path)
			m.peers[node] = pp
		}
		if !onDemand {
			m.startLocked(pp)
		}
	}
}

func (m *PathManager) isRelay(p peer.ID) bool {
	return slices.ContainsFunc(m.relays(), func(r RelayRef) bool { return r.ID == p })
}

// Stop stops managing paths; Close waits for everything to end. An
// upgrade attempt in flight ends when the host closes (libp2p's DCUtR
// takes no context), so shut down with Stop, host.Close, Close; none is
// started while the host has no public address to punch from (DCUtR
// would wait for one even past the host's Close).
func (m *PathManager) Stop() {
	m.mu.Lock()
	m.cancel()
	m.mu.Unlock()
}

// Close stops managing and waits for every goroutine.
func (m *PathManager) Close() {
	m.Stop()
	m.wg.Wait()
}

// Status reports every target, sorted by node name.
func (m *PathManager) Status() []PeerStatus {
	m.mu.Lock()
	pps := make([]*peerPath, 0, len(m.peers))
	for _, pp := range m.peers {
		pps = append(pps, pp)
	}
	m.mu.Unlock()
	out := make([]PeerStatus, 0, len(pps))
	for _, pp := range pps {
		pp.mu.Lock()
		st := pp.status
		st.Conns = slices.Clone(st.Conns)
		pp.mu.Unlock()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

type backoff struct {
	min, max, cur time.Duration
	next          time.Time
}

func (b *backoff) due(now time.Time) bool { return !now.Before(b.next) }
func (b *backoff) fail(now time.Time) {
	b.cur = min(max(b.cur*2, b.min), b.max)
	b.next = now.Add(b.cur)
}
func (b *backoff) reset() { b.cur, b.next = 0, time.Time{} }

// runPeer is one target's loop: every probeInterval it probes each
// connection, chooses the path, dials when nothing is connected, upgrades a
// relayed path, moves a QUIC path to TCP, prunes duplicates and records the
// result (peerLoop's steps, in that order).
func (m *PathManager) runPeer(ctx context.Context, pp *peerPath) {
	l := &peerLoop{
		m: m, pp: pp, ctx: ctx,
		probes:  map[network.Conn]*probeRun{},
		wake:    make(chan struct{}, 1),
		dial:    backoff{min: dialBackoffMin, max: dialBackoffMax},
		upgrade: backoff{min: upgradeBackoffMin, max: upgradeBackoffMax},
		toTCP:   backoff{min: 5 * time.Second, max: 5 * time.Minute},
	}
	l.toTCP.fail(time.Now()) // first check after 5 s
	defer l.stopProbes()
	defer replaceCurrent(pp, nil) // let go: senders stop using its path
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		if now := time.Now(); l.step(now) {
			l.letGo(now)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-l.wake:
		}
	}
}

// peerLoop is runPeer's state; only runPeer's goroutine touches it, except
// the atomics, which an upgrade attempt's goroutine sets.
type peerLoop struct {
	m   *PathManager
	pp  *peerPath
	ctx context.Context

	probes map[network.Conn]*probeRun
	pwg    sync.WaitGroup // the probes' goroutines and wakeOnProof's

	dial, upgrade, toTCP backoff
	upgrading            atomic.Bool
	lastErr              atomic.Pointer[string]
	upgrades             atomic.Int32

	current           network.Conn // the connection traffic uses
	disconnectedSince time.Time

	// wake runs the next round at once instead of at the next tick: for
	// a path on demand, when a dial succeeded or a connection started
	// answering, so that the first packets wait for no tick.
	wake      chan struct{}
	proofWait atomic.Bool // a wakeOnProof goroutine runs
}

// wakeOnProof runs a round as soon as the gate has judged p's proof (a
// path on demand: the packets waiting for it should not wait for the
// tick), unless such a wait is on already.
func (l *peerLoop) wakeOnProof(p peer.ID) {
	if !l.proofWait.CompareAndSwap(false, true) {
		return
	}
	l.pwg.Add(1)
	go func() { // routineProofWait; ends with the gate's deadline or the loop
		defer l.pwg.Done()
		defer l.proofWait.Store(false)
		if _, err := l.m.h.Gate.WaitMember(l.ctx, p); err == nil {
			l.wakeUp()
		}
	}()
}

// wakeUp asks for a round now (never blocks).
func (l *peerLoop) wakeUp() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *peerLoop) fail(msg string) { l.lastErr.Store(&msg) }

func (l *peerLoop) stopProbes() {
	for _, pr := range l.probes {
		pr.cancel()
	}
	l.pwg.Wait()
}

// step is one round of the loop; true: the path is idle and let go
// (paths on demand), the loop ends.
func (l *peerLoop) step(now time.Time) (idle bool) {
	m, t := l.m, l.pp.target.Load()
	conns := m.h.Network().ConnsToPeer(t.ID)
	if m.onDemand(t) {
		if m.packetStreams(conns) > 0 {
			l.pp.used.Store(now.UnixNano())
		}
		if since := now.Add(-m.opts.IdleTimeout); time.Unix(0, l.pp.used.Load()).Before(since) && m.retire(l.ctx, l.pp, since) {
			return true
		}
	}

	// A peer that proved another node name is not this target; one that
	// has not proven membership yet (it may stall its proof until the
	// gate's deadline while answering probes) gets no traffic.
	node, proven := m.h.Gate.Member(t.ID)
	if proven && node != t.Node {
		l.fail(fmt.Sprintf("peer %s proved node %q, not %q", t.ID, node, t.Node))
		_ = m.h.Network().ClosePeer(t.ID)
		conns, proven = nil, false
	}
	l.probeConns(conns)
	best := l.choose()
	if !proven {
		best = nil
		if m.onDemand(t) && len(conns) > 0 {
			l.wakeOnProof(t.ID)
		}
	}
	leader := m.h.ID() < t.ID
	// A path on demand is dialed at once by the side that wants it: the
	// other side may have no loop that would dial.
	l.dialIfDisconnected(now, t, len(conns) > 0, leader || m.onDemand(t))
	l.upgradeIfRelayed(now, t, best)
	l.moveToTCP(now, t, best, leader)
	pruneDuplicates(l.probes, leader)

	var bestConn network.Conn
	if best != nil {
		bestConn = best.conn
	}
	m.record(l.pp, t, l.current, bestConn, l.probes, int(l.upgrades.Load()), l.lastErr.Load())
	l.current = bestConn
	return false
}

// letGo ends an idle path: its connections close (unless the peer is a
// relay: circuits ride on them) and its status says idle.
func (l *peerLoop) letGo(now time.Time) {
	m, t := l.m, l.pp.target.Load()
	klog.V(2).InfoS("Tunnel path idle; letting it go", "node", t.Node, "idleFor", m.opts.IdleTimeout)
	if !m.isRelay(t.ID) {
		_ = m.h.Network().ClosePeer(t.ID)
	}
	l.pp.mu.Lock()
	st := &l.pp.status
	if st.Path != PathIdle {
		st.PathChanges++
		st.PathSince = now
	}
	st.Path, st.Relay, st.RemoteAddr, st.RTTMillis, st.Conns = PathIdle, "", "", 0, nil
	l.pp.mu.Unlock()
}

// packetStreams counts the packet streams (of the versions the host
// speaks) open on conns, either way.
func (m *PathManager) packetStreams(conns []network.Conn) int {
	n := 0
	for _, c := range conns {
		for _, s := range c.GetStreams() {
			if slices.Contains(m.h.packetVersions, s.Protocol()) {
				n++
			}
		}
	}
	return n
}

// probeConns probes every connection and forgets the probes of closed ones.
func (l *peerLoop) probeConns(conns []network.Conn) {
	for c, pr := range l.probes {
		if !slices.Contains(conns, c) {
			pr.cancel()
			delete(l.probes, c)
		}
	}
	for _, c := range conns {
		if _, ok := l.probes[c]; ok {
			continue
		}
		pctx, cancel := context.WithCancel(l.ctx)
		pr := &probeRun{connProbe: connProbe{conn: c}, cancel: cancel}
		if l.m.onDemand(l.pp.target.Load()) {
			pr.up = l.wakeUp
		}
		l.probes[c] = pr
		l.pwg.Add(1)
		go func() { // routineProbe, one per connection
			defer l.pwg.Done()
			pr.run(pctx)
		}()
	}
}

// choose keeps the current connection unless a better kind is alive;
// otherwise the best kind, then the lowest RTT. Nil: none is alive.
func (l *peerLoop) choose() *probeRun {
	var best *probeRun
	for c, pr := range l.probes {
		if !pr.alive.Load() || c.IsClosed() {
			continue
		}
		if best == nil || better(pr, best, l.current) {
			best = pr
		}
	}
	return best
}

// dialIfDisconnected dials when nothing is connected. The peer with the
// smaller ID (the leader) dials at once, the other only if no connection
// came within dialGrace, so that two peers rarely dial each other twice;
// dialNow (the leader, or a path on demand) skips the grace.
func (l *peerLoop) dialIfDisconnected(now time.Time, t *Target, connected, dialNow bool) {
	if connected {
		l.disconnectedSince = time.Time{}
		return
	}
	if l.disconnectedSince.IsZero() {
		l.disconnectedSince = now
		l.dial.reset() // a path just died: redial at once
	}
	if !l.dial.due(now) || (!dialNow && now.Sub(l.disconnectedSince) < dialGrace) {
		return
	}
	if err := l.m.dial(l.ctx, t); err != nil {
		l.dial.fail(now)
		l.fail(err.Error())
	} else {
		l.dial.reset()
		if l.m.onDemand(t) {
			l.wakeUp() // probe the new connection now
		}
	}
}

// upgradeIfRelayed tries to turn a relayed path into a direct one. DCUtR
// is started by the peer that accepted the relayed connection (libp2p's
// responder resets a punch stream arriving on a connection it accepted),
// and libp2p already starts it once when the connection opens; that same
// peer retries, so the two never punch at each other at once.
func (l *peerLoop) upgradeIfRelayed(now time.Time, t *Target, best *probeRun) {
	m := l.m
	if best == nil || kindOf(best.conn) != PathRelayed {
		l.upgrade.reset()
		return
	}
	if m.h.HolePunch == nil || best.conn.Stat().Direction != network.DirInbound || !l.upgrade.due(now) {
		return
	}
	if !m.punchable() {
		// libp2p's DirectConnect waits, without end and past Close,
		// until the host has a public address to punch from.
		l.upgrade.fail(now)
		l.fail("upgrade to direct: no public address to punch from yet (no relay observed one)")
		return
	}
	if !l.upgrading.CompareAndSwap(false, true) {
		return
	}
	l.upgrade.fail(now) // the next attempt waits whatever happens
	l.upgrades.Add(1)
	m.wg.Add(1)
	go func() { // routineUpgrade
		defer m.wg.Done()
		defer l.upgrading.Store(false)
		if err := m.h.HolePunch.DirectConnect(t.ID); err != nil {
			l.fail("upgrade to direct: " + err.Error())
		}
	}()
}

// moveToTCP: a direct QUIC path to a peer that also listens on TCP at the
// same address (it was not up yet when we dialed TCP). The leader checks
// now and then whether TCP answers, and if so redials so that TCP, dialed
// first, carries the traffic.
func (l *peerLoop) moveToTCP(now time.Time, t *Target, best *probeRun, leader bool) {
	if !leader || best == nil || kindOf(best.conn) != PathDirectQUIC || !l.toTCP.due(now) ||
		now.Sub(time.Unix(0, best.lastOK.Load())) >= 2*probeInterval {
		return
	}
	l.toTCP.fail(now)
	if l.m.tcpAnswers(l.ctx, t, best.conn) {
		klog.InfoS("Peer answers on TCP; moving its direct path from QUIC to TCP", "node", t.Node)
		_ = l.m.h.Network().ClosePeer(t.ID)
	}
}

// currentConn is a peer's path as senders see it: the connection (nil:
// none), its generation, and a channel closed when it stops being the
// peer's path. Only the peer's runPeer goroutine replaces it.
type currentConn struct {
	conn    network.Conn
	gen     uint64
	changed chan struct{}
}

// replaceCurrent makes conn pp's path (nil: none) and tells the senders
// of the one before.
func replaceCurrent(pp *peerPath, conn network.Conn) {
	old := pp.current.Load()
	next := &currentConn{conn: conn, gen: old.gen + 1, changed: make(chan struct{})}
	pp.current.Store(next)
	close(old.changed)
}

type probeRun struct {
	connProbe
	cancel context.CancelFunc
}

func kindOf(c network.Conn) PathKind {
	k, _ := Classify(c.RemoteMultiaddr())
	return k
}

// pruneDuplicates closes redundant connections: of several live ones of
// one kind through one relay (or direct), both peers keep the one the
// peer with the smaller ID dialed, and close the rest. Both ends apply
// the same rule, so they never close the two different survivors.
// Connections through different relays are kept: they are the standby
// that makes relay failover instant.
func pruneDuplicates(probes map[network.Conn]*probeRun, leader bool) {
	type route struct {
		kind  PathKind
		relay peer.ID
	}
	keepDir := network.DirInbound
	if leader {
		keepDir = network.DirOutbound
	}
	groups := map[route][]network.Conn{}
	for c, pr := range probes {
		if pr.alive.Load() && !c.IsClosed() {
			k, r := Classify(c.RemoteMultiaddr())
			groups[route{k, r}] = append(groups[route{k, r}], c)
		}
	}
	for _, cs := range groups {
		if len(cs) < 2 {
			continue
		}
		var keep network.Conn
		for _, c := range cs {
			if c.Stat().Direction == keepDir && (keep == nil || c.Stat().Opened.Before(keep.Stat().Opened)) {
				keep = c
			}
		}
		if keep == nil {
			continue
		}
		for _, c := range cs {
			if c != keep {
				_ = c.Close()
			}
		}
	}
}

// better reports whether a should carry traffic rather than b.
func better(a, b *probeRun, current network.Conn) bool {
	ka, kb := kindOf(a.conn).rank(), kindOf(b.conn).rank()
	switch {
	case ka != kb:
		return ka < kb
	case b.conn == current:
		return false // no flapping between equals
	case a.conn == current:
		return true
	}
	return a.rtt.Load() < b.rtt.Load()
}

func (m *PathManager) dial(ctx context.Context, t *Target) error {
	addrs := slices.Clone(t.Addrs)
	for _, r := range m.relays() {
		if r.ID == t.ID || !m.liveRelay(r.ID) {
			continue
		}
		circuit := ma.StringCast("/p2p/" + r.ID.String() + "/p2p-circuit")
		for _, a := range r.Addrs {
			addrs = append(addrs, a.Encapsulate(circuit))
		}
	}
	if sw, ok := m.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(t.ID) // our own backoff decides
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := m.h.Connect(dctx, peer.AddrInfo{ID: t.ID, Addrs: addrs}); err != nil {
		return fmt.Errorf("connect to %s: %w", t.Node, err)
	}
	return nil
}

// tcpAnswers reports whether t listens on TCP at the IP of conn (a direct
// QUIC connection), on a TCP port it advertises: a plain connect and
// close, no libp2p handshake.
func (m *PathManager) tcpAnswers(ctx context.Context, t *Target, conn network.Conn) bool {
	ip := hostOf(conn.RemoteMultiaddr())
	for _, a := range append(slices.Clone(t.Addrs), m.h.Peerstore().Addrs(t.ID)...) {
		if k, _ := Classify(a); k != PathDirectTCP || hostOf(a) != ip {
			continue
		}
		hp, ok := tcpHostPort(a)
		if !ok {
			continue
		}
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", hp)
		cancel()
		if err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// punchable reports whether the host has an address to hole-punch from.
func (m *PathManager) punchable() bool { return len(m.h.holePunchAddrs()) > 0 }

// liveRelay reports whether our connection to relay answers probes (a
// relay killed without closing its connections still looks connected
// until the probes give up on it; a circuit through it would hang).
func (m *PathManager) liveRelay(relay peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pp := range m.peers {
		if pp.target.Load().ID == relay {
			// Dead only once a path it had is gone; a relay still
			// proving itself may carry circuits already.
			c := pp.current.Load()
			return c.gen == 0 || (c.conn != nil && !c.conn.IsClosed())
		}
	}
	return true // not a target (yet): let libp2p try
}

// record publishes the peer's status and logs path changes.
func (m *PathManager) record(pp *peerPath, t *Target, prev, cur network.Conn, probes map[network.Conn]*probeRun, upgrades int, lastErr *string) {
	now := time.Now()
	pp.mu.Lock()
	defer pp.mu.Unlock()
	st := &pp.status
	st.Peer = t.ID.String()
	st.Upgrades = upgrades
	if lastErr != nil {
		st.LastError = *lastErr
	}
	st.Conns = st.Conns[:0]
	var probeBytes uint64
	var lastOK int64
	for c, pr := range probes {
		kind, relay := Classify(c.RemoteMultiaddr())
		cs := ConnStatus{Path: kind, RemoteAddr: c.RemoteMultiaddr().String(), Direction: c.Stat().Direction.String(),
			Alive: pr.alive.Load() && !c.IsClosed(), RTTMillis: float64(pr.rtt.Load()) / 1e6}
		if relay != "" {
			cs.Relay = m.nodeOf(relay)
		}
		st.Conns = append(st.Conns, cs)
		probeBytes += pr.bytes.Load()
		lastOK = max(lastOK, pr.lastOK.Load())
	}
	slices.SortFunc(st.Conns, func(a, b ConnStatus) int { return cmp.Compare(a.RemoteAddr, b.RemoteAddr) })
	if lastOK > 0 {
		st.LastActivity = time.Unix(0, lastOK)
	}
	st.BytesIn, st.BytesOut = probeBytes/2, probeBytes/2
	kind, relay, remote, rtt := PathNone, "", "", 0.0
	if cur != nil {
		var rid peer.ID
		kind, rid = Classify(cur.RemoteMultiaddr())
		if rid != "" {
			relay = m.nodeOf(rid)
		}
		remote = cur.RemoteMultiaddr().String()
		rtt = float64(probes[cur].rtt.Load()) / 1e6
	}
	if st.Path == PathIdle && kind == PathNone {
		st.Path = PathNone // an on-demand path being set up: no change yet
	}
	if cur != prev || kind != st.Path {
		if st.Path != kind || st.Relay != relay {
			klog.InfoS("Tunnel path changed", "node", t.Node, "peer", t.ID, "from", st.Path, "to", kind, "relay", relay, "remote", remote)
			st.PathChanges++
			st.PathSince = now
		}
	}
	st.Path, st.Relay, st.RemoteAddr, st.RTTMillis = kind, relay, remote, rtt
	if old := pp.current.Load(); old.conn != cur && (cur != nil || old.gen != 0) {
		replaceCurrent(pp, cur)
	}
}

// nodeOf names a relay by the node name it proved.
func (m *PathManager) nodeOf(p peer.ID) string {
	if n, ok := m.h.Gate.Member(p); ok {
		return n
	}
	return p.String()
}
