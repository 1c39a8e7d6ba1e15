package p2p

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/tests/unittest"
)

func testDirectory(now *time.Time, connected map[peer.ID][]ma.Multiaddr) *Directory {
	d := &Directory{now: func() time.Time { return *now }, entries: map[string]*dirEntry{}}
	d.observed = func(p peer.ID) []ma.Multiaddr { return connected[p] }
	return d
}

func request(t testing.TB, req any) *bufio.Reader {
	var b bytes.Buffer
	if err := writeJSON(&b, req); err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(&b)
}

// Members register under the name they proved; lookups add the addresses
// the relay sees them at, answer by name or all, and forget a member
// DirectoryTTL after its last connection ended.
func TestDirectoryRegisterLookup(t *testing.T) {
	now := time.Unix(1764200000, 0)
	a, b := unittest.NewPeerID(t), unittest.NewPeerID(t)
	natA := ma.StringCast("/ip4/198.18.0.101/udp/40001/quic-v1")
	connected := map[peer.ID][]ma.Multiaddr{a: {natA}}
	d := testDirectory(&now, connected)

	resp := d.serve(request(t, discoveryRequest{Op: "register", Addrs: []string{"/ip4/192.168.1.11/tcp/20006"}}), "edge-a", a)
	if resp.Error != "" || len(resp.Observed) != 1 || resp.Observed[0] != natA.String() {
		t.Fatalf("register answer: %+v", resp)
	}
	d.serve(request(t, discoveryRequest{Op: "register", Addrs: []string{"/ip4/192.168.3.11/tcp/20006"}}), "edge-b", b)

	got := d.serve(request(t, discoveryRequest{Op: "lookup", Nodes: []string{"edge-a", "nope"}}), "edge-b", b).Peers
	if len(got) != 1 || got[0].Node != "edge-a" || got[0].Peer != a.String() ||
		strings.Join(got[0].Addrs, " ") != "/ip4/192.168.1.11/tcp/20006 "+natA.String() {
		t.Fatalf("lookup edge-a: %+v", got)
	}
	if all := d.serve(request(t, discoveryRequest{Op: "lookup"}), "edge-a", a).Peers; len(all) != 2 || all[0].Node != "edge-a" || all[1].Node != "edge-b" {
		t.Fatalf("lookup all: %+v", all)
	}

	// edge-b is not connected: kept for DirectoryTTL, then forgotten;
	// edge-a stays while connected.
	now = now.Add(DirectoryTTL - time.Second)
	if all := d.lookup(nil); len(all) != 2 {
		t.Fatalf("within the TTL: %+v", all)
	}
	now = now.Add(2 * time.Second)
	if all := d.lookup(nil); len(all) != 1 || all[0].Node != "edge-a" || all[0].Seen != now.Unix() {
		t.Fatalf("after the TTL: %+v", all)
	}

	// A member re-registering with a new identity replaces its entry.
	a2 := unittest.NewPeerID(t)
	d.serve(request(t, discoveryRequest{Op: "register"}), "edge-a", a2)
	if got := d.lookup([]string{"edge-a"}); len(got) != 1 || got[0].Peer != a2.String() {
		t.Fatalf("after a new identity: %+v", got)
	}
}

func TestDirectoryRefusesBadRequests(t *testing.T) {
	now := time.Now()
	d := testDirectory(&now, nil)
	p := unittest.NewPeerID(t)
	many := make([]string, maxRegisteredAddrs+1)
	for i := range many {
		many[i] = "/ip4/10.0.0.1/tcp/1"
	}
	for name, tc := range map[string]struct {
		in   *bufio.Reader
		want string
	}{
		"unknown op":     {request(t, discoveryRequest{Op: "delete"}), `unknown op "delete"`},
		"bad address":    {request(t, discoveryRequest{Op: "register", Addrs: []string{"/ip4/nope"}}), `address "/ip4/nope"`},
		"many addresses": {request(t, discoveryRequest{Op: "register", Addrs: many}), "33 addresses, at most 32"},
		"not JSON":       {request(t, json.RawMessage(`1`)), "bad request"},
		"garbage":        {bufio.NewReader(strings.NewReader("\xff\xff\xff\xff\xff\x0fxyz")), "bad request: message of"},
		"empty":          {bufio.NewReader(strings.NewReader("")), "bad request: EOF"},
	} {
		resp := d.serve(tc.in, "edge-a", p)
		if !strings.Contains(resp.Error, tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", name, resp.Error, tc.want)
		}
	}
	if len(d.entries) != 0 {
		t.Errorf("bad requests registered something: %v", d.entries)
	}
}

