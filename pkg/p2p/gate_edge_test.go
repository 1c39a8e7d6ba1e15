package p2p

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelink/edgelink/pkg/membership"
)

// outsider is a plain libp2p host (no gate) that speaks the membership
// protocol by hand, with a certificate from the cluster CA valid for
// validity (negative: expired).
type outsider struct {
	host.Host
	creds *membership.Credentials
}

func newOutsider(t *testing.T, c *cluster, node string, validity time.Duration) *outsider {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	crt, k, err := c.ca.Issue(node, h.ID(), validity, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := membership.LoadCredentials(crt, k)
	if err != nil {
		t.Fatal(err)
	}
	return &outsider{Host: h, creds: creds}
}

func framedProof(p []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(p))), p...) }

// The gate against peers that speak the membership protocol themselves:
// a valid proof gets the gate's own proof back and makes the peer a
// member under its certificate's name; an expired proof, an expired
// certificate, another peer's proof (replayed), a certificate bound to
// another peer, an oversized length, a proof that is not JSON and a proof
// cut off by a stream reset, and silence until proveTimeout are refused
// with the reason, counted once, and the peer is disconnected. A peer whose connection closes in the
// middle of its proof is not a member either, but was not refused.
func TestGateRefusesBadProofs(t *testing.T) {
	old := proveTimeout
	proveTimeout = time.Second // for the one that never proves
	t.Cleanup(func() { proveTimeout = old })
	c := newCluster(t)
	a := c.host("edge-a", nil)
	other := newOutsider(t, c, "edge-o", time.Hour) // another peer with valid credentials

	for _, tc := range []struct {
		name     string
		validity time.Duration
		send     func(t *testing.T, o *outsider, s network.Stream)
		wantErr  string // "": a member; "-": gone before proving, not a refusal
	}{
		{"valid proof", time.Hour, func(t *testing.T, o *outsider, s network.Stream) {
			p, _ := o.creds.Proof(o.ID(), time.Now())
			s.Write(framedProof(p))
			theirs, err := readProof(bufio.NewReader(s))
			if err != nil {
				t.Fatalf("the gate's answer: %v", err)
			}
			if node, err := c.ver.Verify(theirs, a.ID()); err != nil || node != "edge-a" {
				t.Errorf("the gate's proof verifies as %q, %v", node, err)
			}
		}, ""},
		{"expired proof", time.Hour, func(_ *testing.T, o *outsider, s network.Stream) {
			p, _ := o.creds.Proof(o.ID(), time.Now().Add(-membership.ProofLifetime-time.Hour))
			s.Write(framedProof(p))
		}, "proof expired"},
		{"expired certificate", -time.Minute, func(_ *testing.T, o *outsider, s network.Stream) {
			p, _ := o.creds.Proof(o.ID(), time.Now())
			s.Write(framedProof(p))
		}, `certificate of "edge-p" expired`},
		{"another peer's proof", time.Hour, func(_ *testing.T, _ *outsider, s network.Stream) {
			p, _ := other.creds.Proof(other.ID(), time.Now())
			s.Write(framedProof(p))
		}, "proof is for peer"},
		{"certificate of another peer", time.Hour, func(_ *testing.T, o *outsider, s network.Stream) {
			p, _ := other.creds.Proof(o.ID(), time.Now())
			s.Write(framedProof(p))
		}, "is bound to peer " + other.ID().String()},
		{"oversized length", time.Hour, func(_ *testing.T, _ *outsider, s network.Stream) {
			s.Write(binary.AppendUvarint(nil, membership.MaxProofSize+1))
		}, "proof length out of range"},
		{"not JSON", time.Hour, func(_ *testing.T, _ *outsider, s network.Stream) {
			s.Write(framedProof([]byte("let me in")))
		}, "not valid JSON"},
		{"reset mid-proof", time.Hour, func(_ *testing.T, _ *outsider, s network.Stream) {
			s.Write(append(binary.AppendUvarint(nil, 100), "0123456789"...))
			s.Reset()
		}, "reading proof"},
		{"silence", time.Hour, nil, "no membership proof within"},
		{"connection closed mid-proof", time.Hour, func(_ *testing.T, o *outsider, s network.Stream) {
			s.Write(append(binary.AppendUvarint(nil, 100), "0123456789"...))
			o.Network().ClosePeer(a.ID())
		}, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutsider(t, c, "edge-p", tc.validity)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := o.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: tcpAddrs(a)}); err != nil {
				t.Fatal(err)
			}
			st := a.Gate.state(o.ID()) // the exchange this connection runs
			before := a.Gate.Failures()
			if tc.send != nil {
				// Negotiated before anything is sent (libp2p's
				// NewStream negotiates lazily, with the first write):
				// the gate's handler has the stream before the proof
				// starts.
				s, err := openStream(ctx, o.Network().ConnsToPeer(a.ID())[0], 10*time.Second, MembershipProtocol)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				_ = s.SetDeadline(time.Now().Add(10 * time.Second))
				tc.send(t, o, s)
			}
			select {
			case <-st.done:
			case <-ctx.Done():
				t.Fatal("the exchange did not end")
			}
			a.Gate.mu.Lock()
			node, verr := st.node, st.err
			a.Gate.mu.Unlock()
			if tc.wantErr == "" {
				if verr != nil || node != "edge-p" {
					t.Fatalf("member as %q, %v", node, verr)
				}
				if n, ok := a.Gate.Member(o.ID()); !ok || n != "edge-p" || a.Gate.Failures() != before {
					t.Errorf("Member = %q %v, failures %d -> %d", n, ok, before, a.Gate.Failures())
				}
				return
			}
			if tc.wantErr == "-" { // gone, not refused: not a member, not counted
				if !errors.Is(verr, membership.ErrNotMember) || a.Gate.Failures() != before {
					t.Errorf("exchange ended with %v, failures %d -> %d", verr, before, a.Gate.Failures())
				}
				return
			}
			if !errors.Is(verr, membership.ErrNotMember) || !strings.Contains(verr.Error(), tc.wantErr) {
				t.Fatalf("refusal %v, want %q", verr, tc.wantErr)
			}
			// The refusal is counted just after the exchange ends.
			waitFor(t, "the refusal counted", func() bool { return a.Gate.Failures() > before })
			if got := a.Gate.Failures(); got != before+1 {
				t.Errorf("failures %d -> %d, want one more", before, got)
			}
			if _, ok := a.Gate.Member(o.ID()); ok {
				t.Error("a refused peer is a member")
			}
			waitFor(t, "the refused peer disconnected", func() bool { return a.Network().Connectedness(o.ID()) != network.Connected })
		})
	}
}

