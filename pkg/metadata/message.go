package metadata

import (
	"fmt"
	"strings"
)

// Resource types in beehive messages. Resources follow KubeEdge's format
// "<namespace>/<type>/<name>", with namespace "null" for cluster-scoped
// objects: "default/pod/web-1", "null/node/edge-1",
// "null/namespace/default", "null/spiderippool/edge-1-v4".
//
// Operations are KubeEdge's: insert (new object), update (changed object),
// delete (object gone; content is the last known object). The content is
// the object's Info struct (PodInfo, NodeInfo, NamespaceInfo, PoolInfo).
// A message with resource "null/sync/snapshot" and operation "update",
// content Status, follows every batch of changes (and is sent once at
// start, for the snapshot loaded from disk): Reader.Snapshot() now holds
// them; Status.Synced says whether the picture has been listed from the
// source since the agent started.
const (
	ResourcePod       = "pod"
	ResourceNode      = "node"
	ResourceNamespace = "namespace"
	ResourcePool      = "spiderippool"
	ResourceSync      = "sync"

	OpInsert = "insert"
	OpUpdate = "update"
	OpDelete = "delete"

	clusterScope = "null"
)

// BuildResource renders a resource string; an empty namespace means a
// cluster-scoped object.
func BuildResource(namespace, typ, name string) string {
	if namespace == "" {
		namespace = clusterScope
	}
	return namespace + "/" + typ + "/" + name
}

// ParseResource splits a resource string; namespace is "" for "null".
func ParseResource(res string) (namespace, typ, name string, err error) {
	parts := strings.SplitN(res, "/", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("resource %q is not <namespace>/<type>/<name>", res)
	}
	if parts[0] == clusterScope {
		parts[0] = ""
	}
	return parts[0], parts[1], parts[2], nil
}
