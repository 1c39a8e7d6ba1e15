package metasync

import (
	"strings"
	"testing"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/metadata"
)

func TestFreshness(t *testing.T) {
	now := time.Unix(10000, 0)
	stale := 90 * time.Second
	tests := []struct {
		name   string
		st     metadata.Status
		status string
		detail string
	}{
		{"fresh", metadata.Status{Server: "http://127.0.0.1:10550", Synced: true, LastSync: now.Add(-20 * time.Second), Pods: 3},
			agentapi.CheckOK, "listed from http://127.0.0.1:10550 20s ago: 3 pods"},
		{"never synced, from disk", metadata.Status{Server: "http://127.0.0.1:10550", FromDisk: true, LastError: "pods: connection refused"},
			agentapi.CheckFail, "never listed from http://127.0.0.1:10550 since the agent started; running on the snapshot saved on disk; last error: pods: connection refused"},
		{"stale", metadata.Status{Server: "http://127.0.0.1:10550", Synced: true, LastSync: now.Add(-5 * time.Minute), LastError: "audit: timeout"},
			agentapi.CheckFail, "last complete listing from http://127.0.0.1:10550 5m0s ago (more than 1m30s); last error: audit: timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := freshness(tc.st, now, stale)
			if c.Status != tc.status || !strings.HasPrefix(c.Detail, tc.detail) || (c.Status == agentapi.CheckFail && !strings.Contains(c.Fix, "metaServer")) {
				t.Errorf("%+v", c)
			}
		})
	}
}
