package tunnel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// discoveryInterval is how often the relays' directories are read.
const discoveryInterval = 2 * time.Second

// Service is the tunnel: host, relay, directory, reservations, paths.
type Service struct {
	cfg *v1.Agent
	md  metadata.Reader // may be nil

	running atomic.Pointer[running] // nil until the host is up
	packets *packets
}

// running is everything Run started, for the status API.
type running struct {
	h            *p2p.Host
	isRelay      bool
	keeper       *p2p.ReservationKeeper
	paths        *p2p.PathManager
	reachability atomic.Int32

	mu       sync.Mutex
	observed map[peer.ID][]ma.Multiaddr // our NAT mappings, per relay (discovery)
	udpSeen  map[string]ma.Multiaddr    // our QUIC socket's mapping, per relay node (observe)
	known    map[string]p2p.PeerRecord  // every member we know, by node
}

// NewService prepares the tunnel; Run starts it.
func NewService(c *v1.Agent, md metadata.Reader) *Service {
	s := &Service{cfg: c, md: md}
	s.packets = &packets{s: s}
	return s
}

func (s *Service) cachePath() string {
	return filepath.Join(s.cfg.DataDir, "tunnel", "peers.json")
}

// Run brings the tunnel up, keeps it up until ctx ends, and tears it down.
func (s *Service) Run(ctx context.Context) error {
	t := s.cfg.Modules.Tunnel
	key, self, err := p2p.LoadOrCreateIdentity(t.IdentityFile)
	if err != nil {
		return err
	}
	var enr *enroller
	if t.Enroll {
		if enr, err = newEnroller(s.cfg.AgentConfig, self); err != nil {
			return err
		}
		if _, err := enr.ensure(ctx); err != nil {
			return err
		}
	}
	creds, verifier, err := loadMembership(t, s.cfg.NodeName, self)
	if err != nil {
		return err
	}
	p2p.SetRoutable(s.cfg.Parsed.RoutableCIDRs)

	var advertise []ma.Multiaddr
	var relays []p2p.RelayTarget
	cache := loadCache(s.cachePath())
	isRelay := false
	for _, r := range t.RelayNodes {
		addrs := relayAddrs(r.AdvertiseAddress, t.ListenPort)
		if r.NodeName == s.cfg.NodeName {
			isRelay, advertise = true, addrs
			continue
		}
		var id peer.ID
		if rec, ok := cache[r.NodeName]; ok {
			id, _ = peer.Decode(rec.Peer)
		}
		relays = append(relays, p2p.RelayTarget{Node: r.NodeName, Addrs: addrs, ID: id})
	}

	h, err := p2p.New(p2p.Config{Key: key, ListenPort: t.ListenPort, Credentials: creds, Verifier: verifier,
		Admit: s.admit, AdvertiseAddrs: advertise, Public: isRelay, HolePunching: true})
	if err != nil {
		return err
	}
	h.HandlePackets(s.packets.deliver)
	r := &running{h: h, isRelay: isRelay, observed: map[peer.ID][]ma.Multiaddr{}, udpSeen: map[string]ma.Multiaddr{}, known: cache}
	var rel *relay.Relay
	var dir *p2p.Directory
	if isRelay {
		if rel, err = h.StartRelay(); err != nil {
			h.Close()
			return fmt.Errorf("circuit relay: %w", err)
		}
		dir = h.ServeDirectory()
	}
	r.keeper = h.KeepReservations(relays, r.register)
	r.paths = h.NewPathManager(r.keeper.Reserved, p2p.PathOptions{IdleTimeout: s.cfg.Parsed.PathIdleTimeout})
	s.running.Store(r)
	klog.InfoS("Tunnel up", "node", s.cfg.NodeName, "peer", self, "addrs", h.Addrs(), "relay", isRelay,
		"relays", len(relays), "routable", t.RoutableCIDRs)

	var wg sync.WaitGroup
	if enr != nil {
		wg.Add(1)
		go func() { // routineRenewCertificate
			defer wg.Done()
			enr.keepRenewed(ctx, creds, h.Gate.SetCredentials)
		}()
	}
	wg.Add(1)
	go func() { // routineReachability
		defer wg.Done()
		r.watchReachability(ctx)
	}()
	wg.Add(1)
	go func() { // routineObserveUDP
		defer wg.Done()
		r.observeUDP(ctx, relays)
	}()
	// The relays' directories are polled (they are remote); the metadata
	// picture is not: a new snapshot (Reader.Next) re-targets at once.
	tick := time.NewTicker(discoveryInterval)
	defer tick.Stop()
	var mdChanged <-chan struct{} // nil without metadata: never ready
	if s.md != nil {
		_, mdChanged = s.md.Next()
	}
	for lookup := true; ; {
		if lookup {
			s.discover(ctx, r, dir)
		} else {
			s.retarget(r)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			lookup = true
			continue
		case <-mdChanged:
			_, mdChanged = s.md.Next()
			lookup = false
			continue
		}
		break
	}

	s.running.Store(nil)
	r.paths.Stop()
	r.keeper.Close()
	if dir != nil {
		dir.Close()
	}
	if rel != nil {
		rel.Close()
	}
	err = h.Close()
	r.paths.Close()
	wg.Wait()
	klog.InfoS("Tunnel down")
	return err
}

