// Command cni benchmarks pod network setup (CNI ADD+DEL through libcni in a
// network namespace) and IPAM, every subject beside a baseline measured in
// the same run:
//
//	cni.bridge_host_local       reference bridge plugin + host-local (baseline)
//	cni.edgelink_host_local     edgelink-cni + host-local
//	ipam.host_local_cni         = cni.edgelink_host_local, named for the IPAM table
//	ipam.spiderpool_cni         edgelink-cni + spiderpool binary + the agent's ipam socket
//	ipam.host_local_exec        the host-local binary alone (ADD+DEL, baseline)
//	ipam.socket                 POST+DELETE /v1/ipam/ip on the agent's socket alone
//
// Usage (root): go run ./tests/bench/cni -bin bin -host-local P -bridge P -spiderpool P
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/unixsock"
	"github.com/edgelink/edgelink/tests/bench/report"
)

type opts struct {
	bin, hostLocal, bridge, spiderpool string
	cycles, runs                       int
}

func main() {
	var o opts
	flag.StringVar(&o.bin, "bin", "bin", "directory with edgelink and edgelink-cni")
	flag.StringVar(&o.hostLocal, "host-local", "", "host-local binary")
	flag.StringVar(&o.bridge, "bridge", "", "reference bridge plugin binary")
	flag.StringVar(&o.spiderpool, "spiderpool", "", "spiderpool IPAM binary")
	flag.IntVar(&o.cycles, "cycles", 100, "ADD+DEL cycles per run")
	flag.IntVar(&o.runs, "runs", 3, "runs per subject")
	out := flag.String("json", "bench-results.json", "results file")
	flag.Parse()
	results, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cni bench:", err)
		os.Exit(1)
	}
	report.PrintTable(os.Stdout, results)
	get := func(name string) float64 {
		for _, r := range results {
			if r.Name == name {
				return r.Value
			}
		}
		return 0
	}
	fmt.Printf("edgelink-cni vs reference bridge (both host-local): %.2fx ADD+DEL rate\n",
		get("cni.edgelink_host_local.add_del")/get("cni.bridge_host_local.add_del"))
	fmt.Printf("full CNI path, spiderpool+ipam module vs host-local: %.2fx ADD+DEL rate\n",
		get("ipam.spiderpool_cni.add_del")/get("ipam.host_local_cni.add_del"))
	fmt.Printf("IPAM alone, ipam socket vs host-local exec: %.2fx ADD+DEL rate\n",
		get("ipam.socket.add_del")/get("ipam.host_local_exec.add_del"))
	if err := report.AppendJSON(*out, results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type subject struct {
	name    string
	measure func(cycles int) (rate, addMs float64, err error)
}

func run(o opts) ([]report.Result, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root (network namespaces)")
	}
	work, err := os.MkdirTemp("", "edgelink-bench-cni-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	pluginDir := filepath.Join(work, "bin")
	_ = os.MkdirAll(pluginDir, 0o755)
	absBin, _ := filepath.Abs(o.bin)
	for name, src := range map[string]string{"edgelink-cni": filepath.Join(absBin, "edgelink-cni"),
		"host-local": o.hostLocal, "bridge": o.bridge, "spiderpool": o.spiderpool} {
		if err := os.Symlink(src, filepath.Join(pluginDir, name)); err != nil {
			return nil, err
		}
	}
	socket, stopAgent, err := startAgent(filepath.Join(absBin, "edgelink"), work)
	if err != nil {
		return nil, err
	}
	defer stopAgent()

	hostLocalIPAM := func(tag string) map[string]any {
		return map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": "10.250.0.0/16"}}},
			"dataDir": filepath.Join(work, "host-local-"+tag)}
	}
	cniSubject := func(name, typ string, extra map[string]any, ipam map[string]any) subject {
		plugin := map[string]any{"type": typ, "ipam": ipam}
		for k, v := range extra {
			plugin[k] = v
		}
		return subject{name, func(cycles int) (float64, float64, error) {
			return measureCNI(work, pluginDir, plugin, cycles)
		}}
	}
	elExtra := map[string]any{"bridge": "bench-el0", "dataDir": filepath.Join(work, "state")}
	subjects := []subject{
		cniSubject("cni.bridge_host_local", "bridge", map[string]any{"bridge": "bench-ref0", "isGateway": true}, hostLocalIPAM("ref")),
		cniSubject("cni.edgelink_host_local", "edgelink-cni", elExtra, hostLocalIPAM("el")),
		cniSubject("ipam.spiderpool_cni", "edgelink-cni", elExtra, map[string]any{"type": "spiderpool",
			"ipam_unix_socket_path": socket, "log_file_path": filepath.Join(work, "spiderpool.log")}),
		{"ipam.host_local_exec", func(cycles int) (float64, float64, error) {
			return measureHostLocalExec(work, o.hostLocal, hostLocalIPAM("exec"), cycles)
		}},
		{"ipam.socket", func(cycles int) (float64, float64, error) { return measureSocket(socket, cycles) }},
	}
	var results []report.Result
	for _, s := range subjects {
		var rates, adds []float64
		for r := 0; r < o.runs; r++ {
			report.WaitQuiet(os.Stdout, 10*time.Second)
			rate, add, err := s.measure(o.cycles)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			rates, adds = append(rates, rate), append(adds, add)
		}
		results = append(results,
			report.Summarize(s.name+".add_del", "rate", "ops/s", rates),
			report.Summarize(s.name+".add", "latency", "ms", adds))
		if s.name == "cni.edgelink_host_local" { // the IPAM table's host-local baseline
			results = append(results,
				report.Summarize("ipam.host_local_cni.add_del", "rate", "ops/s", rates),
				report.Summarize("ipam.host_local_cni.add", "latency", "ms", adds))
		}
	}
	return results, nil
}

