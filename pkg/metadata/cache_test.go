package metadata

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func pod(ns, name, uid, node, ip string) *PodInfo {
	p := &PodInfo{Namespace: ns, Name: name, UID: uid, NodeName: node}
	if ip != "" {
		p.IPs = []netip.Addr{netip.MustParseAddr(ip)}
	}
	return p
}

func changesText(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%s %s\n", c.Op, c.Resource)
	}
	return b.String()
}

func TestPublishOnlyRealChanges(t *testing.T) {
	c := NewCache(nil)
	c.SetPod(pod("default", "web", "u1", "edge-1", "10.244.5.2"))
	c.SetNode(&NodeInfo{Name: "edge-1"})
	c.SetPool(&PoolInfo{Name: "p", Object: []byte(`{"spec":{}}`)})
	snap, changes := c.Publish(time.Now())
	if got := changesText(changes); got != "insert null/spiderippool/p\ninsert null/node/edge-1\ninsert default/pod/web\n" {
		t.Errorf("changes:\n%s", got)
	}
	if snap.Version != 1 || snap.PodsByIP[netip.MustParseAddr("10.244.5.2")].Name != "web" {
		t.Errorf("snapshot %+v", snap)
	}

	// A watch replay: the same objects again. Nothing is published.
	c.SetPod(pod("default", "web", "u1", "edge-1", "10.244.5.2"))
	c.SetNode(&NodeInfo{Name: "edge-1"})
	if snap, changes := c.Publish(time.Now()); snap != nil || changes != nil {
		t.Errorf("replay published %s", changesText(changes))
	}
	if c.Snapshot().Version != 1 {
		t.Errorf("version moved on a replay")
	}

	// A real change, and add+delete within one batch cancels out.
	c.SetPod(pod("default", "web", "u1", "edge-1", "10.244.5.9"))
	c.SetPod(pod("default", "blip", "u2", "edge-1", ""))
	c.DeletePod("default/blip")
	snap, changes = c.Publish(time.Now())
	if got := changesText(changes); got != "update default/pod/web\n" {
		t.Errorf("changes:\n%s", got)
	}
	if _, old := snap.PodsByIP[netip.MustParseAddr("10.244.5.2")]; old {
		t.Error("old IP still indexed")
	}
	c.DeletePod("default/web")
	_, changes = c.Publish(time.Now())
	if got := changesText(changes); got != "delete default/pod/web\n" || changes[0].Object.(*PodInfo).UID != "u1" {
		t.Errorf("delete: %s %+v", got, changes)
	}
}

func TestRetainDropsWhatTheListingLacks(t *testing.T) {
	disk := Empty()
	disk.Pods["default/gone"] = pod("default", "gone", "u1", "edge-1", "10.244.5.2")
	disk.Pods["default/kept"] = pod("default", "kept", "u2", "edge-1", "10.244.5.3")
	disk.index()
	c := NewCache(disk)
	c.SetPod(pod("default", "kept", "u2", "edge-1", "10.244.5.3"))
	c.Retain(Keys{Pods: map[string]bool{"default/kept": true}})
	_, changes := c.Publish(time.Now())
	if got := changesText(changes); got != "delete default/pod/gone\n" {
		t.Errorf("changes:\n%s", got)
	}
}

// Readers never see a half-built snapshot while a writer publishes.
func TestConcurrentReaders(t *testing.T) {
	c := NewCache(nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := c.Snapshot()
				if len(s.PodsByIP) > len(s.Pods) {
					t.Error("index larger than the pod map")
					return
				}
			}
		}()
	}
	for i := 0; i < 500; i++ {
		c.SetPod(pod("default", fmt.Sprint("p", i), fmt.Sprint("u", i), "n", fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)))
		c.Publish(time.Now())
	}
	close(stop)
	wg.Wait()
	if got := len(c.Snapshot().PodsByIP); got != 500 {
		t.Errorf("indexed %d pods, want 500", got)
	}
}

func TestSaveLoadAndTornFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snapshot.json")
	if s, err := Load(path); s != nil || err != nil {
		t.Fatalf("missing file: %v %v", s, err)
	}
	c := NewCache(nil)
	c.SetPod(pod("default", "web", "u1", "edge-1", "fd00::5"))
	c.SetNode(&NodeInfo{Name: "edge-1", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.5.0/24")}})
	snap, _ := c.Publish(time.Now())
	if err := Save(path, snap); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.PodsByIP[netip.MustParseAddr("fd00::5")] == nil || got.Nodes["edge-1"].PodCIDRs[0].String() != "10.244.5.0/24" {
		t.Errorf("loaded %+v", got)
	}
	// A crash mid-write leaves a temp file beside the old snapshot, never a
	// torn snapshot: the old one still loads.
	if err := os.WriteFile(filepath.Join(dir, ".snapshot.json.tmp-123"), []byte(`{"pods":{"x`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(path); err != nil || got.Version != 1 {
		t.Errorf("after an interrupted write: %v %v", got, err)
	}
	// A torn file (written by something else) is reported, not half-loaded.
	if err := os.WriteFile(path, []byte(`{"version":2,"pods":{`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "is corrupt") {
		t.Errorf("torn file: %v", err)
	}
}

func TestResourceRoundTrip(t *testing.T) {
	for _, tt := range []struct{ ns, typ, name, res string }{
		{"default", ResourcePod, "web-1", "default/pod/web-1"},
		{"", ResourceNode, "edge-1", "null/node/edge-1"},
	} {
		if got := BuildResource(tt.ns, tt.typ, tt.name); got != tt.res {
			t.Errorf("BuildResource = %q, want %q", got, tt.res)
		}
		ns, typ, name, err := ParseResource(tt.res)
		if err != nil || ns != tt.ns || typ != tt.typ || name != tt.name {
			t.Errorf("ParseResource(%q) = %q %q %q %v", tt.res, ns, typ, name, err)
		}
	}
	if _, _, _, err := ParseResource("pod/web"); err == nil {
		t.Error("malformed resource accepted")
	}
}

// An authoritative listing deletes what the watches never reported gone,
// a replay of the deleted object does not resurrect it, a genuinely new
// object of the same name does, and changes newer than the listing win.
func TestApplyListingAndTombstones(t *testing.T) {
	c := NewCache(nil)
	c.SetPod(pod("default", "doomed", "u1", "edge-1", "10.244.5.2"))
	c.SetPod(pod("default", "kept", "u2", "edge-1", "10.244.5.3"))
	c.Publish(time.Now())

	since := time.Now()
	listing := &Listing{Pods: []*PodInfo{pod("default", "kept", "u2", "edge-1", "10.244.5.3")}}
	if n, d := c.ApplyListing(listing, since); n != 1 || d != "deleted default/pod/doomed" {
		t.Errorf("ApplyListing changed %d objects (%q), want 1 (deleted default/pod/doomed)", n, d)
	}
	_, changes := c.Publish(time.Now())
	if got := changesText(changes); got != "delete default/pod/doomed\n" {
		t.Errorf("changes:\n%s", got)
	}
	// The metaServer replays its stale local copy: ignored.
	c.SetPod(pod("default", "doomed", "u1", "edge-1", "10.244.5.2"))
	if snap, ch := c.Publish(time.Now()); snap != nil {
		t.Errorf("stale replay published %s", changesText(ch))
	}
	// A new pod of the same name (new UID) is real.
	c.SetPod(pod("default", "doomed", "u9", "edge-1", "10.244.5.9"))
	if _, ch := c.Publish(time.Now()); changesText(ch) != "insert default/pod/doomed\n" {
		t.Errorf("recreated pod: %s", changesText(ch))
	}
	// A listing older than a change does not undo it.
	old := time.Now().Add(-time.Minute)
	c.ApplyListing(&Listing{Pods: []*PodInfo{pod("default", "kept", "u2", "edge-1", "10.244.5.3")}}, old)
	if snap, ch := c.Publish(time.Now()); snap != nil {
		t.Errorf("an old listing changed %s", changesText(ch))
	}
}

// TestWait proves the change signal: Wait returns at once for an old
// version, blocks until the next publish otherwise, and ends with ctx.
func TestWait(t *testing.T) {
	c := NewCache(nil)
	if s, err := c.Wait(context.Background(), 7); err != nil || s.Version != 0 {
		t.Fatalf("Wait for a version not current: %v %v", s, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if s, err := c.Wait(ctx, 0); err == nil || s.Version != 0 {
		t.Fatalf("Wait without a publish returned %v %v", s, err)
	}
	got := make(chan *Snapshot)
	go func() {
		s, _ := c.Wait(context.Background(), 0)
		got <- s
	}()
	c.SetNode(&NodeInfo{Name: "edge-1"})
	c.Publish(time.Now())
	if s := <-got; s.Version != 1 || s.Nodes["edge-1"] == nil {
		t.Fatalf("woken with %+v", s)
	}
	// A publish that changes nothing wakes nobody.
	_, ch := c.Next()
	c.SetNode(&NodeInfo{Name: "edge-1"})
	c.Publish(time.Now())
	select {
	case <-ch:
		t.Fatal("woken by a publish without changes")
	default:
	}
}

// TestWaitMissesNothing runs waiters against a fast publisher (under
// -race): every waiter follows the versions to the last one.
func TestWaitMissesNothing(t *testing.T) {
	c := NewCache(nil)
	const last = 300
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var v uint64
			for v < last {
				s, err := c.Wait(ctx, v)
				if err != nil {
					t.Errorf("waiter stuck at version %d: %v", v, err)
					return
				}
				if s.Version <= v {
					t.Errorf("Wait(%d) returned version %d", v, s.Version)
					return
				}
				v = s.Version
			}
		}()
	}
	for i := 1; i <= last; i++ {
		c.SetPod(pod("default", "p", "u", "edge-1", fmt.Sprintf("10.0.%d.%d", i/256, i%256)))
		c.Publish(time.Now())
	}
	wg.Wait()
}

// TestMarkSynced proves the first publish after MarkSynced carries Synced
// even without changes, and later ones keep it.
func TestMarkSynced(t *testing.T) {
	c := NewCache(nil)
	if c.Snapshot().Synced {
		t.Fatal("a new cache is synced")
	}
	c.MarkSynced()
	s, changes := c.Publish(time.Now())
	if s == nil || !s.Synced || s.Version != 1 || len(changes) != 0 {
		t.Fatalf("publish after MarkSynced: %+v %v", s, changes)
	}
	c.MarkSynced()
	if s, _ := c.Publish(time.Now()); s != nil {
		t.Fatalf("a second MarkSynced published %+v", s)
	}
	c.SetNode(&NodeInfo{Name: "edge-1"})
	if s, _ := c.Publish(time.Now()); s == nil || !s.Synced {
		t.Fatalf("later publish lost Synced: %+v", s)
	}
}
