//go:build tools

// Package tools pins kube-apiserver, the API server of the test control
// plane (tests/cluster), kube-controller-manager, of which only the CSR
// signer runs (for metaServers with KubeEdge's requireAuthorization: their
// serving certificates come from kubelet-serving CSRs) or the deployment
// and replicaset controllers (ControlPlane.StartScheduling), and
// kube-scheduler, which places pods with a nodeSelector on edge nodes with
// edged (StartScheduling).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