// Any bytes a member sends get an answer that encodes, and register at
// most the sender's own entry.
func FuzzDiscoveryRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"register","addrs":["/ip4/192.168.1.11/tcp/20006"]}`,
		`{"op":"lookup","nodes":["a","b"]}`, `{"op":"lookup"}`, `{"op":7}`, `[]`,
	} {
		var b bytes.Buffer
		_ = writeJSON(&b, json.RawMessage(s))
		f.Add(b.Bytes())
	}
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	p, _ := peer.Decode("12D3KooWPFHX6VsiWzAR3yKp1r3rBjULXy1aPRxgKChE6WD2Kjaw")
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Now()
		d := testDirectory(&now, nil)
		resp := d.serve(bufio.NewReader(bytes.NewReader(data)), "edge-a", p)
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("answer does not encode: %v", err)
		}
		if len(d.entries) > 1 || (len(d.entries) == 1 && d.entries["edge-a"] == nil) {
			t.Fatalf("registered %v for one member", d.entries)
		}
	})
}

// A registration cannot make other nodes dial targets of the registrant's
// choosing: the directory keeps IP addresses with a TCP or QUIC port, on
// one TCP and one UDP port, a public address only if the member connects
// from it, loopback only from loopback, and says why it left out the rest.
func TestDirectoryChecksRegisteredAddresses(t *testing.T) {
	now := time.Unix(1764200000, 0)
	a := unittest.NewPeerID(t)
	// The member connects from 198.18.0.101 (its NAT), made routable
	// (public) as the tests' underlay is.
	SetRoutable([]netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")})
	connected := map[peer.ID][]ma.Multiaddr{a: {ma.StringCast("/ip4/198.18.0.101/tcp/40001")}}
	d := testDirectory(&now, connected)
	keep := []string{
		"/ip4/192.168.1.11/tcp/20006",
		"/ip4/192.168.1.11/udp/20006/quic-v1",
		"/ip4/10.1.0.11/tcp/20006",
		"/ip4/198.18.0.101/tcp/20006", // public, and where it connects from
	}
	refuse := map[string]string{
		"/ip4/198.18.0.7/tcp/20006":               "a public address this member does not connect from",
		"/ip4/192.168.1.12/tcp/22":                "a second TCP port",
		"/ip4/192.168.1.12/udp/53/quic-v1":        "a second UDP port",
		"/ip4/127.0.0.1/tcp/20006":                "loopback",
		"/ip4/0.0.0.0/tcp/20006":                  "not a unicast address",
		"/ip4/224.0.0.1/udp/20006/quic-v1":        "not a unicast address",
		"/ip6/fe80::1/tcp/20006":                  "not a unicast address",
		"/dns4/victim.example/tcp/20006":          "not an IP address with a TCP or QUIC port",
		"/ip4/192.168.1.11/udp/20006":             "not an IP address with a TCP or QUIC port",
		"/ip4/192.168.1.11/tcp/20006/ws":          "not an IP address with a TCP or QUIC port",
		"/ip4/192.168.1.11/tcp/20006/p2p-circuit": "not an IP address with a TCP or QUIC port",
	}
	req := discoveryRequest{Op: "register", Addrs: keep}
	for a := range refuse {
		req.Addrs = append(req.Addrs, a)
	}
	resp := d.serve(request(t, req), "edge-a", a)
	if resp.Error != "" {
		t.Fatalf("register: %s", resp.Error)
	}
	got := d.lookup([]string{"edge-a"})
	if len(got) != 1 {
		t.Fatalf("lookup: %+v", got)
	}
	for _, k := range keep {
		if !slices.Contains(got[0].Addrs, k) {
			t.Errorf("directory left out %s: %v", k, resp.Refused)
		}
	}
	for addr, why := range refuse {
		if slices.Contains(got[0].Addrs, addr) {
			t.Errorf("directory hands out %s", addr)
		}
		if !slices.ContainsFunc(resp.Refused, func(r string) bool { return strings.HasPrefix(r, addr+": ") && strings.Contains(r, why) }) {
			t.Errorf("refused %v does not say %s: %s", resp.Refused, addr, why)
		}
	}

	// A member on loopback (the unit tests' world) may register loopback.
	b := unittest.NewPeerID(t)
	connected[b] = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/40002")}
	if resp := d.serve(request(t, discoveryRequest{Op: "register", Addrs: []string{"/ip4/127.0.0.1/tcp/20007"}}), "edge-b", b); len(resp.Refused) != 0 {
		t.Errorf("loopback from loopback refused: %v", resp.Refused)
	}
}
