package dataplane

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/bench/report"
)

// TestBenchColdPath measures paths on demand (modules.tunnel.pathIdleTimeout)
// on the edgelink_direct setup: per run, fresh agents that know each other
// but hold no path; pod A's first ping to pod B (its echo waits in A's
// send queue while A dials B, both prove membership and the first probe
// answers) against the median of the pings that follow on the warm path.
// The ratio of the two is the cold path's cost in warm round trips.
func TestBenchColdPath(t *testing.T) {
	runs := startBench(t, 3)
	c := edgelinkCase{pathIdle: "5m"}
	var cold, warm, ratio []float64
	for r := 1; r <= runs; r++ {
		t.Run(fmt.Sprintf("run%d", r), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			env, err := NewEnv(ctx, t)
			if err != nil {
				t.Fatalf("topology: %v", err)
			}
			if _, err := c.start(ctx, env); err != nil {
				t.Fatalf("setup: %v", err)
			}
			report.WaitQuiet(os.Stdout, 10*time.Second)
			out, err := env.Exec(ctx, env.PodA, "ping", "-c", "1", "-W", "15", env.PodBIP.String())
			if err != nil {
				t.Fatalf("first ping on the cold path: %v: %s", err, out)
			}
			first, err := parsePingMedian(out)
			if err != nil {
				t.Fatal(err)
			}
			out, err = env.Exec(ctx, env.PodA, "ping", "-c", "200", "-i", "0.01", "-W", "2", env.PodBIP.String())
			if err != nil {
				t.Fatalf("pings on the warm path: %v: %s", err, out)
			}
			med, err := parsePingMedian(out)
			if err != nil {
				t.Fatal(err)
			}
			cold, warm, ratio = append(cold, first), append(warm, med), append(ratio, first/med)
			fmt.Printf("cold path run %d/%d: first ping %.3f ms, warm %.3f ms (%.0f warm round trips)\n", r, runs, first, med, first/med)
		})
	}
	if len(cold) == 0 {
		t.Fatal("no run produced a measurement")
	}
	results := []report.Result{
		report.Summarize("coldpath.edgelink_direct.first_ping", "latency", "ms", cold),
		report.Summarize("coldpath.edgelink_direct.warm_ping", "latency", "ms", warm),
		report.Summarize("coldpath.edgelink_direct.first_in_warm_rtts", "ratio", "x", ratio),
	}
	report.PrintTable(os.Stdout, results)
	if out := os.Getenv("BENCH_JSON"); out != "" {
		if err := report.AppendJSON(out, results); err != nil {
			t.Fatal(err)
		}
	}
}
