package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/membership"
)

// MembershipProtocol is the only protocol a peer may use before it has
// proven membership.
//
// Wire format: the dialing side writes its proof, the listening side reads
// it, verifies it and answers with its own; each proof is a uvarint length
// followed by that many bytes of membership proof (pkg/membership), at
// most membership.MaxProofSize. A side that fails to verify closes the
// connection.
//
// Membership holds until the earliest expiry of the proof and of its
// certificates. Before that, every renewEvery, a member runs the same
// exchange again on a new stream of the same connection with fresh
// proofs; the other side takes it only for the node already proven. Every
// membershipCheck the gate closes connections whose membership expired,
// and after the CA file changed (a rotated CA) it checks every member's
// last proof again and closes the connections of those that fail. With
// an admission check (Config.Admit), a proven node is also asked about
// when it proves and at every membershipCheck: a node the cluster no
// longer has (its Node deleted) is refused, or expelled within
// membershipCheck, whatever its certificate says.
const MembershipProtocol = protocol.ID("/edgelink/membership/1.0.0")

// proveTimeout bounds the membership exchange; a connection that has not
// proven membership by then is closed. A var only so that this package's
// tests can shorten it.
var proveTimeout = 10 * time.Second

// Membership over time (vars only so that this package's tests can
// shorten them): a proof lasts membership.ProofLifetime, so renewing every
// quarter of it leaves most of a day for a renewal that fails.
var (
	renewEvery      = membership.ProofLifetime / 4
	membershipCheck = 15 * time.Second
)

// Gate runs the membership exchange on every connection and guards every
// EdgeLink protocol behind it.
//
// Locking: mu guards peers.
type Gate struct {
	h        host.Host
	creds    atomic.Pointer[membership.Credentials] // this node's; replaced when renewed
	credsGen atomic.Uint64                          // counts SetCredentials calls
	verifier *membership.Verifier
	admit    func(node string) error // nil admits every proven node

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards peers and their states' fields (done is closed under it, waited on without)
	peers map[peer.ID]*peerState

	failures atomic.Uint64
	lastLog  atomic.Int64 // unix nanos of the last failure logged
}

type peerState struct {
	node     string
	err      error
	expires  time.Time // membership ends (valid once finished without err)
	proof    []byte    // their last proof, checked again after a CA change
	renewed  time.Time // last exchange, first or renewal
	renewing bool
	sent     uint64        // credsGen of the proof we last gave them
	done     chan struct{} // closed when the exchange ended either way
	started  bool
	finished bool
}

func newGate(h host.Host, creds *membership.Credentials, v *membership.Verifier, admit func(node string) error) (*Gate, error) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gate{h: h, verifier: v, admit: admit, ctx: ctx, cancel: cancel, peers: map[peer.ID]*peerState{}}
	g.creds.Store(creds)
	h.SetStreamHandler(MembershipProtocol, g.handleInbound)
	h.Network().Notify(g)
	g.wg.Add(1)
	go func() { defer g.wg.Done(); g.watch() }() // routineMembershipWatch
	return g, nil
}

// SetCredentials replaces this node's credentials (a renewed
// certificate) and has every member renewed at the next check, so that
// peers hold a proof with the new certificate long before the old one
// expires.
func (g *Gate) SetCredentials(c *membership.Credentials) {
	g.creds.Store(c)
	g.credsGen.Add(1)
}

