package p2p

import (
	"context"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// connectedMembers starts edge-a and edge-b, connects them and waits until
// both proved membership; it returns a's connection to b.
func connectedMembers(t *testing.T, c *cluster) (a, b *Host, ab network.Conn) {
	t.Helper()
	a, b = c.host("edge-a", nil), c.host("edge-b", nil)
	proven(t, a, b)
	proven(t, b, a)
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) == 0 {
		t.Fatal("a has no connection to b")
	}
	return a, b, conns[0]
}

// `edgelink ping` over a real connection against a peer that echoes, one
// that answers with another sequence number, one that stays silent, one
// that hangs up or answers half, and one that does not speak the probe
// protocol: only the echo is a result (with the path it took), every
// other answer is an error that says what happened, within the timeout.
func TestPing(t *testing.T) {
	c := newCluster(t)
	a, b, ab := connectedMembers(t, c)
	pm := a.NewPathManager(func() []RelayRef { return nil }, PathOptions{})
	t.Cleanup(pm.Close)
	pp := addPeer(pm, Target{Node: "edge-b", ID: b.ID()})
	pp.current.Store(&currentConn{conn: ab, gen: 1})

	for _, tc := range []struct {
		name    string
		handler network.StreamHandler // b's probe handler; nil: none
		wantErr string
	}{
		{"echo", handleProbe, ""},
		{"wrong sequence number", func(s network.Stream) {
			defer s.Close()
			var buf [8]byte
			if _, err := io.ReadFull(s, buf[:]); err == nil {
				s.Write(binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(buf[:])+1))
			}
		}, "answered the probe with a wrong sequence number"},
		{"silence", func(s network.Stream) { defer s.Close(); io.Copy(io.Discard, s) }, "no answer from edge-b"},
		{"hangs up", func(s network.Stream) { s.Close() }, "no answer from edge-b"},
		{"half an answer", func(s network.Stream) {
			defer s.Close()
			var buf [8]byte
			if _, err := io.ReadFull(s, buf[:]); err == nil {
				s.Write(buf[:3])
			}
		}, "no answer from edge-b"},
		{"no probe protocol", nil, "probe stream to edge-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.handler == nil {
				b.RemoveStreamHandler(ProbeProtocol)
			} else {
				b.Gate.Handle(ProbeProtocol, tc.handler)
			}
			res, err := pm.Ping(context.Background(), "edge-b", 500*time.Millisecond)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if res.Node != "edge-b" || res.Path != kindOf(ab) || res.RemoteAddr != ab.RemoteMultiaddr().String() || res.RTT <= 0 || res.Relay != "" {
					t.Fatalf("ping result %+v over %s", res, ab.RemoteMultiaddr())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ping: %v, want an error with %q", err, tc.wantErr)
			}
			if res.Path != kindOf(ab) {
				t.Errorf("a failed ping does not say which path it tried: %+v", res)
			}
		})
	}

	// The caller's context bounds it too.
	b.Gate.Handle(ProbeProtocol, func(s network.Stream) { defer s.Close(); io.Copy(io.Discard, s) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pm.Ping(ctx, "edge-b", time.Minute); err == nil {
		t.Error("a ping with a cancelled context succeeded")
	}
}

// proven connects from to to (if not yet) and waits until to has seen
// from prove membership; it returns the node name from proved.
func proven(t *testing.T, from, to *Host) string {
	t.Helper()
	if err := connect(t, from, to); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := to.Gate.WaitMember(ctx, from.ID())
	if err != nil {
		t.Fatal(err)
	}
	return node
}
