// Command edgelink-cni is EdgeLink's CNI plugin for edge pods: a veth pair
// into the pod, its host end on a node bridge, addresses from an IPAM
// delegate (spiderpool by default). See package cni/plugin.
package main

import (
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/edgelink/edgelink/cni/plugin"
	"github.com/edgelink/edgelink/pkg/version"
)

func init() {
	// Namespace switches apply to an OS thread; keep main on one.
	runtime.LockOSThread()
}

func main() {
	skel.PluginMainFuncs(plugin.Funcs(), plugin.VersionInfo(), "edgelink-cni "+version.String())
}
