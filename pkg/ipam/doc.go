// Package ipam allocates pod addresses at the edge from SpiderIPPools, the
// way SpiderPool's agent would, but without the kube-apiserver: leases live
// in a local bbolt database, fsync'd before an answer leaves, so an agent
// restart, a node reboot or a cloud outage loses none and never gives one
// address to two pods.
//
//	pool.go       SpiderIPPool specs parsed into address ranges
//	objects.go    the Kubernetes objects allocation reads (pools, node, namespaces, pods)
//	selection.go  which pools a pod may use, in SpiderPool's order
//	blocks.go     shared pools split into per-node blocks: the record the
//	              controller keeps in the kube-apiserver, CarveBlock
//	store.go      the durable lease store (bbolt)
//	allocator.go  Allocate, Release, reconcile
//
// Cluster-wide uniqueness rests on a node allocating only from addresses
// that are its alone: pools whose spec.nodeName is this node alone, and
// its blocks of shared pools (blocks.go), which `edgelink controller`
// claims and excludes from the shared pool. SpiderPool requires pools of
// one subnet to be disjoint after excludeIPs, so no two ever overlap.
package ipam
