package metadata

import (
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
// Locking: mu guards cur and the dirty sets; published is swapped
// atomically and read without mu.
type Cache struct {
	mu         sync.Mutex
	cur        *Snapshot // mutable maps; never published
	dirtyPods  map[string]bool
	dirtyNodes map[string]bool
	dirtyNS    map[string]bool
	dirtyPools map[string]bool

	published atomic.Pointer[Snapshot]
}

var _ Reader = (*Cache)(nil)

// NewCache starts from initial (e.g. the snapshot on disk), or empty.
func NewCache(initial *Snapshot) *Cache {
	if initial == nil {
		initial = Empty()
	}
	c := &Cache{cur: clone(initial)}
	c.resetDirty()
	c.published.Store(initial)
	return c
}

func (c *Cache) resetDirty() {
	c.dirtyPods, c.dirtyNodes, c.dirtyNS, c.dirtyPools = map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
}

// Snapshot returns the last published snapshot.
func (c *Cache) Snapshot() *Snapshot { return c.published.Load() }

func (c *Cache) SetPod(p *PodInfo) {
	c.mu.Lock()
	c.cur.Pods[p.Key()] = p
	c.dirtyPods[p.Key()] = true
	c.mu.Unlock()
}

func (c *Cache) DeletePod(key string) {
	c.mu.Lock()
	delete(c.cur.Pods, key)
	c.dirtyPods[key] = true
	c.mu.Unlock()
}

func (c *Cache) SetNode(n *NodeInfo) {
	c.mu.Lock()
	c.cur.Nodes[n.Name] = n
	c.dirtyNodes[n.Name] = true
	c.mu.Unlock()
}

func (c *Cache) DeleteNode(name string) {
	c.mu.Lock()
	delete(c.cur.Nodes, name)
	c.dirtyNodes[name] = true
	c.mu.Unlock()
}

func (c *Cache) SetNamespace(n *NamespaceInfo) {
	c.mu.Lock()
	c.cur.Namespaces[n.Name] = n
	c.dirtyNS[n.Name] = true
	c.mu.Unlock()
}

func (c *Cache) DeleteNamespace(name string) {
	c.mu.Lock()
	delete(c.cur.Namespaces, name)
	c.dirtyNS[name] = true
	c.mu.Unlock()
}

func (c *Cache) SetPool(p *PoolInfo) {
	c.mu.Lock()
	c.cur.Pools[p.Name] = p
	c.dirtyPools[p.Name] = true
	c.mu.Unlock()
}

func (c *Cache) DeletePool(name string) {
	c.mu.Lock()
	delete(c.cur.Pools, name)
	c.dirtyPools[name] = true
	c.mu.Unlock()
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
// (namespaces, pools, nodes, pods; by key). Otherwise it returns nil, nil.
func (c *Cache) Publish(now time.Time) (*Snapshot, []Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.published.Load()
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
	if len(changes) == 0 {
		return nil, nil
	}
	next := clone(c.cur)
	next.Version = old.Version + 1
	next.Time = now
	next.index()
	c.published.Store(next)
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
