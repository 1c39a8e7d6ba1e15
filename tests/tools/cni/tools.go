//go:build tools

// Package tools pins the CNI runtime and reference plugins the tests drive:
// cnitool (a real CNI runtime) and the host-local/bridge reference plugins.
package tools

import (
	_ "github.com/containernetworking/cni/cnitool"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
)