// watch ends memberships that expired, that a changed CA no longer
// vouches for or that admission refuses now, and renews the rest in time
// (every membershipCheck).
func (g *Gate) watch() {
	tick := time.NewTicker(membershipCheck)
	defer tick.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-tick.C:
		}
		caChanged, err := g.verifier.Reload()
		if err != nil {
			klog.ErrorS(err, "Membership CA not re-read; the one read before stays")
		} else if caChanged {
			klog.InfoS("Membership CA changed; checking every member again")
		}
		now := time.Now()
		type member struct {
			p     peer.ID
			st    *peerState
			proof []byte
		}
		var members, expired []member
		g.mu.Lock()
		for p, st := range g.peers {
			if !st.finished || st.err != nil {
				continue
			}
			switch {
			case now.After(st.expires):
				expired = append(expired, member{p, st, nil})
				continue
			case (now.Sub(st.renewed) >= renewEvery || st.sent < g.credsGen.Load()) && !st.renewing:
				st.renewing = true
				g.wg.Add(1)
				go func() { defer g.wg.Done(); g.renew(p, st) }() // routineRenew
			}
			members = append(members, member{p, st, st.proof})
		}
		g.mu.Unlock()
		for _, m := range expired {
			g.expel(m.p, m.st, fmt.Errorf("%w: membership of %q ended at %s (proof or certificate expired)",
				membership.ErrNotMember, m.st.node, m.st.expires.UTC().Format(time.RFC3339)))
		}
		for _, m := range members {
			err := g.admitted(m.st.node)
			if err == nil && caChanged {
				_, err = g.verifier.Check(m.proof, m.p)
			}
			if err != nil {
				g.expel(m.p, m.st, err)
			}
		}
	}
}

// expel ends p's membership (exchange st) and closes its connections.
func (g *Gate) expel(p peer.ID, st *peerState, err error) {
	g.mu.Lock()
	if g.peers[p] != st || st.err != nil {
		g.mu.Unlock()
		return
	}
	st.err = err
	g.mu.Unlock()
	g.refused(p, err)
	_ = g.h.Network().ClosePeer(p)
}

func (g *Gate) close() {
	g.h.Network().StopNotify(g)
	g.h.RemoveStreamHandler(MembershipProtocol)
	g.cancel()
	g.wg.Wait()
}

// Failures counts membership proofs refused.
func (g *Gate) Failures() uint64 { return g.failures.Load() }

// Member returns the node name peer p proved, if it did.
func (g *Gate) Member(p peer.ID) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.peers[p]
	if !ok || !st.finished || st.err != nil {
		return "", false
	}
	return st.node, true
}

