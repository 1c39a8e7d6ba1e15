package metadata

import (
	"context"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Change is one published difference between two snapshots.
type Change struct {
	Op       string // OpInsert, OpUpdate, OpDelete
	Resource string // BuildResource(...)
	Object   any    // *PodInfo, *NodeInfo, *NamespaceInfo or *PoolInfo (the last known, for deletes)
}

// Cache is the mutable side of the picture: metasync applies objects as
// they arrive, and Publish turns what changed since the last publish into
// the next Snapshot plus the list of real changes. An object applied again
// unchanged (a metaServer watch replay) is not a change.
//
// Locking: mu guards cur, the dirty sets and synced; published is swapped
// atomically and read without mu.
//
// Change signal: every publish swaps in a new published value carrying
// the snapshot and a fresh channel, then closes the previous value's
// channel. A reader that loaded a value either sees its snapshot or is
// woken by its channel: no publish between reading the version and
// waiting is missed, and readers take no lock.
type Cache struct {
	mu         sync.Mutex
	cur        *Snapshot // mutable maps; never published
	dirtyPods  map[string]bool
	dirtyNodes map[string]bool
	dirtyNS    map[string]bool
	dirtyPools map[string]bool
	// touched records when each object ("<kind>:<key>") last changed
	// through Set/Delete, so a listing older than that does not undo it.
	touched map[string]time.Time
	// tomb holds objects an authoritative listing found deleted. A watch
	// replay of exactly that object (the metaServer's local cache can keep
	// it) is ignored instead of resurrecting it.
	tomb map[string]any
	// synced is set by MarkSynced; syncDirty until a publish carries it.
	synced, syncDirty bool

	published atomic.Pointer[published]
}

// published is one published snapshot and the channel closed when the
// next one replaces it.
type published struct {
	snap *Snapshot
	next chan struct{}
}

var _ Reader = (*Cache)(nil)

// NewCache starts from initial (e.g. the snapshot on disk), or empty.
func NewCache(initial *Snapshot) *Cache {
	if initial == nil {
		initial = Empty()
	}
	c := &Cache{cur: clone(initial), touched: map[string]time.Time{}, tomb: map[string]any{}}
	c.resetDirty()
	c.published.Store(&published{snap: initial, next: make(chan struct{})})
	return c
}

func (c *Cache) resetDirty() {
	c.dirtyPods, c.dirtyNodes, c.dirtyNS, c.dirtyPools = map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
}

// Snapshot returns the last published snapshot.
func (c *Cache) Snapshot() *Snapshot { return c.published.Load().snap }

// Next returns the last published snapshot and a channel closed as soon as
// a newer one is published, for select loops.
func (c *Cache) Next() (*Snapshot, <-chan struct{}) {
	p := c.published.Load()
	return p.snap, p.next
}

// Wait returns the published snapshot as soon as its version differs from
// version (at once if it already does), or the current snapshot and
// ctx's error when ctx ends first.
func (c *Cache) Wait(ctx context.Context, version uint64) (*Snapshot, error) {
	for {
		p := c.published.Load()
		if p.snap.Version != version {
			return p.snap, nil
		}
		select {
		case <-p.next:
		case <-ctx.Done():
			return p.snap, ctx.Err()
		}
	}
}

// MarkSynced records that the picture has been listed from the source
// (objects missing from it are gone). The next Publish publishes a new
// snapshot with Synced set even if nothing else changed.
func (c *Cache) MarkSynced() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		c.synced, c.syncDirty = true, true
	}
}

// publishLocked makes next the published snapshot and wakes the waiters.
// Callers hold mu.
func (c *Cache) publishLocked(next *Snapshot) {
	old := c.published.Swap(&published{snap: next, next: make(chan struct{})})
	close(old.next)
}

func (c *Cache) SetPod(p *PodInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	setObj(c, "pod", p.Key(), p, c.cur.Pods, c.dirtyPods, (*PodInfo).Equal)
}

func (c *Cache) DeletePod(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delObj(c, "pod", key, c.cur.Pods, c.dirtyPods)
}

func (c *Cache) SetNode(n *NodeInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	setObj(c, "node", n.Name, n, c.cur.Nodes, c.dirtyNodes, (*NodeInfo).Equal)
}

func (c *Cache) DeleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delObj(c, "node", name, c.cur.Nodes, c.dirtyNodes)
}

