package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AddRequest is one allocation: SpiderPool's IpamAddArgs.
type AddRequest struct {
	ContainerID      string
	IfName           string
	NetNS            string
	PodNamespace     string
	PodName          string
	PodUID           string
	DefaultIPv4Pools []string
	DefaultIPv6Pools []string
	CleanGateway     bool
}

// Validate reports the first missing required field, as SpiderPool's API
// requires them.
func (r *AddRequest) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"containerID", r.ContainerID}, {"ifName", r.IfName}, {"netNamespace", r.NetNS},
		{"podNamespace", r.PodNamespace}, {"podName", r.PodName}, {"podUID", r.PodUID},
	} {
		if f.v == "" {
			return badRequest("%s is required", f.name)
		}
	}
	return nil
}

// Allocator hands out addresses from the pools of one node.
//
// Locking: mu serializes allocation and release decisions (bbolt serializes
// writers too; mu keeps a decision and its write in one critical section
// with the view it read). view is swapped atomically and read without mu.
type Allocator struct {
	store *Store
	view  atomic.Pointer[View]
	now   func() time.Time
	// PodWait is how long a new allocation waits for its pod to appear in
	// the view (its annotations pick the pool); 0 does not wait. Set it
	// when pods come from the cloud channel, before serving.
	PodWait time.Duration

	// mu serializes Allocate and the releases: each reads the store,
	// decides and writes in one step. Reads (Leases, Usage) go to the store
	// without it.
	mu sync.Mutex
}

// NewAllocator serves from store, starting with view v.
func NewAllocator(store *Store, v *View) *Allocator {
	a := &Allocator{store: store, now: time.Now}
	a.view.Store(v)
	return a
}

// SetView replaces the pools and metadata allocation reads.
func (a *Allocator) SetView(v *View) { a.view.Store(v) }

// View returns the current view.
func (a *Allocator) View() *View { return a.view.Load() }