// WaitMember waits (bounded by ctx and proveTimeout) for p's exchange to
// finish and returns the node name, or why p is not a member. A peer with
// no connection to us is not one, at once: asking about invented peer IDs
// (a relay CONNECT to anyone) costs no state and no wait.
func (g *Gate) WaitMember(ctx context.Context, p peer.ID) (string, error) {
	st := g.state(p)
	if st == nil {
		return "", fmt.Errorf("%w: peer %s is not connected", membership.ErrNotMember, p)
	}
	timer := time.NewTimer(proveTimeout)
	defer timer.Stop()
	select {
	case <-st.done:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-timer.C:
		return "", fmt.Errorf("%w: peer %s did not prove membership within %s", membership.ErrNotMember, p, proveTimeout)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return st.node, st.err
}

// Handle registers a stream handler that only members reach: a stream
// from a peer that has not proven membership is reset.
func (g *Gate) Handle(proto protocol.ID, handler network.StreamHandler) {
	g.h.SetStreamHandler(proto, func(s network.Stream) {
		if _, err := g.WaitMember(g.ctx, s.Conn().RemotePeer()); err != nil {
			// The exchange itself counted the refusal.
			klog.V(2).InfoS("Stream from a non-member reset", "protocol", proto, "peer", s.Conn().RemotePeer(), "err", err)
			_ = s.Reset()
			return
		}
		handler(s)
	})
}

// state is p's exchange, nil when p has none and no connection.
// Connectedness is read under mu, so that an entry made here is always
// seen by Disconnected (which takes mu after the connection is gone).
func (g *Gate) state(p peer.ID) *peerState {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.peers[p]
	if !ok {
		if c := g.h.Network().Connectedness(p); c != network.Connected && c != network.Limited {
			return nil
		}
		st = &peerState{done: make(chan struct{})}
		g.peers[p] = st
	}
	return st
}

// admitted is the admission check's word on a proven node.
func (g *Gate) admitted(node string) error {
	if g.admit == nil {
		return nil
	}
	if err := g.admit(node); err != nil {
		return fmt.Errorf("%w: node %q not admitted: %w", membership.ErrNotMember, node, err)
	}
	return nil
}

// finish ends the exchange st of peer p; an exchange that is no longer
// p's current one (p disconnected and came back) changes nothing. A
// proven node admission refuses is refused.
//
// sent is the credsGen of the proof we gave them (read before sending).
func (g *Gate) finish(p peer.ID, st *peerState, sent uint64, m membership.Member, proof []byte, err error) {
	if err == nil {
		err = g.admitted(m.Node)
	}
	g.mu.Lock()
	if cur, ok := g.peers[p]; !ok || cur != st || st.finished {
		g.mu.Unlock()
		return
	}
	st.node, st.err, st.finished = m.Node, err, true
	st.expires, st.proof, st.renewed, st.sent = m.Expires, proof, time.Now(), sent
	close(st.done)
	g.mu.Unlock()
	if err != nil {
		// A peer whose connection died mid-exchange was not refused.
		if g.h.Network().Connectedness(p) == network.Connected {
			g.refused(p, err)
		}
		_ = g.h.Network().ClosePeer(p)
		return
	}
	klog.V(2).InfoS("Peer proved membership", "peer", p, "node", m.Node, "until", m.Expires)
}

// renewed takes the result of a renewal of p's membership (exchange st):
// the same node, until a new expiry, or p is expelled. A renewal that did
// not get as far as a proof (proof nil: the stream failed) changes
// nothing; the next membershipCheck tries again.
func (g *Gate) renewed(p peer.ID, st *peerState, sent uint64, m membership.Member, proof []byte, err error) {
	g.mu.Lock()
	st.renewing = false
	node := st.node
	if err != nil && proof == nil {
		g.mu.Unlock()
		klog.V(2).InfoS("Membership renewal failed; retrying", "peer", p, "node", node, "err", err)
		return
	}
	ok := err == nil && m.Node == node
	if ok {
		st.expires, st.proof, st.renewed, st.sent = m.Expires, proof, time.Now(), sent
	}
	g.mu.Unlock()
	if err == nil && !ok {
		err = fmt.Errorf("%w: peer %s renewed its membership as %q, proven before as %q", membership.ErrNotMember, p, m.Node, node)
	}
	if err != nil {
		g.expel(p, st, err)
	}
}

// renew runs the exchange again with p, on its connection, as the dialer.
func (g *Gate) renew(p peer.ID, st *peerState) {
	sent := g.credsGen.Load()
	m, proof, err := g.exchange(p)
	g.renewed(p, st, sent, m, proof, err)
}

func (g *Gate) refused(p peer.ID, err error) {
	g.failures.Add(1)
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last > int64(time.Second) && g.lastLog.CompareAndSwap(last, now) {
		klog.InfoS("Refused a non-member", "peer", p, "reason", err, "refusedTotal", g.failures.Load())
	}
}

// Connected starts the exchange on outbound connections and a deadline on
// every connection.
func (g *Gate) Connected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	st := g.state(p)
	if st == nil {
		return // already gone again
	}
	g.mu.Lock()
	start := !st.started && c.Stat().Direction == network.DirOutbound
	if start {
		st.started = true
	}
	done := st.done
	g.mu.Unlock()
	if start {
		g.wg.Add(1)
		go func() { defer g.wg.Done(); g.proveOutbound(p, st) }()
	}
	g.wg.Add(1)
	go func() { // routineDeadline
		defer g.wg.Done()
		t := time.NewTimer(proveTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-g.ctx.Done():
		case <-t.C:
			g.finish(p, st, 0, membership.Member{}, nil, fmt.Errorf("%w: no membership proof within %s", membership.ErrNotMember, proveTimeout))
		}
	}()
}

