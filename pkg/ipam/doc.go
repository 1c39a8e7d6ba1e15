// Package ipam allocates pod addresses at the edge from SpiderIPPools, the
// way SpiderPool's agent would, but without the kube-apiserver: leases live
// in a local bbolt database, fsync'd before an answer leaves, so an agent
// restart, a node reboot or a cloud outage loses none and never gives one
// address to two pods.
//
//	pool.go       SpiderIPPool specs parsed into address ranges
//	objects.go    the Kubernetes objects allocation reads (pools, node, namespaces, pods)
//	selection.go  which pools a pod may use, in SpiderPool's order
//	store.go      the durable lease store (bbolt)
//	allocator.go  Allocate, Release, reconcile
//
// Cluster-wide uniqueness rests on pools being pinned to nodes: a node only
// allocates from pools whose spec.nodeName is this node alone, or whose
// nodeAffinity selects it. SpiderPool requires pools of one subnet to be
// disjoint, so per-node pools never share an address.
package ipam
