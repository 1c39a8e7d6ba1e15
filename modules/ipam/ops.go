package ipam

import (
	"net/http"

	"github.com/edgelink/edgelink/pkg/ipam"
)

// Status is GET /v1/ipam on the agent's status socket: the IPAM socket,
// each usable pool's usage, the pools refused (and why) and the number of
// leases. The same data is on the IPAM socket itself (/v1/edgelink/pools,
// /v1/edgelink/leases), which operators rarely know the path of.
type Status struct {
	Socket  string            `json:"socket"`
	Pools   []ipam.PoolUsage  `json:"pools"`
	Invalid map[string]string `json:"invalid"`
	Leases  int               `json:"leases"`
}

// RegisterStatus adds GET /v1/ipam (Status) to the agent's status API;
// it answers 503 until the module serves, and is absent when the module
// is disabled.
func (m *Module) RegisterStatus(mux *http.ServeMux) {
	if m.enable {
		mux.HandleFunc("GET /v1/ipam", func(w http.ResponseWriter, _ *http.Request) { serveStatus(w, m.svc.SocketPath, m.svc.live.Load()) })
	}
}

func serveStatus(w http.ResponseWriter, socket string, a *ipam.Allocator) {
	if a == nil {
		http.Error(w, "the ipam module is not serving yet", http.StatusServiceUnavailable)
		return
	}
	usage, err := a.Usage()
	if err != nil {
		http.Error(w, "lease store: "+err.Error(), http.StatusInternalServerError)
		return
	}
	leases, err := a.Leases()
	if err != nil {
		http.Error(w, "lease store: "+err.Error(), http.StatusInternalServerError)
		return
	}
	st := Status{Socket: socket, Pools: usage, Invalid: map[string]string{}, Leases: len(leases)}
	if st.Pools == nil {
		st.Pools = []ipam.PoolUsage{}
	}
	for name, err := range a.View().PoolErrors {
		st.Invalid[name] = err.Error()
	}
	writeJSON(w, http.StatusOK, st)
}
