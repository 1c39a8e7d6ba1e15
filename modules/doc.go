// Package modules is the home of the agent's beehive modules, one package
// each (docs/architecture.md): metasync (pods, nodes, pools from the cloud channel),
// ipam (SpiderPool's agent API at the edge), routing (TUN, routes and the
// forwarder; configured as modules.edgeCNI) and
// tunnel (libp2p). Each has a module.go with Register/Name/Group/Enable/
// Start; cmd/edgelink/app/agent.go builds them from the config and
// pkg/agenthost runs them. Modules never import each other: they share
// read-only interfaces defined in pkg/ (the metadata snapshot and its
// change signal, pkg/metadata.Reader).
package modules
