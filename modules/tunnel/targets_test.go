package tunnel

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/unittest"
)

func node(name string, addrs ...metadata.NodeAddress) *metadata.NodeInfo {
	return &metadata.NodeInfo{Name: name, Addresses: addrs}
}

func addr(typ, ip string) metadata.NodeAddress {
	return metadata.NodeAddress{Type: typ, Address: netip.MustParseAddr(ip)}
}

// The path manager's targets follow the metadata picture and the relay
// configuration: a node the synced metadata no longer lists is dropped
// while relays stay whatever the metadata says; an empty (not yet synced)
// picture drops nobody; every InternalIP and ExternalIP (IPv4 or IPv6) is
// dialled on the tunnel's listen port, other address types are not;
// relays get their advertised addresses (IP or DNS); addresses are not
// repeated; a record whose peer ID does not parse is no target, and an
// unparsable directory address is skipped without losing the peer.
func TestTargetsFollowMetadataAndRelays(t *testing.T) {
	a2, relay1, relay2, gone := unittest.NewPeerID(t).String(), unittest.NewPeerID(t).String(), unittest.NewPeerID(t).String(), unittest.NewPeerID(t).String()
	relays := []v1.RelayNode{
		{NodeName: "relay-1", AdvertiseAddress: []string{"198.18.0.11"}},
		{NodeName: "relay-2", AdvertiseAddress: []string{"relay-2.example.net", "2001:db8::2"}},
	}
	tests := []struct {
		name  string
		port  int
		snap  *metadata.Snapshot // nil: no metadata reader
		known map[string]p2p.PeerRecord
		want  map[string][]string
	}{{
		name: "node removed from the synced metadata is dropped, relays absent from it are kept",
		port: 20006,
		snap: &metadata.Snapshot{Nodes: map[string]*metadata.NodeInfo{"a2": node("a2", addr("InternalIP", "192.168.1.12"))}},
		known: map[string]p2p.PeerRecord{
			"a2":      {Node: "a2", Peer: a2},
			"gone":    {Node: "gone", Peer: gone, Addrs: []string{"/ip4/198.18.0.50/tcp/20006"}},
			"relay-1": {Node: "relay-1", Peer: relay1},
			"relay-2": {Node: "relay-2", Peer: relay2},
		},
		want: map[string][]string{
			"a2":      {"/ip4/192.168.1.12/tcp/20006", "/ip4/192.168.1.12/udp/20006/quic-v1"},
			"relay-1": {"/ip4/198.18.0.11/tcp/20006", "/ip4/198.18.0.11/udp/20006/quic-v1"},
			"relay-2": {"/dns/relay-2.example.net/tcp/20006", "/dns/relay-2.example.net/udp/20006/quic-v1",
				"/ip6/2001:db8::2/tcp/20006", "/ip6/2001:db8::2/udp/20006/quic-v1"},
		},
	}, {
		name: "metadata not synced yet (no nodes) drops nobody",
		port: 20006,
		snap: metadata.Empty(),
		known: map[string]p2p.PeerRecord{
			"gone": {Node: "gone", Peer: gone, Addrs: []string{"/ip4/198.18.0.50/tcp/20006"}},
		},
		want: map[string][]string{"gone": {"/ip4/198.18.0.50/tcp/20006"}},
	}, {
		name: "no metadata reader: directory addresses only",
		port: 20006,
		known: map[string]p2p.PeerRecord{
			"a2": {Node: "a2", Peer: a2, Addrs: []string{"/ip4/198.18.0.101/udp/4000/quic-v1"}},
		},
		want: map[string][]string{"a2": {"/ip4/198.18.0.101/udp/4000/quic-v1"}},
	}, {
		name: "IPv4 and IPv6 Internal and External IPs on the listen port, other types ignored",
		port: 31000,
		snap: &metadata.Snapshot{Nodes: map[string]*metadata.NodeInfo{"a2": node("a2",
			addr("InternalIP", "fd00::12"), addr("ExternalIP", "203.0.113.7"),
			addr("Hostname", "192.168.1.99"), addr("InternalDNS", "192.168.1.98"))}},
		known: map[string]p2p.PeerRecord{"a2": {Node: "a2", Peer: a2}},
		want: map[string][]string{"a2": {
			"/ip4/203.0.113.7/tcp/31000", "/ip4/203.0.113.7/udp/31000/quic-v1",
			"/ip6/fd00::12/tcp/31000", "/ip6/fd00::12/udp/31000/quic-v1"}},
	}, {
		name: "a relay in the metadata gets its node addresses and its advertised ones",
		port: 20006,
		snap: &metadata.Snapshot{Nodes: map[string]*metadata.NodeInfo{"relay-1": node("relay-1", addr("InternalIP", "10.0.0.11"))}},
		known: map[string]p2p.PeerRecord{
			"relay-1": {Node: "relay-1", Peer: relay1},
		},
		want: map[string][]string{"relay-1": {
			"/ip4/10.0.0.11/tcp/20006", "/ip4/10.0.0.11/udp/20006/quic-v1",
			"/ip4/198.18.0.11/tcp/20006", "/ip4/198.18.0.11/udp/20006/quic-v1"}},
	}, {
		name: "addresses known from the directory and the metadata appear once",
		port: 20006,
		snap: &metadata.Snapshot{Nodes: map[string]*metadata.NodeInfo{"a2": node("a2", addr("InternalIP", "192.168.1.12"))}},
		known: map[string]p2p.PeerRecord{"a2": {Node: "a2", Peer: a2, Addrs: []string{
			"/ip4/192.168.1.12/tcp/20006", "/ip4/192.168.1.12/tcp/20006", "not a multiaddr"}}},
		want: map[string][]string{"a2": {"/ip4/192.168.1.12/tcp/20006", "/ip4/192.168.1.12/udp/20006/quic-v1"}},
	}, {
		name: "records without a valid peer ID are no targets, relay or not",
		port: 20006,
		known: map[string]p2p.PeerRecord{
			"a2":      {Node: "a2", Peer: "not a peer ID"},
			"relay-1": {Node: "relay-1", Peer: ""},
			"a3":      {Node: "a3", Peer: a2},
		},
		want: map[string][]string{"a3": {}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v1.NewDefault()
			c.NodeName = "a1"
			c.Modules.Tunnel.ListenPort = tt.port
			c.Modules.Tunnel.RelayNodes = relays
			var md metadata.Reader
			if tt.snap != nil {
				md = fixedReader{tt.snap}
			}
			ts := NewService(asAgent(t, c), md).targets(tt.known)
			for _, tg := range ts {
				if tg.ID.String() != tt.known[tg.Node].Peer {
					t.Errorf("%s: peer %s, want %s", tg.Node, tg.ID, tt.known[tg.Node].Peer)
				}
			}
			if got := addrsByNode(ts); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("targets\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// A relay's advertise addresses become a QUIC and a TCP multiaddr each on
// the listen port: /ip4 or /ip6 for a literal address, /dns otherwise.
func TestRelayAddrs(t *testing.T) {
	tests := []struct {
		advertise []string
		port      int
		want      []string
	}{
		{[]string{"198.18.0.11"}, 20006, []string{"/ip4/198.18.0.11/udp/20006/quic-v1", "/ip4/198.18.0.11/tcp/20006"}},
		{[]string{"2001:db8::11"}, 443, []string{"/ip6/2001:db8::11/udp/443/quic-v1", "/ip6/2001:db8::11/tcp/443"}},
		{[]string{"relay.example.net", "10.1.2.3"}, 7000, []string{
			"/dns/relay.example.net/udp/7000/quic-v1", "/dns/relay.example.net/tcp/7000",
			"/ip4/10.1.2.3/udp/7000/quic-v1", "/ip4/10.1.2.3/tcp/7000"}},
		{nil, 20006, nil},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range relayAddrs(tt.advertise, tt.port) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("relayAddrs(%q, %d) = %v, want %v", tt.advertise, tt.port, got, tt.want)
		}
	}
}

// The UDP address observation goes to a relay's first QUIC address with a
// literal IP; a relay known only by DNS name or only over TCP has none.
func TestQUICAddrPort(t *testing.T) {
	tests := []struct {
		addrs []string
		want  string // "" : none
	}{
		{[]string{"/ip4/198.18.0.11/tcp/20006", "/ip4/198.18.0.11/udp/20006/quic-v1"}, "198.18.0.11:20006"},
		{[]string{"/dns/relay.example.net/udp/20006/quic-v1", "/ip6/2001:db8::11/udp/443/quic-v1"}, "[2001:db8::11]:443"},
		{[]string{"/dns/relay.example.net/udp/20006/quic-v1", "/dns/relay.example.net/tcp/20006"}, ""},
		{[]string{"/ip4/198.18.0.11/tcp/20006"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		var addrs []ma.Multiaddr
		for _, a := range tt.addrs {
			addrs = append(addrs, ma.StringCast(a))
		}
		ap, ok := quicAddrPort(addrs)
		got := ""
		if ok {
			got = ap.String()
		}
		if got != tt.want {
			t.Errorf("quicAddrPort(%v) = %q, want %q", tt.addrs, got, tt.want)
		}
	}
}

// Merging what discovery found into the known members: this node never
// becomes its own peer; a new node, new addresses or a new identity are
// taken and reported as a change (the cache is saved); the same record
// again only advances Seen, reported as no change; a relay seen through
// the reservation keeper (no addresses) keeps the addresses known for it;
// an older record of a node that since changed identity does not bring
// the old identity back.
func TestMergeRecords(t *testing.T) {
	idA, idB := unittest.NewPeerID(t).String(), unittest.NewPeerID(t).String()
	known := func(recs ...p2p.PeerRecord) map[string]p2p.PeerRecord {
		m := map[string]p2p.PeerRecord{}
		for _, r := range recs {
			m[r.Node] = r
		}
		return m
	}
	tests := []struct {
		name        string
		known       map[string]p2p.PeerRecord
		found       []p2p.PeerRecord
		want        map[string]p2p.PeerRecord
		wantChanged bool
	}{{
		name:        "own node is left out",
		known:       known(),
		found:       []p2p.PeerRecord{{Node: "a1", Peer: idA, Addrs: []string{"/ip4/10.0.0.1/tcp/1"}, Seen: 10}},
		want:        known(),
		wantChanged: false,
	}, {
		name:        "a new node is taken",
		known:       known(),
		found:       []p2p.PeerRecord{{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 10}},
		want:        known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 10}),
		wantChanged: true,
	}, {
		name:        "the same record again advances Seen only",
		known:       known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 10}),
		found:       []p2p.PeerRecord{{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 20}},
		want:        known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 20}),
		wantChanged: false,
	}, {
		name:        "an older copy of the same record does not move Seen back",
		known:       known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 20}),
		found:       []p2p.PeerRecord{{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 5}},
		want:        known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 20}),
		wantChanged: false,
	}, {
		name:        "a relay seen through the keeper keeps its known addresses",
		known:       known(p2p.PeerRecord{Node: "relay-1", Peer: idA, Addrs: []string{"/ip4/198.18.0.11/tcp/20006"}, Seen: 10}),
		found:       []p2p.PeerRecord{{Node: "relay-1", Peer: idA, Seen: 30}},
		want:        known(p2p.PeerRecord{Node: "relay-1", Peer: idA, Addrs: []string{"/ip4/198.18.0.11/tcp/20006"}, Seen: 30}),
		wantChanged: false,
	}, {
		name:        "new addresses join the known ones",
		known:       known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 10}),
		found:       []p2p.PeerRecord{{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.3/tcp/1"}, Seen: 11}},
		want:        known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.3/tcp/1"}, Seen: 11}),
		wantChanged: true,
	}, {
		// Two relays see a member behind different mappings: once both
		// views are known, another round of the same is no change (and
		// no rewrite of peers.json).
		name:  "two relays' views of one member, again",
		known: known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/198.18.0.2/tcp/40001", "/ip4/198.18.0.2/tcp/40002"}, Seen: 10}),
		found: []p2p.PeerRecord{{Node: "a2", Peer: idA, Addrs: []string{"/ip4/198.18.0.2/tcp/40002"}, Seen: 11},
			{Node: "a2", Peer: idA, Addrs: []string{"/ip4/198.18.0.2/tcp/40001"}, Seen: 11}},
		want:        known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/198.18.0.2/tcp/40001", "/ip4/198.18.0.2/tcp/40002"}, Seen: 11}),
		wantChanged: false,
	}, {
		name:        "a newer identity replaces the old one",
		known:       known(p2p.PeerRecord{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 10}),
		found:       []p2p.PeerRecord{{Node: "a2", Peer: idB, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 11}},
		want:        known(p2p.PeerRecord{Node: "a2", Peer: idB, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 11}),
		wantChanged: true,
	}, {
		name:        "an older record of the old identity is ignored",
		known:       known(p2p.PeerRecord{Node: "a2", Peer: idB, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 11}),
		found:       []p2p.PeerRecord{{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 10}},
		want:        known(p2p.PeerRecord{Node: "a2", Peer: idB, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 11}),
		wantChanged: false,
	}, {
		name:  "identity changes between two relays' answers in one round: the newer wins",
		known: known(),
		found: []p2p.PeerRecord{
			{Node: "a2", Peer: idB, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 11},
			{Node: "a2", Peer: idA, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 10},
		},
		want:        known(p2p.PeerRecord{Node: "a2", Peer: idB, Addrs: []string{"/ip4/10.0.0.2/tcp/1"}, Seen: 11}),
		wantChanged: true,
	}, {
		name:  "other nodes are untouched",
		known: known(p2p.PeerRecord{Node: "a3", Peer: idB, Seen: 1}),
		found: []p2p.PeerRecord{{Node: "a2", Peer: idA, Seen: 2}},
		want: known(p2p.PeerRecord{Node: "a3", Peer: idB, Seen: 1},
			p2p.PeerRecord{Node: "a2", Peer: idA, Seen: 2}),
		wantChanged: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := maps.Clone(tt.known)
			changed := mergeRecords(got, "a1", tt.found)
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("known\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The reservation keeper's states become peer records for the relays
// whose peer ID is known (seen now, no addresses); a relay whose ID is not
// learned yet gives none.
func TestRelayRecords(t *testing.T) {
	id1, id2 := unittest.NewPeerID(t), unittest.NewPeerID(t)
	now := time.Unix(1764200000, 0).Unix()
	states := []p2p.ReservationState{
		{Node: "relay-1", Relay: id1, Reserved: true},
		{Node: "relay-2", LastError: "dial: connection refused"},
		{Node: "relay-3", Relay: id2, Reserved: false, LastError: "reservation refused"},
	}
	want := []p2p.PeerRecord{
		{Node: "relay-1", Peer: id1.String(), Seen: now},
		{Node: "relay-3", Peer: id2.String(), Seen: now},
	}
	if got := relayRecords(states, now); !reflect.DeepEqual(got, want) {
		t.Errorf("relayRecords\n got %+v\nwant %+v", got, want)
	}
	if got := relayRecords(nil, now); len(got) != 0 {
		t.Errorf("no relays: %+v", got)
	}
}

// Addresses no multiaddr can hold (an IPv6 zone from a node's status or a
// relay's advertiseAddress, a name with a slash) are left out instead of
// crashing the agent; IPv4-mapped IPv6 addresses are dialled as IPv4.
func TestAddrsThatAreNotMultiaddrs(t *testing.T) {
	got := relayAddrs([]string{"fe80::1%eth0", "relay/evil", "::ffff:198.18.0.1"}, 20006)
	want := []string{"/ip4/198.18.0.1/udp/20006/quic-v1", "/ip4/198.18.0.1/tcp/20006"}
	if len(got) != len(want) {
		t.Fatalf("relayAddrs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("relayAddrs[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	n := &metadata.NodeInfo{Name: "a2", Addresses: []metadata.NodeAddress{
		{Type: "InternalIP", Address: netip.MustParseAddr("fe80::1%eth0")},
		{Type: "InternalIP", Address: netip.MustParseAddr("192.168.1.12")},
	}}
	if got := nodeAddrs(n, "20006"); len(got) != 2 || got[0].String() != "/ip4/192.168.1.12/tcp/20006" {
		t.Errorf("nodeAddrs = %v, want only 192.168.1.12's two", got)
	}
}

// The membership gate's admission check follows the synced metadata
// picture: a node it lists, or a configured relay node, is admitted; a
// node it does not list is refused with an error naming it. An unsynced
// or empty picture, or none (a relay), admits everyone.
func TestAdmitFollowsSyncedNodes(t *testing.T) {
	nodes := map[string]*metadata.NodeInfo{"a2": node("a2")}
	tests := []struct {
		name    string
		md      metadata.Reader
		node    string
		refused bool
	}{
		{"listed node", fixedReader{&metadata.Snapshot{Synced: true, Nodes: nodes}}, "a2", false},
		{"deleted node", fixedReader{&metadata.Snapshot{Synced: true, Nodes: nodes}}, "gone", true},
		{"relay node not in the picture", fixedReader{&metadata.Snapshot{Synced: true, Nodes: nodes}}, "relay-1", false},
		{"picture loaded from disk, not synced", fixedReader{&metadata.Snapshot{Nodes: nodes}}, "gone", false},
		{"synced picture without nodes", fixedReader{&metadata.Snapshot{Synced: true, Nodes: map[string]*metadata.NodeInfo{}}}, "gone", false},
		{"no metadata (a relay)", nil, "gone", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v1.NewDefault()
			c.NodeName = "a1"
			c.Modules.Tunnel.RelayNodes = []v1.RelayNode{{NodeName: "relay-1", AdvertiseAddress: []string{"198.18.0.11"}}}
			err := NewService(asAgent(t, c), tt.md).admit(tt.node)
			if tt.refused {
				if err == nil || !strings.Contains(err.Error(), `no Node "`+tt.node+`"`) {
					t.Errorf("admit(%s) = %v, want a refusal naming it", tt.node, err)
				}
			} else if err != nil {
				t.Errorf("admit(%s) = %v, want admitted", tt.node, err)
			}
		})
	}
}
