//go:build tools

// Package tools pins kube-apiserver, the API server of the test control
// plane (tests/cluster). No controller-manager or scheduler is needed.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
