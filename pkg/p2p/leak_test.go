package p2p

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine they started is
// still running when they end (a reader, a timer loop, a stream handler).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOptions...)
}

// libp2p's QUIC connection reuse keeps one garbage-collecting goroutine
// per process once a QUIC transport was made.
var leakOptions = []goleak.Option{goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc")}
