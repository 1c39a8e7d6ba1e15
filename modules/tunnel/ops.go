package tunnel

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// ErrNotUp is returned while the tunnel is not up.
var ErrNotUp = errNotUp

// Ping probes node over its current path (POST /v1/ping, `edgelink ping`).
func (m *Module) Ping(ctx context.Context, node string, timeout time.Duration) (p2p.PingResult, error) {
	r := m.svc.running.Load()
	if r == nil || !m.enable {
		return p2p.PingResult{}, errNotUp
	}
	return r.paths.Ping(ctx, node, timeout)
}

// Diagnose checks that every configured relay holds our reservation
// (`edgelink diagnose`).
func (m *Module) Diagnose(context.Context) []agentapi.Check {
	const name = "relays reachable"
	if !m.enable {
		return []agentapi.Check{agentapi.Skip(name, "the tunnel module is disabled")}
	}
	r := m.svc.running.Load()
	if r == nil {
		return []agentapi.Check{agentapi.Fail("tunnel up", "the tunnel is not up",
			"read the agent's log (journalctl -u edgelink): identity, membership certificate or listen port")}
	}
	return relayChecks(r.keeper.States(), r.isRelay, m.svc.cfg.Modules.Tunnel)
}

// relayChecks is the "relays reachable" check for the keeper's states.
func relayChecks(states []p2p.ReservationState, isRelay bool, t v1.Tunnel) []agentapi.Check {
	const name = "relays reachable"
	if len(states) == 0 {
		if isRelay {
			return []agentapi.Check{agentapi.OK(name, "this node is the only relay")}
		}
		return []agentapi.Check{agentapi.Skip(name, "no relay is configured (modules.tunnel.relayNodes): peers are found and reached only directly")}
	}
	var ok, bad []string
	for _, st := range states {
		if st.Reserved {
			ok = append(ok, st.Node)
			continue
		}
		why := st.LastError
		if why == "" {
			why = "no reservation yet"
		}
		bad = append(bad, fmt.Sprintf("%s (%s)", st.Node, why))
	}
	if len(bad) > 0 {
		var addrs []string
		for _, rn := range t.RelayNodes {
			addrs = append(addrs, fmt.Sprintf("%s at %s", rn.NodeName, strings.Join(rn.AdvertiseAddress, ",")))
		}
		return []agentapi.Check{agentapi.Fail(name, "no reservation on "+strings.Join(bad, "; "),
			fmt.Sprintf("check that the relay agents run and that TCP and UDP port %d reach them (%s) from this node",
				t.ListenPort, strings.Join(addrs, "; ")))}
	}
	return []agentapi.Check{agentapi.OK(name, "reserved on "+strings.Join(ok, ", "))}
}
