package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"k8s.io/klog/v2"
)

// ReservationState is what a node knows of its slot on one relay.
type ReservationState struct {
	Relay     peer.ID
	Reserved  bool
	Expires   time.Time
	LastError string
	Renewals  int
}

// ReservationKeeper holds a reservation on every configured relay: it
// connects, reserves, renews at half the reservation's lifetime, and after
// a failure (relay restarted, unreachable, refused) retries with backoff
// from 500 ms to 30 s, by itself. Relays that silently stop working are
// what users of other meshes complain about most.
//
// Locking: mu guards state.
type ReservationKeeper struct {
	h      *Host
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	state map[peer.ID]*ReservationState
}

// KeepReservations starts a keeper for relays; Close stops it.
func (h *Host) KeepReservations(relays []peer.AddrInfo) *ReservationKeeper {
	ctx, cancel := context.WithCancel(context.Background())
	k := &ReservationKeeper{h: h, cancel: cancel, state: map[peer.ID]*ReservationState{}}
	for _, r := range relays {
		k.state[r.ID] = &ReservationState{Relay: r.ID}
		k.wg.Add(1)
		go func() { // routineKeep, one per relay
			defer k.wg.Done()
			k.keep(ctx, r)
		}()
	}
	return k
}

// Close stops renewing (reservations lapse at their expiry) and waits.
func (k *ReservationKeeper) Close() {
	k.cancel()
	k.wg.Wait()
}

// States reports every relay's reservation.
func (k *ReservationKeeper) States() []ReservationState {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]ReservationState, 0, len(k.state))
	for _, s := range k.state {
		out = append(out, *s)
	}
	return out
}

func (k *ReservationKeeper) keep(ctx context.Context, relay peer.AddrInfo) {
	backoff := 500 * time.Millisecond
	for {
		wait, err := k.reserve(ctx, relay)
		if err != nil {
			k.mu.Lock()
			st := k.state[relay.ID]
			wasReserved := st.Reserved
			st.Reserved, st.LastError = false, err.Error()
			k.mu.Unlock()
			if wasReserved {
				klog.InfoS("Relay reservation lost; retrying", "relay", relay.ID, "err", err)
			}
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		} else {
			backoff = 500 * time.Millisecond
		}
		// Renew early, or as soon as the relay connection drops.
		if !k.sleepOrDisconnect(ctx, relay.ID, wait) {
			return
		}
	}
}

// reserve makes (or renews) the reservation and returns when to renew.
func (k *ReservationKeeper) reserve(ctx context.Context, relay peer.AddrInfo) (time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := k.h.Connect(rctx, relay); err != nil {
		return 0, err
	}
	res, err := client.Reserve(rctx, k.h.Host, relay)
	if err != nil {
		return 0, err
	}
	k.mu.Lock()
	st := k.state[relay.ID]
	if !st.Reserved {
		klog.InfoS("Relay reservation held", "relay", relay.ID, "expires", res.Expiration)
	}
	st.Reserved, st.Expires, st.LastError = true, res.Expiration, ""
	st.Renewals++
	k.mu.Unlock()
	return max(time.Until(res.Expiration)/2, time.Second), nil
}

// sleepOrDisconnect waits d, returning early (true) when the relay
// connection drops, and false when ctx ends.
func (k *ReservationKeeper) sleepOrDisconnect(ctx context.Context, relay peer.ID, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	connected := len(k.h.Network().ConnsToPeer(relay)) > 0
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-tick.C:
			if connected && len(k.h.Network().ConnsToPeer(relay)) == 0 {
				return true
			}
		}
	}
}
