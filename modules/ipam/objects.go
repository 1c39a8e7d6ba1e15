package ipam

import (
	"encoding/json"

	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// objectsFromSnapshot turns the metadata picture into what allocation
// reads: every SpiderIPPool, this node's labels, namespaces, pods.
func objectsFromSnapshot(snap *metadata.Snapshot, nodeName string) *ipam.Objects {
	objs := &ipam.Objects{}
	for _, p := range snap.Pools {
		var pool ipam.SpiderIPPool
		if err := json.Unmarshal(p.Object, &pool); err != nil {
			klog.ErrorS(err, "Ignoring undecodable SpiderIPPool", "name", p.Name)
			continue
		}
		objs.Pools = append(objs.Pools, pool)
	}
	if n, ok := snap.Nodes[nodeName]; ok {
		objs.Node = &ipam.Meta{Name: n.Name, UID: n.UID, Labels: n.Labels}
	}
	for _, ns := range snap.Namespaces {
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
