package routing

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine they started is
// still running when they end (a reader, a timer loop, a stream handler).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOptions...)
}

var leakOptions []goleak.Option
