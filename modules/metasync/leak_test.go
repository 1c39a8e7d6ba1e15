package metasync

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine they started is
// still running when they end (an informer, the audit loop, Run itself).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOptions...)
}

var leakOptions []goleak.Option