// Disconnected forgets a peer once its last connection is gone: it proves
// membership again on the next connection.
func (g *Gate) Disconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	if n.Connectedness(p) == network.Connected {
		return
	}
	g.mu.Lock()
	st, ok := g.peers[p]
	if ok && !st.finished {
		// Gone before proving anything (an AutoNAT dial-back, a peer
		// that lost interest): not a refusal; waiters learn it now.
		st.err, st.finished = fmt.Errorf("%w: peer %s disconnected before proving membership", membership.ErrNotMember, p), true
		close(st.done)
	}
	if ok {
		delete(g.peers, p)
	}
	g.mu.Unlock()
}

func (g *Gate) Listen(network.Network, ma.Multiaddr)      {}
func (g *Gate) ListenClose(network.Network, ma.Multiaddr) {}

func (g *Gate) proveOutbound(p peer.ID, st *peerState) {
	sent := g.credsGen.Load()
	m, proof, err := g.exchange(p)
	g.finish(p, st, sent, m, proof, err)
}

// exchange runs the dialer's side with p: our proof, then theirs checked.
func (g *Gate) exchange(p peer.ID) (membership.Member, []byte, error) {
	ctx, cancel := context.WithTimeout(g.ctx, proveTimeout)
	defer cancel()
	s, err := g.h.NewStream(network.WithAllowLimitedConn(ctx, "membership"), p, MembershipProtocol)
	if err != nil {
		return membership.Member{}, nil, fmt.Errorf("%w: membership stream: %w", membership.ErrNotMember, err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(proveTimeout))
	if err := g.writeProof(s); err != nil {
		return membership.Member{}, nil, fmt.Errorf("%w: sending proof: %w", membership.ErrNotMember, err)
	}
	theirs, err := readProof(bufio.NewReader(s))
	if err != nil {
		return membership.Member{}, nil, fmt.Errorf("%w: reading proof: %w", membership.ErrNotMember, err)
	}
	m, err := g.verifier.Check(theirs, p)
	return m, theirs, err
}

// handleInbound is the listener's side: the first exchange on a connection
// or a renewal of a proven membership.
func (g *Gate) handleInbound(s network.Stream) {
	p := s.Conn().RemotePeer()
	st := g.state(p)
	if st == nil {
		_ = s.Reset()
		return
	}
	g.mu.Lock()
	renewal := st.finished && st.err == nil
	g.mu.Unlock()
	sent := g.credsGen.Load()
	result := func(m membership.Member, proof []byte, err error) {
		if renewal {
			g.renewed(p, st, sent, m, proof, err)
		} else {
			g.finish(p, st, sent, m, proof, err)
		}
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(proveTimeout))
	theirs, err := readProof(bufio.NewReader(s))
	if err != nil {
		result(membership.Member{}, nil, fmt.Errorf("%w: reading proof: %w", membership.ErrNotMember, err))
		_ = s.Reset()
		return
	}
	m, err := g.verifier.Check(theirs, p)
	if err != nil {
		result(membership.Member{}, theirs, err)
		_ = s.Reset()
		return
	}
	if err := g.writeProof(s); err != nil {
		result(membership.Member{}, nil, fmt.Errorf("%w: sending proof: %w", membership.ErrNotMember, err))
		return
	}
	result(m, theirs, nil)
}

func (g *Gate) writeProof(w io.Writer) error {
	proof, err := g.creds.Load().Proof(g.h.ID(), time.Now())
	if err != nil {
		return err
	}
	buf := binary.AppendUvarint(nil, uint64(len(proof)))
	_, err = w.Write(append(buf, proof...))
	return err
}

// readProof reads one length-prefixed proof, refusing oversized ones
// before allocating.
func readProof(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n == 0 || n > membership.MaxProofSize {
		return nil, errors.New("proof length out of range")
	}
	buf := make([]byte, n)
	_, err = io.ReadFull(r, buf)
	return buf, err
}
