//go:build tools

// Package tools pins the stock SpiderPool IPAM plugin binary that the IPAM
// end-to-end tests drive against the agent's ipam module, and SpiderPool's
// own node agent (spiderpool-agent), run for a cloud node against the test
// kube-apiserver beside EdgeLink's edge nodes.
package tools

import (
	_ "github.com/spidernet-io/spiderpool/cmd/spiderpool"
	_ "github.com/spidernet-io/spiderpool/cmd/spiderpool-agent"
	_ "github.com/spidernet-io/spiderpool/cmd/spiderpool-controller"
)
