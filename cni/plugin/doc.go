// Package plugin implements edgelink-cni's commands: ADD, DEL, CHECK,
// STATUS and GC (CNI spec 0.3.0 through 1.1.0).
//
// ADD is transactional: every step registers its undo, and a failure runs
// them in reverse, so no veth, address or IPAM lease outlives a failed ADD.
// DEL is idempotent: a missing netns, link or lease is success.
//
// Each attachment leaves a small JSON record under
// <dataDir>/<network name>/ (see state.go); GC walks them to release what
// the runtime no longer lists in cni.dev/valid-attachments.
package plugin
