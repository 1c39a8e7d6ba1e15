// Package e2e holds EdgeLink's end-to-end tests: real network namespaces,
// real links and routes, the real edgelink binaries driven by real peers
// (libcni and cnitool as the CNI runtime, host-local and spiderpool as IPAM).
// Every test needs root and skips, saying so, without it.
package e2e
