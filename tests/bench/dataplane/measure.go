package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sample is one run of one case, all measured from PodA to PodB.
type Sample struct {
	TCP1, TCP4              float64 // Gbit/s received, 1 and 4 TCP streams
	UDP64PPS, UDP1400PPS    float64 // UDP datagrams received per second (-b 0)
	UDP64Loss, UDP1400Loss  float64 // % of the datagrams sent that were not received
	RTT                     float64 // ms, ping average
	CPUPerGiB               float64 // the case's processes: CPU s per GiB in the tcp1 run; NaN without processes
	MachineCPUPerGiB        float64 // the whole machine (both ends, iperf3, kernel): CPU s per GiB in the tcp1 run
	TCP1Bytes, TCP1CPUTotal float64 // what CPUPerGiB was computed from
}

// Settings are the knobs of one measurement pass.
type Settings struct {
	TCPSeconds, UDPSeconds int
	Pings                  int
	// Quiet is called before each timed run (report.WaitQuiet).
	Quiet func()
}

const iperfPort = "5201"

// WaitReachable pings PodB from PodA until one answer or timeout.
func (e *Env) WaitReachable(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if _, err = e.Exec(ctx, e.PodA, "ping", "-c", "1", "-W", "1", e.PodBIP.String()); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s does not reach %s within %s: %v", e.PodAIP, e.PodBIP, timeout, err)
}

// Measure runs every measurement once; pids are the case's processes.
func Measure(ctx context.Context, e *Env, pids []int, s Settings) (Sample, error) {
	var out Sample
	var err error
	if out.RTT, err = e.ping(ctx, s); err != nil {
		return out, err
	}

	cpu0, err := processCPU(pids)
	if err != nil {
		return out, err
	}
	m0, _ := machineCPU()
	tcp1, err := e.iperf(ctx, s, "-t", fmt.Sprint(s.TCPSeconds))
	if err != nil {
		return out, fmt.Errorf("tcp1: %w", err)
	}
	cpu1, err := processCPU(pids)
	if err != nil {
		return out, fmt.Errorf("tunnel process gone during tcp1: %w", err)
	}
	m1, _ := machineCPU()
	out.TCP1 = tcp1.End.SumReceived.BitsPerSecond / 1e9
	out.TCP1Bytes = tcp1.End.SumReceived.Bytes
	gib := out.TCP1Bytes / (1 << 30)
	out.CPUPerGiB = math.NaN()
	if len(pids) > 0 && gib > 0 {
		out.TCP1CPUTotal = cpu1 - cpu0
		out.CPUPerGiB = out.TCP1CPUTotal / gib
	}
	if gib > 0 {
		out.MachineCPUPerGiB = (m1 - m0) / gib
	}

	tcp4, err := e.iperf(ctx, s, "-t", fmt.Sprint(s.TCPSeconds), "-P", "4")
	if err != nil {
		return out, fmt.Errorf("tcp4: %w", err)
	}
	out.TCP4 = tcp4.End.SumReceived.BitsPerSecond / 1e9

	// udp64: 64-byte datagrams; udp1400: 1400-byte IP packets (1372
	// bytes of payload), which fit the tunnels' 1420-byte MTU unfragmented.
	for _, u := range []struct {
		size, payload int
		pps, loss     *float64
	}{{64, 64, &out.UDP64PPS, &out.UDP64Loss}, {1400, 1372, &out.UDP1400PPS, &out.UDP1400Loss}} {
		r, err := e.iperf(ctx, s, "-t", fmt.Sprint(s.UDPSeconds), "-u", "-b", "0", "-l", fmt.Sprint(u.payload))
		if err != nil {
			return out, fmt.Errorf("udp%d: %w", u.size, err)
		}
		*u.pps, *u.loss = r.udpRates()
	}
	return out, nil
}

