//go:build tools

// Package tools pins flanneld, the cloud nodes' CNI daemon in the Flannel
// end-to-end test (tests/e2e/flannel_test.go). Its CNI plugin, which the
// cloud pods use, is pinned in tests/tools/flannel-cni.
package tools

import (
	_ "github.com/flannel-io/flannel"
)
