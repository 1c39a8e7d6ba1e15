package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrUnknownPeer is returned for a node the path manager has no target
// for; ErrNoPath for a known one without a live path; ErrConnecting (an
// ErrNoPath) while a path asked for on demand is being set up.
var (
	ErrUnknownPeer = errors.New("not a known peer")
	ErrNoPath      = errors.New("no path")
	ErrConnecting  = fmt.Errorf("%w yet: connecting", ErrNoPath)
)

// PingResult is one probe over a peer's current path.
type PingResult struct {
	Node       string
	Path       PathKind
	Relay      string // node name of the relay carrying a relayed path
	RemoteAddr string
	RTT        time.Duration
}

// Ping sends one probe (ProbeProtocol, on a stream of its own) over the
// connection node's traffic uses now, and reports which path answered and
// how fast (`edgelink ping`). It waits at most timeout, also for a path
// that is being set up on demand (the ping asks for it).
func (m *PathManager) Ping(ctx context.Context, node string, timeout time.Duration) (PingResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pp, connecting := m.want(node)
	if pp == nil {
		return PingResult{}, fmt.Errorf("%q: %w", node, ErrUnknownPeer)
	}
	cur := pp.current.Load()
	for connecting && cur.conn == nil {
		select {
		case <-ctx.Done():
			return PingResult{}, fmt.Errorf("%s: %w", node, ErrConnecting)
		case <-cur.changed:
		}
		pp, connecting = m.want(node)
		if pp == nil {
			return PingResult{}, fmt.Errorf("%q: %w", node, ErrUnknownPeer)
		}
		cur = pp.current.Load()
	}
	if cur.conn == nil || cur.conn.IsClosed() {
		return PingResult{}, fmt.Errorf("%s: %w", node, ErrNoPath)
	}
	c := cur.conn
	res := PingResult{Node: node, RemoteAddr: c.RemoteMultiaddr().String()}
	kind, relay := Classify(c.RemoteMultiaddr())
	res.Path = kind
	if relay != "" {
		res.Relay = m.nodeOf(relay)
	}
	deadline, _ := ctx.Deadline()
	start := time.Now()
	s, err := openStream(ctx, c, timeout, ProbeProtocol)
	if err != nil {
		return res, fmt.Errorf("probe stream to %s over %s: %w", node, kind, err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(deadline)
	// Time the echo alone, not the stream's setup.
	var out, in [8]byte
	seq := uint64(start.UnixNano())
	binary.BigEndian.PutUint64(out[:], seq)
	sent := time.Now()
	if _, err := s.Write(out[:]); err != nil {
		return res, fmt.Errorf("probe to %s over %s: %w", node, kind, err)
	}
	if _, err := io.ReadFull(s, in[:]); err != nil {
		return res, fmt.Errorf("no answer from %s over %s within %s: %w", node, kind, timeout, err)
	}
	if binary.BigEndian.Uint64(in[:]) != seq {
		return res, fmt.Errorf("%s answered the probe with a wrong sequence number", node)
	}
	res.RTT = time.Since(sent)
	return res, nil
}
