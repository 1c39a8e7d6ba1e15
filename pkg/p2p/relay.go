package p2p

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// RelayResources is the circuit v2 budget of an EdgeLink relay. libp2p's
// defaults (2 minutes and 128 KiB per relayed connection, 2 KiB buffers,
// 16 circuits, 8 reservations per IP) cut a tunnel within minutes and
// starve a site whose nodes share one NAT address; members get long-lived
// circuits instead. With no limit, relayed connections are not marked
// "limited": a path is relayed exactly when its address holds /p2p-circuit.
func RelayResources() relay.Resources {
	rc := relay.DefaultResources()
	rc.Limit = nil
	rc.ReservationTTL = time.Hour
	rc.MaxReservations = 4096
	rc.MaxCircuits = 1024
	rc.BufferSize = 64 << 10
	rc.MaxReservationsPerPeer = 4
	rc.MaxReservationsPerIP = 1024
	rc.MaxReservationsPerASN = 4096
	return rc
}

// memberACL lets only peers that proved membership reserve a slot or
// relay through us.
type memberACL struct{ g *Gate }

var _ relay.ACLFilter = memberACL{}

func (a memberACL) member(p peer.ID) bool {
	ctx, cancel := context.WithTimeout(a.g.ctx, proveTimeout)
	defer cancel()
	_, err := a.g.WaitMember(ctx, p) // the exchange counts a refusal
	return err == nil
}

func (a memberACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a.member(p) }

func (a memberACL) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	return a.member(src) && a.member(dest)
}

// StartRelay makes this host a circuit v2 relay for members only. Close
// the returned relay before the host.
func (h *Host) StartRelay() (*relay.Relay, error) {
	return relay.New(h.Host, relay.WithResources(RelayResources()), relay.WithACL(memberACL{h.Gate}))
}