func (c *Cache) SetNamespace(n *NamespaceInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	setObj(c, "namespace", n.Name, n, c.cur.Namespaces, c.dirtyNS, (*NamespaceInfo).Equal)
}

func (c *Cache) DeleteNamespace(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delObj(c, "namespace", name, c.cur.Namespaces, c.dirtyNS)
}

func (c *Cache) SetPool(p *PoolInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	setObj(c, "pool", p.Name, p, c.cur.Pools, c.dirtyPools, (*PoolInfo).Equal)
}

func (c *Cache) DeletePool(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delObj(c, "pool", name, c.cur.Pools, c.dirtyPools)
}

// setObj stores o unless it is exactly an object a listing found deleted
// (a stale replay). Callers hold mu.
func setObj[V any](c *Cache, kind, key string, o V, cur map[string]V, dirty map[string]bool, equal func(V, V) bool) {
	tk := kind + ":" + key
	if dead, ok := c.tomb[tk]; ok {
		if d, same := dead.(V); same && equal(d, o) {
			return
		}
		delete(c.tomb, tk)
	}
	cur[key] = o
	dirty[key] = true
	c.touched[tk] = time.Now()
}

func delObj[V any](c *Cache, kind, key string, cur map[string]V, dirty map[string]bool) {
	delete(cur, key)
	dirty[key] = true
	c.touched[kind+":"+key] = time.Now()
}

// Keys names the objects a complete listing found, per kind.
type Keys struct {
	Pods, Nodes, Namespaces, Pools map[string]bool
}

// Retain deletes every object the listing did not find (objects known from
// the disk snapshot that are gone from the cluster). A nil set leaves that
// kind alone.
func (c *Cache) Retain(k Keys) {
	c.mu.Lock()
	defer c.mu.Unlock()
	retain := func(keep map[string]bool, keys []string, del func(string)) {
		if keep == nil {
			return
		}
		for _, key := range keys {
			if !keep[key] {
				del(key)
			}
		}
	}
	retain(k.Pods, keysOf(c.cur.Pods), func(key string) { delete(c.cur.Pods, key); c.dirtyPods[key] = true })
	retain(k.Nodes, keysOf(c.cur.Nodes), func(key string) { delete(c.cur.Nodes, key); c.dirtyNodes[key] = true })
	retain(k.Namespaces, keysOf(c.cur.Namespaces), func(key string) { delete(c.cur.Namespaces, key); c.dirtyNS[key] = true })
	retain(k.Pools, keysOf(c.cur.Pools), func(key string) { delete(c.cur.Pools, key); c.dirtyPools[key] = true })
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Publish compares every object touched since the last publish with its
// published version. If anything really changed it publishes a new
// snapshot (Version+1) and returns it with the changes, in a stable order
// (namespaces, pools, nodes, pods; by key). The first publish after
// MarkSynced publishes a snapshot with Synced set, with or without
// changes. Otherwise it returns nil, nil.
func (c *Cache) Publish(now time.Time) (*Snapshot, []Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.published.Load().snap
	var changes []Change
	diffKind(&changes, c.dirtyNS, old.Namespaces, c.cur.Namespaces, func(k string) string { return BuildResource("", ResourceNamespace, k) },
		func(a, b *NamespaceInfo) bool { return a.Equal(b) })
	diffKind(&changes, c.dirtyPools, old.Pools, c.cur.Pools, func(k string) string { return BuildResource("", ResourcePool, k) },
		func(a, b *PoolInfo) bool { return a.Equal(b) })
	diffKind(&changes, c.dirtyNodes, old.Nodes, c.cur.Nodes, func(k string) string { return BuildResource("", ResourceNode, k) },
		func(a, b *NodeInfo) bool { return a.Equal(b) })
	diffKind(&changes, c.dirtyPods, old.Pods, c.cur.Pods, func(k string) string {
		ns, name := splitKey(k)
		return BuildResource(ns, ResourcePod, name)
	}, func(a, b *PodInfo) bool { return a.Equal(b) })
	c.resetDirty()
	if len(changes) == 0 && !c.syncDirty {
		return nil, nil
	}
	c.syncDirty = false
	next := clone(c.cur)
	next.Version = old.Version + 1
	next.Time = now
	next.Synced = c.synced
	next.index()
	c.publishLocked(next)
	return next, changes
}

func diffKind[V any](out *[]Change, dirty map[string]bool, old, cur map[string]V, res func(string) string, equal func(a, b V) bool) {
	keys := make([]string, 0, len(dirty))
	for k := range dirty {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o, hadOld := old[k]
		n, hasNew := cur[k]
		switch {
		case !hadOld && hasNew:
			*out = append(*out, Change{OpInsert, res(k), n})
		case hadOld && !hasNew:
			*out = append(*out, Change{OpDelete, res(k), o})
		case hadOld && hasNew && !equal(o, n):
			*out = append(*out, Change{OpUpdate, res(k), n})
		}
	}
}

func splitKey(k string) (string, string) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}

