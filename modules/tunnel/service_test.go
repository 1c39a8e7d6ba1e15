package tunnel

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// fixedReader is a picture that never changes.
type fixedReader struct{ s *metadata.Snapshot }

func (r fixedReader) Snapshot() *metadata.Snapshot { return r.s }

func (r fixedReader) Next() (*metadata.Snapshot, <-chan struct{}) { return r.s, nil }

func (r fixedReader) Wait(ctx context.Context, version uint64) (*metadata.Snapshot, error) {
	if r.s.Version != version {
		return r.s, nil
	}
	<-ctx.Done()
	return r.s, ctx.Err()
}

// Targets carry the directory's addresses plus the metadata's node
// addresses on the tunnel port and the relays' advertised ones; nodes the
// synced metadata no longer lists are left out, relays never.
func TestTargets(t *testing.T) {
	c := v1.NewDefault()
	c.NodeName = "a1"
	c.Modules.Tunnel.RelayNodes = []v1.RelayNode{{NodeName: "relay-1", AdvertiseAddress: []string{"198.18.0.11"}}}
	snap := metadata.Empty()
	snap.Nodes["a2"] = &metadata.NodeInfo{Name: "a2", Addresses: []metadata.NodeAddress{
		{Type: "InternalIP", Address: netip.MustParseAddr("192.168.1.12")},
		{Type: "Hostname", Address: netip.MustParseAddr("192.168.1.99")},
	}}
	s := NewService(asAgent(t, c), fixedReader{snap})
	known := map[string]p2p.PeerRecord{
		"a2":      {Node: "a2", Peer: "12D3KooWPFHX6VsiWzAR3yKp1r3rBjULXy1aPRxgKChE6WD2Kjaw", Addrs: []string{"/ip4/198.18.0.101/udp/4000/quic-v1"}},
		"relay-1": {Node: "relay-1", Peer: "12D3KooWEogb5Rn5j92Jhhe7KaaNLtCwYB92WXyam77n3xvftyTP"},
		"gone":    {Node: "gone", Peer: "12D3KooWPbAMzgYytUpHGPBQZetu6WmNK97zvBC7AtLmm4qzorxm"},
		"broken":  {Node: "broken", Peer: "not a peer ID"},
	}
	got := map[string][]string{}
	for _, tg := range s.targets(known) {
		for _, a := range tg.Addrs {
			got[tg.Node] = append(got[tg.Node], a.String())
		}
		slices.Sort(got[tg.Node])
	}
	want := map[string][]string{
		"a2":      {"/ip4/192.168.1.12/tcp/20006", "/ip4/192.168.1.12/udp/20006/quic-v1", "/ip4/198.18.0.101/udp/4000/quic-v1"},
		"relay-1": {"/ip4/198.18.0.11/tcp/20006", "/ip4/198.18.0.11/udp/20006/quic-v1"},
	}
	if len(got) != len(want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	for n, w := range want {
		if !slices.Equal(got[n], w) {
			t.Errorf("%s: %v, want %v", n, got[n], w)
		}
	}

	// Without metadata every known member is a target.
	if n := len(NewService(asAgent(t, c), nil).targets(known)); n != 3 {
		t.Errorf("without metadata: %d targets, want 3", n)
	}
}
