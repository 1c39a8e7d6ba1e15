// Package version holds the build's version, stamped by the Makefile with
// -ldflags "-X github.com/edgelink/edgelink/pkg/version.Version=...".
package version

import "runtime"

// Version and Commit are set at link time; "dev" marks an unstamped build.
var (
	Version = "dev"
	Commit  = "unknown"
)

// String is "<version> (<commit>, <go version>)".
func String() string {
	return Version + " (" + Commit + ", " + runtime.Version() + ")"
}
