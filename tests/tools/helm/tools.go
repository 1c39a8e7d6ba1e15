//go:build tools

// Package tools pins helm, which the chart tests (tests/e2e/helm_test.go)
// run to lint and render build/helm/edgelink.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
