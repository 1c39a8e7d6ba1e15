// Package controller is `edgelink controller`'s work: the one arbiter in
// the cloud that splits shared SpiderIPPools into per-node blocks, so that
// edge nodes allocate from them offline without ever sharing an address
// with another node or with SpiderPool's own agent.
//
//	decide.go      what should change, from what the cluster holds (pure)
//	controller.go  informers, the writes (each re-checked on a fresh read),
//	               leader election on a Lease
//	objectsync.go  removes cloudcore's sync records of deleted Nodes, which
//	               would otherwise cut edge nodes from cloudcore
//
// The record it keeps in the kube-apiserver is described in
// pkg/ipam/blocks.go, next to the edge side that reads it.
package controller
