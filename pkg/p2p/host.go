package p2p

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/edgelink/edgelink/pkg/membership"
)

// Config describes one node's libp2p host.
type Config struct {
	Key crypto.PrivKey
	// ListenAddrs are multiaddrs; empty listens on TCP and QUIC on
	// ListenPort on every IPv4 address.
	ListenAddrs []string
	ListenPort  int
	// Credentials prove this node's membership; Verifier checks others'.
	Credentials *membership.Credentials
	Verifier    *membership.Verifier
	// AdvertiseAddrs are announced besides the listen addresses (a
	// relay's advertiseAddress, as multiaddrs).
	AdvertiseAddrs []ma.Multiaddr
	// Public marks a node that others can dial (a relay): it answers
	// AutoNAT reachability checks for members and skips its own.
	Public bool
	// QUICFirst names hosts (IPs or DNS names: the relays) dialed over
	// QUIC first; everyone else is dialed over TCP first.
	QUICFirst []string
	// HolePunching starts DCUtR (Host.HolePunch).
	HolePunching bool
	// Options are extra libp2p options.
	Options []libp2p.Option
}

// Host is a libp2p host whose EdgeLink protocols only members may use.
type Host struct {
	host.Host
	Gate *Gate
	// HolePunch is the DCUtR service (nil unless Config.HolePunching).
	HolePunch *holepunch.Service
	// Punches counts what HolePunch did.
	Punches HolePunchStats

	observed  atomic.Pointer[[]ma.Multiaddr] // our NAT mappings, as relays see them
	quicFirst map[string]bool                // hosts dialed QUIC first (Config.QUICFirst)
}

// ResourceLimits is the explicit resource-manager budget: libp2p's scaled
// defaults, raised so that long-lived tunnels (one connection per peer,
// a few streams each, relayed circuits) never hit "resource limit
// exceeded" in clusters of thousands of nodes.
func ResourceLimits() rcmgr.ConcreteLimitConfig {
	big := rcmgr.ResourceLimits{
		Conns: 8192, ConnsInbound: 8192, ConnsOutbound: 8192,
		Streams: 65536, StreamsInbound: 65536, StreamsOutbound: 65536,
		FD:     8192,
		Memory: 1 << 30,
	}
	perPeer := rcmgr.ResourceLimits{
		Conns: 64, ConnsInbound: 64, ConnsOutbound: 64,
		Streams: 1024, StreamsInbound: 1024, StreamsOutbound: 1024,
		Memory: 64 << 20,
	}
	partial := rcmgr.PartialLimitConfig{
		System:              big,
		Transient:           big,
		PeerDefault:         perPeer,
		ProtocolDefault:     big,
		ServiceDefault:      big,
		ProtocolPeerDefault: perPeer,
		ServicePeerDefault:  perPeer,
	}
	return partial.Build(rcmgr.DefaultLimits.AutoScale())
}

// New starts a host: TCP and QUIC, TLS preferred over Noise (AES-NI makes
// TLS cheaper on the data path, DESIGN.md), yamux, the explicit resource
// budget, and the membership gate.
func New(cfg Config) (*Host, error) {
	if cfg.Key == nil || cfg.Credentials == nil || cfg.Verifier == nil {
		return nil, fmt.Errorf("p2p host needs an identity key, membership credentials and a verifier")
	}
	listen := cfg.ListenAddrs
	if len(listen) == 0 {
		listen = []string{
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", cfg.ListenPort),
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", cfg.ListenPort),
		}
	}
	quicFirst := map[string]bool{}
	for _, h := range cfg.QUICFirst {
		quicFirst[h] = true
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(ResourceLimits()))
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ResourceManager(rm),
		// Tunnels are few and long-lived: never trim them.
		libp2p.ConnectionManager(connmgr.NullConnMgr{}),
		libp2p.DialRanker(dialRanker(quicFirst)),
		libp2p.UserAgent("edgelink"),
	}
	if len(cfg.AdvertiseAddrs) > 0 {
		adv := cfg.AdvertiseAddrs
		opts = append(opts, libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			return ma.Unique(append(addrs, adv...))
		}))
	}
	if cfg.Public {
		// Reachability checks are answered by our own relays: they
		// run the AutoNAT service, and a member only ever talks to
		// members (no public bootstrap or DHT peers exist).
		opts = append(opts, libp2p.EnableNATService(), libp2p.ForceReachabilityPublic())
	}
	h, err := libp2p.New(append(opts, cfg.Options...)...)
	if err != nil {
		rm.Close() // the host owns it only once it exists
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	g, err := newGate(h, cfg.Credentials, cfg.Verifier)
	if err != nil {
		h.Close()
		return nil, err
	}
	hh := &Host{Host: h, Gate: g, quicFirst: quicFirst}
	g.Handle(ProbeProtocol, handleProbe)
	if cfg.HolePunching {
		ids, ok := h.(interface{ IDService() identify.IDService })
		if !ok {
			hh.Close()
			return nil, fmt.Errorf("libp2p host has no identify service")
		}
		// Our own DCUtR service rather than libp2p.EnableHolePunching:
		// the path manager needs DirectConnect to retry upgrades, and the
		// addresses we punch from include the NAT mappings our relays
		// observed (SetObserved).
		if hh.HolePunch, err = holepunch.NewService(h, ids.IDService(), hh.holePunchAddrs, holepunch.WithTracer(&hh.Punches)); err != nil {
			hh.Close()
			return nil, fmt.Errorf("hole punching: %w", err)
		}
	}
	return hh, nil
}

// SetObserved records our addresses as relays see them (our NAT
// mappings); hole punching offers them to peers.
func (h *Host) SetObserved(addrs []ma.Multiaddr) {
	c := slices.Clone(addrs)
	h.observed.Store(&c)
}

// holePunchAddrs are the public addresses we can be reached at once a
// punch opened the NAT: our own and the mappings relays observed.
func (h *Host) holePunchAddrs() []ma.Multiaddr {
	addrs := h.Addrs()
	if o := h.observed.Load(); o != nil {
		addrs = append(addrs, *o...)
	}
	return slices.DeleteFunc(ma.Unique(addrs), func(a ma.Multiaddr) bool {
		return isRelayed(a) || !manet.IsPublicAddr(a)
	})
}

// Close stops hole punching and the gate, then the host.
func (h *Host) Close() error {
	if h.HolePunch != nil {
		_ = h.HolePunch.Close()
	}
	h.Gate.close()
	return h.Host.Close()
}

var _ network.Notifiee = (*Gate)(nil)
