package controller

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgelink/edgelink/pkg/ipam"
)

var testCfg = Config{
	Cloud:     []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")},
	Edge:      []netip.Prefix{netip.MustParsePrefix("10.244.5.0/24"), netip.MustParsePrefix("10.244.6.0/24")},
	EdgeLabel: "node-role.kubernetes.io/edge",
	Bits4:     26, Bits6: 122, MinFree: 16,
}

func pool(name string, claims string, mut func(*ipam.SpiderIPPool)) *ipam.SpiderIPPool {
	sp := &ipam.SpiderIPPool{}
	sp.Name = name
	sp.UID = "uid-" + types.UID(name)
	sp.Spec.Subnet = "10.244.0.0/16"
	sp.Spec.IPs = []string{"10.244.0.0-10.244.20.200"}
	if claims != "" {
		sp.Annotations = map[string]string{ipam.AnnoBlocks: claims}
	}
	if mut != nil {
		mut(sp)
	}
	return sp
}

func edgeNode(name, podCIDR string) *Node {
	n := &Node{Name: name, UID: "uid-" + name, Labels: map[string]string{"node-role.kubernetes.io/edge": ""}}
	if podCIDR != "" {
		n.PodCIDRs = []string{podCIDR}
	}
	return n
}

func blockPool(parent, block, node string) *ipam.SpiderIPPool {
	b := netip.MustParsePrefix(block)
	sp := &ipam.SpiderIPPool{}
	sp.Name = ipam.BlockName(parent, b, "uid-"+node)
	sp.Annotations = map[string]string{ipam.AnnoBlockOf: parent}
	sp.Spec.Subnet = "10.244.0.0/16"
	sp.Spec.IPs = []string{ipam.RangeString(b)}
	gw := ipam.BlockGateway(b).String()
	sp.Spec.Gateway = &gw
	sp.Spec.ExcludeIPs = []string{gw}
	sp.Spec.NodeName = []string{node}
	return sp
}

// poolsOf is State.Pools: each by its name.
func poolsOf(ps ...*ipam.SpiderIPPool) map[string]*ipam.SpiderIPPool {
	out := map[string]*ipam.SpiderIPPool{}
	for _, p := range ps {
		out[p.Name] = p
	}
	return out
}

func render(acts []Action, probs []Problem) string {
	var b strings.Builder
	for _, a := range acts {
		b.WriteString(a.String() + "\n")
	}
	for _, p := range probs {
		b.WriteString("problem " + p.String() + "\n")
	}
	return b.String()
}

