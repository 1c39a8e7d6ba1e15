package dataplane

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"
)

// peerCounters count one peer link's traffic; all atomic, written by the
// packet paths once per batch (never per packet), read by PeerStats.
type peerCounters struct {
	txPackets, txBytes, rxPackets, rxBytes atomic.Uint64
	dropQueue, dropSpoofed                 atomic.Uint64
	lastTx, lastRx                         atomic.Int64 // unix nanos
}

func (c *peerCounters) tx(packets, bytes uint64) {
	c.txPackets.Add(packets)
	c.txBytes.Add(bytes)
	c.lastTx.Store(time.Now().UnixNano())
}

func (c *peerCounters) rx(packets, bytes uint64) {
	c.rxPackets.Add(packets)
	c.rxBytes.Add(bytes)
	c.lastRx.Store(time.Now().UnixNano())
}

// PeerStats is the pod traffic with one peer node since it entered the
// route plan (counters restart when a node leaves the plan and returns).
type PeerStats struct {
	Node                                   string
	TxPackets, TxBytes, RxPackets, RxBytes uint64
	DropQueue                              uint64 // queue full or no path to the peer
	DropSpoofed                            uint64 // inner source not the peer's
	LastTx, LastRx                         time.Time
	Prefixes                               int // prefixes routed to the peer
}

// PeerStats reads every peer's counters, sorted by node name. The number
// of peers is bounded by the nodes in the route plan.
func (f *Forwarder) PeerStats() []PeerStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PeerStats, 0, len(f.links))
	for node, l := range f.links {
		c := &l.c
		out = append(out, PeerStats{Node: node,
			TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(),
			RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
			DropQueue: c.dropQueue.Load(), DropSpoofed: c.dropSpoofed.Load(),
			LastTx: unixNano(c.lastTx.Load()), LastRx: unixNano(c.lastRx.Load()),
			Prefixes: l.pfxs})
	}
	slices.SortFunc(out, func(a, b PeerStats) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// countSpoofed charges spoofed packets of one batch to node's link (a
// map lookup per batch that had any, not per packet).
func (f *Forwarder) countSpoofed(node string, n uint64) {
	f.mu.Lock()
	l := f.links[node]
	f.mu.Unlock()
	if l != nil {
		l.c.dropSpoofed.Add(n)
	}
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