// Allocate returns the lease of req's pod interface, allocating it if the
// pod has none yet. A repeated request for the same pod UID and interface
// returns the same addresses. The lease is on disk before Allocate returns.
func (a *Allocator) Allocate(req *AddRequest) (*Lease, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	v := a.waitForPod(req)
	a.mu.Lock()
	defer a.mu.Unlock()

	var out *Lease
	err := a.store.update(func(tx *bolt.Tx) error {
		key := leaseKey(req.PodUID, req.IfName)
		existing, err := getLease(tx, key)
		if err != nil {
			return err
		}
		if existing != nil {
			if existing.ContainerID != req.ContainerID || existing.NetNS != req.NetNS {
				existing.ContainerID, existing.NetNS = req.ContainerID, req.NetNS
				if err := putLease(tx, existing); err != nil {
					return err
				}
			}
			out = existing
			return nil
		}

		cands, err := selectCandidates(v, req)
		if err != nil {
			return err
		}
		if len(cands.v4)+len(cands.v6) == 0 {
			return fmt.Errorf("%w for pod %s/%s on node %s: searched pod annotations, namespace annotations, the CNI config's default pools and pools with spec.default: true; none names a pool",
				ErrNoPool, req.PodNamespace, req.PodName, v.NodeName)
		}
		l := &Lease{
			PodUID: req.PodUID, IfName: req.IfName, ContainerID: req.ContainerID,
			PodNamespace: req.PodNamespace, PodName: req.PodName, NetNS: req.NetNS, Created: a.now().UTC(),
		}
		for _, fam := range []struct {
			version int
			names   []string
		}{{4, cands.v4}, {6, cands.v6}} {
			if len(fam.names) == 0 {
				continue
			}
			ip, pool, err := allocateFrom(tx, v, req, fam.version, fam.names, cands.source, key)
			if err != nil {
				return err // the transaction rolls back: dual stack is all or nothing
			}
			leased := LeasedIP{Version: fam.version, Address: netip.PrefixFrom(ip, pool.Subnet.Bits()), Pool: pool.Name, Vlan: pool.Vlan}
			if pool.Gateway.IsValid() && !cands.cleanGateway {
				leased.Gateway = pool.Gateway.String()
			}
			l.IPs = append(l.IPs, leased)
			for _, r := range pool.Routes {
				l.Routes = append(l.Routes, LeaseRoute{Dst: r.Dst, Gw: r.Gw})
			}
		}
		if err := putLease(tx, l); err != nil {
			return err
		}
		out = l
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// waitForPod returns the view, after waiting up to PodWait for req's pod
// to appear in it: the CNI ADD can race the pod's arrival through the
// cloud channel, and its annotations may name the pools. A pod that never
// shows up (the cloud is away) gets the defaults.
func (a *Allocator) waitForPod(req *AddRequest) *View {
	key := req.PodNamespace + "/" + req.PodName
	deadline := a.now().Add(a.PodWait)
	for {
		v := a.view.Load()
		if p, ok := v.Pods[key]; ok && (p.UID == "" || p.UID == req.PodUID) {
			return v
		}
		if a.PodWait <= 0 || !a.now().Before(deadline) {
			return v
		}
		if a.hasLease(req) { // a repeat ADD: the lease decides, not the pools
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *Allocator) hasLease(req *AddRequest) bool {
	found := false
	_ = a.store.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketLeases).Get(leaseKey(req.PodUID, req.IfName)) != nil
		return nil
	})
	return found
}

// allocateFrom takes the first free address of the first usable pool in
// names and records it in the reverse index and the pool's cursor.
func allocateFrom(tx *bolt.Tx, v *View, req *AddRequest, version int, names []string, source string, key []byte) (netip.Addr, *Pool, error) {
	ips, cursors := tx.Bucket(bucketIPs), tx.Bucket(bucketCursors)
	var reasons, exhausted []string
	taken := int64(ips.Stats().KeyN)
	for _, name := range names {
		pools, why := usable(v, name, version, req)
		if pools == nil {
			reasons = append(reasons, fmt.Sprintf("%s (%s)", name, why))
			continue
		}
		var size int64
		for _, pool := range pools {
			var cursor netip.Addr
			if c := cursors.Get([]byte(pool.Name)); c != nil {
				cursor, _ = netip.ParseAddr(string(c))
			}
			// At most `taken` addresses are in use, so a free one, if any,
			// is found within taken+1 steps from anywhere.
			limit := pool.Size()
			if taken+1 < limit {
				limit = taken + 1
			}
			size += pool.Size()
			a := cursor
			for i := int64(0); i < limit; i++ {
				a = pool.next(a)
				k := []byte(a.String())
				if ips.Get(k) != nil {
					continue
				}
				if err := ips.Put(k, key); err != nil {
					return netip.Addr{}, nil, err
				}
				if err := cursors.Put([]byte(pool.Name), k); err != nil {
					return netip.Addr{}, nil, err
				}
				return a, pool, nil
			}
		}
		if pools[0].Name == name {
			exhausted = append(exhausted, fmt.Sprintf("%s (all %s addresses allocated)", name, pools[0].SizeString()))
			continue
		}
		var blocks []string
		for _, b := range pools {
			blocks = append(blocks, b.Name)
		}
		exhausted = append(exhausted, fmt.Sprintf("%s (this node's blocks %s: all %d addresses allocated; `edgelink controller` "+
			"claims another block while the node is connected to the cloud, none while it is offline)", name, strings.Join(blocks, ", "), size))
	}
	if len(exhausted) > 0 {
		return netip.Addr{}, nil, fmt.Errorf("%w: IPv%d pool %s for pod %s/%s on node %s",
			ErrPoolExhausted, version, strings.Join(exhausted, ", "), req.PodNamespace, req.PodName, v.NodeName)
	}
	return netip.Addr{}, nil, fmt.Errorf("%w: no usable IPv%d pool for pod %s/%s on node %s; searched %s: %s",
		ErrNoPool, version, req.PodNamespace, req.PodName, v.NodeName, source, describeSearch(reasons))
}

// Release frees the lease of podUID/ifName. When containerID is set and the
// lease belongs to another container (a newer sandbox of the same pod), the
// lease is kept: releasing it would free an address in use. A missing lease
// is success (DEL is idempotent). It reports whether a lease was freed.
func (a *Allocator) Release(podUID, ifName, containerID string) (bool, error) {
	if podUID == "" || ifName == "" {
		return false, badRequest("podUID and ifName are required")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	freed := false
	err := a.store.update(func(tx *bolt.Tx) error {
		l, err := getLease(tx, leaseKey(podUID, ifName))
		if err != nil || l == nil {
			return err
		}
		if containerID != "" && l.ContainerID != containerID {
			return nil
		}
		freed = true
		return deleteLease(tx, l)
	})
	return freed, err
}

// ReleasePod frees every lease of podUID (of containerID, when set) and
// returns how many it freed.
func (a *Allocator) ReleasePod(podUID, containerID string) (int, error) {
	if podUID == "" {
		return 0, badRequest("podUID is required")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	err := a.store.update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLeases).Cursor()
		prefix := []byte(podUID + "/")
		var doomed []*Lease
		for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
			l, err := getLease(tx, k)
			if err != nil {
				return err
			}
			if containerID == "" || l.ContainerID == containerID {
				doomed = append(doomed, l)
			}
		}
		for _, l := range doomed {
			if err := deleteLease(tx, l); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	return n, err
}

// ReleaseUnless frees the leases of pods for which alive returns false,
// except leases younger than grace (their pod may not have reached the
// caller's view yet). It returns the leases it freed.
func (a *Allocator) ReleaseUnless(alive func(podUID string) bool, grace time.Duration) ([]Lease, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var freed []Lease
	cutoff := a.now().Add(-grace)
	err := a.store.update(func(tx *bolt.Tx) error {
		var doomed []*Lease
		err := tx.Bucket(bucketLeases).ForEach(func(k, _ []byte) error {
			l, err := getLease(tx, k)
			if err != nil {
				return err
			}
			if !alive(l.PodUID) && l.Created.Before(cutoff) {
				doomed = append(doomed, l)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, l := range doomed {
			if err := deleteLease(tx, l); err != nil {
				return err
			}
			freed = append(freed, *l)
		}
		return nil
	})
	return freed, err
}

// Leases returns every lease on disk.
func (a *Allocator) Leases() ([]Lease, error) { return a.store.Leases() }

// PoolUsage is how full one pool is.
type PoolUsage struct {
	Pool      string `json:"pool"`
	Allocated int    `json:"allocated"`
	Size      string `json:"size"`
	// BlockOf names the shared pool when Pool is one of this node's
	// blocks of it.
	BlockOf string `json:"blockOf,omitempty"`
}

// Usage reports allocated addresses per pool this node allocates from:
// the pools pinned to it alone, its blocks of shared pools among them
// (other nodes' pools and the shared pools themselves are left out).
func (a *Allocator) Usage() ([]PoolUsage, error) {
	v := a.view.Load()
	count := map[string]int{}
	leases, err := a.store.Leases()
	if err != nil {
		return nil, err
	}
	for _, l := range leases {
		for _, ip := range l.IPs {
			count[ip.Pool]++
		}
	}
	var out []PoolUsage
	for _, name := range v.PoolNames() {
		p := v.Pools[name]
		if p.Shared() || p.nodeNames[0] != v.NodeName {
			continue
		}
		out = append(out, PoolUsage{Pool: name, Allocated: count[name], Size: p.SizeString(), BlockOf: p.blockOf})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pool < out[j].Pool })
	return out, nil
}

// IsClientError reports whether err is the caller's fault (bad request, no
// pool, exhausted) rather than a failure of the store.
func IsClientError(err error) bool {
	return errors.Is(err, ErrBadRequest) || errors.Is(err, ErrNoPool) || errors.Is(err, ErrPoolExhausted)
}
