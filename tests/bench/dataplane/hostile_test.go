package dataplane

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelink/edgelink/modules/routing"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/unixsock"
	"github.com/edgelink/edgelink/tests/bench/report"
	"github.com/edgelink/edgelink/tests/rogue"
	"github.com/edgelink/edgelink/tests/testutil"
)

// hostilePhases are the phases of the hostile-member benchmark, in order:
// the victim with its one working peer before the rogue connects; the
// rogue holding 32 idle packet streams; holding 32 probe streams it never
// reads the echoes of; flooding spoofed packets on as many packet streams
// as it can open; the victim after the rogue left.
var hostilePhases = []string{"baseline", "hold", "stall", "flood", "after"}

// memorySample is what one run of the hostile-member benchmark measured
// of the victim, per phase: the largest RSS and Go heap seen (baseline:
// the median; after: the last sample), in MiB.
type memorySample struct {
	rss, heap map[string]float64
	got       rogue.Result
	spoofed   uint64
}

// TestBenchHostileMember measures what a hostile member (a valid
// certificate, tests/rogue) costs the node it attacks in memory: the
// victim is bench-b of the edgelink_direct case, with bench-a as its
// working peer; the rogue runs in NodeA's namespace and goes through the
// phases above. Memory is a bound, not a speed: the table gives MiB, the
// growth of each phase's peak over the baseline beside the absolute
// figures.
func TestBenchHostileMember(t *testing.T) {
	runs := startBench(t, 2)
	if n, err := strconv.Atoi(os.Getenv("BENCH_HOSTILE_RUNS")); err == nil && n > 0 {
		runs = n
	}
	spec := rogue.Spec{Hostile: true, Hold: 4 * time.Second, Stall: 4 * time.Second, Flood: 5 * time.Second}
	fmt.Printf("victim: an agent with one working peer; the rogue member: 32 idle packet streams for %s, 32 stalled probe streams for %s, a spoofed flood on 8 packet streams for %s; %d run(s)\n",
		spec.Hold, spec.Stall, spec.Flood, runs)
	var samples []memorySample
	for r := 1; r <= runs; r++ {
		t.Run(fmt.Sprintf("hostile_member_run%d", r), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			env, err := NewEnv(ctx, t)
			if err != nil {
				t.Fatalf("topology: %v", err)
			}
			s, err := measureHostile(ctx, env, spec)
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, s)
			var b strings.Builder
			for _, p := range hostilePhases {
				fmt.Fprintf(&b, ", %s %.1f/%.1f", p, s.rss[p], s.heap[p])
			}
			fmt.Printf("hostile_member run %d/%d: RSS/heap MiB%s; %d of 32 packet streams and %d of 32 probe streams taken (%d KiB written on them), %d MiB flooded, %d spoofed packets dropped\n",
				r, runs, b.String(), s.got.PacketStreams, s.got.StalledStreams, s.got.Stalled>>10, s.got.Flooded>>20, s.spoofed)
		})
	}
	if interrupted.Load() {
		select {} // the signal handler exits
	}
	if len(samples) == 0 {
		t.Fatal("no run produced a measurement")
	}
	var results []report.Result
	for _, kind := range []string{"rss", "heap"} {
		for _, p := range hostilePhases {
			var abs, growth []float64
			for _, s := range samples {
				m := s.rss
				if kind == "heap" {
					m = s.heap
				}
				abs = append(abs, m[p])
				growth = append(growth, m[p]-m["baseline"])
			}
			results = append(results, report.Summarize("dataplane.hostile_member."+kind+"_"+p, "memory", "MiB", abs))
			if p != "baseline" {
				results = append(results, report.Summarize("dataplane.hostile_member."+kind+"_"+p+"_growth", "memory", "MiB", growth))
			}
		}
	}
	report.PrintTable(os.Stdout, results)
	if out := os.Getenv("BENCH_JSON"); out != "" {
		if err := report.AppendJSON(out, results); err != nil {
			t.Fatal(err)
		}
	}
}

