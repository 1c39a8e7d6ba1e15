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
const MembershipProtocol = protocol.ID("/edgelink/membership/1.0.0")

// proveTimeout bounds the membership exchange; a connection that has not
// proven membership by then is closed. A var only so that this package's
// tests can shorten it.
var proveTimeout = 10 * time.Second

// Gate runs the membership exchange on every connection and guards every
// EdgeLink protocol behind it.
//
// Locking: mu guards peers.
type Gate struct {
	h        host.Host
	creds    *membership.Credentials
	verifier *membership.Verifier

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
	done     chan struct{} // closed when the exchange ended either way
	started  bool
	finished bool
}

func newGate(h host.Host, creds *membership.Credentials, v *membership.Verifier) (*Gate, error) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gate{h: h, creds: creds, verifier: v, ctx: ctx, cancel: cancel, peers: map[peer.ID]*peerState{}}
	h.SetStreamHandler(MembershipProtocol, g.handleInbound)
	h.Network().Notify(g)
	return g, nil
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

// finish ends the exchange st of peer p; an exchange that is no longer
// p's current one (p disconnected and came back) changes nothing.
func (g *Gate) finish(p peer.ID, st *peerState, node string, err error) {
	g.mu.Lock()
	if cur, ok := g.peers[p]; !ok || cur != st || st.finished {
		g.mu.Unlock()
		return
	}
	st.node, st.err, st.finished = node, err, true
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
	klog.V(2).InfoS("Peer proved membership", "peer", p, "node", node)
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
			g.finish(p, st, "", fmt.Errorf("%w: no membership proof within %s", membership.ErrNotMember, proveTimeout))
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
	ctx, cancel := context.WithTimeout(g.ctx, proveTimeout)
	defer cancel()
	s, err := g.h.NewStream(network.WithAllowLimitedConn(ctx, "membership"), p, MembershipProtocol)
	if err != nil {
		g.finish(p, st, "", fmt.Errorf("%w: membership stream: %w", membership.ErrNotMember, err))
		return
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(proveTimeout))
	if err := g.writeProof(s); err != nil {
		g.finish(p, st, "", fmt.Errorf("%w: sending proof: %w", membership.ErrNotMember, err))
		return
	}
	theirs, err := readProof(bufio.NewReader(s))
	if err != nil {
		g.finish(p, st, "", fmt.Errorf("%w: reading proof: %w", membership.ErrNotMember, err))
		return
	}
	node, err := g.verifier.Verify(theirs, p)
	g.finish(p, st, node, err)
}

func (g *Gate) handleInbound(s network.Stream) {
	p := s.Conn().RemotePeer()
	st := g.state(p)
	if st == nil {
		_ = s.Reset()
		return
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(proveTimeout))
	theirs, err := readProof(bufio.NewReader(s))
	if err != nil {
		g.finish(p, st, "", fmt.Errorf("%w: reading proof: %w", membership.ErrNotMember, err))
		_ = s.Reset()
		return
	}
	node, err := g.verifier.Verify(theirs, p)
	if err != nil {
		g.finish(p, st, "", err)
		_ = s.Reset()
		return
	}
	if err := g.writeProof(s); err != nil {
		g.finish(p, st, "", fmt.Errorf("%w: sending proof: %w", membership.ErrNotMember, err))
		return
	}
	g.finish(p, st, node, nil)
}

func (g *Gate) writeProof(w io.Writer) error {
	proof, err := g.creds.Proof(g.h.ID(), time.Now())
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
