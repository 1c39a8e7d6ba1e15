package tunnel

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// waitFor polls cond every 20 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// One discovery round on a relay and two edge nodes that hold a
// reservation on it: the relay learns both edges from its own directory,
// each edge learns the other edge from the relay's directory and the
// relay from its reservation, nobody lists itself, all of it is written
// to each node's peers.json and handed to the path manager, and each
// edge's status shows the NAT mapping the relay reported. A second round
// with nothing new does not rewrite peers.json.
func TestDiscoverLearnsAndPersists(t *testing.T) {
	ca := newTestCA(t, filepath.Join(t.TempDir(), "ca"))
	relayCfg := memberConfigOf(t, "relay-1", ca)
	relay := newRunning(t, relayCfg, true)
	rel, err := relay.h.StartRelay()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rel.Close() })
	dir := relay.h.ServeDirectory()
	t.Cleanup(dir.Close)
	relaySvc := NewService(asAgent(t, relayCfg), nil)
	port, err := strconv.Atoi(strings.Split(relay.h.Addrs()[0].String(), "/")[4])
	if err != nil {
		t.Fatal(err)
	}

	type edge struct {
		svc *Service
		r   *running
	}
	edges := map[string]edge{}
	for _, name := range []string{"edge-a1", "edge-a2"} {
		c := memberConfigOf(t, name, ca)
		c.Modules.Tunnel.ListenPort = port // the relay's port, as in a real cluster
		c.Modules.Tunnel.RelayNodes = []v1.RelayNode{{NodeName: "relay-1", AdvertiseAddress: []string{"127.0.0.1"}}}
		r := newRunningWith(t, c, false, []p2p.RelayTarget{{Node: "relay-1", Addrs: relayAddrs([]string{"127.0.0.1"}, port)}})
		edges[name] = edge{NewService(asAgent(t, c), nil), r}
	}
	for name, e := range edges {
		waitFor(t, name+"'s reservation", func() bool { return len(e.r.keeper.Reserved()) == 1 })
	}
	waitFor(t, "both edges in the relay's directory", func() bool { return len(dir.Lookup(nil)) == 2 })
	for name, e := range edges {
		waitFor(t, name+"'s observed address", func() bool {
			e.r.mu.Lock()
			defer e.r.mu.Unlock()
			return len(e.r.observed) == 1
		})
	}

	ctx := context.Background()
	relaySvc.discover(ctx, relay, dir)
	for _, e := range edges {
		e.svc.discover(ctx, e.r, nil)
	}

	ids := map[string]string{"relay-1": relay.h.ID().String()}
	for name, e := range edges {
		ids[name] = e.r.h.ID().String()
	}
	check := func(self string, path string, r *running, want []string) {
		t.Helper()
		cached := loadCache(path)
		var nodes []string
		for n, rec := range cached {
			nodes = append(nodes, n)
			if rec.Peer != ids[n] {
				t.Errorf("%s cached %s as %s, want %s", self, n, rec.Peer, ids[n])
			}
		}
		slices.Sort(nodes)
		if !slices.Equal(nodes, want) {
			t.Errorf("%s's peers.json lists %v, want %v", self, nodes, want)
		}
		var targets []string
		for _, st := range r.paths.Status() {
			targets = append(targets, st.Node)
		}
		if !slices.Equal(targets, want) {
			t.Errorf("%s's targets %v, want %v", self, targets, want)
		}
	}
	check("relay-1", relaySvc.cachePath(), relay, []string{"edge-a1", "edge-a2"})
	check("edge-a1", edges["edge-a1"].svc.cachePath(), edges["edge-a1"].r, []string{"edge-a2", "relay-1"})
	check("edge-a2", edges["edge-a2"].svc.cachePath(), edges["edge-a2"].r, []string{"edge-a1", "relay-1"})

	// The directory gives the edges' registered addresses: the relay
	// and the other edge can dial them directly.
	a1 := edges["edge-a1"].r.h
	if rec := loadCache(edges["edge-a2"].svc.cachePath())["edge-a1"]; !slices.Contains(rec.Addrs, a1.Addrs()[0].String()) {
		t.Errorf("edge-a2 cached edge-a1 at %v, want its listen address %s", rec.Addrs, a1.Addrs()[0])
	}
	for name, e := range edges {
		e.svc.running.Store(e.r)
		var st Status
		rec := get(t, e.svc, "/v1/tunnel/status")
		e.svc.running.Store(nil)
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Observed) == 0 || !strings.HasPrefix(st.Observed[0], "/ip4/127.0.0.1/tcp/") {
			t.Errorf("%s's status shows the mapping the relay saw as %v", name, st.Observed)
		}
	}

	// Nothing new: no rewrite (an atomic save would make a new file).
	path := edges["edge-a1"].svc.cachePath()
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	edges["edge-a1"].svc.discover(ctx, edges["edge-a1"].r, nil)
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("a discovery round with nothing new rewrote peers.json")
	}
}
