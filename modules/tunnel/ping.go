package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// PodLocator says where the data plane sends a packet for a pod IP
// (modules/routing's Module.Lookup): a remote node, this node (local), or
// nowhere (ok false); up is false while the data plane is not up.
type PodLocator interface {
	Lookup(a netip.Addr) (node string, local, ok, up bool)
}

// LocatePodsWith makes POST /v1/ping resolve pod IPs the way a packet
// would (l's table) while the data plane is up; without it, or while it
// is down, from the metadata picture. Call it before the agent serves.
func (m *Module) LocatePodsWith(l PodLocator) { m.pods = l }

// pingHandler is POST /v1/ping: agentapi.PingRequest -> PingResult.
func (m *Module) pingHandler(w http.ResponseWriter, r *http.Request) {
	var req agentapi.PingRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		http.Error(w, "bad ping request: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, status, err := m.ping(r.Context(), req)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	agentapi.WriteJSON(w, res)
}

// ping resolves the target (a pod IP through the forwarder's table, or
// the metadata picture when the data plane is off; else a node name) and
// probes that node over its current path.
func (m *Module) ping(ctx context.Context, req agentapi.PingRequest) (agentapi.PingResult, int, error) {
	self := m.svc.cfg.NodeName
	target := strings.TrimSpace(req.Target)
	if target == "" {
		return agentapi.PingResult{}, http.StatusBadRequest, errors.New("no target: give a pod IP or a node name")
	}
	node := target
	if a, err := netip.ParseAddr(target); err == nil {
		n, status, err := m.resolvePodIP(a.Unmap())
		if err != nil {
			return agentapi.PingResult{}, status, err
		}
		node = n
	} else if node == self {
		return agentapi.PingResult{}, http.StatusConflict, fmt.Errorf("%s is this node", node)
	}
	timeout := 5 * time.Second
	if req.TimeoutMillis > 0 {
		timeout = min(time.Duration(req.TimeoutMillis)*time.Millisecond, agentapi.MaxPingTimeout)
	}
	res, err := m.Ping(ctx, node, timeout)
	out := agentapi.PingResult{Target: target, Node: node, Path: string(res.Path), Relay: res.Relay,
		RemoteAddr: res.RemoteAddr, RTTMillis: float64(res.RTT) / 1e6}
	switch {
	case errors.Is(err, p2p.ErrUnknownPeer):
		return out, http.StatusNotFound, fmt.Errorf("unknown node %q: the tunnel knows no such peer (see `edgelink status`)", node)
	case errors.Is(err, p2p.ErrNoPath):
		return out, http.StatusServiceUnavailable, fmt.Errorf("no path to %s yet: the tunnel is still connecting, or the node is down (see `edgelink status`)", node)
	case errors.Is(err, ErrNotUp):
		return out, http.StatusServiceUnavailable, fmt.Errorf("the tunnel is not up on this node: %w", err)
	case err != nil:
		return out, http.StatusGatewayTimeout, err
	}
	return out, http.StatusOK, nil
}

// resolvePodIP finds the node a pod IP lives on: the forwarder's
// longest-prefix-match table when the data plane is up (what a packet
// would do), else the metadata picture's pods and nodes.
func (m *Module) resolvePodIP(a netip.Addr) (string, int, error) {
	self := m.svc.cfg.NodeName
	if m.pods != nil {
		if node, local, ok, up := m.pods.Lookup(a); up {
			switch {
			case !ok:
				return "", http.StatusNotFound, fmt.Errorf("no node has %s: it is in no route of this node's plan (see `edgelink routes`)", a)
			case local:
				return "", http.StatusConflict, fmt.Errorf("%s is a pod on this node (%s): nothing to tunnel", a, self)
			}
			return node, http.StatusOK, nil
		}
	}
	if md := m.svc.md; md != nil {
		if node := md.Snapshot().NodeOfIP(a); node != "" {
			if node == self {
				return "", http.StatusConflict, fmt.Errorf("%s is a pod on this node (%s): nothing to tunnel", a, self)
			}
			return node, http.StatusOK, nil
		}
	}
	return "", http.StatusNotFound, fmt.Errorf("no node has %s: no pod with that IP and no node's pod CIDR holds it", a)
}
