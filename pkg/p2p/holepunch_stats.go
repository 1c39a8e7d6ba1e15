package p2p

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// HolePunchStats counts DCUtR hole punches on this host (both sides: as
// initiator and as receiver), for metrics. It is libp2p's event tracer,
// called once per punch, not per packet.
type HolePunchStats struct {
	Attempts  atomic.Uint64 // punch rounds started (each retry counts)
	Successes atomic.Uint64 // punches that ended with a direct connection
	Failures  atomic.Uint64 // punches that ended without one
	// DirectDials count the direct dials tried before punching (a peer
	// that turned out to be reachable needs no punch).
	DirectDials, DirectDialSuccesses atomic.Uint64
}

var _ holepunch.EventTracer = (*HolePunchStats)(nil)

// Trace implements holepunch.EventTracer.
func (s *HolePunchStats) Trace(evt *holepunch.Event) {
	switch e := evt.Evt.(type) {
	case *holepunch.HolePunchAttemptEvt:
		s.Attempts.Add(1)
	case *holepunch.EndHolePunchEvt:
		if e.Success {
			s.Successes.Add(1)
		} else {
			s.Failures.Add(1)
		}
	case *holepunch.DirectDialEvt:
		s.DirectDials.Add(1)
		if e.Success {
			s.DirectDialSuccesses.Add(1)
		}
	}
}
