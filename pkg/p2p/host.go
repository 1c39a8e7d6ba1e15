package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

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
	// Options are extra libp2p options (relay, hole punching, ...).
	Options []libp2p.Option
}

// Host is a libp2p host whose EdgeLink protocols only members may use.
type Host struct {
	host.Host
	Gate *Gate
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
		libp2p.UserAgent("edgelink"),
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
	return &Host{Host: h, Gate: g}, nil
}

// Close stops the gate, then the host.
func (h *Host) Close() error {
	h.Gate.close()
	return h.Host.Close()
}

var _ network.Notifiee = (*Gate)(nil)
