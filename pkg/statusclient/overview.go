package statusclient

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
)

// Overview is `edgelink status`: this node and every peer, assembled from
// the agent's endpoints. Sections a disabled or starting module cannot
// give are named in Unavailable.
type Overview struct {
	Node         string                   `json:"node"`
	Version      string                   `json:"version"`
	PeerID       string                   `json:"peerID,omitempty"`
	Relay        bool                     `json:"relay"`
	Reachability string                   `json:"reachability,omitempty"`
	Addrs        []string                 `json:"addrs,omitempty"`
	TUN          string                   `json:"tun,omitempty"`
	MTU          int                      `json:"mtu,omitempty"`
	Segments     []string                 `json:"segments"`
	PodCIDRs     []string                 `json:"podCIDRs"`
	Reservations []agentapi.Reservation   `json:"reservations"`
	Peers        []Peer                   `json:"peers"`
	Totals       *agentapi.DataplaneStats `json:"totals,omitempty"`
	Unavailable  map[string]string        `json:"unavailable,omitempty"`
}

// Peer is one peer node as `edgelink status` shows it. Bytes and packets
// are pod traffic through the data plane when it is up (else the tunnel's
// count, which includes probes); LastActivity is the last pod packet.
type Peer struct {
	Node         string    `json:"node"`
	PeerID       string    `json:"peerID,omitempty"`
	Path         string    `json:"path"`
	Relay        string    `json:"relay,omitempty"`
	RemoteAddr   string    `json:"remoteAddr,omitempty"`
	RTTMillis    float64   `json:"rttMs"`
	BytesIn      uint64    `json:"bytesIn"`
	BytesOut     uint64    `json:"bytesOut"`
	PacketsIn    uint64    `json:"packetsIn"`
	PacketsOut   uint64    `json:"packetsOut"`
	Drops        uint64    `json:"drops"`
	LastActivity time.Time `json:"lastActivity,omitzero"`
	PathSince    time.Time `json:"pathSince,omitzero"`
	PathChanges  int       `json:"pathChanges"`
	LastError    string    `json:"lastError,omitempty"`
}

// Overview reads everything `edgelink status` shows. It fails only when
// the agent does not answer at all.
func (c *Client) Overview(ctx context.Context) (*Overview, error) {
	info, err := c.Agent(ctx)
	if err != nil {
		return nil, err
	}
	o := &Overview{Node: info.Node, Version: info.Version, Segments: []string{}, PodCIDRs: []string{},
		Reservations: []agentapi.Reservation{}, Peers: []Peer{}, Unavailable: map[string]string{}}
	note := func(section string, err error) bool {
		if err == nil {
			return true
		}
		var he *HTTPError
		if errors.As(err, &he) && he.Status == http.StatusNotFound {
			o.Unavailable[section] = "module not enabled on this node"
		} else {
			o.Unavailable[section] = err.Error()
		}
		return false
	}
	ts, err := c.TunnelStatus(ctx)
	if note("tunnel", err) {
		o.PeerID, o.Relay, o.Reachability, o.Addrs = ts.Peer, ts.Relay, ts.Reachability, ts.Addrs
		if ts.Reservations != nil {
			o.Reservations = ts.Reservations
		}
	}
	// The peers' error is the tunnel's when that failed too: noted once.
	peers, err := c.Peers(ctx)
	if err != nil {
		peers = nil
		if _, down := o.Unavailable["tunnel"]; !down {
			note("peers", err)
		}
	}
	var traffic []agentapi.PeerTraffic
	var dpOK bool
	if dp, err := c.Dataplane(ctx); note("dataplane", err) {
		dpOK = true
		o.MTU, o.Segments, o.Totals = dp.MTU, dp.Segments, &dp.Stats
		if rs, err := c.Routes(ctx); note("routes", err) {
			o.TUN = rs.TUN
			for _, l := range rs.Local {
				o.PodCIDRs = append(o.PodCIDRs, l.Dst)
			}
		}
		traffic, err = c.PeerTraffic(ctx)
		note("traffic", err)
	}
	o.Peers = MergePeers(peers, traffic, dpOK)
	if len(o.Unavailable) == 0 {
		o.Unavailable = nil
	}
	return o, nil
}

// MergePeers joins the tunnel's view of each peer with the data plane's
// traffic counters (useTraffic: the data plane is up), sorted by node.
func MergePeers(peers []agentapi.Peer, traffic []agentapi.PeerTraffic, useTraffic bool) []Peer {
	byNode := map[string]*Peer{}
	out := []Peer{}
	for _, p := range peers {
		byNode[p.Node] = &Peer{Node: p.Node, PeerID: p.Peer, Path: p.Path, Relay: p.Relay, RemoteAddr: p.RemoteAddr,
			RTTMillis: p.RTTMillis, PathSince: p.PathSince, PathChanges: p.PathChanges, LastError: p.LastError}
		if !useTraffic {
			byNode[p.Node].BytesIn, byNode[p.Node].BytesOut, byNode[p.Node].LastActivity = p.BytesIn, p.BytesOut, p.LastActivity
		}
	}
	for _, t := range traffic {
		p := byNode[t.Node]
		if p == nil {
			p = &Peer{Node: t.Node, Path: agentapi.PathNone}
			byNode[t.Node] = p
		}
		p.BytesIn, p.BytesOut, p.PacketsIn, p.PacketsOut = t.RxBytes, t.TxBytes, t.RxPackets, t.TxPackets
		p.Drops = t.DropQueue + t.DropSpoof
		p.LastActivity = t.LastTx
		if t.LastRx.After(p.LastActivity) {
			p.LastActivity = t.LastRx
		}
	}
	for _, p := range byNode {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.Node, b.Node) })
	return out
}
