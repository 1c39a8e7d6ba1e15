package ipam

import (
	"maps"
	"slices"

	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// objectsFromSnapshot turns the metadata picture into what allocation
// reads: every SpiderIPPool (decoded and parsed once, by metasync: Parsed
// carries the outcome), this node's labels, namespaces, pods. Pools and
// namespaces are sorted by name, so an unchanged picture saves the same.
func objectsFromSnapshot(snap *metadata.Snapshot, nodeName string) *ipam.Objects {
	objs := &ipam.Objects{Parsed: map[string]ipam.Parsed{}}
	for _, name := range slices.Sorted(maps.Keys(snap.Pools)) {
		p := snap.Pools[name]
		if p.Spider == nil {
			klog.ErrorS(p.Err, "Ignoring undecodable SpiderIPPool", "name", p.Name)
			continue
		}
		objs.Pools = append(objs.Pools, *p.Spider)
		objs.Parsed[p.Name] = ipam.Parsed{Pool: p.Pool, Err: p.Err}
	}
	if n, ok := snap.Nodes[nodeName]; ok {
		objs.Node = &ipam.Meta{Name: n.Name, UID: n.UID, Labels: n.Labels}
	}
	for _, name := range slices.Sorted(maps.Keys(snap.Namespaces)) {
		ns := snap.Namespaces[name]
		objs.Namespaces = append(objs.Namespaces, ipam.Meta{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations})
	}
	for _, p := range snap.Pods {
		objs.Pods = append(objs.Pods, ipam.Meta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, Labels: p.Labels, Annotations: p.Annotations})
	}
	return objs
}

// withoutPods is what the lease store keeps for offline restarts (pods
// come back from metasync's own snapshot).
func withoutPods(o *ipam.Objects) *ipam.Objects {
	return &ipam.Objects{Pools: o.Pools, Node: o.Node, Namespaces: o.Namespaces}
}

func samePools(a, b *ipam.View) bool {
	if len(a.Pools) != len(b.Pools) || len(a.PoolErrors) != len(b.PoolErrors) {
		return false
	}
	for name := range a.Pools {
		if _, ok := b.Pools[name]; !ok {
			return false
		}
	}
	return true
}
