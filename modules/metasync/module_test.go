package metasync

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/tests/unittest"
)

// agentConfig is a validated agent config with metaSync on or off.
func agentConfig(t *testing.T, dataDir string, enable bool, audit string) *v1.Agent {
	t.Helper()
	c := &v1.AgentConfig{NodeName: "edge-1", DataDir: dataDir}
	c.Modules.MetaSync = v1.MetaSync{Enable: enable, Source: v1.SourceMetaServer,
		MetaServer: "http://127.0.0.1:10550", AuditPeriod: audit}
	v1.SetDefaults(c)
	a, err := v1.Validate(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestModuleDisabled proves a disabled module offers nothing: no reader,
// no collector, no status route, and its diagnose check is skipped.
func TestModuleDisabled(t *testing.T) {
	m := New(agentConfig(t, t.TempDir(), false, "30s"))
	if m.Enable() || m.Reader() != nil || m.Collector() != nil {
		t.Errorf("disabled module: enable %v, reader %v, collector %v", m.Enable(), m.Reader(), m.Collector())
	}
	mux := unittest.StatusMux(t, m.StatusRoutes())
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/metasync", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /v1/metasync on a disabled module: %d", rec.Code)
	}
	if d := m.Diagnose(t.Context()); len(d) != 1 || d[0].Status != agentapi.CheckSkip {
		t.Errorf("Diagnose = %+v, want one skipped check", d)
	}
}

// TestModuleStartsFromDisk proves an enabled module loads the snapshot in
// <dataDir>/metasync/snapshot.json when built — so the modules built after
// it read the last picture before the cloud answers — and reports it: the
// status route shows it came from disk, and diagnose fails saying the
// agent runs on the saved snapshot and has not listed yet.
func TestModuleStartsFromDisk(t *testing.T) {
	dir := t.TempDir()
	disk := metadata.Empty()
	disk.Version = 9
	disk.Pods["shop/web-1"] = podInfo(fullPod())
	if err := metadata.Save(filepath.Join(dir, "metasync", "snapshot.json"), disk); err != nil {
		t.Fatal(err)
	}
	m := New(agentConfig(t, dir, true, "1m"))
	if snap := m.Reader().Snapshot(); snap.Version != 9 || snap.Pods["shop/web-1"] == nil {
		t.Fatalf("Reader after New: version %d, pods %v", snap.Version, snap.Pods)
	}

	mux := unittest.StatusMux(t, m.StatusRoutes())
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/metasync", nil))
	var st metadata.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/metasync: %d %s (%v)", rec.Code, rec.Body, err)
	}
	if !st.FromDisk || st.Synced || st.Pods != 1 || st.Version != 9 || st.Source != v1.SourceMetaServer || st.Server != "http://127.0.0.1:10550" {
		t.Errorf("status = %+v", st)
	}

	d := m.Diagnose(t.Context())
	if len(d) != 1 || d[0].Status != agentapi.CheckFail ||
		!strings.Contains(d[0].Detail, "never listed from http://127.0.0.1:10550") || !strings.Contains(d[0].Detail, "snapshot saved on disk") {
		t.Errorf("Diagnose = %+v", d)
	}
	if got := m.staleAfter(); got != 2*time.Minute+30*time.Second {
		t.Errorf("staleAfter with a 1m audit = %v, want 2m30s", got)
	}
}

// TestModuleStaleAfter proves how old the last listing may get before
// diagnose calls the picture stale: two audit periods plus the listing's
// own 30 s timeout, with the 30 s default audit when none is set.
func TestModuleStaleAfter(t *testing.T) {
	for audit, want := range map[time.Duration]time.Duration{0: 90 * time.Second, 10 * time.Second: 50 * time.Second, 5 * time.Minute: 630 * time.Second} {
		m := &Module{svc: &Service{AuditPeriod: audit}}
		if got := m.staleAfter(); got != want {
			t.Errorf("audit %v: staleAfter %v, want %v", audit, got, want)
		}
	}
}

// TestCollectStatus proves the metrics describe the status: the sync age
// is absent until the first complete listing (an age since "never" would
// be a lie) and present after it, next to one object gauge per kind.
func TestCollectStatus(t *testing.T) {
	count := func(st metadata.Status) map[*prometheus.Desc]int {
		ch := make(chan prometheus.Metric, 32)
		collectStatus(ch, st, time.Now())
		close(ch)
		out := map[*prometheus.Desc]int{}
		for m := range ch {
			out[m.Desc()]++
		}
		return out
	}
	before := count(metadata.Status{})
	if before[descSyncAge] != 0 || before[descObjects] != 4 || before[descSynced] != 1 {
		t.Errorf("metrics before the first sync: %v", before)
	}
	after := count(metadata.Status{Synced: true, LastSync: time.Now().Add(-time.Minute)})
	if after[descSyncAge] != 1 {
		t.Errorf("metrics after a sync lack the sync age: %v", after)
	}
	m := &Module{enable: true, svc: &Service{}}
	descs := make(chan *prometheus.Desc, 16)
	m.Collector().Describe(descs)
	close(descs)
	if n := len(descs); n != 7 {
		t.Errorf("Describe lists %d descriptors, want 7", n)
	}
}
