//go:build tools

// Package tools pins Nebula, the second userspace mesh the data-plane
// benchmark (tests/bench/dataplane) measures as a baseline: nebula (the
// daemon) and nebula-cert (the harness makes the benchmark's CA and host
// certificates with it).
package tools

import (
	_ "github.com/slackhq/nebula/cmd/nebula"
	_ "github.com/slackhq/nebula/cmd/nebula-cert"
)