type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         float64 `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Packets       float64 `json:"packets"`
	LostPackets   float64 `json:"lost_packets"`
}

type iperfResult struct {
	Error string `json:"error"`
	End   struct {
		Sum         iperfSum `json:"sum"`
		SumSent     iperfSum `json:"sum_sent"`
		SumReceived iperfSum `json:"sum_received"`
	} `json:"end"`
}

func parseIperf(data []byte) (*iperfResult, error) {
	var r iperfResult
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("iperf3 output: %v: %.300s", err, data)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.Seconds == 0 { // iperf3 before 3.11 has only "sum" for UDP
		r.End.SumReceived = r.End.Sum
	}
	if r.End.SumReceived.Seconds == 0 {
		return nil, fmt.Errorf("iperf3 output without a receiver summary: %.300s", data)
	}
	return &r, nil
}

// udpRates: datagrams received per second, and the % of those sent that
// never arrived (counted against what the sender sent, so losses at the
// tail count too).
func (r *iperfResult) udpRates() (pps, lossPct float64) {
	rcv := r.End.SumReceived
	got := rcv.Packets - rcv.LostPackets
	pps = got / rcv.Seconds
	sent := r.End.SumSent.Packets
	if sent == 0 {
		sent = rcv.Packets
	}
	if sent > 0 {
		lossPct = math.Max(0, 100*(1-got/sent))
	}
	return pps, lossPct
}

// iperf runs a one-shot iperf3 server in PodB and the client in PodA with
// args, and returns the client's JSON report.
func (e *Env) iperf(ctx context.Context, s Settings, args ...string) (*iperfResult, error) {
	srv, err := e.Start(e.PodB, nil, "iperf3", "-s", "-1", "--forceflush", "-p", iperfPort, "-B", e.PodBIP.String())
	if err != nil {
		return nil, err
	}
	defer func() {
		if !srv.Wait(5 * time.Second) {
			srv.Stop(time.Second)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = srv.WaitLog(wctx, "Server listening")
	cancel()
	if err != nil {
		return nil, err
	}
	if s.Quiet != nil {
		s.Quiet()
	}
	secs := 10
	for i, a := range args {
		if a == "-t" && i+1 < len(args) {
			secs, _ = strconv.Atoi(args[i+1])
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	out, err := e.Exec(cctx, e.PodA, "iperf3", append([]string{"-c", e.PodBIP.String(), "-p", iperfPort, "-J", "--connect-timeout", "5000"}, args...)...)
	r, perr := parseIperf([]byte(out))
	if perr != nil {
		if err != nil {
			return nil, fmt.Errorf("%v (%v)", perr, err)
		}
		return nil, perr
	}
	return r, err
}

var rttReply = regexp.MustCompile(`(?m)^\d+ bytes from .* time=([0-9.]+) ms`)

// ping: median RTT of s.Pings pings, 10 ms apart (the median, not ping's
// average: one stray wake-up on a shared machine moves an average of
// sub-millisecond times more than a path's real difference).
func (e *Env) ping(ctx context.Context, s Settings) (float64, error) {
	if s.Quiet != nil {
		s.Quiet()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := e.Exec(ctx, e.PodA, "ping", "-c", fmt.Sprint(s.Pings), "-i", "0.01", "-W", "2", e.PodBIP.String())
	if err != nil {
		return 0, fmt.Errorf("ping: %v: %s", err, out)
	}
	return parsePingMedian(out)
}

func parsePingMedian(out string) (float64, error) {
	var rtts []float64
	for _, m := range rttReply.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, fmt.Errorf("ping: %q: %v", m[0], err)
		}
		rtts = append(rtts, v)
	}
	if len(rtts) == 0 {
		return 0, fmt.Errorf("ping: no replies in %.300q", out)
	}
	slices.Sort(rtts)
	if n := len(rtts); n%2 == 0 {
		return (rtts[n/2-1] + rtts[n/2]) / 2, nil
	}
	return rtts[len(rtts)/2], nil
}

// userHZ is the unit of /proc times (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

// processCPU sums utime+stime (all threads) of pids, in seconds.
func processCPU(pids []int) (float64, error) {
	var ticks float64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		t, err := parseStatCPU(string(data))
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += t
	}
	return ticks / userHZ, nil
}

// parseStatCPU returns utime+stime (fields 14 and 15) of a /proc/PID/stat
// line; the command name (field 2) may hold spaces and parentheses.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat %q", stat)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	return ut + st, nil
}

// machineCPU is the CPU time the whole machine spent busy (user, nice,
// system, irq, softirq over all CPUs), in seconds.
func machineCPU() (float64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("malformed /proc/stat")
	}
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, _ := strconv.ParseFloat(f[i], 64)
		busy += v
	}
	return busy / userHZ, nil
}
