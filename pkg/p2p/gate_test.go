package p2p

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/edgelink/edgelink/pkg/membership"
)

const echoProto = "/edgelink/test-echo/1.0.0"

type cluster struct {
	t   *testing.T
	dir string
	ca  *membership.CA
	ver *membership.Verifier
	// validity of the certificates issued to hosts started from now on
	// (0: an hour).
	validity time.Duration
}

func newCluster(t *testing.T) *cluster {
	dir := t.TempDir()
	ca, err := membership.InitCA(filepath.Join(dir, "ca"), "test", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, err := membership.NewVerifier(filepath.Join(dir, "ca", membership.CACertFile), "")
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, dir: dir, ca: ca, ver: v}
}

// host starts a node whose certificate comes from issuer (nil: this
// cluster's CA), on loopback.
func (c *cluster) host(node string, issuer *membership.CA) *Host {
	c.t.Helper()
	return c.start(node, issuer, Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}})
}

// hostAt starts a member node on the given listen addresses, keeping its
// identity across restarts.
func (c *cluster) hostAt(node string, listen []string) *Host {
	c.t.Helper()
	return c.start(node, nil, Config{ListenAddrs: listen})
}

// start starts node with cfg (its listen addresses, options), the node's
// identity (kept under the cluster's dir) and a certificate from issuer
// (nil: this cluster's CA) filled in; closed at cleanup.
func (c *cluster) start(node string, issuer *membership.CA, cfg Config) *Host {
	c.t.Helper()
	key, id, err := LoadOrCreateIdentity(filepath.Join(c.dir, node, "identity.key"))
	if err != nil {
		c.t.Fatal(err)
	}
	if issuer == nil {
		issuer = c.ca
	}
	validity := c.validity
	if validity == 0 {
		validity = time.Hour
	}
	crt, k, err := issuer.Issue(node, id, validity, filepath.Join(c.dir, node))
	if err != nil {
		c.t.Fatal(err)
	}
	creds, err := membership.LoadCredentials(crt, k)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg.Key, cfg.Credentials, cfg.Verifier = key, creds, c.ver
	h, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	h.Gate.Handle(echoProto, func(s network.Stream) {
		defer s.Close()
		_, _ = io.Copy(s, s)
	})
	c.t.Cleanup(func() { h.Close() })
	return h
}

func connect(t *testing.T, from, to *Host) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()})
}

func echo(ctx context.Context, from, to *Host) error {
	s, err := from.NewStream(ctx, to.ID(), echoProto)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Write([]byte("ping")); err != nil {
		return err
	}
	_ = s.CloseWrite()
	buf, err := io.ReadAll(s)
	if err != nil {
		return err
	}
	if string(buf) != "ping" {
		return errors.New("echo mismatch")
	}
	return nil
}

// Members prove themselves both ways and then reach each other's protocols.
func TestMembersConnect(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"))
	c := newCluster(t)
	a, b := c.host("edge-a", nil), c.host("edge-b", nil)
	if err := connect(t, a, b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if node, err := a.Gate.WaitMember(ctx, b.ID()); err != nil || node != "edge-b" {
		t.Fatalf("a sees b as %q, %v", node, err)
	}
	if node, err := b.Gate.WaitMember(ctx, a.ID()); err != nil || node != "edge-a" {
		t.Fatalf("b sees a as %q, %v", node, err)
	}
	if err := echo(ctx, a, b); err != nil {
		t.Fatalf("member stream: %v", err)
	}
	a.Close()
	b.Close()
}

// A peer without a certificate from the cluster CA is disconnected and
// never reaches a guarded protocol.
func TestNonMemberRefused(t *testing.T) {
	c := newCluster(t)
	a := c.host("edge-a", nil)
	rogueCA, err := membership.InitCA(filepath.Join(c.dir, "rogue-ca"), "rogue", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rogue := c.host("rogue", rogueCA)
	if err := connect(t, rogue, a); err != nil {
		t.Fatal(err) // the transport handshake itself succeeds
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Gate.WaitMember(ctx, rogue.ID()); !errors.Is(err, membership.ErrNotMember) {
		t.Fatalf("a accepted the rogue: %v", err)
	}
	if err := echo(ctx, rogue, a); err == nil {
		t.Fatal("a non-member reached a guarded protocol")
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Network().Connectedness(rogue.ID()) == network.Connected && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if a.Network().Connectedness(rogue.ID()) == network.Connected {
		t.Error("the rogue's connection stayed open")
	}
	if a.Gate.Failures() == 0 {
		t.Error("refusal not counted")
	}
}

// FuzzReadProof: the framing of proofs read from any connecting peer.
func FuzzReadProof(f *testing.F) {
	f.Add([]byte{0x04, 'a', 'b', 'c', 'd'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := readProof(bufio.NewReader(bytes.NewReader(data)))
		if err == nil && (len(p) == 0 || len(p) > membership.MaxProofSize) {
			t.Fatalf("accepted a %d-byte proof", len(p))
		}
	})
}

// A guarded stream opened at once, before any proof, by a peer that never
// proves membership (a plain libp2p host): the gate holds it until the
// proof deadline and then resets it; the handler never runs, so not one
// byte comes back.
func TestGateHoldsStreamsUntilProof(t *testing.T) {
	old := proveTimeout
	proveTimeout = 2 * time.Second
	t.Cleanup(func() { proveTimeout = old })
	c := newCluster(t)
	a := c.host("edge-a", nil)
	plain, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := plain.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := plain.NewStream(ctx, a.ID(), echoProto)
	if err != nil {
		return // refused at negotiation: nothing reached the handler either
	}
	defer s.Close()
	_, _ = s.Write([]byte("ping"))
	_ = s.CloseWrite()
	got, _ := io.ReadAll(s)
	if len(got) > 0 {
		t.Fatalf("a peer that never proved membership got %q back from a guarded protocol after %s", got, time.Since(start).Round(time.Millisecond))
	}
	if el := time.Since(start); el < proveTimeout/2 {
		t.Errorf("the stream ended after %s, before the proof deadline: was it refused for another reason?", el.Round(time.Millisecond))
	}
}