// startAgent runs `edgelink agent` with only the ipam module and a pool big
// enough for every cycle, and returns its socket.
func startAgent(edgelink, work string) (string, func(), error) {
	pools := `
kind: SpiderIPPool
metadata: {name: bench}
spec: {subnet: 10.251.0.0/16, ips: ["10.251.0.2-10.251.255.254"], gateway: 10.251.0.1, nodeName: [bench-node], default: true}
`
	poolFile := filepath.Join(work, "pools.yaml")
	if err := os.WriteFile(poolFile, []byte(pools), 0o600); err != nil {
		return "", nil, err
	}
	c := v1.NewDefault()
	c.NodeName = "bench-node"
	c.DataDir = filepath.Join(work, "agent")
	c.StatusSocket = filepath.Join(work, "agent.sock")
	c.Modules.MetaSync.Enable, c.Modules.Tunnel.Enable = false, false
	c.Modules.IPAM.SocketPath = filepath.Join(work, "ipam.sock")
	c.Modules.IPAM.PoolFile = poolFile
	data, _ := v1.Marshal(c)
	cfg := filepath.Join(work, "agent.yaml")
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		return "", nil, err
	}
	var log bytes.Buffer
	cmd := exec.Command(edgelink, "agent", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	socket := c.Modules.IPAM.SocketPath
	for i := 0; i < 200; i++ {
		if conn, err := net.Dial("unix", socket); err == nil {
			conn.Close()
			return socket, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("agent did not serve its ipam socket:\n%s", log.String())
}

// measureCNI runs cycles ADD+DEL pairs in a fresh node namespace and returns
// pairs per second and the median ADD latency in ms.
func measureCNI(work, pluginDir string, plugin map[string]any, cycles int) (float64, float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	node, err := testutils.NewNS()
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = node.Close(); _ = testutils.UnmountNS(node) }()
	pod, err := testutils.NewNS()
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = pod.Close(); _ = testutils.UnmountNS(pod) }()

	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "plugins": []any{plugin}})
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		return 0, 0, err
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, filepath.Join(work, "cache"), nil)
	var adds []float64
	start := time.Now()
	err = node.Do(func(ns.NetNS) error {
		for i := 0; i < cycles; i++ {
			id := fmt.Sprintf("bench-%d", i)
			rt := &libcni.RuntimeConf{ContainerID: id, NetNS: pod.Path(), IfName: "eth0", Args: [][2]string{
				{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "bench"}, {"K8S_POD_NAME", id},
				{"K8S_POD_INFRA_CONTAINER_ID", id}, {"K8S_POD_UID", "uid-" + id}}}
			t0 := time.Now()
			if _, err := cni.AddNetworkList(context.Background(), list, rt); err != nil {
				return fmt.Errorf("ADD %d: %w", i, err)
			}
			adds = append(adds, ms(time.Since(t0)))
			if err := cni.DelNetworkList(context.Background(), list, rt); err != nil {
				return fmt.Errorf("DEL %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return float64(cycles) / time.Since(start).Seconds(), report.Summarize("", "", "", adds).Value, nil
}

// measureHostLocalExec executes the host-local binary directly.
func measureHostLocalExec(work, hostLocal string, ipam map[string]any, cycles int) (float64, float64, error) {
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "type": "x", "ipam": ipam})
	pod, err := testutils.NewNS() // host-local insists on a netns other than its own
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = pod.Close(); _ = testutils.UnmountNS(pod) }()
	var adds []float64
	start := time.Now()
	for i := 0; i < cycles; i++ {
		args := &invoke.Args{ContainerID: fmt.Sprintf("exec-%d", i), NetNS: pod.Path(), IfName: "eth0", Path: filepath.Dir(hostLocal)}
		args.Command = "ADD"
		t0 := time.Now()
		if _, err := invoke.ExecPluginWithResult(context.Background(), hostLocal, conf, args, nil); err != nil {
			return 0, 0, err
		}
		adds = append(adds, ms(time.Since(t0)))
		args.Command = "DEL"
		if err := invoke.ExecPluginWithoutResult(context.Background(), hostLocal, conf, args, nil); err != nil {
			return 0, 0, err
		}
	}
	return float64(cycles) / time.Since(start).Seconds(), report.Summarize("", "", "", adds).Value, nil
}

// measureSocket allocates and releases over the agent's socket, as the
// spiderpool binary does (health check, POST; health check, DELETE).
func measureSocket(socket string, cycles int) (float64, float64, error) {
	client := &http.Client{Transport: unixsock.HTTPTransport(socket)}
	defer client.CloseIdleConnections()
	do := func(method, path, body string) error {
		req, _ := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
		}
		return nil
	}
	var adds []float64
	start := time.Now()
	for i := 0; i < cycles; i++ {
		id := fmt.Sprintf("sock-%d-%d", time.Now().UnixNano(), i)
		body := fmt.Sprintf(`{"containerID":"%s","ifName":"eth0","netNamespace":"/x","podNamespace":"bench","podName":"%s","podUID":"uid-%s"}`, id, id, id)
		t0 := time.Now()
		if err := do("GET", "/v1/ipam/healthy", ""); err != nil {
			return 0, 0, err
		}
		if err := do("POST", "/v1/ipam/ip", body); err != nil {
			return 0, 0, err
		}
		adds = append(adds, ms(time.Since(t0)))
		if err := do("GET", "/v1/ipam/healthy", ""); err != nil {
			return 0, 0, err
		}
		if err := do("DELETE", "/v1/ipam/ip", body); err != nil {
			return 0, 0, err
		}
	}
	return float64(cycles) / time.Since(start).Seconds(), report.Summarize("", "", "", adds).Value, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