// measureHostile runs the victim and its peer, then the rogue, and samples
// the victim's RSS and heap every 50 ms.
func measureHostile(ctx context.Context, env *Env, spec rogue.Spec) (memorySample, error) {
	t := env.T
	r, err := edgelinkCase{members: []string{"rogue"}}.start(ctx, env)
	if err != nil {
		return memorySample{}, err
	}
	victim, victimNode := r.agents[1], r.nodes[1]
	dir := filepath.Join(env.WorkDir, "rogue")
	key := filepath.Join(dir, "identity.key") // ca issue writes rogue.crt and rogue.key
	if _, err := r.run("identity", "--key", key); err != nil {
		return memorySample{}, err
	}
	if _, err := r.run("ca", "issue", "--dir", r.caDir, "--node", "rogue", "--out", dir, "--identity", key); err != nil {
		return memorySample{}, err
	}
	spec.Node, spec.CertFile, spec.KeyFile = "rogue", filepath.Join(dir, "rogue.crt"), filepath.Join(dir, "rogue.key")
	spec.CAFile, spec.IdentityFile = filepath.Join(r.caDir, "ca.crt"), key
	spec.Direct = victimNode.id
	spec.DirectAddrs = []string{fmt.Sprintf("/ip4/%s/tcp/%d", victimNode.ip, victimNode.port)}

	var st routing.Status
	if err := victim.GetJSON("/v1/dataplane", &st); err != nil {
		return memorySample{}, err
	}
	spoofedBefore := st.Stats.DropSpoofed

	sm := &sampler{pid: victim.PID(), socket: victim.Config.StatusSocket, phase: "baseline",
		rss: map[string]float64{}, heap: map[string]float64{}, profiles: os.Getenv("BENCH_HOSTILE_PPROF")}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sm.run(done) }() // routineSample
	stop := func() { close(done); wg.Wait() }
	time.Sleep(3 * time.Second) // baseline
	got := rogue.RunPhases(t, env.NodeA, spec, func(p string) {
		if p == "done" {
			p = "after"
		}
		sm.setPhase(p)
	})
	sm.setPhase("after") // the rogue has exited
	time.Sleep(3 * time.Second)
	stop()
	if sm.profiles != "" {
		sm.saveProfile("after")
	}
	if err := victim.GetJSON("/v1/dataplane", &st); err != nil {
		return memorySample{}, err
	}
	out := memorySample{rss: sm.rss, heap: sm.heap, got: got, spoofed: st.Stats.DropSpoofed - spoofedBefore}
	for _, p := range hostilePhases {
		if _, ok := out.rss[p]; !ok {
			return out, fmt.Errorf("no sample of the victim in phase %s", p)
		}
	}
	if sm.errs > 0 {
		t.Logf("%d samples of the victim failed: %v", sm.errs, sm.lastErr)
	}
	return out, nil
}

// sampler reads the victim's RSS (/proc) and Go heap (GET /v1/agent)
// every 50 ms, keeping each phase's largest (baseline: median; after:
// last). With profiles set (BENCH_HOSTILE_PPROF, a directory), it saves
// the victim's heap profile there at the end of each phase, after a GC
// (which then lowers the next phase's figures).
type sampler struct {
	pid      int
	socket   string
	profiles string

	mu        sync.Mutex // guards all below
	phase     string
	rss, heap map[string]float64
	baseRSS   []float64
	baseHeap  []float64
	errs      int
	lastErr   error
}

func (s *sampler) setPhase(p string) {
	s.mu.Lock()
	old := s.phase
	s.phase = p
	s.mu.Unlock()
	if old != p && s.profiles != "" {
		s.saveProfile(old)
		if p == "flood" { // what is live in the middle of it
			time.AfterFunc(3*time.Second, func() { s.saveProfile("flood-mid") })
		}
	}
}

func (s *sampler) run(done <-chan struct{}) {
	c := http.Client{Timeout: 2 * time.Second, Transport: unixsock.HTTPTransport(s.socket)}
	defer c.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		rss, err := rssMiB(s.pid)
		var info agentapi.AgentInfo
		if err == nil {
			err = testutil.GetJSON(&c, "/v1/agent", &info)
		}
		heap := float64(info.HeapBytes) / (1 << 20)
		s.mu.Lock()
		if err != nil {
			s.errs, s.lastErr = s.errs+1, err
		} else {
			switch s.phase {
			case "baseline":
				s.baseRSS, s.baseHeap = append(s.baseRSS, rss), append(s.baseHeap, heap)
				s.rss["baseline"] = report.Summarize("", "", "", s.baseRSS).Value
				s.heap["baseline"] = report.Summarize("", "", "", s.baseHeap).Value
			case "after":
				s.rss["after"], s.heap["after"] = rss, heap
			default:
				s.rss[s.phase], s.heap[s.phase] = max(s.rss[s.phase], rss), max(s.heap[s.phase], heap)
			}
		}
		s.mu.Unlock()
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) saveProfile(phase string) {
	c := http.Client{Timeout: 5 * time.Second, Transport: unixsock.HTTPTransport(s.socket)}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://agent/debug/pprof/heap?gc=1") // a GC first: the profile is as of the last one
	if err != nil {
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(s.profiles, fmt.Sprintf("heap-%d-%s.pb.gz", s.pid, phase)))
	if err != nil {
		return
	}
	_, _ = io.Copy(f, resp.Body)
	_ = f.Close()
}

// rssMiB is a process's resident set size (VmRSS), in MiB.
func rssMiB(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(data))
}

// parseVmRSS reads the VmRSS line of /proc/PID/status, in MiB.
func parseVmRSS(status string) (float64, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %v", v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/PID/status")
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS("Name:\tedgelink\nVmHWM:\t   40000 kB\nVmRSS:\t   30720 kB\nRssAnon:\t 20000 kB\n")
	if err != nil || got != 30 {
		t.Errorf("parseVmRSS = %v, %v; want 30", got, err)
	}
	if _, err := parseVmRSS("Name:\tzombie\n"); err == nil {
		t.Error("no error without a VmRSS line")
	}
}