func pods(node string, n int, ip func(i int) string) []Pod {
	var out []Pod
	for i := 0; i < n; i++ {
		p := Pod{Namespace: "default", Name: node + "-" + string(rune('a'+i)), Node: node}
		if ip != nil {
			p.IPs = []netip.Addr{netip.MustParseAddr(ip(i))}
		}
		out = append(out, p)
	}
	return out
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		st   State
		want string
	}{
		{
			name: "the document's default pool: each edge node a block in its segment; cloud nodes none",
			st: State{
				Pools: poolsOf(pool("default-v4", "", nil)),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24"), "edge-2": edgeNode("edge-2", "10.244.6.0/24"),
					"cloud-1": {Name: "cloud-1", PodCIDRs: []string{"10.244.1.0/24"}}},
			},
			want: "claim pool=default-v4 block=10.244.5.0/26 name=default-v4-10-244-5-0-26-95467e44 node=edge-1 (0 of 0 addresses free, minFree 16)\n" +
				"claim pool=default-v4 block=10.244.6.0/26 name=default-v4-10-244-6-0-26-ee739106 node=edge-2 (0 of 0 addresses free, minFree 16)\n",
		},
		{
			name: "two nodes of one segment get different blocks; the annotation names the segment",
			st: State{
				Pools: poolsOf(pool("default-v4", "", nil)),
				Nodes: map[string]*Node{"a1": edgeNode("a1", ""), "a2": edgeNode("a2", "")},
			},
			want: "problem node a1, pool default-v4: no segment: the node has no IPv4 spec.podCIDR; set annotation edgelink.io/segment to its cloudCIDR/edgeCIDR entry\n" +
				"problem node a2, pool default-v4: no segment: the node has no IPv4 spec.podCIDR; set annotation edgelink.io/segment to its cloudCIDR/edgeCIDR entry\n",
		},
		{
			name: "enough free: nothing to do; pods of other pools do not count",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"edge-1"}`, nil), blockPool("default-v4", "10.244.5.0/26", "edge-1")),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24")},
				Pods:  pods("edge-1", 20, func(i int) string { return "10.244.9." + strconv.Itoa(i+1) }),
			},
			want: "",
		},
		{
			name: "running low (pending pods count): another block",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"edge-1"}`, nil), blockPool("default-v4", "10.244.5.0/26", "edge-1")),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24")},
				Pods:  append(pods("edge-1", 40, func(i int) string { return "10.244.5." + strconv.Itoa(i+1) }), pods("edge-1", 10, nil)...),
			},
			want: "claim pool=default-v4 block=10.244.5.64/26 name=default-v4-10-244-5-64-26-95467e44 node=edge-1 (13 of 63 addresses free, minFree 16)\n",
		},
		{
			name: "SpiderPool's allocations are never carved",
			st: State{
				Pools: poolsOf(pool("default-v4", "", func(sp *ipam.SpiderIPPool) {
					s := `{"10.244.5.7":{"pod":"default/cloudpod"}}`
					sp.Status.AllocatedIPs = &s
				})),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24")},
			},
			want: "claim pool=default-v4 block=10.244.5.64/26 name=default-v4-10-244-5-64-26-95467e44 node=edge-1 (0 of 0 addresses free, minFree 16)\n",
		},
		{
			name: "a claim whose pool is missing is completed",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"edge-1"}`, nil)),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24")},
			},
			want: "create-block pool=default-v4 block=10.244.5.0/26 name=default-v4-10-244-5-0-26-95467e44 node=edge-1 (claimed, pool missing)\n",
		},
		{
			name: "a deleted node's block stays while a pod holds an address in it",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"gone"}`, nil), blockPool("default-v4", "10.244.5.0/26", "gone")),
				Nodes: map[string]*Node{},
				Pods:  []Pod{{Namespace: "default", Name: "left", Node: "gone", IPs: []netip.Addr{netip.MustParseAddr("10.244.5.9")}}},
			},
			want: "",
		},
		{
			name: "a deleted node's unused block: its pool is deleted first",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"gone"}`, nil), blockPool("default-v4", "10.244.5.0/26", "gone")),
				Nodes: map[string]*Node{},
				Pods:  []Pod{{Namespace: "default", Name: "done", Node: "gone", IPs: []netip.Addr{netip.MustParseAddr("10.244.5.9")}, Terminal: true}},
			},
			want: "delete-block pool=default-v4 block=10.244.5.0/26 name=default-v4-10-244-5-0-26-645d3b9c node=gone (node gone or no longer served)\n",
		},
		{
			name: "a block pool held by SpiderPool's finalizer: its claim waits",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"gone"}`, nil), func() *ipam.SpiderIPPool {
					bp := blockPool("default-v4", "10.244.5.0/26", "gone")
					now := metav1.Now()
					bp.DeletionTimestamp = &now
					return bp
				}()),
				Nodes: map[string]*Node{},
			},
			want: "",
		},
		{
			name: "a released block's pool is gone: the claim goes",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"gone"}`, nil)),
				Nodes: map[string]*Node{},
			},
			want: "release pool=default-v4 block=10.244.5.0/26 node=gone (node gone or no longer served, block unused, its pool gone)\n",
		},
		{
			name: "pinned and disabled pools are left alone; an orphan block pool is deleted",
			st: State{
				Pools: poolsOf(pool("edge-1-v4", "", func(sp *ipam.SpiderIPPool) { sp.Spec.NodeName = []string{"edge-1"} }), pool("off", "", func(sp *ipam.SpiderIPPool) { d := true; sp.Spec.Disable = &d }), blockPool("old", "10.244.6.0/26", "edge-1")),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24")},
			},
			want: "delete-block pool=old block=10.244.6.0/26 name=old-10-244-6-0-26-95467e44 node=edge-1 (not a claim of its shared pool)\n",
		},
		{
			name: "nodeAffinity decides which edge nodes a shared pool serves",
			st: State{
				Pools: poolsOf(pool("site-a", "", func(sp *ipam.SpiderIPPool) {
					sp.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"site": "a"}}
				})),
				Nodes: map[string]*Node{
					"a1": {Name: "a1", Labels: map[string]string{"node-role.kubernetes.io/edge": "", "site": "a"}, Annotations: map[string]string{ipam.AnnoSegment: "10.244.6.0/24"}},
					"b1": edgeNode("b1", "10.244.5.0/24")},
			},
			want: "claim pool=site-a block=10.244.6.0/26 name=site-a-10-244-6-0-26-e3b0c442 node=a1 (0 of 0 addresses free, minFree 16)\n",
		},
		{
			name: "a nodeName list shares the pool among the nodes it names",
			st: State{
				Pools: poolsOf(pool("pair", "", func(sp *ipam.SpiderIPPool) { sp.Spec.NodeName = []string{"edge-1", "edge-2"} })),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24"), "edge-2": edgeNode("edge-2", "10.244.5.0/24"), "edge-3": edgeNode("edge-3", "10.244.6.0/24")},
			},
			want: "claim pool=pair block=10.244.5.0/26 name=pair-10-244-5-0-26-95467e44 node=edge-1 (0 of 0 addresses free, minFree 16)\n" +
				"claim pool=pair block=10.244.5.64/26 name=pair-10-244-5-64-26-ee739106 node=edge-2 (0 of 0 addresses free, minFree 16)\n",
		},
		{
			name: "a re-created shared pool takes over its predecessor's block pool instead of deleting it",
			st: State{
				Pools: poolsOf(pool("default-v4", "", nil), blockPool("default-v4", "10.244.5.0/26", "edge-1")),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24")},
			},
			want: "claim pool=default-v4 block=10.244.5.0/26 name=default-v4-10-244-5-0-26-95467e44 node=edge-1 (0 of 0 addresses free, minFree 16; taking a leftover block pool over)\n",
		},
		{
			name: "a Node deleted and made again (new UID) before its block was released keeps block and pool",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"edge-1"}`, nil), blockPool("default-v4", "10.244.5.0/26", "edge-1")),
				Nodes: map[string]*Node{"edge-1": {Name: "edge-1", UID: "uid-edge-1-again", Labels: map[string]string{"node-role.kubernetes.io/edge": ""}, PodCIDRs: []string{"10.244.5.0/24"}}},
			},
			want: "",
		},
		{
			name: "a released block claimed by a node that joined again gets a new pool name (its Node's UID)",
			st: State{
				Pools: poolsOf(pool("default-v4", "", nil)),
				Nodes: map[string]*Node{"edge-1": {Name: "edge-1", UID: "uid-edge-1-again", Labels: map[string]string{"node-role.kubernetes.io/edge": ""}, PodCIDRs: []string{"10.244.5.0/24"}}},
			},
			want: "claim pool=default-v4 block=10.244.5.0/26 name=default-v4-10-244-5-0-26-aef2da50 node=edge-1 (0 of 0 addresses free, minFree 16)\n",
		},
		{
			name: "a leftover block pool of another node: not carved, deleted once that node's pods are gone",
			st: State{
				Pools: poolsOf(pool("default-v4", "", nil), blockPool("default-v4", "10.244.5.0/26", "edge-9")),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24")},
				Pods: []Pod{{Namespace: "default", Name: "left", Node: "edge-9", IPs: []netip.Addr{netip.MustParseAddr("10.244.5.9")}},
					// A pod of another node in that block does not keep it.
					{Namespace: "default", Name: "other", Node: "edge-1", IPs: []netip.Addr{netip.MustParseAddr("10.244.5.10")}, Terminal: true}},
			},
			want: "claim pool=default-v4 block=10.244.5.64/26 name=default-v4-10-244-5-64-26-95467e44 node=edge-1 (0 of 0 addresses free, minFree 16)\n",
		},
		{
			name: "a leftover block pool of another node, unused: deleted",
			st: State{
				Pools: poolsOf(pool("default-v4", `{"10.244.5.0/26":"edge-1"}`, nil), blockPool("default-v4", "10.244.5.0/26", "edge-1"), blockPool("default-v4", "10.244.5.0/26", "edge-9")),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24")},
				Pods:  []Pod{{Namespace: "default", Name: "mine", Node: "edge-1", IPs: []netip.Addr{netip.MustParseAddr("10.244.5.9")}}},
			},
			want: "delete-block pool=default-v4 block=10.244.5.0/26 name=default-v4-10-244-5-0-26-a34e3bb4 node=edge-9 (not a claim of its shared pool)\n",
		},
		{
			name: "segment full",
			st: State{
				Pools: poolsOf(pool("small", "", func(sp *ipam.SpiderIPPool) { sp.Spec.IPs = []string{"10.244.5.0-10.244.5.100"} })),
				Nodes: map[string]*Node{"edge-1": edgeNode("edge-1", "10.244.5.0/24"), "edge-2": {Name: "edge-2", Labels: map[string]string{"node-role.kubernetes.io/edge": ""}, PodCIDRs: []string{"10.244.5.0/24"}}},
			},
			want: "claim pool=small block=10.244.5.0/26 name=small-10-244-5-0-26-95467e44 node=edge-1 (0 of 0 addresses free, minFree 16)\n" +
				"problem node edge-2, pool small: needs another block (0 of 0 addresses free, minFree 16) but the pool has no free /26 left in segment 10.244.5.0/24\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(Decide(testCfg, tt.st))
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
