package dataplane

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/bench/report"
	"github.com/edgelink/edgelink/tests/rogue"
	"github.com/edgelink/edgelink/tests/testutil"
)

// interrupted is set on SIGINT/SIGTERM: the handler exits the process once
// it has swept; measurements it broke are not reported.
var interrupted atomic.Bool

func TestMain(m *testing.M) {
	rogue.RunIfChild() // the hostile-member benchmark's rogue (hostile_test.go)
	// An interrupted benchmark still removes its namespaces and the
	// processes in them (t.Cleanup does not run on a signal).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		interrupted.Store(true)
		fmt.Fprintf(os.Stderr, "dataplane bench: %v: removing its namespaces\n", s)
		Sweep(true)
		testutil.RemoveBuilt()
		os.Exit(130)
	}()
	os.Exit(testutil.Main(m))
}

// startBench skips t unless it runs under `make bench` (EDGELINK_BENCH=1),
// needs root, sweeps what killed runs left, and returns the number of
// runs: full, or 1 with BENCH_QUICK=1.
func startBench(t *testing.T, full int) int {
	t.Helper()
	if os.Getenv("EDGELINK_BENCH") == "" {
		t.Skip("benchmark: run through `make bench` (EDGELINK_BENCH=1)")
	}
	testutil.RequireRoot(t)
	Sweep(false)
	if os.Getenv("BENCH_QUICK") != "" {
		return 1
	}
	return full
}

// metric is one reported quantity of a Sample.
type metric struct {
	key, kind, unit string
	lowerIsBetter   bool
	get             func(Sample) float64
}

var metrics = []metric{
	{"tcp1", "throughput", "Gbit/s", false, func(s Sample) float64 { return s.TCP1 }},
	{"tcp4", "throughput", "Gbit/s", false, func(s Sample) float64 { return s.TCP4 }},
	{"udp64_pps", "rate", "pps", false, func(s Sample) float64 { return s.UDP64PPS }},
	{"udp64_loss", "loss", "%", true, func(s Sample) float64 { return s.UDP64Loss }},
	{"udp1400_pps", "rate", "pps", false, func(s Sample) float64 { return s.UDP1400PPS }},
	{"udp1400_loss", "loss", "%", true, func(s Sample) float64 { return s.UDP1400Loss }},
	{"rtt", "latency", "ms", true, func(s Sample) float64 { return s.RTT }},
	{"cpu_per_gib", "cpu", "s/GiB", true, func(s Sample) float64 { return s.CPUPerGiB }},
	{"machine_cpu_per_gib", "cpu", "s/GiB", true, func(s Sample) float64 { return s.MachineCPUPerGiB }},
}

func TestBenchDataplane(t *testing.T) {
	runs := startBench(t, 3)
	for _, tool := range []string{"ip", "iperf3", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (Debian: apt-get install --no-install-recommends iperf3 iputils-ping iproute2)", tool)
		}
	}
	selected, err := selectCases(os.Getenv("BENCH_DATAPLANE_CASES"))
	if err != nil {
		t.Fatal(err)
	}
	s := Settings{TCPSeconds: 5, UDPSeconds: 5, Pings: pings(), Quiet: func() { report.WaitQuiet(os.Stdout, 10*time.Second) }}
	fmt.Printf("data path PodA -> PodB: iperf3 TCP -t %d (1 and 4 streams), UDP -b 0 -t %d (64 and 1400 B), ping -c %d -i 0.01 (median); %d run(s), cases %s\n",
		s.TCPSeconds, s.UDPSeconds, s.Pings, runs, caseNames(selected))

	samples := map[string][]Sample{}
	// Runs interleave the cases, so slow drift of a shared machine hits
	// every case alike.
	for r := 1; r <= runs; r++ {
		for _, c := range selected {
			t.Run(fmt.Sprintf("%s_run%d", c.Name(), r), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
				defer cancel()
				env, err := NewEnv(ctx, t)
				if err != nil {
					t.Fatalf("topology: %v", err)
				}
				pids, cleanup, err := c.Setup(ctx, env)
				if cleanup != nil {
					t.Cleanup(cleanup)
				}
				if err != nil {
					t.Fatalf("%s setup: %v", c.Name(), err)
				}
				if err := env.WaitReachable(ctx, 20*time.Second); err != nil {
					t.Fatalf("%s: %v", c.Name(), err)
				}
				smp, err := Measure(ctx, env, pids, s)
				if err != nil {
					t.Fatalf("%s: %v", c.Name(), err)
				}
				samples[c.Name()] = append(samples[c.Name()], smp)
				fmt.Printf("%s run %d/%d: tcp1 %.2f Gbit/s, tcp4 %.2f Gbit/s, udp64 %.0f pps (%.1f%% loss), udp1400 %.0f pps (%.1f%% loss), rtt %.3f ms, cpu %.2f s/GiB (tunnel), %.2f s/GiB (machine)\n",
					c.Name(), r, runs, smp.TCP1, smp.TCP4, smp.UDP64PPS, smp.UDP64Loss, smp.UDP1400PPS, smp.UDP1400Loss, smp.RTT, smp.CPUPerGiB, smp.MachineCPUPerGiB)
			})
		}
	}
	if interrupted.Load() {
		select {} // the signal handler exits
	}
	results := summarize(selected, samples)
	if len(results) == 0 {
		t.Fatal("no case produced a measurement")
	}
	report.PrintTable(os.Stdout, results)
	printRatios(os.Stdout, results)
	if out := os.Getenv("BENCH_JSON"); out != "" {
		if err := report.AppendJSON(out, results); err != nil {
			t.Fatal(err)
		}
	}
}

