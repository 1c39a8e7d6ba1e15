package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"k8s.io/klog/v2"
)

// DiscoveryProtocol is the directory relays keep of members: who is which
// peer, at which addresses.
//
// Wire format: one request and one response per stream, each a uvarint
// length followed by that many bytes of JSON (requests at most
// MaxDiscoveryRequest bytes, responses at most MaxDiscoveryResponse).
//
//	register: {"op":"register","addrs":["/ip4/192.168.1.11/tcp/20006",...]}
//	       -> {"observed":["/ip4/198.18.0.101/udp/20006/quic-v1",...],
//	           "refused":["/ip4/10.0.0.1/tcp/22: a second TCP port",...]}
//	lookup:   {"op":"lookup","nodes":["edge-a1",...]}     (no nodes: all)
//	       -> {"peers":[{"node":"edge-a1","peer":"12D3KooW...",
//	                     "addrs":["/ip4/...",...],"seen":1764200000},...]}
//	error:   -> {"error":"why"}
//
// The registering node's name is the one it proved to the gate, never one
// it claims, and only members reach the protocol at all. "observed" lists
// the addresses the relay sees the registrant's connections come from
// (its NAT mappings); a lookup answers a member's own addresses plus
// those, for members connected now or within DirectoryTTL.
//
// A registration is checked, so that one member cannot make every node
// dial targets of its choosing: only /ip4|ip6/<ip>/tcp/<port> and
// /ip4|ip6/<ip>/udp/<port>/quic-v1 addresses, one TCP and one UDP port
// (a node listens on one), no unspecified, multicast or link-local
// address, loopback only from a member connected over loopback, and a
// public address only if the member's connections come from that IP. The
// rest is left out of the directory and listed in "refused" with the
// reason. What stays possible: private addresses on one port, which only
// reach inside each dialer's own network, at most maxRegisteredAddrs of
// them, each dial a TCP connect and a TLS hello that fails on the peer ID.
const DiscoveryProtocol = protocol.ID("/edgelink/discovery/1.0.0")

// Directory limits.
const (
	MaxDiscoveryRequest  = 64 << 10
	MaxDiscoveryResponse = 8 << 20
	maxRegisteredAddrs   = 32
	maxLookupNodes       = 8192
	DirectoryTTL         = 10 * time.Minute
	discoveryTimeout     = 10 * time.Second
)

type discoveryRequest struct {
	Op    string   `json:"op"`
	Addrs []string `json:"addrs,omitempty"`
	Nodes []string `json:"nodes,omitempty"`
}

