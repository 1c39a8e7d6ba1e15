package p2p

import (
	"testing"

	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

func TestHolePunchStats(t *testing.T) {
	var s HolePunchStats
	for _, e := range []any{
		&holepunch.DirectDialEvt{Success: false},
		&holepunch.StartHolePunchEvt{},
		&holepunch.HolePunchAttemptEvt{Attempt: 1},
		&holepunch.HolePunchAttemptEvt{Attempt: 2},
		&holepunch.EndHolePunchEvt{Success: true},
		&holepunch.HolePunchAttemptEvt{Attempt: 1},
		&holepunch.EndHolePunchEvt{Success: false},
		&holepunch.ProtocolErrorEvt{},
	} {
		s.Trace(&holepunch.Event{Evt: e})
	}
	if s.Attempts.Load() != 3 || s.Successes.Load() != 1 || s.Failures.Load() != 1 || s.DirectDials.Load() != 1 || s.DirectDialSuccesses.Load() != 0 {
		t.Errorf("attempts %d successes %d failures %d direct dials %d/%d", s.Attempts.Load(), s.Successes.Load(), s.Failures.Load(),
			s.DirectDials.Load(), s.DirectDialSuccesses.Load())
	}
}
