package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	quicgo "github.com/quic-go/quic-go"
	"go.uber.org/fx"
	"golang.org/x/time/rate"
	"k8s.io/klog/v2"

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
	// Admit, if set, is asked about every node that proves membership,
	// when it proves and at every membership check (15 s); an error
	// refuses it or ends its membership and closes its connections. It
	// must be fast and must not block (it runs on the membership path).
	Admit func(node string) error
	// AdvertiseAddrs are announced besides the listen addresses (a
	// relay's advertiseAddress, as multiaddrs).
	AdvertiseAddrs []ma.Multiaddr
	// Public marks a node that others can dial (a relay): it answers
	// AutoNAT reachability checks for members and skips its own.
	Public bool
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

	packetVersions []protocol.ID // PacketsProtocol's versions we speak, newest first

	observed atomic.Pointer[[]ma.Multiaddr] // our NAT mappings, as relays see them
	observer *observer                      // our NAT mapping on UDP, as relays see it (observe.go)
}

// ResourceLimits is the explicit resource-manager budget: libp2p's scaled
// defaults, raised so that long-lived tunnels (one connection per peer,
// a few streams each, relayed circuits) never hit "resource limit
// exceeded" in clusters of thousands of nodes. EdgeLink's own protocols
// are bounded per peer (protocolPeerStreams), so that one hostile member
// cannot hold more of them than a working peer needs.
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
		ProtocolPeer:        map[protocol.ID]rcmgr.ResourceLimits{},
	}
	for proto, n := range protocolPeerStreams {
		partial.ProtocolPeer[proto] = rcmgr.ResourceLimits{
			Streams: rcmgr.LimitVal(2 * n), StreamsInbound: rcmgr.LimitVal(n), StreamsOutbound: rcmgr.LimitVal(n),
		}
	}
	return partial.Build(rcmgr.DefaultLimits.AutoScale())
}

// protocolPeerStreams bounds the streams of each EdgeLink protocol one
// peer may have open with us in each direction: a packet stream per
// direction (and one more while the path moves), a probe per connection
// (a direct one and standbys through relays), one membership exchange or
// renewal, a few discovery requests.
var protocolPeerStreams = map[protocol.ID]int{
	PacketsProtocol:    4,
	PacketsProtocolV1:  4,
	ProbeProtocol:      16,
	MembershipProtocol: 4,
	DiscoveryProtocol:  4,
}

// MaxStreamWindow caps each yamux stream's receive window (libp2p's
// default grows it to 16 MiB): what a peer may have in flight to us on one
// stream, and so what a member flooding a packet stream faster than we
// read it makes us buffer. It also bounds one TCP path's throughput per
// direction to MaxStreamWindow per round trip (about 335 Mbit/s at
// 100 ms, 1.7 Gbit/s at 20 ms; docs/dataplane.md). QUIC paths keep
// quic-go's windows.
const MaxStreamWindow = 4 << 20

// muxer is libp2p's yamux with receive windows capped at MaxStreamWindow.
func muxer() *yamux.Transport {
	t := *yamux.DefaultTransport
	t.MaxStreamWindowSize = MaxStreamWindow
	return &t
}

// New starts a host: TCP and QUIC, TLS preferred over Noise (AES-NI makes
// TLS cheaper on the data path, docs/benchmarks.md), yamux (windows capped
// at MaxStreamWindow), the explicit resource budget, and the membership
// gate.
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
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(ResourceLimits()))
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, muxer()),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ResourceManager(rm),
		// Tunnels are few and long-lived: never trim them.
		libp2p.ConnectionManager(connmgr.NullConnMgr{}),
		libp2p.DialRanker(rankDials),
		libp2p.UserAgent("edgelink"),
	}
	// libp2p's QUIC connection manager: the observe exchange (observe.go)
	// shares the QUIC socket through it.
	var quicCM *quicreuse.ConnManager
	opts = append(opts, libp2p.WithFxOption(fx.Populate(&quicCM)))
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
	g, err := newGate(h, cfg.Credentials, cfg.Verifier, cfg.Admit)
	if err != nil {
		h.Close()
		return nil, err
	}
	hh := &Host{Host: h, Gate: g, packetVersions: packetsVersions()}
	g.Handle(ProbeProtocol, handleProbe)
	if pc, err := sharedQUICSocket(h, quicCM); err != nil {
		klog.InfoS("No UDP address observation (hole punching falls back to TCP)", "err", err)
	} else {
		var answers *rate.Limiter // relays answer, within a rate
		if cfg.Public {
			answers = rate.NewLimiter(observeAnswerRate, observeAnswerBurst)
		}
		hh.observer = newObserver(pc, answers)
	}
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

// sharedQUICSocket is the non-QUIC side of our IPv4 QUIC listener's
// socket.
func sharedQUICSocket(h host.Host, cm *quicreuse.ConnManager) (net.PacketConn, error) {
	if cm == nil {
		return nil, errors.New("no QUIC connection manager")
	}
	for _, a := range h.Network().ListenAddresses() {
		if k, _ := Classify(a); k != PathDirectQUIC {
			continue
		}
		netw, hostport, err := manet.DialArgs(a)
		if err != nil || netw != "udp4" {
			continue
		}
		laddr, err := net.ResolveUDPAddr(netw, hostport)
		if err != nil {
			continue
		}
		return cm.SharedNonQUICPacketConn(netw, laddr)
	}
	return nil, errors.New("no IPv4 QUIC listener")
}

// ObserveUDP asks a relay's QUIC socket which address our QUIC socket's
// datagrams arrive from (our NAT mapping), as a quic-v1 multiaddr.
func (h *Host) ObserveUDP(ctx context.Context, relay netip.AddrPort) (ma.Multiaddr, error) {
	if h.observer == nil {
		return nil, errors.New("no UDP address observation on this host")
	}
	ap, err := h.observer.observe(ctx, relay)
	if err != nil {
		return nil, err
	}
	return quicreuse.ToQuicMultiaddr(net.UDPAddrFromAddrPort(ap), quicgo.Version1)
}

// Close stops hole punching and the gate, then the host.
func (h *Host) Close() error {
	if h.observer != nil {
		h.observer.close()
	}
	// Connections first. libp2p's host closes its services before its
	// network, and its hole punching service waits for every attempt in
	// flight; one whose peer went silent (its link died, as when an
	// uplink is cut) blocks in a stream read for holepunch.StreamTimeout
	// (a minute), and the agent's shutdown with it. Closed connections
	// end those reads at once. (The swarm closes once; the host's own
	// Close later does nothing more to it.)
	_ = h.Network().Close()
	if h.HolePunch != nil {
		_ = h.HolePunch.Close()
	}
	h.Gate.close()
	return h.Host.Close()
}

var _ network.Notifiee = (*Gate)(nil)
