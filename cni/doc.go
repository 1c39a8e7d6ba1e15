// Package cni is the root of the edge CNI plugin, edgelink-cni.
//
//	cni/edgelink-cni  the plugin binary (skel main)
//	cni/netconf       the network configuration it reads from stdin
//	cni/plugin        ADD, DEL, CHECK, STATUS and GC
//	cni/install       the conflist `edgelink cni install` writes
//
// The plugin gives a pod a veth pair whose host end hangs off a node bridge,
// and delegates addresses to an IPAM plugin (spiderpool by default). It
// imports neither modules/ nor libp2p, so it stays a small, fast binary.
package cni
