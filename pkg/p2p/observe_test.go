package p2p

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	manet "github.com/multiformats/go-multiaddr/net"
)

// quicAddr is h's QUIC listen address.
func quicAddr(t *testing.T, h *Host) netip.AddrPort {
	t.Helper()
	for _, a := range h.Network().ListenAddresses() {
		if k, _ := Classify(a); k == PathDirectQUIC {
			_, hp, err := manet.DialArgs(a)
			if err != nil {
				t.Fatal(err)
			}
			return netip.MustParseAddrPort(hp)
		}
	}
	t.Fatalf("%s listens on no QUIC address", h.ID())
	return netip.AddrPort{}
}

// A node learns, from a relay's QUIC socket, the address its own QUIC
// socket sends from; QUIC connections on the same sockets keep working. A
// host that is not a relay does not answer.
func TestObserveUDP(t *testing.T) {
	c := newCluster(t)
	relay := c.start("relay", nil, Config{Public: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}})
	node := c.host("node", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := node.ObserveUDP(ctx, quicAddr(t, relay))
	if err != nil {
		t.Fatal(err)
	}
	want := quicAddr(t, node)
	if _, hp, _ := manet.DialArgs(got); hp != want.String() {
		t.Errorf("observed %s, want the node's QUIC socket %s", got, want)
	}
	if err := connect(t, node, relay); err != nil {
		t.Fatalf("QUIC/TCP connection after the exchange: %v", err)
	}
	// Nobody answers on a port without an observer: a clear error.
	if _, err := node.ObserveUDP(ctx, netip.MustParseAddrPort("127.0.0.1:9")); err == nil {
		t.Error("an observation with no answer succeeded")
	}
	if got, err := relay.ObserveUDP(ctx, quicAddr(t, node)); err == nil {
		t.Errorf("a host that is not a relay answered: %s", got)
	}
}

func TestObserveMessages(t *testing.T) {
	for _, m := range []observeMsg{
		{typ: observeRequest, nonce: [16]byte{1, 2}},
		{typ: observeAnswer, nonce: [16]byte{3}, addr: netip.MustParseAddrPort("198.18.0.101:20006")},
		{typ: observeAnswer, nonce: [16]byte{4}, addr: netip.MustParseAddrPort("[fd00::1]:443")},
	} {
		b := m.append(nil)
		if m.typ == observeAnswer && len(b) > observeReqLen {
			t.Errorf("answer of %d bytes is longer than a request (%d): amplification", len(b), observeReqLen)
		}
		got, err := parseObserve(b)
		if err != nil || got != m {
			t.Errorf("round trip of %+v: %+v, %v", m, got, err)
		}
		if _, err := parseObserve(b[:len(b)-1]); err == nil {
			t.Errorf("a truncated %+v parsed", m)
		}
	}
	// An IPv4 address in IPv6 form is not how answers carry it (it would
	// not encode back to the same bytes).
	mapped := observeMsg{typ: observeAnswer, addr: netip.MustParseAddrPort("[fd00::1]:5")}.append(nil)
	a := netip.MustParseAddr("::ffff:1.2.3.4").As16()
	copy(mapped[len(mapped)-16:], a[:])
	if _, err := parseObserve(mapped); err == nil {
		t.Error("an IPv4-mapped address in a family-6 answer parsed")
	}
	if _, err := parseObserve(bytes.Repeat([]byte{0xc0}, 1200)); err == nil {
		t.Error("a QUIC-looking datagram parsed as an observe message")
	}
}

func FuzzParseObserve(f *testing.F) {
	f.Add(observeMsg{typ: observeRequest}.append(nil))
	f.Add(observeMsg{typ: observeAnswer, addr: netip.MustParseAddrPort("1.2.3.4:5")}.append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseObserve(b)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to the same bytes (requests: the
		// padding is zeros by definition, so compare the header).
		out := m.append(nil)
		if m.typ == observeAnswer && !bytes.Equal(out, b) {
			t.Fatalf("answer %x re-encodes as %x", b, out)
		}
		if m.typ == observeRequest && !bytes.Equal(out[:22], b[:22]) {
			t.Fatalf("request %x re-encodes as %x", b, out)
		}
	})
}
