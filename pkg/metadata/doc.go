// Package metadata is the cluster picture the agent's modules share: every
// pod (IP, node, labels, annotations), every node (pod CIDRs, addresses,
// labels), namespaces and SpiderIPPools, as the metasync module learns them
// from the cloud channel.
//
// The picture is an immutable Snapshot published through an atomic pointer:
// readers (routes, IPAM, the tunnel's targets, the status API) call
// Reader.Snapshot() and never lock. The one change signal is Reader.Wait
// (or Reader.Next, for select loops): a channel closed on each publish.
// SpiderIPPools come parsed (PoolInfo's typed form, filled once by
// metasync). Changes carry KubeEdge's resource format (see message.go).
//
// store.go keeps a snapshot on disk, replaced atomically, so an agent
// restarted while the cloud is away comes up with the last known picture.
package metadata
