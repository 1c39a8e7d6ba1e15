package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/edgelink/edgelink/cni/install"
	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/unixsock"
	"github.com/edgelink/edgelink/tests/testutil"
)

// Pools for two edge nodes: disjoint slices of one cluster subnet, as
// SpiderPool requires, each pinned to its node.
const twoNodePools = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: edge-1-v4}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.2-10.244.5.254"], gateway: 10.244.5.1, nodeName: [edge-1], default: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: edge-1-v6}
spec: {subnet: "fd00:244::/48", ips: ["fd00:244:0:5::2-fd00:244:0:5::ff"], gateway: "fd00:244:0:5::1", nodeName: [edge-1], default: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: edge-2-v4}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.6.2-10.244.6.254"], gateway: 10.244.6.1, nodeName: [edge-2], default: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: tiny}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.9.2-10.244.9.3"], gateway: 10.244.9.1, nodeName: [edge-1]}
`

// ipamNode is a node whose pods get addresses through the real chain:
// libcni -> edgelink-cni -> spiderpool binary -> the agent's ipam socket.
type ipamNode struct {
	*cniNode
	agent  *testutil.Agent
	socket string
	db     string
}

func newIPAMNode(t *testing.T, nodeName, pools string) *ipamNode {
	t.Helper()
	testutil.RequireRoot(t)
	dir := t.TempDir()
	poolFile := filepath.Join(dir, "pools.yaml")
	if err := os.WriteFile(poolFile, []byte(pools), 0o600); err != nil {
		t.Fatal(err)
	}
	c := v1.NewDefault()
	c.NodeName = nodeName
	c.DataDir = filepath.Join(dir, "data")
	c.Modules.MetaSync.Enable = false
	c.Modules.Tunnel.Enable = false
	c.Modules.IPAM.SocketPath = filepath.Join(dir, "ipam.sock")
	c.Modules.IPAM.PoolFile = poolFile
	n := &ipamNode{
		cniNode: newCNINode(t, install.Options{IPAMType: "spiderpool", IPAMSocket: c.Modules.IPAM.SocketPath}),
		agent:   testutil.NewAgent(t, c, ""),
		socket:  c.Modules.IPAM.SocketPath,
		db:      filepath.Join(c.DataDir, "ipam", "leases.db"),
	}
	// spiderpool logs to /var/log/spidernet unless told otherwise.
	n.list = patchIPAM(t, n.list, map[string]any{"log_file_path": filepath.Join(dir, "spiderpool.log")})
	n.agent.Start("IPAM serving")
	return n
}

// leasesAfterStop stops the agent (which holds the store's lock) and
// returns the leases on disk.
func (n *ipamNode) leasesAfterStop() []ipam.Lease {
	n.t.Helper()
	n.agent.Stop()
	s, err := ipam.OpenStore(n.db)
	if err != nil {
		n.t.Fatal(err)
	}
	defer s.Close()
	l, err := s.Leases()
	if err != nil {
		n.t.Fatal(err)
	}
	return l
}

// The stock spiderpool binary allocates on an edge node through the ipam
// module: dual-stack addresses from this node's pools, pods reach each
// other, STATUS passes, and DEL leaves no lease behind.
func TestIPAMSpiderpoolAllocates(t *testing.T) {
	n := newIPAMNode(t, "edge-1", twoNodePools)
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	ra, rb := n.mustAdd("sp-a", a), n.mustAdd("sp-b", b)
	if len(ra.IPs) != 2 || ra.IPs[0].Address.String() != "10.244.5.2/16" || ra.IPs[1].Address.String() != "fd00:244:0:5::2/48" {
		t.Fatalf("pod a got %v, want 10.244.5.2/16 and fd00:244:0:5::2/48 from edge-1's pools", ra.IPs)
	}
	if ra.IPs[0].Gateway.String() != "10.244.5.1" {
		t.Errorf("gateway %v, want the pool's 10.244.5.1", ra.IPs[0].Gateway)
	}
	ping(t, a, rb.IPs[0].Address.IP.String())
	ping(t, b, ra.IPs[1].Address.IP.String())
	if err := n.check("sp-a", a); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := n.inNode(func() error { return n.cni.GetStatusNetworkList(context.Background(), n.list) }); err != nil {
		t.Errorf("STATUS with the agent up: %v", err)
	}
	// The same pod in a new sandbox (kubelet recreating it) keeps its
	// address; DEL of the old sandbox does not free it.
	resandbox := testutil.NewNS(t)
	rt := rtConf("sp-a", resandbox)
	rt.ContainerID = "sp-a-sandbox-2"
	var again types.Result
	err := n.inNode(func() (err error) { again, err = n.cni.AddNetworkList(context.Background(), n.list, rt); return err })
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(again); !strings.Contains(string(got), "10.244.5.2/16") {
		t.Errorf("new sandbox of pod sp-a got %s, want its address 10.244.5.2", got)
	}
	if err := n.del("sp-a", a); err != nil {
		t.Fatal(err)
	}
	ping(t, resandbox, rb.IPs[0].Address.IP.String()) // still has its address
	if err := n.inNode(func() error { return n.cni.DelNetworkList(context.Background(), n.list, rt) }); err != nil {
		t.Fatal(err)
	}
	if err := n.del("sp-b", b); err != nil {
		t.Fatal(err)
	}
	n.assertCleanLinks()
	if l := n.leasesAfterStop(); len(l) != 0 {
		t.Errorf("leases left after DEL: %+v", l)
	}
	// With the agent down, STATUS says IPAM is not available (code 50).
	err = n.inNode(func() error { return n.cni.GetStatusNetworkList(context.Background(), n.list) })
	if err == nil || cniErrCode(t, err) != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with the agent down: %v, want code 50", err)
	}
}

// Errors reach the runtime through spiderpool with the pool and its size.
func TestIPAMErrorsReachRuntime(t *testing.T) {
	n := newIPAMNode(t, "edge-1", twoNodePools)
	n.list = patchIPAM(t, n.list, map[string]any{"default_ipv4_ippool": []string{"tiny"}})
	for i := 0; i < 2; i++ {
		n.mustAdd(fmt.Sprint("tiny-", i), testutil.NewNS(t))
	}
	_, err := n.add("tiny-full", testutil.NewNS(t))
	if err == nil || !strings.Contains(err.Error(), "IPv4 pool tiny (all 2 addresses allocated) for pod default/tiny-full on node edge-1") {
		t.Fatalf("exhausted pool error = %v", err)
	}
	if got := n.links("el"); len(got) != 2 {
		t.Errorf("veths = %v after a failed ADD, want the two pods' only", got)
	}
	n.list = patchIPAM(t, n.list, map[string]any{"default_ipv4_ippool": []string{"edge-2-v4"}})
	_, err = n.add("wrong-node", testutil.NewNS(t))
	if err == nil || !strings.Contains(err.Error(), "edge-2-v4 (is pinned to nodes [edge-2])") {
		t.Fatalf("foreign pool error = %v", err)
	}
}

// 500 ADD/DEL cycles through the full chain leak no lease, link, record or
// file; an agent restart between ADD and DEL loses nothing.
func TestIPAMChurnAndRestart(t *testing.T) {
	n := newIPAMNode(t, "edge-1", twoNodePools)
	cycles := 500
	if testing.Short() {
		cycles = 50
	}
	pod := testutil.NewNS(t)
	seen := map[string]int{}
	for i := 0; i < cycles; i++ {
		id := fmt.Sprintf("churn-%d", i)
		res, err := n.add(id, pod)
		if err != nil {
			t.Fatalf("cycle %d ADD: %v", i, err)
		}
		seen[podIP(t, res)]++
		if err := n.del(id, pod); err != nil {
			t.Fatalf("cycle %d DEL: %v", i, err)
		}
	}
	// edge-1-v4 has 253 addresses; a freed one comes back only after the
	// pool has been walked once.
	if want := min(cycles, 253); len(seen) != want {
		t.Errorf("%d cycles used %d distinct addresses, want %d: freed addresses are reused too soon", cycles, len(seen), want)
	}
	// Restart between ADD and DEL.
	keep := testutil.NewNS(t)
	first := n.mustAdd("survivor", keep)
	n.agent.Stop()
	n.agent.Start("IPAM serving")
	ping(t, keep, first.IPs[0].Gateway.String())
	if err := n.check("survivor", keep); err != nil {
		t.Errorf("CHECK after restart: %v", err)
	}
	if err := n.del("survivor", keep); err != nil {
		t.Fatalf("DEL after restart: %v", err)
	}
	n.assertCleanLinks()
	if l := n.leasesAfterStop(); len(l) != 0 {
		t.Errorf("leases left: %+v", l)
	}
	entries, _ := os.ReadDir(filepath.Dir(n.socket))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sock") {
			t.Errorf("socket %s left after the agent stopped", e.Name())
		}
	}
}

// ipamClient talks to the module's socket directly, as the spiderpool
// binary does.
type ipamClient struct{ c *http.Client }

func newIPAMClient(socket string) *ipamClient {
	return &ipamClient{c: &http.Client{Timeout: 10 * time.Second, Transport: unixsock.HTTPTransport(socket)}}
}

func (c *ipamClient) do(method, path string, body any) (int, []byte, error) {
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, "http://localhost"+path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// allocPod allocates for a pod and returns its first address as
// "<address>@<pool>".
func (c *ipamClient) allocPod(ns, name, uid string) (string, error) {
	return c.allocPodCID(ns, name, uid, "c-"+uid)
}

// allocPodCID is allocPod for the sandbox (container ID) cid.
func (c *ipamClient) allocPodCID(ns, name, uid, cid string) (string, error) {
	s := func(v string) *string { return &v }
	code, body, err := c.do("POST", "/v1/ipam/ip", map[string]any{
		"containerID": s(cid), "ifName": s("eth0"), "netNamespace": s("/run/netns/x"),
		"podNamespace": s(ns), "podName": s(name), "podUID": s(uid),
	})
	if err != nil {
		return "", err
	}
	if code != 200 {
		return "", fmt.Errorf("HTTP %d: %s", code, body)
	}
	var resp struct {
		Ips []struct{ Address, IPPool string } `json:"ips"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Ips) == 0 {
		return "", fmt.Errorf("bad response %s", body)
	}
	return resp.Ips[0].Address + "@" + resp.Ips[0].IPPool, nil
}

