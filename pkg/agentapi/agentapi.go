// Package agentapi holds the wire types of the agent's status socket (the
// endpoints `edgelink status`, `ping`, `routes` and `diagnose` read),
// shared by the modules that serve them and pkg/statusclient that reads
// them; it links neither libp2p nor the data plane (the serving modules
// convert). Everything is JSON over HTTP on the root-only unix socket
// (statusSocket). These are all the endpoints (Endpoints; the module that
// serves each registers it through pkg/agenthost's StatusMux):
//
//	GET  /v1/agent             AgentInfo: the process (agent)
//	GET  /v1/tunnel/status     TunnelStatus: this node's side of the tunnel (tunnel)
//	GET  /v1/tunnel/peers      []Peer: the path to every peer (tunnel)
//	POST /v1/ping              PingRequest -> PingResult: one probe over the mesh (tunnel)
//	GET  /v1/dataplane         DataplaneStatus: MTU, segments, plan, counters (routing)
//	GET  /v1/dataplane/routes  Routes: what the routing module programmed, and why (routing)
//	GET  /v1/dataplane/peers   []PeerTraffic: the forwarder's per-peer counters (routing)
//	GET  /v1/metasync          metadata source status, pkg/metadata.Status (metasync)
//	GET  /v1/ipam              pools, refused pools, leases, modules/ipam.Status (ipam)
//	GET  /v1/diagnose          Diagnosis: every module's checks, OK, FAIL or SKIP (agent)
//	GET  /metrics              Prometheus text format (agent)
//	*    /debug/pprof/         Go profiles by name (agent)
//	*    /debug/pprof/profile  CPU profile (agent)
//	*    /debug/pprof/trace    execution trace (agent)
//
// A module that is disabled serves none of its endpoints (404), except
// the tunnel's POST /v1/ping, which then answers 503. Errors are HTTP
// status codes with a plain-text body meant for the user (404: unknown
// pod IP or node; 409: the target is on this node; 503: a module is not
// up or has no path).
package agentapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Endpoints are the http.ServeMux patterns of every endpoint on the
// status socket, in the order of the package comment (a test checks that
// the two agree, and that the agent registers exactly these); "*" there
// is a pattern without a method.
var Endpoints = []string{
	"GET /v1/agent",
	"GET /v1/tunnel/status",
	"GET /v1/tunnel/peers",
	"POST /v1/ping",
	"GET /v1/dataplane",
	"GET /v1/dataplane/routes",
	"GET /v1/dataplane/peers",
	"GET /v1/metasync",
	"GET /v1/ipam",
	"GET /v1/diagnose",
	"GET /metrics",
	"/debug/pprof/",
	"/debug/pprof/profile",
	"/debug/pprof/trace",
}

// Route is one prefix the agent routes.
type Route struct {
	Dst string `json:"dst"`
	// Via is a gateway (host-gw to a peer on our LAN); empty: Dev.
	Via string `json:"via,omitempty"`
	Dev string `json:"dev,omitempty"`
	// Kind is why the prefix is routed: segment, node, pool or pod (the
	// route plan's kinds, modules/routing's KindSegment and so on).
	Kind string `json:"kind"`
	// Node owns the prefix (empty for a segment route).
	Node string `json:"node,omitempty"`
	Why  string `json:"why"`
	// InKernel tells whether the kernel's main table holds the route as
	// planned (kernel routes only; always false in Forward).
	InKernel bool `json:"inKernel"`
}

// Routes is GET /v1/dataplane/routes.
type Routes struct {
	TUN      string   `json:"tun"`
	Segments []string `json:"segments"`
	// Local are this node's pod prefixes (pod CIDRs, pinned pools, pods).
	Local []Route `json:"local"`
	// Kernel are the routes in the main table (protocol 77).
	Kernel []Route `json:"kernel"`
	// Forward is the forwarder's table inside the TUN: every remote
	// prefix and the node whose tunnel carries it.
	Forward []Route `json:"forward"`
	// Ignored are pod IPs from the metadata that are not routed, with
	// why (Dst: the IP, Node: the pod as namespace/name).
	Ignored []Route `json:"ignored,omitempty"`
	// Errors is what the last reconcile could not do.
	Errors string `json:"errors,omitempty"`
}

// PeerTraffic is the forwarder's pod traffic with one peer node since the
// peer entered the route plan.
type PeerTraffic struct {
	Node      string    `json:"node"`
	TxPackets uint64    `json:"txPackets"`
	TxBytes   uint64    `json:"txBytes"`
	RxPackets uint64    `json:"rxPackets"`
	RxBytes   uint64    `json:"rxBytes"`
	DropQueue uint64    `json:"dropQueue"`   // peer too slow or no path
	DropSpoof uint64    `json:"dropSpoofed"` // inner source not the peer's
	LastTx    time.Time `json:"lastTx,omitzero"`
	LastRx    time.Time `json:"lastRx,omitzero"`
	Prefixes  int       `json:"prefixes"`
}

// PingRequest is POST /v1/ping: target is a pod IP or a node name.
type PingRequest struct {
	Target string `json:"target"`
	// TimeoutMillis bounds the probe (default 5000; the agent caps it at
	// MaxPingTimeout).
	TimeoutMillis int `json:"timeoutMs,omitempty"`
}

// Bounds of a ping's timeout.
const (
	MinPingTimeout = time.Millisecond
	MaxPingTimeout = time.Minute
)

// PingResult is one probe's answer.
type PingResult struct {
	Target     string  `json:"target"`
	Node       string  `json:"node"`
	Path       string  `json:"path"` // direct-tcp, direct-quic, relayed
	Relay      string  `json:"relay,omitempty"`
	RemoteAddr string  `json:"remoteAddr"`
	RTTMillis  float64 `json:"rttMs"`
}

