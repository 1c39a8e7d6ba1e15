package p2p

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Pod packets follow the path: a packet stream opened on edge-b's current
// path (a circuit through one of two relays; edge-a knows no direct
// address of edge-b) reaches edge-b; when that relay dies, the path
// generation changes, and a stream opened on the new path (the other
// relay, or a direct connection learned meanwhile) reaches edge-b too.
// This is the transport's half of "traffic moves off a dead relay" (the
// forwarder's half: TestSendFollowsPathChanges in pkg/dataplane).
func TestPacketsFollowThePathWhenARelayDies(t *testing.T) {
	c := newCluster(t)
	relays := map[string]*Host{}
	stops := map[string]func(){}
	for _, name := range []string{"relay-1", "relay-2"} {
		r := c.host(name, nil)
		rel, err := r.StartRelay()
		if err != nil {
			t.Fatal(err)
		}
		relays[name] = r
		var once sync.Once
		stops[name] = func() { once.Do(func() { rel.Close(); r.Close() }) }
		t.Cleanup(stops[name])
	}
	a, b := c.host("edge-a", nil), c.host("edge-b", nil)

	var mu sync.Mutex
	got := map[string]*bytes.Buffer{} // what edge-b received, by sender
	b.HandlePackets(func(node string, r io.ReadCloser) {
		defer r.Close()
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			mu.Lock()
			if got[node] == nil {
				got[node] = &bytes.Buffer{}
			}
			got[node].Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	})
	received := func() string {
		mu.Lock()
		defer mu.Unlock()
		if got["edge-a"] == nil {
			return ""
		}
		return got["edge-a"].String()
	}

	var targets []RelayTarget
	for name, r := range relays {
		targets = append(targets, RelayTarget{Node: name, ID: r.ID(), Addrs: r.Addrs()})
	}
	keeper := b.KeepReservations(targets, nil)
	t.Cleanup(keeper.Close)
	deadline := time.Now().Add(20 * time.Second)
	for len(keeper.Reserved()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("edge-b holds no reservation on both relays: %+v", keeper.States())
		}
		time.Sleep(50 * time.Millisecond)
	}

	relayRefs := func() []RelayRef {
		var out []RelayRef
		for _, r := range relays {
			out = append(out, RelayRef{ID: r.ID(), Addrs: r.Addrs()})
		}
		return out
	}
	pm := a.NewPathManager(relayRefs, PathOptions{})
	t.Cleanup(pm.Close)
	var ts []Target
	for name, r := range relays {
		ts = append(ts, Target{Node: name, ID: r.ID(), Addrs: r.Addrs()})
	}
	pm.SetTargets(append(ts, Target{Node: "edge-b", ID: b.ID()})) // no direct address

	waitGen := func(not uint64) uint64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if g := pm.pathGen("edge-b"); g != 0 && g != not {
				return g
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new path to edge-b (generation %d): %+v", not, pm.Status())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	send := func(msg string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w, _, err := pm.Open(ctx, "edge-b")
		if err != nil {
			t.Fatalf("open a packet stream to edge-b: %v", err)
		}
		defer w.Close()
		before := received()
		if _, err := w.Write([]byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for received() != before+msg {
			if time.Now().After(deadline) {
				t.Fatalf("edge-b received %q, want %q after %q", received(), msg, before)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	relayOf := func() string {
		for _, s := range pm.Status() {
			if s.Node == "edge-b" {
				return s.Relay
			}
		}
		return ""
	}

	gen1 := waitGen(0)
	first := relayOf()
	if first == "" {
		t.Fatalf("edge-b's first path is not relayed: %+v", pm.Status())
	}
	send("before;")

	stops[first]()
	gen2 := waitGen(gen1)
	send("after;")
	t.Logf("path to edge-b: generation %d via %s, then %d via %q after %s died", gen1, first, gen2, relayOf(), first)
	if relayOf() == first {
		t.Errorf("edge-b still reached through the dead %s", first)
	}
}

// Peers agree on the newest packets protocol both speak: version 2
// (offload frames) between two current nodes, version 1 towards a node
// that speaks only that (an older release), on both ends of the stream.
func TestPacketsVersionNegotiation(t *testing.T) {
	fastPaths(t)
	c := newCluster(t)
	a, b, d := c.host("edge-a", nil), c.host("edge-b", nil), c.host("edge-d", nil)
	b.packetVersions = []protocol.ID{PacketsProtocolV1} // an older release
	offloads := make(chan string, 4)
	for _, h := range []*Host{b, d} {
		h.HandlePackets(func(node string, r io.ReadCloser) {
			defer r.Close()
			offloads <- fmt.Sprintf("%s offload=%v", h.Gate.creds.Load().Node, r.(PacketStream).Offload())
			_, _ = io.Copy(io.Discard, r)
		})
	}
	pm := a.NewPathManager(func() []RelayRef { return nil }, PathOptions{})
	t.Cleanup(pm.Close)
	pm.SetTargets([]Target{{Node: "edge-b", ID: b.ID(), Addrs: b.Addrs()}, {Node: "edge-d", ID: d.ID(), Addrs: d.Addrs()}})
	waitFor(t, "paths to edge-b and edge-d", func() bool { return pm.pathGen("edge-b") != 0 && pm.pathGen("edge-d") != 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for node, want := range map[string]bool{"edge-b": false, "edge-d": true} {
		w, _, err := pm.Open(ctx, node)
		if err != nil {
			t.Fatalf("open to %s: %v", node, err)
		}
		defer w.Close()
		if got := w.(PacketStream).Offload(); got != want {
			t.Errorf("stream to %s: offload %v, want %v (protocol %s)", node, got, want, w.(PacketStream).Protocol())
		}
		if _, err := w.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-offloads:
			if exp := fmt.Sprintf("%s offload=%v", node, want); got != exp {
				t.Errorf("receiving side: %s, want %s", got, exp)
			}
		case <-ctx.Done():
			t.Fatalf("%s never got the stream", node)
		}
	}
}