// releasePodCID is CNI DEL of sandbox cid of pod ns/name: the agent's or
// spiderpool-agent's IPAM socket.
func (c *ipamClient) releasePodCID(ns, name, uid, cid string) error {
	s := func(v string) *string { return &v }
	code, body, err := c.do("DELETE", "/v1/ipam/ip", map[string]any{
		"containerID": s(cid), "ifName": s("eth0"), "netNamespace": "/run/netns/x",
		"podNamespace": s(ns), "podName": s(name), "podUID": s(uid),
	})
	if err == nil && code != 200 {
		err = fmt.Errorf("HTTP %d: %s", code, body)
	}
	return err
}

// alloc allocates for pod default/p-<uid> and returns its first address.
func (c *ipamClient) alloc(uid string) (string, error) {
	got, err := c.allocPod("default", "p-"+uid, uid)
	addr, _, _ := strings.Cut(got, "@")
	return addr, err
}

// killBudget bounds the allocations of one round of
// TestIPAMKillDuringAllocation.
const killBudget = 800

// kill -9 in the middle of concurrent allocations, restart: every
// acknowledged lease is still there with the same address, and no address
// belongs to two pods.
func TestIPAMKillDuringAllocation(t *testing.T) {
	// Each round allocates at most killBudget addresses plus 200 fresh
	// ones, and keeps them: 3 rounds stay well inside the 4096-address pool.
	pools := `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: big}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.16.0-10.244.31.255"], nodeName: [edge-1], default: true}
`
	n := newIPAMNode(t, "edge-1", pools)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < 3; round++ {
		client := newIPAMClient(n.socket)
		var mu sync.Mutex
		acked := map[string]string{}
		var wg sync.WaitGroup
		var done atomic.Int64
		stop := make(chan struct{})
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < killBudget; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if done.Load() >= killBudget {
						return
					}
					uid := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					ip, err := client.alloc(uid)
					if err != nil {
						return // the agent died under us
					}
					mu.Lock()
					acked[uid] = ip
					mu.Unlock()
					done.Add(1)
				}
			}(w)
		}
		// The kill comes after a random number of acknowledgements, with
		// the workers still allocating: mid-allocation on a fast disk
		// (tmpfs) and a slow one alike, and the pool never runs out.
		at := int64(50 + rng.Intn(killBudget/2))
		for deadline := time.Now().Add(60 * time.Second); done.Load() < at && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		n.agent.Kill()
		close(stop)
		wg.Wait()
		if len(acked) == 0 {
			t.Fatalf("round %d: nothing was allocated before the kill", round)
		}
		n.agent.Start("IPAM serving")
		client = newIPAMClient(n.socket)
		owner := map[string]string{}
		for uid, ip := range acked {
			got, err := client.alloc(uid)
			if err != nil {
				t.Fatalf("round %d: re-ADD %s after restart: %v", round, uid, err)
			}
			if got != ip {
				t.Fatalf("round %d: %s had %s before the kill and %s after", round, uid, ip, got)
			}
			owner[got] = uid
		}
		// Fresh pods never get an address someone else holds.
		for i := 0; i < 200; i++ {
			uid := fmt.Sprintf("fresh-%d-%d", round, i)
			ip, err := client.alloc(uid)
			if err != nil {
				t.Fatal(err)
			}
			if prev, dup := owner[ip]; dup {
				t.Fatalf("round %d: %s given to %s and %s", round, ip, prev, uid)
			}
			owner[ip] = uid
		}
		t.Logf("round %d: %d acknowledged before kill -9, all intact", round, len(acked))
	}
	// The store itself: one owner per address.
	leases := n.leasesAfterStop()
	byIP := map[string]string{}
	for _, l := range leases {
		for _, ip := range l.IPs {
			if prev, dup := byIP[ip.Address.String()]; dup {
				t.Fatalf("store: %s held by %s and %s", ip.Address, prev, l.PodUID)
			}
			byIP[ip.Address.String()] = l.PodUID
		}
	}
}

