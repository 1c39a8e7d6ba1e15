//go:build tools

// Package tools pins kube-apiserver, the API server of the test control
// plane (tests/cluster), and kube-controller-manager, of which only the
// CSR signer runs (for metaServers with KubeEdge's requireAuthorization:
// their serving certificates come from kubelet-serving CSRs). No scheduler
// is needed.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
