package app

import (
	"maps"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/agenthost"
)

// With every module enabled the agent serves exactly agentapi.Endpoints
// (which its package comment lists); with every module disabled, only the
// process's own endpoints, diagnose, metrics and ping.
func TestStatusEndpoints(t *testing.T) {
	served := func(enable bool) []string {
		c := v1.NewDefault()
		c.NodeName, c.DataDir = "edge-1", t.TempDir()
		c.Modules.MetaSync.Enable, c.Modules.IPAM.Enable, c.Modules.Tunnel.Enable, c.Modules.EdgeCNI.Enable = enable, enable, enable, enable
		c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = []string{"10.244.5.0/24"}
		a, err := v1.Validate(c)
		if err != nil {
			t.Fatal(err)
		}
		_, ops := agentModules(a)
		routes := statusRoutes(c, prometheus.NewRegistry(), ops)
		if _, err := agenthost.StatusMux(routes...); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rs := range routes {
			out = append(out, slices.Collect(maps.Keys(rs))...)
		}
		slices.Sort(out)
		return out
	}
	if got, want := served(true), slices.Sorted(slices.Values(agentapi.Endpoints)); !slices.Equal(got, want) {
		t.Errorf("all modules enabled: the agent serves\n%q\nagentapi.Endpoints are\n%q", got, want)
	}
	want := []string{"/debug/pprof/", "/debug/pprof/profile", "/debug/pprof/trace", "GET /metrics", "GET /v1/agent", "GET /v1/diagnose", "POST /v1/ping"}
	if got := served(false); !slices.Equal(got, want) {
		t.Errorf("all modules disabled: the agent serves %q, want %q", got, want)
	}
}
