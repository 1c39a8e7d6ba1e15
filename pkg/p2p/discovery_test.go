package p2p

import (
	"bufio"
	"bytes"
	"encoding/json"
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
