package metasync

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/agenthost"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/pkg/metrics"
)

// StatusRoutes are the module's endpoints on the status socket: GET
// /v1/metasync (metadata.Status); none when the module is disabled.
func (m *Module) StatusRoutes() agenthost.Routes {
	if !m.enable {
		return nil
	}
	return agenthost.Routes{"GET /v1/metasync": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		agentapi.WriteJSON(w, m.Status())
	})}
}

// staleAfter is how old the last complete listing may get: two audit
// periods and the listing's own timeout.
func (m *Module) staleAfter() time.Duration {
	audit := m.svc.AuditPeriod
	if audit <= 0 {
		audit = 30 * time.Second
	}
	return 2*audit + 30*time.Second
}

// Diagnose checks that the metadata picture is fresh (`edgelink diagnose`).
func (m *Module) Diagnose(context.Context) []agentapi.Check {
	const name = "metadata fresh"
	if !m.enable {
		return []agentapi.Check{agentapi.Skip(name, "the metaSync module is disabled")}
	}
	return []agentapi.Check{freshness(m.Status(), time.Now(), m.staleAfter())}
}

func freshness(st metadata.Status, now time.Time, staleAfter time.Duration) agentapi.Check {
	const name = "metadata fresh"
	fix := fmt.Sprintf("check that %s answers from this node (edge: EdgeCore runs with modules.metaManager.metaServer.enable=true and reaches cloudcore; cloudcore has modules.dynamicController.enable=true)", st.Server)
	switch {
	case !st.Synced:
		detail := "never listed from " + st.Server + " since the agent started"
		if st.FromDisk {
			detail += "; running on the snapshot saved on disk"
		}
		if st.LastError != "" {
			detail += "; last error: " + st.LastError
		}
		return agentapi.Fail(name, detail, fix)
	case now.Sub(st.LastSync) > staleAfter:
		detail := fmt.Sprintf("last complete listing from %s %s ago (more than %s)", st.Server, now.Sub(st.LastSync).Round(time.Second), staleAfter)
		if st.LastError != "" {
			detail += "; last error: " + st.LastError
		}
		return agentapi.Fail(name, detail, fix+"; while the cloud is away the agent keeps working on what it knows")
	}
	return agentapi.OK(name, fmt.Sprintf("listed from %s %s ago: %d pods, %d nodes, %d pools", st.Server,
		now.Sub(st.LastSync).Round(time.Second), st.Pods, st.Nodes, st.Pools))
}

var (
	descSynced = prometheus.NewDesc("edgelink_metadata_synced",
		"1 once every informer has listed from the source since the agent started.", nil, nil)
	descConnected = prometheus.NewDesc("edgelink_metadata_connected",
		"1 while the last list or watch of the source succeeded.", nil, nil)
	descLastSync = prometheus.NewDesc("edgelink_metadata_last_sync_timestamp_seconds",
		"When the last complete listing (first sync or audit) succeeded (0: never).", nil, nil)
	descSyncAge = prometheus.NewDesc("edgelink_metadata_sync_age_seconds",
		"Seconds since the last complete listing: the metadata picture's lag (absent until the first).", nil, nil)
	descLastEvent = prometheus.NewDesc("edgelink_metadata_last_event_timestamp_seconds",
		"When the last change or watch event arrived (0: never).", nil, nil)
	descObjects = prometheus.NewDesc("edgelink_metadata_objects",
		"Objects in the metadata picture (kind: pods, nodes, namespaces, pools).", []string{"kind"}, nil)
	descVersion = prometheus.NewDesc("edgelink_metadata_version",
		"The picture's version; it increases with every published change.", nil, nil)
)

// Collector returns the metadata module's Prometheus collector (nil when
// the module is disabled).
func (m *Module) Collector() prometheus.Collector {
	if !m.enable {
		return nil
	}
	return collector{m}
}

type collector struct{ m *Module }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSynced, descConnected, descLastSync, descSyncAge, descLastEvent, descObjects, descVersion} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	collectStatus(ch, c.m.Status(), time.Now())
}

func collectStatus(ch chan<- prometheus.Metric, st metadata.Status, now time.Time) {
	metrics.Gauge(ch, descSynced, metrics.Bool(st.Synced))
	metrics.Gauge(ch, descConnected, metrics.Bool(st.Connected))
	metrics.Gauge(ch, descLastSync, metrics.Timestamp(st.LastSync))
	if !st.LastSync.IsZero() {
		metrics.Gauge(ch, descSyncAge, now.Sub(st.LastSync).Seconds())
	}
	metrics.Gauge(ch, descLastEvent, metrics.Timestamp(st.LastEvent))
	metrics.Gauge(ch, descObjects, float64(st.Pods), "pods")
	metrics.Gauge(ch, descObjects, float64(st.Nodes), "nodes")
	metrics.Gauge(ch, descObjects, float64(st.Namespaces), "namespaces")
	metrics.Gauge(ch, descObjects, float64(st.Pools), "pools")
	metrics.Gauge(ch, descVersion, float64(st.Version))
}
