package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/tests/unittest"
)

// The directory over the wire: a member registers under the node name it
// proved and learns the address the relay sees it at; another member's
// lookup answers that name with the registered and the observed
// addresses; requests beyond the limits are refused with the reason; a
// non-member gets nothing and registers nothing; a closed directory
// answers no one.
func TestDirectoryOverTheWire(t *testing.T) {
	c := newCluster(t)
	r, a, b := c.host("relay-1", nil), c.host("edge-a", nil), c.host("edge-b", nil)
	d := r.ServeDirectory()
	for _, h := range []*Host{a, b} {
		if err := connect(t, h, r); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	lan := ma.StringCast("/ip4/192.168.1.11/tcp/20006")
	observed, err := a.Register(ctx, r.ID(), []ma.Multiaddr{lan})
	if err != nil {
		t.Fatal(err)
	}
	seen := r.Network().ConnsToPeer(a.ID())[0].RemoteMultiaddr()
	if len(observed) != 1 || !observed[0].Equal(seen) {
		t.Fatalf("register answered observed %v, want %v (as the relay sees edge-a)", observed, seen)
	}

	recs, err := b.Lookup(ctx, r.ID(), []string{"edge-a", "edge-nope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Node != "edge-a" || recs[0].Peer != a.ID().String() ||
		!slices.Equal(recs[0].Addrs, []string{lan.String(), seen.String()}) {
		t.Fatalf("lookup: %+v", recs)
	}
	if all := d.Lookup(nil); len(all) != 1 || all[0].Node != "edge-a" {
		t.Fatalf("the relay's own lookup: %+v", all)
	}

	// Limits: refused, with the reason, and nothing registered.
	many := make([]ma.Multiaddr, maxRegisteredAddrs+1)
	for i := range many {
		many[i] = ma.StringCast(fmt.Sprintf("/ip4/192.168.3.%d/tcp/20006", i+1))
	}
	if _, err := b.Register(ctx, r.ID(), many); err == nil || !strings.Contains(err.Error(), "register refused by") || !strings.Contains(err.Error(), "at most 32") {
		t.Errorf("register of %d addresses: %v", len(many), err)
	}
	// One name more than a lookup may ask for (short ones: the request
	// must fit in MaxDiscoveryRequest to be counted at all), and a
	// request longer than MaxDiscoveryRequest.
	if _, err := b.Lookup(ctx, r.ID(), slices.Repeat([]string{"x"}, maxLookupNodes+1)); err == nil ||
		!strings.Contains(err.Error(), "lookup refused by") || !strings.Contains(err.Error(), "8193 nodes, at most 8192") {
		t.Errorf("lookup of %d names: %v", maxLookupNodes+1, err)
	}
	if _, err := b.Lookup(ctx, r.ID(), []string{strings.Repeat("x", MaxDiscoveryRequest)}); err == nil ||
		!strings.Contains(err.Error(), "lookup refused by") || !strings.Contains(err.Error(), "at most 65536") {
		t.Errorf("lookup longer than %d bytes: %v", MaxDiscoveryRequest, err)
	}
	if all := d.Lookup(nil); len(all) != 1 {
		t.Errorf("refused requests registered something: %+v", all)
	}

	// A non-member reaches nothing.
	rogueCA, err := membership.InitCA(filepath.Join(c.dir, "rogue-ca"), "rogue", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rogue := c.host("rogue", rogueCA)
	if err := connect(t, rogue, r); err != nil {
		t.Fatal(err)
	}
	if _, err := rogue.Register(ctx, r.ID(), []ma.Multiaddr{lan}); err == nil {
		t.Error("a non-member registered")
	}
	if recs := d.Lookup([]string{"edge-a"}); len(recs) != 1 || recs[0].Peer != a.ID().String() {
		t.Errorf("after the non-member's attempt, edge-a is %+v", recs)
	}

	d.Close()
	if _, err := b.Lookup(ctx, r.ID(), nil); err == nil {
		t.Error("a closed directory answered")
	}
}

// The client side against a directory that misbehaves: an answer longer
// than MaxDiscoveryResponse is refused before it is read, as are answers
// that are not JSON, cut short or missing; a stalled directory costs the
// caller's deadline, not more; an error answer is the caller's error; of
// the observed addresses only those that parse are returned.
func TestDiscoveryClientAgainstBadDirectory(t *testing.T) {
	c := newCluster(t)
	r, a := c.host("relay-1", nil), c.host("edge-a", nil)
	if err := connect(t, a, r); err != nil {
		t.Fatal(err)
	}
	framed := func(body string) []byte { return append(binary.AppendUvarint(nil, uint64(len(body))), body...) }
	for _, tc := range []struct {
		name    string
		answer  []byte // nil: answer nothing and hold the stream until the caller gives up
		wantErr string
		want    []string // observed addresses returned
	}{
		{"oversized", binary.AppendUvarint(nil, MaxDiscoveryResponse+1), "at most 8388608", nil},
		{"not JSON", framed("{nope"), "not valid JSON", nil},
		{"cut short", framed(`{"observed":[]}`)[:5], "EOF", nil},
		{"empty", []byte{}, "EOF", nil},
		{"error answer", framed(`{"error":"go away"}`), "register refused by " + r.ID().String() + ": go away", nil},
		{"stalls", nil, "discovery answer from", nil},
		{"bad observed address", framed(`{"observed":["/ip4/198.18.0.101/udp/4242/quic-v1","/ip4/nope","garbage"]}`), "", []string{"/ip4/198.18.0.101/udp/4242/quic-v1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.Gate.Handle(DiscoveryProtocol, func(s network.Stream) {
				defer s.Close()
				var req discoveryRequest
				if err := readJSON(bufio.NewReader(s), MaxDiscoveryRequest, &req); err != nil || req.Op != "register" {
					t.Errorf("request %+v, %v", req, err)
				}
				if tc.answer == nil {
					_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, _ = s.Read(make([]byte, 1)) // until the caller hangs up
					return
				}
				_, _ = s.Write(tc.answer)
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			got, err := a.Register(ctx, r.ID(), []ma.Multiaddr{ma.StringCast("/ip4/192.168.1.11/tcp/20006")})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("register: %v %v, want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ss := toStrings(got); !slices.Equal(ss, tc.want) {
				t.Fatalf("observed %v, want %v", ss, tc.want)
			}
		})
	}
}

// A lookup's addresses: the registered ones first, then the observed ones
// not already among them (no duplicates when a member registered the
// address the relay sees it at); a member seen connected is kept for
// DirectoryTTL from the last time it was seen, not from its registration.
func TestDirectoryLookupMergesAndRefreshes(t *testing.T) {
	now := time.Unix(1764200000, 0)
	a := unittest.NewPeerID(t)
	pub := ma.StringCast("/ip4/198.18.0.101/tcp/20006")
	nat := ma.StringCast("/ip4/198.18.0.101/udp/40001/quic-v1")
	connected := map[string][]ma.Multiaddr{}
	d := testDirectory(&now, nil)
	d.observed = func(p peer.ID) []ma.Multiaddr { return connected[p.String()] }
	resp := d.answer("edge-a", a, discoveryRequest{Op: "register", Addrs: []string{pub.String()}})
	if resp.Error != "" || len(resp.Observed) != 0 {
		t.Fatalf("register while not connected: %+v", resp)
	}

	connected[a.String()] = []ma.Multiaddr{pub, nat}
	now = now.Add(DirectoryTTL * 3) // connected all along
	got := d.lookup([]string{"edge-a"})
	if len(got) != 1 || !slices.Equal(got[0].Addrs, []string{pub.String(), nat.String()}) || got[0].Seen != now.Unix() {
		t.Fatalf("lookup while connected: %+v", got)
	}

	delete(connected, a.String()) // gone now
	now = now.Add(DirectoryTTL)
	if got := d.lookup(nil); len(got) != 1 || got[0].Seen != now.Add(-DirectoryTTL).Unix() {
		t.Fatalf("within the TTL of the last sighting: %+v", got)
	}
	now = now.Add(time.Second)
	if got := d.lookup([]string{"edge-a"}); len(got) != 0 {
		t.Fatalf("after the TTL: %+v", got)
	}
	if len(d.entries) != 0 {
		t.Fatalf("an expired entry is kept: %v", d.entries)
	}
	if b, _ := json.Marshal(d.answer("edge-a", a, discoveryRequest{Op: "lookup"})); string(b) != "{}" {
		t.Fatalf("empty lookup answer %s", b)
	}
}
