package tunnel

import (
	"net/http"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/pkg/agentapi"
)

// Status is this node's side of the tunnel (GET /v1/tunnel/status).
type Status = agentapi.TunnelStatus

// RegisterStatus adds the tunnel's endpoints to the agent's status API:
// GET /v1/tunnel/status (Status) and GET /v1/tunnel/peers
// ([]p2p.PeerStatus). Both answer 503 until the tunnel is up.
func (s *Service) RegisterStatus(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/tunnel/status", func(w http.ResponseWriter, _ *http.Request) {
		r := s.running.Load()
		if r == nil {
			http.Error(w, "tunnel is not up", http.StatusServiceUnavailable)
			return
		}
		st := Status{Node: s.cfg.NodeName, Peer: r.h.ID().String(), Relay: r.isRelay,
			Addrs: strs(r.h.Addrs()), Reachability: r.reachabilityString(),
			Reservations: r.keeper.States(), RefusedPeers: r.h.Gate.Failures()}
		r.mu.Lock()
		for _, o := range r.observed {
			st.Observed = append(st.Observed, strs(o)...)
		}
		st.KnownPeers = len(r.known)
		r.mu.Unlock()
		agentapi.WriteJSON(w, st)
	})
	mux.HandleFunc("GET /v1/tunnel/peers", func(w http.ResponseWriter, _ *http.Request) {
		r := s.running.Load()
		if r == nil {
			http.Error(w, "tunnel is not up", http.StatusServiceUnavailable)
			return
		}
		agentapi.WriteJSON(w, r.paths.Status())
	})
}

func strs(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}