type discoveryResponse struct {
	Observed []string     `json:"observed,omitempty"`
	Refused  []string     `json:"refused,omitempty"`
	Peers    []PeerRecord `json:"peers,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// PeerRecord is what the directory knows of one member.
type PeerRecord struct {
	Node  string   `json:"node"`
	Peer  string   `json:"peer"`
	Addrs []string `json:"addrs"`
	Seen  int64    `json:"seen"` // unix seconds; now while connected
}

// Directory serves DiscoveryProtocol on a relay.
//
// Locking: mu guards entries.
type Directory struct {
	h        *Host
	now      func() time.Time
	observed func(peer.ID) []ma.Multiaddr // remote addresses of a peer's direct connections

	mu      sync.Mutex
	entries map[string]*dirEntry // by node name
}

type dirEntry struct {
	peer  peer.ID
	addrs []ma.Multiaddr // as registered
	seen  time.Time
}

// ServeDirectory makes h answer discovery requests from members.
func (h *Host) ServeDirectory() *Directory {
	d := newDirectory(h)
	h.Gate.Handle(DiscoveryProtocol, d.handle)
	return d
}

// Close stops answering.
func (d *Directory) Close() { d.h.RemoveStreamHandler(DiscoveryProtocol) }

func (d *Directory) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(discoveryTimeout))
	p := s.Conn().RemotePeer()
	node, _ := d.h.Gate.Member(p) // the gate let the stream through
	if err := writeJSON(s, d.serve(bufio.NewReader(s), node, p)); err != nil {
		_ = s.Reset()
	}
}

// serve reads one request from member node (peer p) and answers it.
func (d *Directory) serve(r *bufio.Reader, node string, p peer.ID) discoveryResponse {
	var req discoveryRequest
	if err := readJSON(r, MaxDiscoveryRequest, &req); err != nil {
		return discoveryResponse{Error: "bad request: " + err.Error()}
	}
	return d.answer(node, p, req)
}

func (d *Directory) answer(node string, p peer.ID, req discoveryRequest) discoveryResponse {
	switch req.Op {
	case "register":
		if len(req.Addrs) > maxRegisteredAddrs {
			return discoveryResponse{Error: fmt.Sprintf("%d addresses, at most %d", len(req.Addrs), maxRegisteredAddrs)}
		}
		var parsed []ma.Multiaddr
		for _, s := range req.Addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return discoveryResponse{Error: fmt.Sprintf("address %q: %v", s, err)}
			}
			parsed = append(parsed, a)
		}
		observed := d.observed(p)
		addrs, refused := checkRegistered(parsed, observed)
		d.mu.Lock()
		d.entries[node] = &dirEntry{peer: p, addrs: addrs, seen: d.now()}
		d.mu.Unlock()
		return discoveryResponse{Observed: toStrings(observed), Refused: refused}
	case "lookup":
		if len(req.Nodes) > maxLookupNodes {
			return discoveryResponse{Error: fmt.Sprintf("%d nodes, at most %d", len(req.Nodes), maxLookupNodes)}
		}
		return discoveryResponse{Peers: d.lookup(req.Nodes)}
	default:
		return discoveryResponse{Error: fmt.Sprintf("unknown op %q", req.Op)}
	}
}

func newDirectory(h *Host) *Directory {
	d := &Directory{h: h, now: time.Now, entries: map[string]*dirEntry{}}
	d.observed = func(p peer.ID) []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, c := range h.Network().ConnsToPeer(p) {
			if a := c.RemoteMultiaddr(); !isRelayed(a) {
				out = append(out, a)
			}
		}
		return out
	}
	return d
}

// Lookup answers from this relay's directory, as the protocol would.
func (d *Directory) Lookup(nodes []string) []PeerRecord { return d.lookup(nodes) }

func (d *Directory) lookup(nodes []string) []PeerRecord {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	names := nodes
	if len(names) == 0 {
		names = make([]string, 0, len(d.entries))
		for n := range d.entries {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var out []PeerRecord
	for _, n := range names {
		e, ok := d.entries[n]
		if !ok {
			continue
		}
		observed := d.observed(e.peer)
		if len(observed) > 0 {
			e.seen = now
		} else if now.Sub(e.seen) > DirectoryTTL {
			delete(d.entries, n)
			continue
		}
		addrs := toStrings(e.addrs)
		for _, o := range toStrings(observed) {
			if !slices.Contains(addrs, o) {
				addrs = append(addrs, o)
			}
		}
		out = append(out, PeerRecord{Node: n, Peer: e.peer.String(), Addrs: addrs, Seen: e.seen.Unix()})
	}
	return out
}

// Register tells the relay our addresses and returns the addresses it
// sees us connect from (our NAT mappings).
func (h *Host) Register(ctx context.Context, relay peer.ID, addrs []ma.Multiaddr) ([]ma.Multiaddr, error) {
	resp, err := h.discover(ctx, relay, discoveryRequest{Op: "register", Addrs: toStrings(addrs)})
	if err != nil {
		return nil, err
	}
	if len(resp.Refused) > 0 {
		klog.V(1).InfoS("The relay's directory left out some of our addresses", "relay", relay, "refused", resp.Refused)
	}
	return parseAddrs(resp.Observed), nil
}

// Lookup asks the relay for the named members (all when nodes is empty).
func (h *Host) Lookup(ctx context.Context, relay peer.ID, nodes []string) ([]PeerRecord, error) {
	resp, err := h.discover(ctx, relay, discoveryRequest{Op: "lookup", Nodes: nodes})
	if err != nil {
		return nil, err
	}
	return resp.Peers, nil
}

func (h *Host) discover(ctx context.Context, relay peer.ID, req discoveryRequest) (*discoveryResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, relay, DiscoveryProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := writeJSON(s, req); err != nil {
		_ = s.Reset()
		return nil, err
	}
	var resp discoveryResponse
	if err := readJSON(bufio.NewReader(s), MaxDiscoveryResponse, &resp); err != nil {
		return nil, fmt.Errorf("discovery answer from %s: %w", relay, err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("discovery %s refused by %s: %s", req.Op, relay, resp.Error)
	}
	return &resp, nil
}

// writeJSON and readJSON frame one JSON value with a uvarint length.
func writeJSON(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(binary.AppendUvarint(nil, uint64(len(body))), body...))
	return err
}

func readJSON(r *bufio.Reader, limit int, v any) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n == 0 || n > uint64(limit) {
		return fmt.Errorf("message of %d bytes, at most %d", n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return err
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return errors.New("not valid JSON: " + err.Error())
	}
	return nil
}

// checkRegistered splits a member's registered addresses into those the
// directory hands out and the refused ones with why (DiscoveryProtocol's
// rules); observed are the addresses its connections come from.
func checkRegistered(addrs, observed []ma.Multiaddr) (ok []ma.Multiaddr, refused []string) {
	fromIPs := map[netip.Addr]bool{}
	for _, o := range observed {
		if ip, _, err := ipPort(o); err == nil {
			fromIPs[ip] = true
		}
	}
	fromLoopback := false
	for ip := range fromIPs {
		fromLoopback = fromLoopback || ip.IsLoopback()
	}
	ports := map[string]int{} // "tcp"/"udp" -> the one port
	for _, a := range addrs {
		why := ""
		ip, port, err := ipPort(a)
		switch {
		case err != nil:
			why = err.Error()
		case ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast():
			why = "not a unicast address others can dial"
		case ip.IsLoopback() && !fromLoopback:
			why = "loopback, from a member not connected over loopback"
		case manet.IsPublicAddr(a) && !fromIPs[ip]:
			why = "a public address this member does not connect from"
		}
		if why == "" {
			proto := port.proto
			if p, seen := ports[proto]; seen && p != port.n {
				why = "a second " + strings.ToUpper(proto) + " port"
			} else {
				ports[proto] = port.n
			}
		}
		if why != "" {
			refused = append(refused, a.String()+": "+why)
			continue
		}
		ok = append(ok, a)
	}
	return ok, refused
}

type transportPort struct {
	proto string // tcp or udp
	n     int
}

// ipPort reads /ip4|ip6/<ip>/tcp/<port> and /ip4|ip6/<ip>/udp/<port>/quic-v1,
// the only shapes a registration may hold.
func ipPort(a ma.Multiaddr) (netip.Addr, transportPort, error) {
	var ip netip.Addr
	var port transportPort
	shape := ""
	for i, c := range a {
		switch c.Protocol().Code {
		case ma.P_IP4, ma.P_IP6:
			if i == 0 {
				ip, _ = netip.AddrFromSlice(c.RawValue())
				ip = ip.Unmap()
			}
		case ma.P_TCP, ma.P_UDP:
			port.proto, port.n = c.Protocol().Name, int(binary.BigEndian.Uint16(c.RawValue()))
		}
		shape += "/" + c.Protocol().Name
	}
	switch shape {
	case "/ip4/tcp", "/ip6/tcp", "/ip4/udp/quic-v1", "/ip6/udp/quic-v1":
		if ip.IsValid() && port.n != 0 {
			return ip, port, nil
		}
	}
	return netip.Addr{}, port, errors.New("not an IP address with a TCP or QUIC port")
}

func toStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// parseAddrs keeps the addresses that parse.
func parseAddrs(ss []string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range ss {
		if a, err := ma.NewMultiaddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