// loadMembership reads this node's credentials and the CA, and checks
// that they prove what other members will check: the certificate names
// this node and binds this peer ID.
func loadMembership(t v1.Tunnel, node string, self peer.ID) (*membership.Credentials, *membership.Verifier, error) {
	creds, err := membership.LoadCredentials(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("modules.tunnel.certFile/keyFile: %w", err)
	}
	verifier, err := membership.NewVerifier(t.CAFile, t.KubeEdgeCAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("modules.tunnel.caFile: %w", err)
	}
	if creds.Node != node {
		return nil, nil, fmt.Errorf("this node's own certificate %s would be refused by other members: it names node %q (common name %q), this node is %q",
			t.CertFile, creds.Node, creds.Chain[0].Subject.CommonName, node)
	}
	proof, err := creds.Proof(self, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("membership proof: %w", err)
	}
	if _, err := verifier.Verify(proof, self); err != nil {
		return nil, nil, fmt.Errorf("this node's own certificate %s would be refused by other members: %w", t.CertFile, err)
	}
	return creds, verifier, nil
}

// relayAddrs turns advertise addresses into TCP and QUIC multiaddrs.
// An address no multiaddr can hold (an IPv6 zone, a name with a slash) is
// left out.
func relayAddrs(advertise []string, port int) []ma.Multiaddr {
	var out []ma.Multiaddr
	p := strconv.Itoa(port)
	for _, a := range advertise {
		proto := "/dns/" + a
		if ip, err := netip.ParseAddr(a); err == nil {
			if proto = ipProto(ip); proto == "" {
				continue
			}
		}
		out = append(out, addrPair(proto, "/udp/"+p+"/quic-v1", "/tcp/"+p)...)
	}
	return out
}

// ipProto is the multiaddr of ip ("/ip4/..." or "/ip6/..."); "" for an
// address with a zone (link-local: no use to another node).
func ipProto(ip netip.Addr) string {
	switch {
	case ip.Zone() != "":
		return ""
	case ip.Is4() || ip.Is4In6():
		return "/ip4/" + ip.Unmap().String()
	default:
		return "/ip6/" + ip.String()
	}
}

// addrPair is proto followed by each of the transports, or nothing when
// any of them is not a valid multiaddr (input from config or metadata).
func addrPair(proto string, transports ...string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(transports))
	for _, t := range transports {
		m, err := ma.NewMultiaddr(proto + t)
		if err != nil {
			klog.V(2).InfoS("Skipping an address that is not a multiaddr", "addr", proto+t, "err", err)
			return nil
		}
		out = append(out, m)
	}
	return out
}

// register tells a relay where we are and learns our NAT mappings.
func (r *running) register(ctx context.Context, relayID peer.ID) {
	var addrs []ma.Multiaddr
	for _, a := range r.h.Addrs() {
		if k, _ := p2p.Classify(a); k != p2p.PathRelayed {
			addrs = append(addrs, a)
		}
	}
	observed, err := r.h.Register(ctx, relayID, addrs)
	if err != nil {
		klog.InfoS("Registering with a relay failed", "relay", relayID, "err", err)
		return
	}
	r.mu.Lock()
	r.observed[relayID] = observed
	r.mu.Unlock()
	r.publishObserved()
}

