package metadata

import (
	"context"
	"encoding/json"
	"maps"
	"net/netip"
	"reflect"
	"sort"
	"time"

	"github.com/edgelink/edgelink/pkg/ipam"
)

// PodInfo is what the agent needs to know of a pod.
type PodInfo struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid"`
	NodeName    string            `json:"nodeName,omitempty"`
	IPs         []netip.Addr      `json:"ips,omitempty"` // status.podIPs; empty until the pod has one
	HostNetwork bool              `json:"hostNetwork,omitempty"`
	Phase       string            `json:"phase,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Key is "<namespace>/<name>".
func (p *PodInfo) Key() string { return p.Namespace + "/" + p.Name }

// NodeAddress is one of Node.status.addresses.
type NodeAddress struct {
	Type    string     `json:"type"` // InternalIP, ExternalIP, Hostname, ...
	Address netip.Addr `json:"address"`
}

// NodeInfo is what the agent needs to know of a node.
type NodeInfo struct {
	Name      string            `json:"name"`
	UID       string            `json:"uid,omitempty"`
	PodCIDRs  []netip.Prefix    `json:"podCIDRs,omitempty"`
	Addresses []NodeAddress     `json:"addresses,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// NamespaceInfo carries the labels and annotations IPAM reads.
type NamespaceInfo struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PoolInfo is a SpiderIPPool: its JSON as received (what the snapshot
// file stores) and its typed form, derived once from the JSON by
// NewPoolInfo (metasync's conversion, and Load) that nobody parses again.
// The typed fields are never stored.
type PoolInfo struct {
	Name   string          `json:"name"`
	Object json.RawMessage `json:"object"`

	// Err says why the pool cannot be used (undecodable, or invalid by
	// pkg/ipam.ParsePool); the typed fields below are then zero, except
	// Spider when the JSON decoded.
	Err error `json:"-"`
	// Version is 4 or 6; Subnet is spec.subnet, masked.
	Version int          `json:"-"`
	Subnet  netip.Prefix `json:"-"`
	// Gateway is spec.gateway (invalid when the pool has none).
	Gateway netip.Addr `json:"-"`
	// Prefixes cover the allocatable addresses (spec.ips less
	// spec.excludeIPs and the gateway) plus the gateway, with the fewest
	// CIDRs: what routes to the pool's pods and to its node's bridge.
	Prefixes []netip.Prefix `json:"-"`
	// Node is the one node spec.nodeName pins the pool to; "" for a
	// shared pool (several nodes, nodeAffinity, or none).
	Node string `json:"-"`
	// BlockOf is, for a block pool, the shared pool it was cut from
	// (ipam.AnnoBlockOf); Blocks are a shared pool's blocks, CIDR -> node
	// (ipam.AnnoBlocks).
	BlockOf string      `json:"-"`
	Blocks  ipam.Claims `json:"-"`
	// Disabled is spec.disable.
	Disabled bool `json:"-"`
	// Spider is the decoded object, Pool what allocation reads of it
	// (ranges, selectors); both shared and immutable.
	Spider *ipam.SpiderIPPool `json:"-"`
	Pool   *ipam.Pool         `json:"-"`
}

// Snapshot is an immutable picture of the cluster. Never modify one you
// did not build; Builder makes the next.
type Snapshot struct {
	// Version increases with every published change.
	Version uint64 `json:"version"`
	// Time is when the snapshot was built.
	Time time.Time `json:"time"`
	// Synced: the picture has been listed from the source since the agent
	// started, so objects missing from it are gone. Never stored: a
	// snapshot loaded from disk is not synced.
	Synced bool `json:"-"`

	Pods       map[string]*PodInfo       `json:"pods"` // by namespace/name
	Nodes      map[string]*NodeInfo      `json:"nodes"`
	Namespaces map[string]*NamespaceInfo `json:"namespaces"`
	Pools      map[string]*PoolInfo      `json:"pools"`

	// PodsByIP indexes pods with a routable IP (not hostNetwork). Derived;
	// rebuilt on load.
	PodsByIP map[netip.Addr]*PodInfo `json:"-"`
}

// Empty returns a snapshot with no objects.
func Empty() *Snapshot {
	s := &Snapshot{Pods: map[string]*PodInfo{}, Nodes: map[string]*NodeInfo{},
		Namespaces: map[string]*NamespaceInfo{}, Pools: map[string]*PoolInfo{}}
	s.index()
	return s
}

func (s *Snapshot) index() {
	s.PodsByIP = make(map[netip.Addr]*PodInfo, len(s.Pods))
	for _, p := range s.Pods {
		if p.HostNetwork {
			continue
		}
		for _, ip := range p.IPs {
			s.PodsByIP[ip] = p
		}
	}
}

// PodByUID finds a pod by UID (a linear scan; not for the packet path).
func (s *Snapshot) PodByUID(uid string) *PodInfo {
	for _, p := range s.Pods {
		if p.UID == uid {
			return p
		}
	}
	return nil
}

// PodsOnNode lists the pods scheduled to node, sorted by key.
func (s *Snapshot) PodsOnNode(node string) []*PodInfo {
	var out []*PodInfo
	for _, p := range s.Pods {
		if p.NodeName == node {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Reader gives lock-free access to the current snapshot and the one
// signal that it changed.
type Reader interface {
	// Snapshot returns the current picture; never nil.
	Snapshot() *Snapshot
	// Next returns the current picture and a channel closed as soon as a
	// newer one is published (for select loops).
	Next() (*Snapshot, <-chan struct{})
	// Wait returns the current picture as soon as its Version differs
	// from version, or the current picture and ctx's error.
	Wait(ctx context.Context, version uint64) (*Snapshot, error)
}

// Status describes the metadata source, for the CLI and metrics.
type Status struct {
	Source     string    `json:"source"`              // metaServer, kubeconfig, inCluster
	Server     string    `json:"server"`              // URL
	Connected  bool      `json:"connected"`           // the last list/watch succeeded
	Synced     bool      `json:"synced"`              // every informer has listed once
	LastEvent  time.Time `json:"lastEvent,omitempty"` // last change or watch event
	LastSync   time.Time `json:"lastSync,omitzero"`   // last complete listing (first sync or audit)
	LastError  string    `json:"lastError,omitempty"` // last list/watch error
	FromDisk   bool      `json:"fromDisk"`            // started from the on-disk snapshot
	Pods       int       `json:"pods"`
	Nodes      int       `json:"nodes"`
	Namespaces int       `json:"namespaces"`
	Pools      int       `json:"pools"`
	Version    uint64    `json:"version"`
}

// Equal helpers: a watch replay of an unchanged object must not count as a
// change, so comparisons look only at the fields above.

func (p *PodInfo) Equal(o *PodInfo) bool {
	return p.UID == o.UID && p.NodeName == o.NodeName && p.HostNetwork == o.HostNetwork &&
		p.Phase == o.Phase && reflect.DeepEqual(p.IPs, o.IPs) &&
		maps.Equal(p.Labels, o.Labels) && maps.Equal(p.Annotations, o.Annotations)
}

func (n *NodeInfo) Equal(o *NodeInfo) bool {
	return n.UID == o.UID && reflect.DeepEqual(n.PodCIDRs, o.PodCIDRs) &&
		reflect.DeepEqual(n.Addresses, o.Addresses) && maps.Equal(n.Labels, o.Labels)
}

func (n *NamespaceInfo) Equal(o *NamespaceInfo) bool {
	return maps.Equal(n.Labels, o.Labels) && maps.Equal(n.Annotations, o.Annotations)
}

// Equal compares the JSON only: the typed form is derived from it.
func (p *PoolInfo) Equal(o *PoolInfo) bool {
	return string(p.Object) == string(o.Object)
}
