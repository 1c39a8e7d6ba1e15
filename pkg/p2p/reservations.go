package p2p

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	"k8s.io/klog/v2"
)

// RelayTarget is one configured relay: its node name, the addresses to
// dial, and its peer ID when known (otherwise learned, LearnPeerID).
type RelayTarget struct {
	Node  string
	Addrs []ma.Multiaddr
	ID    peer.ID
}

// ReservationState is what a node knows of its slot on one relay.
type ReservationState struct {
	Node      string    `json:"node"`
	Relay     peer.ID   `json:"peer,omitempty"`
	Reserved  bool      `json:"reserved"`
	Expires   time.Time `json:"expires,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	Renewals  int       `json:"renewals"`
}

// ReservationKeeper holds a reservation on every configured relay: it
// learns the relay's peer ID if needed, connects, checks that the relay
// proved membership under its configured node name, reserves, renews at
// half the reservation's lifetime, and after a failure (relay restarted,
// unreachable, refused, new identity) retries with backoff from 500 ms to
// 30 s, by itself. Relays that silently stop working are what users of
// other meshes complain about most. A peer ID is the relay's (in States,
// and so in the tunnel's peer cache) only once it proved membership under
// the relay's node name: whoever answers at a relay's address is not the
// relay for that.
//
// Locking: mu guards state.
type ReservationKeeper struct {
	h          *Host
	onReserved func(ctx context.Context, relay peer.ID)
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	mu    sync.Mutex
	state map[string]*keeperEntry // by relay node name
}

type keeperEntry struct {
	target RelayTarget
	ReservationState
}

// KeepReservations starts a keeper for relays; onReserved (may be nil)
// runs after every successful reservation or renewal. Close stops it.
func (h *Host) KeepReservations(relays []RelayTarget, onReserved func(ctx context.Context, relay peer.ID)) *ReservationKeeper {
	ctx, cancel := context.WithCancel(context.Background())
	k := &ReservationKeeper{h: h, onReserved: onReserved, cancel: cancel, state: map[string]*keeperEntry{}}
	for _, r := range relays {
		k.state[r.Node] = &keeperEntry{target: r, ReservationState: ReservationState{Node: r.Node, Relay: r.ID}}
		k.wg.Add(1)
		go func() { // routineKeep, one per relay
			defer k.wg.Done()
			k.keep(ctx, r.Node)
		}()
	}
	return k
}

// Close stops renewing (reservations lapse at their expiry) and waits.
func (k *ReservationKeeper) Close() {
	k.cancel()
	k.wg.Wait()
}

// States reports every relay's reservation, sorted by node name.
func (k *ReservationKeeper) States() []ReservationState {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]ReservationState, 0, len(k.state))
	for _, e := range k.state {
		out = append(out, e.ReservationState)
	}
	slices.SortFunc(out, func(a, b ReservationState) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// Reserved lists the relays holding our reservation now: the ones that
// can carry circuits to us, and that we route circuits through.
func (k *ReservationKeeper) Reserved() []RelayRef {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []RelayRef
	for _, e := range k.state {
		if e.Reserved {
			out = append(out, RelayRef{ID: e.Relay, Addrs: e.target.Addrs})
		}
	}
	return out
}

func (k *ReservationKeeper) keep(ctx context.Context, node string) {
	backoff := 500 * time.Millisecond
	failures := 0
	for {
		wait, id, err := k.reserve(ctx, node, failures >= 2)
		if err != nil {
			failures++
			k.mu.Lock()
			st := k.state[node]
			wasReserved := st.Reserved
			st.Reserved, st.LastError = false, err.Error()
			k.mu.Unlock()
			if wasReserved {
				klog.InfoS("Relay reservation lost; retrying", "relay", node, "err", err)
			}
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		} else {
			failures = 0
			backoff = 500 * time.Millisecond
			if k.onReserved != nil {
				k.onReserved(ctx, id)
			}
		}
		// Renew early, or as soon as the relay connection drops.
		if !k.sleepOrDisconnect(ctx, id, wait) {
			return
		}
	}
}

// reserve makes (or renews) the reservation on relay node and returns
// when to renew. relearn asks the relay for its peer ID again (it may
// have a new identity).
func (k *ReservationKeeper) reserve(ctx context.Context, node string, relearn bool) (time.Duration, peer.ID, error) {
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	k.mu.Lock()
	target := k.state[node].target
	id := k.state[node].Relay
	k.mu.Unlock()
	if id == "" || relearn {
		learned, err := learnFrom(rctx, target.Addrs)
		if err != nil {
			return 0, id, fmt.Errorf("learning the peer ID of relay %s: %w", node, err)
		}
		if learned == k.h.ID() {
			return 0, id, fmt.Errorf("relay %s's address %v answers with this node's own identity (is listenPort the same on every node?)", node, target.Addrs)
		}
		id = learned // recorded once it proved membership as node
	}
	info := peer.AddrInfo{ID: id, Addrs: target.Addrs}
	if err := k.h.Connect(rctx, info); err != nil {
		return 0, id, err
	}
	proved, err := k.h.Gate.WaitMember(rctx, id)
	if err != nil {
		return 0, id, err
	}
	if proved != node {
		_ = k.h.Network().ClosePeer(id)
		return 0, id, fmt.Errorf("relay at %v proved node %q, configured as %q", target.Addrs, proved, node)
	}
	k.mu.Lock()
	if st := k.state[node]; st.Relay != id {
		klog.InfoS("Relay peer ID learned", "relay", node, "peer", id)
		st.Relay = id
	}
	k.mu.Unlock()
	res, err := client.Reserve(rctx, k.h.Host, info)
	if err != nil {
		return 0, id, err
	}
	k.mu.Lock()
	st := k.state[node]
	if !st.Reserved {
		klog.InfoS("Relay reservation held", "relay", node, "peer", id, "expires", res.Expiration)
	}
	st.Reserved, st.Expires, st.LastError = true, res.Expiration, ""
	st.Renewals++
	k.mu.Unlock()
	return max(time.Until(res.Expiration)/2, time.Second), id, nil
}

// learnFrom asks the first TCP address that answers for the peer ID.
func learnFrom(ctx context.Context, addrs []ma.Multiaddr) (peer.ID, error) {
	err := fmt.Errorf("no TCP address among %v", addrs)
	for _, a := range addrs {
		hostPort, ok := tcpHostPort(a)
		if !ok {
			continue
		}
		var id peer.ID
		if id, err = LearnPeerID(ctx, hostPort); err == nil {
			return id, nil
		}
	}
	return "", err
}

// tcpHostPort turns /ip4|ip6|dns*/HOST/tcp/PORT into HOST:PORT.
func tcpHostPort(a ma.Multiaddr) (string, bool) {
	port, err := a.ValueForProtocol(ma.P_TCP)
	h := hostOf(a)
	if err != nil || h == "" {
		return "", false
	}
	return net.JoinHostPort(h, port), true
}

// sleepOrDisconnect waits d, returning early (true) when the relay
// connection drops, and false when ctx ends.
func (k *ReservationKeeper) sleepOrDisconnect(ctx context.Context, relay peer.ID, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	// Subscribe before looking, so that a drop in between is not missed.
	sub, err := k.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return false
	}
	defer sub.Close()
	watch := relay != "" && len(k.h.Network().ConnsToPeer(relay)) > 0
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case e := <-sub.Out():
			if ev := e.(event.EvtPeerConnectednessChanged); watch && ev.Peer == relay && ev.Connectedness != network.Connected {
				return true
			}
		}
	}
}
