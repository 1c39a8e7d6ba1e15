//go:build tools

// Package tools pins Flannel's CNI plugin, the "flannel" plugin type of
// kube-flannel's cni-conf.json, for the cloud pods of the Flannel
// end-to-end test (tests/e2e/flannel_test.go). It reads flanneld's
// subnet.env and delegates to the bridge and host-local plugins
// (tests/tools/cni).
//
// The plugin lived in github.com/containernetworking/plugins
// (plugins/meta/flannel) until v0.9.1; its continuation,
// github.com/flannel-io/cni-plugin, is not served by the module proxy
// (403 for every version). Both read the same subnet.env keys and build
// the same delegate configuration.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/meta/flannel"
)