// publishObserved hands every NAT mapping relays reported to hole
// punching.
func (r *running) publishObserved() {
	r.mu.Lock()
	var all []ma.Multiaddr
	for _, o := range r.observed {
		all = append(all, o...)
	}
	for _, a := range r.udpSeen {
		all = append(all, a)
	}
	r.mu.Unlock()
	r.h.SetObserved(all)
}

// observeUDP asks every relay, now and every p2p.ObserveInterval, where
// our QUIC socket's datagrams come from (connections to relays are TCP,
// so only this tells the UDP mapping that QUIC hole punching needs), and
// keeps that mapping open.
func (r *running) observeUDP(ctx context.Context, relays []p2p.RelayTarget) {
	tick := time.NewTicker(p2p.ObserveInterval)
	defer tick.Stop()
	for {
		changed := false
		for _, rt := range relays {
			ap, ok := quicAddrPort(rt.Addrs)
			if !ok {
				continue
			}
			a, err := r.h.ObserveUDP(ctx, ap)
			if err != nil {
				klog.V(2).InfoS("UDP address observation failed", "relay", rt.Node, "err", err)
				continue
			}
			r.mu.Lock()
			if old := r.udpSeen[rt.Node]; old == nil || !old.Equal(a) {
				r.udpSeen[rt.Node], changed = a, true
			}
			r.mu.Unlock()
		}
		if changed {
			r.publishObserved()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// quicAddrPort is the UDP address of the first QUIC multiaddr with a
// literal IP.
func quicAddrPort(addrs []ma.Multiaddr) (netip.AddrPort, bool) {
	for _, a := range addrs {
		if k, _ := p2p.Classify(a); k != p2p.PathDirectQUIC {
			continue
		}
		if _, hostport, err := manet.DialArgs(a); err == nil {
			if ap, err := netip.ParseAddrPort(hostport); err == nil {
				return ap, true
			}
		}
	}
	return netip.AddrPort{}, false
}

func (r *running) watchReachability(ctx context.Context) {
	sub, err := r.h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-sub.Out():
			ev := e.(event.EvtLocalReachabilityChanged)
			r.reachability.Store(int32(ev.Reachability))
			klog.InfoS("Reachability", "reachability", ev.Reachability.String())
		}
	}
}

// discover merges what the relays' directories, our own directory (on a
// relay), the relays themselves and the metadata picture know, persists
// it, and gives the path manager its targets.
func (s *Service) discover(ctx context.Context, r *running, dir *p2p.Directory) {
	var found []p2p.PeerRecord
	if dir != nil {
		found = append(found, dir.Lookup(nil)...)
	}
	for _, rr := range r.keeper.Reserved() {
		recs, err := r.h.Lookup(ctx, rr.ID, nil)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				klog.V(2).InfoS("Directory lookup failed", "relay", rr.ID, "err", err)
			}
			continue
		}
		found = append(found, recs...)
	}
	found = append(found, relayRecords(r.keeper.States(), time.Now().Unix())...)

	r.mu.Lock()
	changed := mergeRecords(r.known, s.cfg.NodeName, found)
	known := maps.Clone(r.known)
	r.mu.Unlock()
	if changed {
		if err := saveCache(s.cachePath(), known); err != nil {
			klog.ErrorS(err, "Saving the peer cache failed")
		}
	}
	r.paths.SetTargets(s.targets(known))
}

// retarget gives the path manager targets from the members already known
// and the current metadata picture (which changed), without asking the
// relays.
func (s *Service) retarget(r *running) {
	r.mu.Lock()
	known := maps.Clone(r.known)
	r.mu.Unlock()
	r.paths.SetTargets(s.targets(known))
}

// relayRecords are the peer records the reservation keeper's states
// give: every relay whose peer ID is known, seen now, without addresses
// (the configured ones are added by targets).
func relayRecords(states []p2p.ReservationState, now int64) []p2p.PeerRecord {
	var out []p2p.PeerRecord
	for _, st := range states {
		if st.Relay != "" {
			out = append(out, p2p.PeerRecord{Node: st.Node, Peer: st.Relay.String(), Seen: now})
		}
	}
	return out
}

