// Command cni benchmarks CNI ADD+DEL through libcni in a network namespace:
// edgelink-cni with host-local IPAM beside the reference bridge plugin with
// the same host-local, measured in the same run.
//
// Usage (root): go run ./tests/bench/cni -bin bin -host-local PATH -bridge PATH
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/edgelink/edgelink/tests/bench/report"
)

func main() {
	bin := flag.String("bin", "bin", "directory with edgelink-cni")
	hostLocal := flag.String("host-local", "", "host-local binary")
	bridge := flag.String("bridge", "", "reference bridge plugin binary")
	cycles := flag.Int("cycles", 100, "ADD+DEL cycles per run")
	runs := flag.Int("runs", 3, "runs per subject")
	out := flag.String("json", "bench-results.json", "results file")
	flag.Parse()
	if err := run(*bin, *hostLocal, *bridge, *cycles, *runs, *out); err != nil {
		fmt.Fprintln(os.Stderr, "cni bench:", err)
		os.Exit(1)
	}
}

type subject struct {
	name, pluginType string
	extra            map[string]any
}

func run(bin, hostLocal, bridge string, cycles, runs int, out string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces)")
	}
	work, err := os.MkdirTemp("", "edgelink-bench-cni-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	pluginDir := filepath.Join(work, "bin")
	_ = os.MkdirAll(pluginDir, 0o755)
	abs, _ := filepath.Abs(filepath.Join(bin, "edgelink-cni"))
	for name, src := range map[string]string{"edgelink-cni": abs, "host-local": hostLocal, "bridge": bridge} {
		if err := os.Symlink(src, filepath.Join(pluginDir, name)); err != nil {
			return err
		}
	}
	subjects := []subject{
		{"cni.bridge_host_local", "bridge", map[string]any{"bridge": "bench-ref0", "isGateway": true}},
		{"cni.edgelink_host_local", "edgelink-cni", map[string]any{"bridge": "bench-el0", "dataDir": filepath.Join(work, "state")}},
	}
	var results []report.Result
	for _, s := range subjects {
		var rates, addMs []float64
		for r := 0; r < runs; r++ {
			report.WaitQuiet(os.Stdout, 10*time.Second)
			rate, add, err := measure(work, pluginDir, s, cycles)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			rates, addMs = append(rates, rate), append(addMs, add)
		}
		results = append(results,
			report.Summarize(s.name+".add_del", "rate", "ops/s", rates),
			report.Summarize(s.name+".add", "latency", "ms", addMs))
	}
	report.PrintTable(os.Stdout, results)
	ref, el := results[0].Value, results[2].Value
	fmt.Printf("edgelink-cni ADD+DEL rate = %.2fx the reference bridge plugin (same host-local, same run)\n", el/ref)
	return report.AppendJSON(out, results)
}

// measure runs cycles ADD+DEL pairs in a fresh node namespace and returns
// pairs per second and the median ADD latency in ms.
func measure(work, pluginDir string, s subject, cycles int) (float64, float64, error) {
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

	plugin := map[string]any{"type": s.pluginType, "ipam": map[string]any{
		"type": "host-local", "ranges": [][]map[string]string{{{"subnet": "10.250.0.0/16"}}},
		"dataDir": filepath.Join(work, "host-local-"+s.name),
	}}
	for k, v := range s.extra {
		plugin[k] = v
	}
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "plugins": []any{plugin}})
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		return 0, 0, err
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, filepath.Join(work, "cache"), nil)
	rt := &libcni.RuntimeConf{ContainerID: "bench", NetNS: pod.Path(), IfName: "eth0"}
	var adds []float64
	start := time.Now()
	err = node.Do(func(ns.NetNS) error {
		for i := 0; i < cycles; i++ {
			rt.ContainerID = fmt.Sprintf("bench-%d", i)
			t0 := time.Now()
			if _, err := cni.AddNetworkList(context.Background(), list, rt); err != nil {
				return fmt.Errorf("ADD %d: %w", i, err)
			}
			adds = append(adds, float64(time.Since(t0).Microseconds())/1000)
			if err := cni.DelNetworkList(context.Background(), list, rt); err != nil {
				return fmt.Errorf("DEL %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	rate := float64(cycles) / time.Since(start).Seconds()
	return rate, report.Summarize("", "", "", adds).Value, nil
}
