package p2p

import (
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	ma "github.com/multiformats/go-multiaddr"
)

// The addresses hole punching offers: our own and the NAT mappings relays
// observed, once each, never a circuit or a private or loopback address
// (a punch toward those cannot work); SetObserved keeps its own copy.
func TestHolePunchAddrs(t *testing.T) {
	c := newCluster(t)
	h := c.host("edge-a", nil) // listens on loopback only
	if got := h.holePunchAddrs(); len(got) != 0 {
		t.Fatalf("before any observation: %v", got)
	}
	mapping := ma.StringCast("/ip4/1.2.3.4/udp/40001/quic-v1")
	observed := []ma.Multiaddr{
		mapping,
		ma.StringCast("/ip4/1.2.3.4/tcp/1/p2p/" + relayA + "/p2p-circuit"),
		ma.StringCast("/ip4/192.168.7.1/udp/40001/quic-v1"),
		ma.StringCast("/ip4/127.0.0.1/udp/40001/quic-v1"),
		mapping,
	}
	h.SetObserved(observed)
	observed[0] = ma.StringCast("/ip4/5.6.7.8/tcp/1")
	got := h.holePunchAddrs()
	if !slices.EqualFunc(got, []ma.Multiaddr{mapping}, ma.Multiaddr.Equal) {
		t.Fatalf("hole punch addresses %v, want only %s", got, mapping)
	}
	h.SetObserved(nil)
	if got := h.holePunchAddrs(); len(got) != 0 {
		t.Fatalf("after the observations were cleared: %v", got)
	}
}

// A host is not started without an identity, credentials and a verifier:
// it could not take part in the membership exchange.
func TestNewNeedsMembership(t *testing.T) {
	c := newCluster(t)
	key, _, err := LoadOrCreateIdentity(t.TempDir() + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"nothing":        {},
		"no credentials": {Key: key, Verifier: c.ver},
		"no verifier":    {Key: key},
	} {
		h, err := New(cfg)
		if err == nil {
			h.Close()
			t.Errorf("%s: a host started", name)
		} else if !strings.Contains(err.Error(), "needs an identity key, membership credentials and a verifier") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Every yamux stream's receive window stops growing at MaxStreamWindow
// (what a flooding member can make us buffer per stream), and libp2p's
// shared default transport is left as it is.
func TestMuxerWindow(t *testing.T) {
	if got := muxer().MaxStreamWindowSize; got != MaxStreamWindow {
		t.Errorf("yamux window grows to %d, want %d", got, MaxStreamWindow)
	}
	if yamux.DefaultTransport.MaxStreamWindowSize == MaxStreamWindow {
		t.Error("libp2p's default yamux transport was changed")
	}
}