// Two nodes with disjoint pools never hand out the same address.
func TestIPAMTwoNodesNeverShare(t *testing.T) {
	n1 := newIPAMNode(t, "edge-1", twoNodePools)
	n2 := newIPAMNode(t, "edge-2", twoNodePools)
	c1, c2 := newIPAMClient(n1.socket), newIPAMClient(n2.socket)
	owner := map[string]string{}
	for i := 0; i < 100; i++ {
		for node, c := range map[string]*ipamClient{"edge-1": c1, "edge-2": c2} {
			ip, err := c.alloc(fmt.Sprintf("%s-%d", node, i))
			if err != nil {
				t.Fatal(err)
			}
			if prev, dup := owner[ip]; dup {
				t.Fatalf("%s handed out by %s and %s", ip, prev, node)
			}
			owner[ip] = node
			want := map[string]string{"edge-1": "10.244.5.", "edge-2": "10.244.6."}[node]
			if !strings.HasPrefix(ip, want) {
				t.Errorf("%s gave %s, outside its pool %s*", node, ip, want)
			}
		}
	}
}

// Garbage on the socket gets an error, and the module keeps serving.
func TestIPAMSocketGarbage(t *testing.T) {
	n := newIPAMNode(t, "edge-1", twoNodePools)
	// Raw bytes that are not HTTP.
	conn, err := net.Dial("unix", n.socket)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("\x00\xffGARBAGE\r\n\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.HasPrefix(string(reply), "HTTP/1.1 400") {
		t.Errorf("non-HTTP bytes got %q, want a 400", reply)
	}
	client := newIPAMClient(n.socket)
	for _, tt := range []struct {
		method, path string
		body         any
		code         int
		want         string
	}{
		{"POST", "/v1/ipam/ip", json.RawMessage(`{"podUID": 7}`), 500, "field podUID: got JSON number, want string"},
		{"POST", "/v1/ipam/ip", json.RawMessage(`{"containerID":"c","ifName":"eth0","netNamespace":"/x","podNamespace":"d","podName":"p"}`), 500, "podUID is required"},
		{"DELETE", "/v1/ipam/ip", json.RawMessage(`[1,2`), 500, "body is not JSON"},
		{"GET", "/v1/nothing", nil, 404, "no such endpoint: GET /v1/nothing"},
		{"POST", "/v1/ipam/ips", nil, 501, "not implemented"},
	} {
		code, body, err := client.do(tt.method, tt.path, tt.body)
		if err != nil {
			t.Fatal(err)
		}
		var msg string
		if code != tt.code || json.Unmarshal(body, &msg) != nil || !strings.Contains(msg, tt.want) {
			t.Errorf("%s %s: %d %s, want %d and a JSON string containing %q", tt.method, tt.path, code, body, tt.code, tt.want)
		}
	}
	// Still serving real pods.
	n.mustAdd("after-garbage", testutil.NewNS(t))
}

// CNI GC through spiderpool frees the leases of attachments the runtime no
// longer lists (the reconcile path for pods deleted while nobody called DEL).
func TestIPAMReleasedByCNIGC(t *testing.T) {
	n := newIPAMNode(t, "edge-1", twoNodePools)
	keep := testutil.NewNS(t)
	n.mustAdd("gc-keep", keep)
	n.mustAdd("gc-drop1", testutil.NewNS(t))
	n.mustAdd("gc-drop2", testutil.NewNS(t))
	err := n.inNode(func() error {
		return n.cni.GCNetworkList(context.Background(), n.list, &libcni.GCArgs{
			ValidAttachments: []types.GCAttachment{{ContainerID: "gc-keep", IfName: "eth0"}},
		})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if got := n.links("el"); len(got) != 1 {
		t.Errorf("veths after GC: %v", got)
	}
	leases := n.leasesAfterStop()
	if len(leases) != 1 || leases[0].PodUID != "uid-gc-keep" {
		t.Errorf("leases after GC: %+v, want only gc-keep's", leases)
	}
}
