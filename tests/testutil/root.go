package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips t, saying why, unless the test runs as root. Tests that
// create network namespaces, links or routes call it first; CI runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (creates network namespaces and links); run `sudo make test` or in CI")
	}
}
