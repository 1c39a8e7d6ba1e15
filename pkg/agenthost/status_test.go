package agenthost

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgelink/edgelink/pkg/agentapi"
)

// StatusMux refuses an endpoint agentapi does not list and one given
// twice; nil routes (a disabled module) add nothing.
func TestStatusMux(t *testing.T) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if _, err := StatusMux(Routes{"GET /v1/secret": ok}); err == nil || !strings.Contains(err.Error(), "not in agentapi.Endpoints") {
		t.Errorf("unlisted endpoint: %v", err)
	}
	if _, err := StatusMux(Routes{"GET /v1/ipam": ok}, Routes{"GET /v1/ipam": ok}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("endpoint twice: %v", err)
	}
	mux, err := StatusMux(nil, HostRoutes("edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/agent", nil))
	var info agentapi.AgentInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil || info.Node != "edge-1" || info.Goroutines == 0 {
		t.Errorf("GET /v1/agent: %d %q", rec.Code, rec.Body)
	}
}

type checks []agentapi.Check

func (c checks) Diagnose(context.Context) []agentapi.Check { return c }

// GET /v1/diagnose has every module's checks in the order given.
func TestDiagnoseRoutes(t *testing.T) {
	mux, err := StatusMux(DiagnoseRoutes("edge-1", checks{agentapi.OK("a", "")}, checks{}, checks{agentapi.Fail("b", "", "fix"), agentapi.Skip("c", "")}))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/diagnose", nil))
	var d agentapi.Diagnosis
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || d.Node != "edge-1" || len(d.Checks) != 3 ||
		d.Checks[0].Name != "a" || d.Checks[1].Name != "b" || d.Checks[2].Name != "c" || !d.Failed() {
		t.Errorf("GET /v1/diagnose: %d %q", rec.Code, rec.Body)
	}
}