// Check results.
const (
	CheckOK   = "OK"
	CheckFail = "FAIL"
	CheckSkip = "SKIP" // the module it checks is disabled
)

// Check is one diagnose check.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Detail says what was found, with the offending values.
	Detail string `json:"detail"`
	// Fix suggests what to do (FAIL only).
	Fix string `json:"fix,omitempty"`
}

// Diagnosis is GET /v1/diagnose.
type Diagnosis struct {
	Node   string    `json:"node"`
	Time   time.Time `json:"time"`
	Checks []Check   `json:"checks"`
}

// Failed reports whether any check failed.
func (d *Diagnosis) Failed() bool {
	for _, c := range d.Checks {
		if c.Status == CheckFail {
			return true
		}
	}
	return false
}

// OK, Fail and Skip build checks.
func OK(name, detail string) Check { return Check{Name: name, Status: CheckOK, Detail: detail} }
func Fail(name, detail, fix string) Check {
	return Check{Name: name, Status: CheckFail, Detail: detail, Fix: fix}
}
func Skip(name, detail string) Check { return Check{Name: name, Status: CheckSkip, Detail: detail} }

// TunnelStatus is this node's side of the tunnel (GET /v1/tunnel/status).
type TunnelStatus struct {
	Node         string        `json:"node"`
	Peer         string        `json:"peer"`
	Relay        bool          `json:"relay"`
	Addrs        []string      `json:"addrs"`
	Observed     []string      `json:"observed"`
	Reachability string        `json:"reachability"`
	Reservations []Reservation `json:"reservations"`
	RefusedPeers uint64        `json:"refusedPeers"` // membership proofs refused
	KnownPeers   int           `json:"knownPeers"`
}

// Reservation is this node's slot on one relay (pkg/p2p's
// ReservationState on the wire).
type Reservation struct {
	Node      string    `json:"node"`
	Relay     string    `json:"peer,omitempty"` // the relay's peer ID
	Reserved  bool      `json:"reserved"`
	Expires   time.Time `json:"expires,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	Renewals  int       `json:"renewals"`
}

// Path kinds of Peer.Path, Conn.Path and PingResult.Path (pkg/p2p's
// PathKind on the wire): "none", "direct-tcp", "direct-quic", "relayed",
// and "idle" (paths on demand: a known member nobody talks to now, with
// no path kept; the next packet or ping sets one up).
const (
	PathNone    = "none"
	PathRelayed = "relayed"
	PathIdle    = "idle"
)

// Peer is what the tunnel's path manager knows of one peer node
// (GET /v1/tunnel/peers; pkg/p2p's PeerStatus on the wire). BytesIn and
// BytesOut count everything on the path, probes included.
type Peer struct {
	Node         string    `json:"node"`
	Peer         string    `json:"peer"`
	Path         string    `json:"path"`
	Relay        string    `json:"relay,omitempty"` // node name of the relay carrying a relayed path
	RemoteAddr   string    `json:"remoteAddr,omitempty"`
	RTTMillis    float64   `json:"rttMs"`
	BytesIn      uint64    `json:"bytesIn"`
	BytesOut     uint64    `json:"bytesOut"`
	LastActivity time.Time `json:"lastActivity,omitzero"`
	PathSince    time.Time `json:"pathSince,omitzero"`
	PathChanges  int       `json:"pathChanges"`
	Upgrades     int       `json:"upgradeAttempts"`
	LastError    string    `json:"lastError,omitempty"`
	Conns        []Conn    `json:"conns"`
}

// Conn is one connection to a peer.
type Conn struct {
	Path       string  `json:"path"`
	Relay      string  `json:"relay,omitempty"`
	RemoteAddr string  `json:"remoteAddr"`
	Direction  string  `json:"direction"`
	Alive      bool    `json:"alive"`
	RTTMillis  float64 `json:"rttMs"`
}

// DataplaneStatus is the data plane (GET /v1/dataplane).
type DataplaneStatus struct {
	MTU      int            `json:"mtu"`
	Segments []string       `json:"segments"`
	Plan     string         `json:"plan"` // the route plan as text
	Errors   string         `json:"errors,omitempty"`
	Stats    DataplaneStats `json:"stats"`
}

// DataplaneStats are the forwarder's counters (pkg/dataplane's
// StatsSnapshot on the wire, field for field and untagged, so that one
// converts to the other: a counter added there must be added here).
type DataplaneStats struct {
	TxPackets, TxBytes, RxPackets, RxBytes                                     uint64
	TxOffload, RxOffload                                                       uint64
	DropNoRoute, DropLoop, DropQueue, DropSpoofed, DropNotLocal, DropMalformed uint64
	BadStreams                                                                 uint64
}

// AgentInfo is GET /v1/agent: what the process holds, to spot leaks.
type AgentInfo struct {
	Node       string `json:"node"`
	Version    string `json:"version"`
	Goroutines int    `json:"goroutines"`
	OpenFDs    int    `json:"openFDs"`
	HeapBytes  uint64 `json:"heapBytes"`
}

// CheckPingTimeout says what is wrong with a ping timeout outside
// [MinPingTimeout, MaxPingTimeout] ("2m0s: give between ...").
func CheckPingTimeout(timeout time.Duration) error {
	if timeout < MinPingTimeout || timeout > MaxPingTimeout {
		return fmt.Errorf("%s: give between %s and %s", timeout, MinPingTimeout, MaxPingTimeout)
	}
	return nil
}

// WriteJSON answers a status API request with v as JSON.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