// A peer that connects and answers probes but stalls its membership proof
// (until the gate's deadline) is never made a path: nothing is sent to it
// before it proved membership.
func TestNoPathBeforeProof(t *testing.T) {
	fastPaths(t)
	c := newCluster(t)
	a := c.host("edge-a", nil)
	o := newOutsider(t, c, "edge-o", time.Hour)
	o.SetStreamHandler(ProbeProtocol, handleProbe) // answers probes, never proves
	pm := a.NewPathManager(func() []RelayRef { return nil }, PathOptions{})
	t.Cleanup(pm.Close)
	pm.SetTargets([]Target{{Node: "edge-o", ID: o.ID()}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: tcpAddrs(a)}); err != nil {
		t.Fatal(err)
	}
	// Ten probe rounds, well inside the gate's 10 s deadline.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, _, err := pm.Open(ctx, "edge-o"); err == nil {
			t.Fatal("a packet stream opened to a peer that has not proven membership")
		}
		if g := pm.pathGen("edge-o"); g != 0 {
			t.Fatalf("path generation %d for a peer that has not proven membership", g)
		}
	}
	if st := statusOf(t, pm, "edge-o"); st.Path != PathNone || len(st.Conns) == 0 {
		t.Errorf("edge-o: path %s with %d connections, want none while its connection is up", st.Path, len(st.Conns))
	}
}

// A member may hold only a few packet streams with us (one per direction
// and a spare while a path moves): the streams past that are refused by
// the resource manager before they reach the data plane, which would
// give each its buffers.
func TestPacketStreamsPerPeerBounded(t *testing.T) {
	c := newCluster(t)
	a, b := c.host("edge-a", nil), c.host("edge-b", nil)
	var handled atomic.Int32
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	a.HandlePackets(func(_ string, r io.ReadCloser) {
		handled.Add(1)
		go func() { <-release; r.Close() }()
	})
	proven(t, b, a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := b.Network().ConnsToPeer(a.ID())[0]
	for range 12 {
		s, err := openStream(ctx, conn, 5*time.Second, PacketsProtocol)
		if err == nil {
			_, _ = s.Write([]byte{0}) // reaches the handler, or the reset
			defer s.Reset()
		}
	}
	time.Sleep(500 * time.Millisecond) // the handlers of the streams let in
	if n, limit := handled.Load(), int32(protocolPeerStreams[PacketsProtocol]); n == 0 || n > limit {
		t.Errorf("%d of 12 packet streams from one member reached the handler, want 1 to %d", n, limit)
	}
}
