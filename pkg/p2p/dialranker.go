package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// Dial delays (rankDials): TCP first, QUIC shortly after, circuits last.
const (
	quicDialDelay  = 250 * time.Millisecond
	relayDialDelay = 500 * time.Millisecond
)

// rankDials orders dials for tunnels: every direct TCP address at once,
// direct QUIC ones quicDialDelay later, relay circuits after
// relayDialDelay. libp2p's default prefers QUIC, but TCP+TLS carried about
// twice QUIC's throughput on the data path (docs/benchmarks.md), and where TCP
// cannot connect (UDP-only paths) QUIC wins a moment later. The first
// connection wins; the rest are cancelled.
//
// Relays too are dialed TCP first: circuits ride on that connection, and
// a circuit over TCP carried about five times what one over QUIC did. The
// UDP mapping that QUIC hole punching needs comes from the observe
// exchange instead (observe.go). Hole punches themselves dial every
// address at once (libp2p ignores the ranker for simultaneous connects).
func rankDials(addrs []ma.Multiaddr) []network.AddrDelay {
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		var d time.Duration
		switch k, _ := Classify(a); k {
		case PathRelayed:
			d = relayDialDelay
		case PathDirectQUIC:
			d = quicDialDelay
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	return out
}

// hostOf is an address's first IP or DNS component's value.
func hostOf(a ma.Multiaddr) string {
	for _, code := range []int{ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6} {
		if v, err := a.ValueForProtocol(code); err == nil {
			return v
		}
	}
	return ""
}
