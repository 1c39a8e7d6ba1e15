//go:build tools

// Package tools pins etcd, the storage the test control plane's
// kube-apiserver runs on (tests/cluster). `go install` refuses etcd's server
// module because of its replace directives; building it from this module
// works.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
