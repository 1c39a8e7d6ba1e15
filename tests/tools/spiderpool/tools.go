//go:build tools

// Package tools pins the stock SpiderPool IPAM plugin binary that the IPAM
// end-to-end tests drive against the agent's ipam module.
package tools

import (
	_ "github.com/spidernet-io/spiderpool/cmd/spiderpool"
)