// selectCases picks cases by a comma-separated list of names (all when
// empty), e.g. BENCH_DATAPLANE_CASES=veth,edgelink_direct.
func selectCases(list string) ([]Case, error) {
	if strings.TrimSpace(list) == "" {
		return cases, nil
	}
	var out []Case
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, c := range cases {
			if c.Name() == strings.TrimSpace(name) {
				out, found = append(out, c), true
			}
		}
		if !found {
			return nil, fmt.Errorf("BENCH_DATAPLANE_CASES: no case %q (have %s)", name, caseNames(cases))
		}
	}
	return out, nil
}

func caseNames(cs []Case) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name())
	}
	return strings.Join(n, ",")
}

// summarize makes one median Result per metric and case, grouped by metric
// so every subject sits beside its baselines. A metric that is NaN in any
// run (tunnel CPU of a kernel path) is left out for that case.
func summarize(cs []Case, samples map[string][]Sample) []report.Result {
	var results []report.Result
	for _, m := range metrics {
		for _, c := range cs {
			ss := samples[c.Name()]
			if len(ss) == 0 {
				continue
			}
			var v []float64
			for _, s := range ss {
				if x := m.get(s); !math.IsNaN(x) {
					v = append(v, x)
				}
			}
			if len(v) == len(ss) {
				results = append(results, report.Summarize("dataplane."+c.Name()+"."+m.key, m.kind, m.unit, v))
			}
		}
	}
	return results
}

// printRatios prints every case's medians as multiples of the baselines'
// medians of the same run.
func printRatios(w io.Writer, results []report.Result) {
	value := map[string]float64{}
	for _, r := range results {
		value[r.Name] = r.Value
	}
	var lines []string
	for _, m := range metrics {
		if m.key == "udp64_loss" || m.key == "udp1400_loss" {
			continue // percentages near 0 make meaningless ratios
		}
		for _, r := range results {
			parts := strings.Split(r.Name, ".")
			if len(parts) != 3 || parts[2] != m.key || parts[1] == BaselineVeth {
				continue
			}
			var of []string
			for _, base := range []string{BaselineWireGuard, BaselineNebula, BaselineVeth} {
				b, ok := value["dataplane."+base+"."+m.key]
				if ok && base != parts[1] && b != 0 {
					of = append(of, fmt.Sprintf("%.2fx of %s", r.Value/b, base))
				}
			}
			if len(of) > 0 {
				lines = append(lines, fmt.Sprintf("  %-42s %s\n", r.Name, strings.Join(of, ", ")))
			}
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "ratios of medians, same run (throughput/pps: higher is better; rtt/cpu: lower is better):")
		fmt.Fprint(w, strings.Join(lines, ""))
	}
}

// Parsers, checked without root or a benchmark run.

func TestParseIperfUDP(t *testing.T) {
	out := `{"start":{},"end":{"sum":{"seconds":2,"packets":1454910,"lost_packets":31480},
	"sum_sent":{"seconds":2.000016,"bytes":93114240,"packets":1454910,"lost_packets":0},
	"sum_received":{"seconds":2.000086,"bytes":91099136,"packets":1454904,"lost_packets":31480}}}`
	r, err := parseIperf([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	pps, loss := r.udpRates()
	if got := pps * 2.000086; math.Abs(got-1423424) > 1 {
		t.Errorf("received %f datagrams, want 1423424", got)
	}
	if want := 100 * (1 - 1423424.0/1454910); math.Abs(loss-want) > 1e-9 {
		t.Errorf("loss %f%%, want %f%%", loss, want)
	}
	if _, err := parseIperf([]byte(`{"start":{},"end":{},"error":"unable to connect to server"}`)); err == nil || !strings.Contains(err.Error(), "unable to connect") {
		t.Errorf("error report not surfaced: %v", err)
	}
}

func TestParsePingAndStat(t *testing.T) {
	out := "PING 10.244.2.2 (10.244.2.2) 56(84) bytes of data.\n" +
		"64 bytes from 10.244.2.2: icmp_seq=1 ttl=62 time=0.412 ms\n" +
		"64 bytes from 10.244.2.2: icmp_seq=2 ttl=62 time=9.90 ms\n" +
		"64 bytes from 10.244.2.2: icmp_seq=3 ttl=62 time=0.388 ms\n" +
		"\n--- 10.244.2.2 ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss, time 20ms\n" +
		"rtt min/avg/max/mdev = 0.388/3.566/9.900/4.478 ms\n"
	if med, err := parsePingMedian(out); err != nil || med != 0.412 {
		t.Errorf("ping median = %v, %v; want 0.412", med, err)
	}
	if _, err := parsePingMedian("50 packets transmitted, 0 received, 100% packet loss"); err == nil {
		t.Error("no error on a ping without answers")
	}
	ticks, err := parseStatCPU("4242 (wire guard) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 9 0 100 0 0")
	if err != nil || ticks != 1234+567 {
		t.Errorf("stat cpu = %v, %v; want 1801", ticks, err)
	}
}

// pings is how many pings the RTT takes its median of: BENCH_PINGS, or
// 500 (5 s per case and run).
func pings() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_PINGS")); err == nil && n > 0 {
		return n
	}
	return 500
}
