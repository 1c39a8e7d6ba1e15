//go:build tools

// Package tools pins flanneld, the cloud nodes' CNI daemon in the Flannel
// end-to-end test (tests/e2e/flannel_test.go). Flannel's CNI plugin
// (github.com/flannel-io/cni-plugin) is not served by the module proxy; the
// test does what it does with the reference bridge and host-local plugins
// (tests/tools/cni).
package tools

import (
	_ "github.com/flannel-io/flannel"
)
