package p2p

import (
	"context"
	"encoding/binary"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
	"golang.org/x/time/rate"
)

// ProbeProtocol is the keepalive that measures each connection.
//
// Wire format: one long-lived stream per connection, opened by the
// prober. The prober writes an 8-byte big-endian sequence number every
// probeInterval; the other side writes the same 8 bytes back. Echoes of
// older sequence numbers (late answers) are skipped. A side that hears
// nothing for probeIdle closes the stream.
const ProbeProtocol = protocol.ID("/edgelink/probe/1.0.0")

// Probe timing: a connection that misses probeFailures answers in a row,
// each waited for probeTimeout, is declared dead and closed (about 3-4 s
// after the path broke). Not settings: both ends of a path rely on them
// (probeIdle against probeInterval); vars only so that this package's tests
// can shorten them.
var (
	probeInterval = time.Second
	probeTimeout  = time.Second
	probeFailures = 3
	probeIdle     = 30 * time.Second
)

// A prober sends one probe per probeInterval (`edgelink ping` one per
// stream); probes faster than probeRate, beyond a burst of probeBurst,
// end the stream (reset: what it buffered is dropped). A member that
// writes probes without reading the echoes would otherwise make the
// handler wait to write while its probes fill the stream's receive
// window, one window per stream it may open.
const (
	probeRate  = 8 // per second
	probeBurst = 32
)

// handleProbe echoes probes (members only: registered through the gate).
// It ends when the prober is silent for probeIdle, does not take its
// echoes for probeIdle, or probes faster than probeRate.
func handleProbe(s network.Stream) {
	defer s.Close()
	limit := rate.NewLimiter(probeRate, probeBurst)
	var buf [8]byte
	for {
		_ = s.SetDeadline(time.Now().Add(probeIdle))
		if _, err := io.ReadFull(s, buf[:]); err != nil {
			return
		}
		if !limit.Allow() {
			_ = s.Reset()
			return
		}
		if _, err := s.Write(buf[:]); err != nil {
			return
		}
	}
}

// connProbe measures one connection until it dies or ctx ends.
type connProbe struct {
	conn network.Conn

	rtt      atomic.Int64 // nanoseconds, last answer
	alive    atomic.Bool  // answered since the last probeFailures misses
	answered atomic.Bool  // answered at least once
	misses   atomic.Int32
	lastOK   atomic.Int64 // unix nanos
	bytes    atomic.Uint64
	// up, if set, is called when the connection starts answering (its
	// first answer, or the first after it was declared dead).
	up func()
}

// run probes until the connection is declared dead (then closes it) or
// ctx ends.
func (p *connProbe) run(ctx context.Context) {
	var s network.Stream
	defer func() {
		if s != nil {
			_ = s.Reset()
		}
	}()
	var seq uint64
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		if s == nil {
			s = p.open(ctx)
		}
		ok := false
		if s != nil {
			seq++
			var rtt time.Duration
			rtt, ok = p.once(s, seq)
			if ok {
				p.rtt.Store(int64(rtt))
				p.lastOK.Store(time.Now().UnixNano())
				p.bytes.Add(16)
			} else {
				_ = s.Reset()
				s = nil
			}
		}
		if ok {
			p.misses.Store(0)
			if !p.alive.Swap(true) && p.up != nil {
				p.up()
			}
			p.answered.Store(true)
		} else if p.misses.Add(1) >= int32(probeFailures) {
			p.alive.Store(false)
			if p.conn.IsClosed() || p.answered.Load() || p.misses.Load() >= int32(2*probeFailures) {
				// Dead: close it so that traffic moves to another path
				// and libp2p forgets it. A connection that never
				// answered gets twice as long (the peer may still be
				// proving membership).
				_ = p.conn.Close()
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *connProbe) open(ctx context.Context) network.Stream {
	s, err := openStream(ctx, p.conn, probeTimeout, ProbeProtocol)
	if err != nil {
		return nil
	}
	return s
}

// openStream opens a stream for proto on conn and negotiates it, within
// timeout; the stream keeps that deadline (callers set their own).
func openStream(ctx context.Context, conn network.Conn, timeout time.Duration, protos ...protocol.ID) (network.Stream, error) {
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := conn.NewStream(octx)
	if err != nil {
		return nil, err
	}
	_ = s.SetDeadline(time.Now().Add(timeout))
	proto := protos[0]
	if len(protos) == 1 {
		err = msmux.SelectProtoOrFail(proto, s)
	} else {
		proto, err = msmux.SelectOneOf(protos, s) // the first the peer speaks
	}
	if err == nil {
		err = s.SetProtocol(proto)
	}
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	return s, nil
}

func (p *connProbe) once(s network.Stream, seq uint64) (time.Duration, bool) {
	var out, in [8]byte
	binary.BigEndian.PutUint64(out[:], seq)
	start := time.Now()
	_ = s.SetDeadline(start.Add(probeTimeout))
	if _, err := s.Write(out[:]); err != nil {
		return 0, false
	}
	for {
		if _, err := io.ReadFull(s, in[:]); err != nil {
			return 0, false
		}
		if got := binary.BigEndian.Uint64(in[:]); got == seq {
			return time.Since(start), true
		} else if got > seq {
			return 0, false // nonsense from the peer
		}
	}
}
