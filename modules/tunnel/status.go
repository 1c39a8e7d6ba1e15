package tunnel

import (
	"net/http"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/agenthost"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// Status is this node's side of the tunnel (GET /v1/tunnel/status).
type Status = agentapi.TunnelStatus

// statusRoutes are the tunnel's endpoints on the agent's status socket:
// GET /v1/tunnel/status (Status) and GET /v1/tunnel/peers
// ([]agentapi.Peer). Both answer 503 until the tunnel is up.
func (s *Service) statusRoutes() agenthost.Routes {
	return agenthost.Routes{"GET /v1/tunnel/status": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r := s.running.Load()
		if r == nil {
			http.Error(w, "tunnel is not up", http.StatusServiceUnavailable)
			return
		}
		st := Status{Node: s.cfg.NodeName, Peer: r.h.ID().String(), Relay: r.isRelay,
			Addrs: strs(r.h.Addrs()), Reachability: r.reachabilityString(),
			Reservations: wireReservations(r.keeper.States()), RefusedPeers: r.h.Gate.Failures()}
		r.mu.Lock()
		for _, o := range r.observed {
			st.Observed = append(st.Observed, strs(o)...)
		}
		st.KnownPeers = len(r.known)
		r.mu.Unlock()
		agentapi.WriteJSON(w, st)
	}), "GET /v1/tunnel/peers": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r := s.running.Load()
		if r == nil {
			http.Error(w, "tunnel is not up", http.StatusServiceUnavailable)
			return
		}
		agentapi.WriteJSON(w, wirePeers(r.paths.Status()))
	})}
}

func strs(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// wirePeers is the path manager's view on the wire.
func wirePeers(peers []p2p.PeerStatus) []agentapi.Peer {
	if peers == nil {
		return nil
	}
	out := make([]agentapi.Peer, 0, len(peers))
	for _, p := range peers {
		w := agentapi.Peer{Node: p.Node, Peer: p.Peer, Path: string(p.Path), Relay: p.Relay, RemoteAddr: p.RemoteAddr,
			RTTMillis: p.RTTMillis, BytesIn: p.BytesIn, BytesOut: p.BytesOut, LastActivity: p.LastActivity,
			PathSince: p.PathSince, PathChanges: p.PathChanges, Upgrades: p.Upgrades, LastError: p.LastError}
		if p.Conns != nil {
			w.Conns = make([]agentapi.Conn, 0, len(p.Conns))
			for _, c := range p.Conns {
				w.Conns = append(w.Conns, agentapi.Conn{Path: string(c.Path), Relay: c.Relay, RemoteAddr: c.RemoteAddr,
					Direction: c.Direction, Alive: c.Alive, RTTMillis: c.RTTMillis})
			}
		}
		out = append(out, w)
	}
	return out
}

// wireReservations is the reservation keeper's view on the wire.
func wireReservations(states []p2p.ReservationState) []agentapi.Reservation {
	if states == nil {
		return nil
	}
	out := make([]agentapi.Reservation, 0, len(states))
	for _, s := range states {
		out = append(out, agentapi.Reservation{Node: s.Node, Relay: s.Relay.String(), Reserved: s.Reserved,
			Expires: s.Expires, LastError: s.LastError, Renewals: s.Renewals})
	}
	return out
}
