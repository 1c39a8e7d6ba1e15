//go:build tools

// Package tools pins wireguard-go, the userspace WireGuard the data-plane
// benchmark (tests/bench/dataplane) measures as a baseline: the main package
// at the module root is the wireguard-go command.
package tools

import (
	_ "golang.zx2c4.com/wireguard"
)