// clone copies the maps (the objects are immutable and shared).
func clone(s *Snapshot) *Snapshot {
	return &Snapshot{
		Version:    s.Version,
		Time:       s.Time,
		Pods:       maps.Clone(s.Pods),
		Nodes:      maps.Clone(s.Nodes),
		Namespaces: maps.Clone(s.Namespaces),
		Pools:      maps.Clone(s.Pools),
		PodsByIP:   s.PodsByIP,
	}
}

// Listing is a complete listing of the source, for ApplyListing. A nil Pools
// means pools could not be listed (no SpiderPool CRD) and are not compared.
type Listing struct {
	Pods       []*PodInfo
	Nodes      []*NodeInfo
	Namespaces []*NamespaceInfo
	Pools      []*PoolInfo
}

// ApplyListing makes the cache agree with a complete listing of the source
// taken at (or after) since: listed objects are stored, objects missing
// from it are deleted and remembered as tombstones. Objects changed
// through Set/Delete after since are left alone (the listing is older). It
// returns how many objects it changed and the first of them, as
// "<missing|stale|deleted> <resource>"; Publish makes them visible.
func (c *Cache) ApplyListing(l *Listing, since time.Time) (n int, example string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	note := func(what, res string) {
		n++
		if example == "" {
			example = what + " " + res
		}
	}
	applyKind(c, "pod", l.Pods, c.cur.Pods, c.dirtyPods, func(p *PodInfo) string { return p.Key() }, (*PodInfo).Equal, since,
		func(what, k string) {
			ns, name := splitKey(k)
			note(what, BuildResource(ns, ResourcePod, name))
		})
	applyKind(c, "node", l.Nodes, c.cur.Nodes, c.dirtyNodes, func(o *NodeInfo) string { return o.Name }, (*NodeInfo).Equal, since,
		func(what, k string) { note(what, BuildResource("", ResourceNode, k)) })
	applyKind(c, "namespace", l.Namespaces, c.cur.Namespaces, c.dirtyNS, func(o *NamespaceInfo) string { return o.Name }, (*NamespaceInfo).Equal, since,
		func(what, k string) { note(what, BuildResource("", ResourceNamespace, k)) })
	if l.Pools != nil {
		applyKind(c, "pool", l.Pools, c.cur.Pools, c.dirtyPools, func(o *PoolInfo) string { return o.Name }, (*PoolInfo).Equal, since,
			func(what, k string) { note(what, BuildResource("", ResourcePool, k)) })
	}
	// Tombstones of objects no longer in the cache cost memory only; keep
	// them bounded.
	if len(c.tomb) > 10000 {
		c.tomb = map[string]any{}
	}
	return n, example
}

// applyKind applies one kind of a listing, calling changed for every
// object it stores ("missing", "stale") or deletes ("deleted").
func applyKind[V any](c *Cache, kind string, list []V, cur map[string]V, dirty map[string]bool, key func(V) string, equal func(V, V) bool, since time.Time, changed func(what, key string)) {
	seen := make(map[string]bool, len(list))
	for _, o := range list {
		k := key(o)
		seen[k] = true
		tk := kind + ":" + k
		if c.touched[tk].After(since) {
			continue
		}
		delete(c.tomb, tk)
		have, ok := cur[k]
		if ok && equal(have, o) {
			continue
		}
		cur[k] = o
		dirty[k] = true
		if ok {
			changed("stale", k)
		} else {
			changed("missing", k)
		}
	}
	for k, o := range cur {
		tk := kind + ":" + k
		if seen[k] || c.touched[tk].After(since) {
			continue
		}
		delete(cur, k)
		dirty[k] = true
		c.tomb[tk] = o
		changed("deleted", k)
	}
}
