//go:build tools

// Package tools pins KubeEdge's cloudcore and edgecore, the cloud and edge
// halves of the test control plane (tests/cluster).
package tools

import (
	_ "github.com/kubeedge/kubeedge/cloud/cmd/cloudcore"
	_ "github.com/kubeedge/kubeedge/edge/cmd/edgecore"
)
