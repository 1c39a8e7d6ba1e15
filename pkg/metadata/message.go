package metadata

import (
	"fmt"
	"strings"
)

// Resource types of a Change (Cache.Publish), in KubeEdge's resource
// format "<namespace>/<type>/<name>", with namespace "null" for
// cluster-scoped objects: "default/pod/web-1", "null/node/edge-1",
// "null/namespace/default", "null/spiderippool/edge-1-v4".
//
// Operations are KubeEdge's: insert (new object), update (changed object),
// delete (object gone; the Change carries the last known object). Changes
// are no longer sent as beehive messages: modules wait on Reader.Next or
// Reader.Wait and read the snapshot.
const (
	ResourcePod       = "pod"
	ResourceNode      = "node"
	ResourceNamespace = "namespace"
	ResourcePool      = "spiderippool"

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
