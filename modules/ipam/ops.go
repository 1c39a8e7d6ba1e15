package ipam

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/agenthost"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/unixsock"
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

// StatusRoutes are the module's endpoints on the status socket: GET
// /v1/ipam (Status), which answers 503 until the module serves; none when
// the module is disabled.
func (m *Module) StatusRoutes() agenthost.Routes {
	if !m.enable {
		return nil
	}
	return agenthost.Routes{"GET /v1/ipam": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		serveStatus(w, m.svc.SocketPath, m.svc.live.Load())
	})}
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

// Diagnose checks (`edgelink diagnose`) that the IPAM socket answers and
// that the node has addresses to give: a shared pool that may serve it
// but of which it holds no block fails every pod that asks for it.
func (m *Module) Diagnose(ctx context.Context) []agentapi.Check {
	const name = "IPAM blocks of shared pools"
	if !m.enable {
		return []agentapi.Check{agentapi.Skip(socketCheckName, "the ipam module is disabled"), agentapi.Skip(name, "the ipam module is disabled")}
	}
	out := []agentapi.Check{socketCheck(ctx, m.svc.SocketPath)}
	a := m.svc.live.Load()
	if a == nil {
		return append(out, agentapi.Fail(name, "the ipam module is not serving yet", "wait for the agent to start; its log says why it does not"))
	}
	return append(out, blocksCheck(a.View()))
}

const socketCheckName = "IPAM socket answering"

// socketCheck asks the IPAM socket what the spiderpool binary asks before
// every call (GET /v1/ipam/healthy).
func socketCheck(ctx context.Context, path string) agentapi.Check {
	hc := http.Client{Timeout: 3 * time.Second, Transport: unixsock.HTTPTransport(path)}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://ipam/v1/ipam/healthy", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return agentapi.Fail(socketCheckName, fmt.Sprintf("%s: %v", path, err),
			"read the agent's log for the ipam module's error (a lease store another process holds, a bad pool file); pods cannot get addresses until it answers")
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return agentapi.Fail(socketCheckName, fmt.Sprintf("%s answered %s", path, resp.Status), "read the agent's log for the ipam module")
	}
	return agentapi.OK(socketCheckName, path+" answers")
}

func blocksCheck(v *ipam.View) agentapi.Check {
	const name = "IPAM blocks of shared pools"
	if missing := v.SharedWithoutBlocks(); len(missing) > 0 {
		return agentapi.Fail(name, fmt.Sprintf("node %s has no block of shared pool(s) %s: pods asking for them get no address", v.NodeName, strings.Join(missing, ", ")),
			"run `edgelink controller` in the cloud (the Helm chart's Deployment), and give the node its segment: spec.podCIDR inside a cloudCIDR/edgeCIDR entry, or `kubectl annotate node "+v.NodeName+" "+ipam.AnnoSegment+"=<CIDR>`; its log names nodes it cannot serve")
	}
	var blocks []string
	for _, name := range v.PoolNames() {
		if p := v.Pools[name]; p.BlockOf() != "" && !p.Shared() && p.PinnedNode() == v.NodeName {
			blocks = append(blocks, name)
		}
	}
	if len(blocks) == 0 {
		return agentapi.OK(name, "no shared pool serves this node")
	}
	return agentapi.OK(name, fmt.Sprintf("blocks %s", strings.Join(blocks, ", ")))
}
