// Package testutil helps EdgeLink's end-to-end tests stand up real parts:
// network namespaces, the project's own binaries, and the real test peers
// (cnitool, reference CNI plugins, spiderpool) built by tests/tools/build.sh.
// Everything it creates is removed through t.Cleanup, also when a test fails.
package testutil
