package agenthost

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/unixsock"
	"github.com/edgelink/edgelink/pkg/version"
)

// Routes are a module's endpoints on the agent's status socket: each
// http.ServeMux pattern (one of agentapi.Endpoints) and its handler. Every
// module returns them the same way, from StatusRoutes, with only the
// endpoints it serves in its configuration (none, when disabled, unless
// it says otherwise).
type Routes map[string]http.Handler

// StatusMux builds the status socket's handler from every module's
// routes. A pattern agentapi does not list, or one given twice, is an
// error: the wire types' package comment names every endpoint served.
func StatusMux(routes ...Routes) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	seen := map[string]bool{}
	for _, rs := range routes {
		for _, p := range slices.Sorted(maps.Keys(rs)) {
			if !slices.Contains(agentapi.Endpoints, p) {
				return nil, fmt.Errorf("status endpoint %q is not in agentapi.Endpoints", p)
			}
			if seen[p] {
				return nil, fmt.Errorf("status endpoint %q registered twice", p)
			}
			seen[p] = true
			mux.Handle(p, rs[p])
		}
	}
	return mux, nil
}

// HostRoutes are the agent process's own endpoints: GET /v1/agent
// (agentapi.AgentInfo) and the pprof profiles (the socket is root-only).
func HostRoutes(node string) Routes {
	return Routes{
		"GET /v1/agent": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			agentapi.WriteJSON(w, agentRuntime(node))
		}),
		"/debug/pprof/":        http.HandlerFunc(pprof.Index),
		"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		"/debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
	}
}

func agentRuntime(node string) agentapi.AgentInfo {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, _ := os.ReadDir("/proc/self/fd")
	return agentapi.AgentInfo{Node: node, Version: version.String(), Goroutines: runtime.NumGoroutine(),
		OpenFDs: len(fds), HeapBytes: ms.HeapAlloc}
}

// Diagnoser is a module's part of `edgelink diagnose`: its checks, each
// OK, FAIL or SKIP (the module is disabled).
type Diagnoser interface {
	Diagnose(ctx context.Context) []agentapi.Check
}

// DiagnoseRoutes serve GET /v1/diagnose (agentapi.Diagnosis): every
// module's checks, in the order given.
func DiagnoseRoutes(node string, ds ...Diagnoser) Routes {
	return Routes{"GET /v1/diagnose": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := agentapi.Diagnosis{Node: node, Time: time.Now()}
		for _, m := range ds {
			d.Checks = append(d.Checks, m.Diagnose(r.Context())...)
		}
		agentapi.WriteJSON(w, d)
	})}
}

// ServeStatus answers the status API (JSON over HTTP) on the agent's
// unix socket (statusSocket) until the returned stop is called.
func ServeStatus(path string, h http.Handler) (stop func(), err error) {
	ln, err := unixsock.Listen(path, "status socket", "statusSocket")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { // routineStatus
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-done
		_ = os.Remove(path)
	}, nil
}