// mergeRecords merges found into known (by node), leaving out self, and
// reports whether anything worth persisting changed (a new node, a new
// peer ID or new addresses; a newer Seen alone is not).
func mergeRecords(known map[string]p2p.PeerRecord, self string, found []p2p.PeerRecord) bool {
	changed := false
	for _, rec := range found {
		if rec.Node == self {
			continue
		}
		old, ok := known[rec.Node]
		if ok && old.Peer == rec.Peer {
			// Each relay reports the addresses it sees (a relay seen
			// through the keeper reports none): keep them all, sorted,
			// so that two relays' views do not replace each other (and
			// rewrite peers.json) at every round.
			rec.Addrs = unionAddrs(old.Addrs, rec.Addrs)
			if slices.Equal(old.Addrs, rec.Addrs) {
				old.Seen = max(old.Seen, rec.Seen)
				known[rec.Node] = old
				continue
			}
			rec.Seen = max(old.Seen, rec.Seen)
		}
		if ok && old.Peer != rec.Peer && old.Seen > rec.Seen {
			continue // an older record of a node that changed identity
		}
		known[rec.Node] = rec
		changed = true
	}
	return changed
}

// maxPeerAddrs bounds the addresses kept per member (unionAddrs).
const maxPeerAddrs = 16

// unionAddrs is a and b together, sorted, without repeats, at most
// maxPeerAddrs (the first in sort order: the bound only guards against a
// member advertising without end).
func unionAddrs(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxPeerAddrs {
		out = out[:maxPeerAddrs]
	}
	return out
}

// admit is the membership gate's admission check: once the metadata
// picture is synced and lists nodes, a member must be one of them or a
// configured relay node. Deleting a node's Node object so revokes its
// membership within a membership check, whatever its certificate's
// lifetime (KubeEdge's are a year). Without a picture (a relay, a
// snapshot loaded from disk and not yet synced) every proven node is
// admitted.
func (s *Service) admit(node string) error {
	if s.md == nil {
		return nil
	}
	sn := s.md.Snapshot()
	if !sn.Synced || len(sn.Nodes) == 0 {
		return nil
	}
	if _, ok := sn.Nodes[node]; ok {
		return nil
	}
	for _, r := range s.cfg.Modules.Tunnel.RelayNodes {
		if r.NodeName == node {
			return nil
		}
	}
	return fmt.Errorf("the cluster has no Node %q (deleted?)", node)
}

// targets turns known members into path-manager targets, adding the
// addresses the metadata picture lists for each node (InternalIP and
// ExternalIP on the tunnel port: same-LAN peers dial each other there),
// and leaving out nodes the synced metadata says are gone.
func (s *Service) targets(known map[string]p2p.PeerRecord) []p2p.Target {
	var snap *metadata.Snapshot
	if s.md != nil {
		if sn := s.md.Snapshot(); len(sn.Nodes) > 0 {
			snap = sn
		}
	}
	relays := map[string]bool{}
	for _, r := range s.cfg.Modules.Tunnel.RelayNodes {
		relays[r.NodeName] = true
	}
	port := strconv.Itoa(s.cfg.Modules.Tunnel.ListenPort)
	var out []p2p.Target
	for node, rec := range known {
		id, err := peer.Decode(rec.Peer)
		if err != nil {
			continue
		}
		t := p2p.Target{Node: node, ID: id, Keep: relays[node]}
		for _, a := range rec.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				t.Addrs = append(t.Addrs, m)
			}
		}
		if snap != nil {
			n, ok := snap.Nodes[node]
			if !ok && !relays[node] {
				continue
			}
			if ok {
				t.Addrs = append(t.Addrs, nodeAddrs(n, port)...)
			}
		}
		if relays[node] {
			for _, r := range s.cfg.Modules.Tunnel.RelayNodes {
				if r.NodeName == node {
					t.Addrs = append(t.Addrs, relayAddrs(r.AdvertiseAddress, s.cfg.Modules.Tunnel.ListenPort)...)
				}
			}
		}
		t.Addrs = ma.Unique(t.Addrs)
		out = append(out, t)
	}
	return out
}

func nodeAddrs(n *metadata.NodeInfo, port string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range n.Addresses {
		if a.Type != "InternalIP" && a.Type != "ExternalIP" {
			continue
		}
		if ip := ipProto(a.Address); ip != "" {
			out = append(out, addrPair(ip, "/tcp/"+port, "/udp/"+port+"/quic-v1")...)
		}
	}
	return out
}

// Reachability is libp2p's view of whether others can dial us.
func (r *running) reachabilityString() string {
	return network.Reachability(r.reachability.Load()).String()
}
