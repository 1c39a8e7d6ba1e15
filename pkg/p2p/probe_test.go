package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// pipeStream is a stream over one end of net.Pipe, for the probe
// protocol's two sides without libp2p.
type pipeStream struct {
	network.Stream
	c net.Conn
}

func (s *pipeStream) Read(b []byte) (int, error)         { return s.c.Read(b) }
func (s *pipeStream) Write(b []byte) (int, error)        { return s.c.Write(b) }
func (s *pipeStream) Close() error                       { return s.c.Close() }
func (s *pipeStream) Reset() error                       { return s.c.Close() }
func (s *pipeStream) SetDeadline(t time.Time) error      { return s.c.SetDeadline(t) }
func (s *pipeStream) SetReadDeadline(t time.Time) error  { return s.c.SetReadDeadline(t) }
func (s *pipeStream) SetWriteDeadline(t time.Time) error { return s.c.SetWriteDeadline(t) }

func setProbeTiming(t *testing.T, interval, timeout, idle time.Duration) {
	t.Helper()
	oi, ot, oidle := probeInterval, probeTimeout, probeIdle
	probeInterval, probeTimeout, probeIdle = interval, timeout, idle
	t.Cleanup(func() { probeInterval, probeTimeout, probeIdle = oi, ot, oidle })
}

func frame(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// The prober's side of one probe against peers that answer right, late,
// with nonsense, half or not at all: only the echo of the sequence number
// sent counts, older echoes are skipped, a newer one is nonsense, and a
// peer that stalls costs at most probeTimeout.
func TestProbeOnceAgainstPeers(t *testing.T) {
	setProbeTiming(t, time.Second, 200*time.Millisecond, time.Second)
	const seq = 7
	for _, tc := range []struct {
		name string
		peer func(c net.Conn, got []byte) // after reading the probe
		ok   bool
	}{
		{"echo", func(c net.Conn, got []byte) { c.Write(got) }, true},
		{"late answers first", func(c net.Conn, got []byte) { c.Write(frame(5)); c.Write(frame(6)); c.Write(got) }, true},
		{"a newer sequence number", func(c net.Conn, _ []byte) { c.Write(frame(seq + 1)) }, false},
		{"garbage", func(c net.Conn, _ []byte) { c.Write([]byte("\xff\xff\xff\xff\xff\xff\xff\xff")) }, false},
		{"half an answer, then silence", func(c net.Conn, got []byte) { c.Write(got[:4]) }, false},
		{"silence", func(net.Conn, []byte) {}, false},
		{"hangs up", func(c net.Conn, _ []byte) { c.Close() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, theirs := net.Pipe()
			defer ours.Close()
			defer theirs.Close()
			peerDone := make(chan struct{})
			go func() {
				defer close(peerDone)
				buf := make([]byte, 8)
				if _, err := io.ReadFull(theirs, buf); err != nil {
					return
				}
				_ = theirs.SetWriteDeadline(time.Now().Add(5 * time.Second))
				tc.peer(theirs, buf)
			}()
			p := &connProbe{}
			rtt, ok := p.once(&pipeStream{c: ours}, seq)
			if ok != tc.ok {
				t.Fatalf("probe answered %v, want %v", ok, tc.ok)
			}
			if ok && rtt <= 0 {
				t.Errorf("answered probe with RTT %s", rtt)
			}
			ours.Close() // unblocks a peer still writing
			<-peerDone
		})
	}
}

// The answering side: every 8-byte probe is echoed as it came, and a
// prober that sends half a probe and stalls, hangs up, never reads its
// echoes, or probes far faster than a prober does ends the handler
// (bounded by probeIdle) instead of holding it forever.
func TestHandleProbe(t *testing.T) {
	setProbeTiming(t, time.Second, time.Second, 200*time.Millisecond)
	for _, tc := range []struct {
		name   string
		prober func(t *testing.T, c net.Conn)
	}{
		{"echoes and ends on hang-up", func(t *testing.T, c net.Conn) {
			for _, seq := range []uint64{1, 2, 1 << 60} {
				c.Write(frame(seq))
				got := make([]byte, 8)
				if _, err := io.ReadFull(c, got); err != nil || binary.BigEndian.Uint64(got) != seq {
					t.Errorf("probe %d: echo %x, %v", seq, got, err)
				}
			}
			c.Close()
		}},
		{"half a probe, then silence", func(_ *testing.T, c net.Conn) { c.Write([]byte{1, 2, 3}) }},
		{"silence", func(*testing.T, net.Conn) {}},
		{"never reads the echoes", func(_ *testing.T, c net.Conn) { c.Write(frame(1)) }},
		{"probes as fast as it can", func(t *testing.T, c net.Conn) {
			for i := range 10 * probeBurst {
				c.Write(frame(uint64(i)))
				if _, err := io.ReadFull(c, make([]byte, 8)); err != nil {
					if i < probeBurst {
						t.Errorf("stream ended after %d probes, within the burst of %d", i, probeBurst)
					}
					return
				}
			}
			t.Errorf("%d probes in a row were all echoed", 10*probeBurst)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, theirs := net.Pipe()
			defer ours.Close()
			done := make(chan struct{})
			go func() { defer close(done); handleProbe(&pipeStream{c: theirs}) }()
			tc.prober(t, ours)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the probe handler still runs long after probeIdle")
			}
		})
	}
}

// noStreamConn is a connection on which no probe stream opens.
type noStreamConn struct {
	fakeConn
	attempts atomic.Int32
}

func (c *noStreamConn) NewStream(context.Context) (network.Stream, error) {
	c.attempts.Add(1)
	return nil, errors.New("stream refused")
}

// When the prober gives up on a connection: one that answered before (or
// is closed already) after probeFailures failed probes, one that never
// answered after twice as many (its peer may still be proving
// membership); either way it is declared dead and closed. A prober whose
// context ends leaves the connection open.
func TestProbeRunDeclaresDead(t *testing.T) {
	setProbeTiming(t, time.Millisecond, 100*time.Millisecond, time.Second)
	for _, tc := range []struct {
		name         string
		answered     bool
		closed       bool
		cancel       bool
		wantAttempts int32
		wantClosed   bool
	}{
		{"never answered", false, false, false, int32(2 * probeFailures), true},
		{"answered before", true, false, false, int32(probeFailures), true},
		{"closed already", false, true, false, int32(probeFailures), true},
		{"context ends", false, false, true, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &noStreamConn{fakeConn: *conn("/ip4/198.18.0.101/tcp/20006", network.DirOutbound, 0)}
			c.closed = tc.closed
			p := &connProbe{conn: c}
			p.alive.Store(true)
			p.answered.Store(tc.answered)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			done := make(chan struct{})
			go func() { defer close(done); p.run(ctx) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("the prober still runs after %d attempts", c.attempts.Load())
			}
			if got := c.attempts.Load(); got != tc.wantAttempts {
				t.Errorf("gave up after %d attempts, want %d", got, tc.wantAttempts)
			}
			if c.closed != tc.wantClosed {
				t.Errorf("connection closed %v, want %v", c.closed, tc.wantClosed)
			}
			if !tc.cancel && p.alive.Load() {
				t.Error("a connection given up on is still alive")
			}
		})
	}
}
