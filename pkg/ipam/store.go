package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store is the durable lease database: one bbolt file, every write a
// transaction that is fsync'd before it returns. Layout (all values JSON
// unless noted):
//
//	leases/<podUID>/<ifName>  -> Lease
//	ips/<address>             -> lease key (the reverse index; one owner per address)
//	cursors/<pool>            -> last address handed out (text), so a freed
//	                             address is not reused at once
//	objects/view              -> Objects: the last pools/node/namespaces seen,
//	                             so an agent restarted offline still allocates
//	meta/schema               -> "1"
type Store struct {
	db *bolt.DB
}

var (
	bucketLeases  = []byte("leases")
	bucketIPs     = []byte("ips")
	bucketCursors = []byte("cursors")
	bucketObjects = []byte("objects")
	bucketMeta    = []byte("meta")
	keyView       = []byte("view")
)

// Lease is one pod interface's addresses.
type Lease struct {
	PodUID       string       `json:"podUID"`
	IfName       string       `json:"ifName"`
	ContainerID  string       `json:"containerID"`
	PodNamespace string       `json:"podNamespace"`
	PodName      string       `json:"podName"`
	NetNS        string       `json:"netns,omitempty"`
	IPs          []LeasedIP   `json:"ips"`
	Routes       []LeaseRoute `json:"routes,omitempty"`
	Created      time.Time    `json:"created"`
}

// LeasedIP is one address of a lease.
type LeasedIP struct {
	Version int          `json:"version"`
	Address netip.Prefix `json:"address"` // the address with its pool subnet's length
	Pool    string       `json:"pool"`
	Gateway string       `json:"gateway,omitempty"`
	Vlan    int64        `json:"vlan,omitempty"`
}

// LeaseRoute is a route handed out with a lease (from the pool's routes).
type LeaseRoute struct {
	Dst string `json:"dst"`
	Gw  string `json:"gw"`
}

// lockTimeout bounds the wait for another process's lock on the database.
var lockTimeout = 5 * time.Second

func leaseKey(podUID, ifName string) []byte { return []byte(podUID + "/" + ifName) }

// OpenStore opens (creating if needed) the database at path. It fails after
// lockTimeout (5 s) if another process holds it, naming the file.
func OpenStore(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lease store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("lease store %s is locked by another process (is another agent running?)", path)
		}
		return nil, fmt.Errorf("lease store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLeases, bucketIPs, bucketCursors, bucketObjects, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("1"))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("lease store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Leases returns every lease.
func (s *Store) Leases() ([]Lease, error) {
	var out []Lease
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("lease %s: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

// SaveObjects records the objects the current view was built from.
func (s *Store) SaveObjects(o *Objects) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketObjects).Put(keyView, data) })
}

// LoadObjects returns the objects last saved, or nil.
func (s *Store) LoadObjects() (*Objects, error) {
	var o *Objects
	err := s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketObjects).Get(keyView)
		if data == nil {
			return nil
		}
		o = &Objects{}
		return json.Unmarshal(data, o)
	})
	return o, err
}

// update runs f in a write transaction (fsync'd on commit).
func (s *Store) update(f func(tx *bolt.Tx) error) error { return s.db.Update(f) }

func getLease(tx *bolt.Tx, key []byte) (*Lease, error) {
	data := tx.Bucket(bucketLeases).Get(key)
	if data == nil {
		return nil, nil
	}
	l := &Lease{}
	if err := json.Unmarshal(data, l); err != nil {
		return nil, fmt.Errorf("corrupt lease %s: %w", key, err)
	}
	return l, nil
}

func putLease(tx *bolt.Tx, l *Lease) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketLeases).Put(leaseKey(l.PodUID, l.IfName), data)
}

// deleteLease removes a lease and its addresses from the reverse index
// (only where the index still points at this lease).
func deleteLease(tx *bolt.Tx, l *Lease) error {
	key := leaseKey(l.PodUID, l.IfName)
	ips := tx.Bucket(bucketIPs)
	for _, ip := range l.IPs {
		k := []byte(ip.Address.Addr().String())
		if owner := ips.Get(k); owner != nil && string(owner) == string(key) {
			if err := ips.Delete(k); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketLeases).Delete(key)
}
