// Package metasyncbench measures how fast a change in the kube-apiserver
// reaches the metasync snapshot, on an edge node (through cloudcore,
// edgecore and the metaServer) and on a cloud node, beside the metaServer's
// own watch delay measured in the same run, and the agent's memory with
// 5,000 pods beside an empty cluster. Run by `make bench` (EDGELINK_BENCH=1).
package metasyncbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/tests/bench/report"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/metaprobe"
	"github.com/edgelink/edgelink/tests/testutil"
)

func TestMain(m *testing.M) {
	metaprobe.RunIfChild()
	code := cluster.Main(m)
	testutil.RemoveBuilt()
	os.Exit(code)
}

func TestBenchMetasync(t *testing.T) {
	if os.Getenv("EDGELINK_BENCH") == "" {
		t.Skip("benchmark: run through `make bench` (EDGELINK_BENCH=1)")
	}
	testutil.RequireRoot(t)
	updates, pods := 1000, 5000
	if os.Getenv("BENCH_QUICK") != "" {
		updates, pods = 100, 500
	}
	cp := cluster.Start(t, cluster.Options{})
	e := cp.AddEdgeNode(t, "bench-edge")
	cp.CreatePod(t, "default", "bench-pod", e.Name, nil, nil)

	raw := watchMetaServer(t, e)
	edge := metaprobe.Start(t, e.NetNS, metaprobe.Config{Source: v1.SourceMetaServer, Server: e.MetaServer, SnapshotPath: filepath.Join(t.TempDir(), "e.json")})
	cloud := metaprobe.Start(t, "", metaprobe.Config{Source: v1.SourceKubeconfig, Kubeconfig: cp.Kubeconfig, SnapshotPath: filepath.Join(t.TempDir(), "c.json")})
	for _, p := range []*metaprobe.Probe{edge, cloud} {
		p.WaitFor("sync", 60*time.Second, func(ev metaprobe.Event) bool { return ev.Status.Synced })
	}
	report.WaitQuiet(os.Stdout, 10*time.Second)

	var rawD, edgeD, cloudD []float64
	ctx := context.Background()
	for i := 0; i < updates; i++ {
		ip := fmt.Sprintf("10.%d.%d.%d", 200+i/65536, (i/256)%256, i%256)
		e0, c0 := edge.EventCount(), cloud.EventCount()
		patch := fmt.Sprintf(`{"status":{"phase":"Running","podIP":%q,"podIPs":[{"ip":%q}]}}`, ip, ip)
		if _, err := cp.Client.CoreV1().Pods("default").Patch(ctx, "bench-pod", types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		rawAt := raw.waitIP(t, ip)
		carries := func(ev metaprobe.Event) bool { return ev.PodIPs["default/bench-pod"] == ip }
		ev1 := edge.WaitForSince(e0, "edge "+ip, 10*time.Second, carries)
		ev2 := cloud.WaitForSince(c0, "cloud "+ip, 10*time.Second, carries)
		rawD = append(rawD, ms(rawAt.Sub(t0)))
		edgeD = append(edgeD, ms(ev1.Time.Sub(t0)))
		cloudD = append(cloudD, ms(ev2.Time.Sub(t0)))
	}
	results := []report.Result{}
	for _, s := range []struct {
		name string
		d    []float64
	}{{"metasync.metaserver_watch", rawD}, {"metasync.apiserver_to_snapshot_edge", edgeD}, {"metasync.apiserver_to_snapshot_cloud", cloudD}} {
		med := report.Summarize(s.name+".median", "delay", "ms", s.d)
		p99 := percentile(s.d, 0.99)
		results = append(results, med, report.Result{Name: s.name + ".p99", Metric: "delay", Value: p99, Unit: "ms", Runs: len(s.d), Stat: "p99", Min: med.Min, Max: med.Max})
	}

	// Memory: the real agent (metasync only) synced with an empty cluster,
	// then with `pods` pods on 200 nodes.
	rss0 := agentRSS(t, cp, 0)
	populate(t, cp, pods)
	rssN := agentRSS(t, cp, pods)
	results = append(results,
		report.Result{Name: "metasync.agent_rss.pods0", Metric: "memory", Value: rss0, Unit: "MiB", Runs: 1, Stat: "single", Min: rss0, Max: rss0},
		report.Result{Name: fmt.Sprintf("metasync.agent_rss.pods%d", pods), Metric: "memory", Value: rssN, Unit: "MiB", Runs: 1, Stat: "single", Min: rssN, Max: rssN})
	report.PrintTable(os.Stdout, results)
	fmt.Printf("edge snapshot delay = metaServer watch delay + %.2f ms (median); cloud node: %.2f ms median\n",
		results[2].Value-results[0].Value, results[4].Value)
	if out := os.Getenv("BENCH_JSON"); out != "" {
		if err := report.AppendJSON(out, results); err != nil {
			t.Fatal(err)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(v []float64, p float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// rawWatch is a plain watch on the metaServer, inside the edge's netns:
// the delay the metaServer itself adds.
type rawWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
	cond *sync.Cond
}

func watchMetaServer(t *testing.T, e *cluster.EdgeNode) *rawWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	client := cluster.NetNSHTTPClient(e.NetNSPath)
	client.Timeout = 0
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.MetaServer+"/api/v1/pods?watch=true", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	w := &rawWatch{seen: map[string]time.Time{}}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev struct {
				Object corev1.Pod `json:"object"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Object.Name != "bench-pod" {
				continue
			}
			w.mu.Lock()
			if _, ok := w.seen[ev.Object.Status.PodIP]; !ok {
				w.seen[ev.Object.Status.PodIP] = time.Now()
			}
			w.cond.Broadcast()
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *rawWatch) waitIP(t *testing.T, ip string) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	timer := time.AfterFunc(10*time.Second, func() { w.mu.Lock(); w.cond.Broadcast(); w.mu.Unlock() })
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if at, ok := w.seen[ip]; ok {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("metaServer watch never showed %s", ip)
		}
		w.cond.Wait()
	}
}

// populate creates pods on 200 nodes.
func populate(t *testing.T, cp *cluster.ControlPlane, pods int) {
	t.Helper()
	ctx := context.Background()
	var nodes []string
	for i := 0; i < 200; i++ {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bn%03d", i)}}
		if _, err := cp.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n.Name)
	}
	err := cp.CreatePods(ctx, "bench", "bp", pods, nodes, func(i int) string {
		return fmt.Sprintf("10.%d.%d.%d", 100+i/65536, (i/256)%256, i%256)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// agentRSS starts the real agent with only metasync (cloud-node source),
// waits until its snapshot on disk holds at least `pods` pods, lets it
// settle, and returns its resident memory in MiB.
func agentRSS(t *testing.T, cp *cluster.ControlPlane, pods int) float64 {
	t.Helper()
	c := v1.NewDefault()
	c.NodeName = "bench-agent"
	c.DataDir = t.TempDir()
	c.Modules.IPAM.Enable, c.Modules.Tunnel.Enable = false, false
	c.Modules.MetaSync.Source, c.Modules.MetaSync.Kubeconfig = v1.SourceKubeconfig, cp.Kubeconfig
	a := testutil.NewAgent(t, c, "")
	a.Start("Metadata synced")
	defer a.Stop()
	snap := filepath.Join(c.DataDir, "metasync", "snapshot.json")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		data, _ := os.ReadFile(snap)
		var s struct {
			Pods map[string]json.RawMessage `json:"pods"`
		}
		if json.Unmarshal(data, &s) == nil && len(s.Pods) >= pods {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent snapshot never reached %d pods", pods)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	return rssMiB(t, a.PID())
}

func rssMiB(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
