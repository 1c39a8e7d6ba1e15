package ipam

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

func mustPool(t *testing.T, yaml string) *Pool {
	t.Helper()
	objs, err := DecodeObjects(strings.NewReader(yaml), "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePool(&objs.Pools[0])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCarveBlock(t *testing.T) {
	// The EdgeMesh document's cluster default pool, on a /16.
	doc := mustPool(t, `{kind: SpiderIPPool, metadata: {name: default-v4}, spec: {subnet: 10.244.0.0/16, ips: ["10.244.0.0-10.244.20.200"], default: true}}`)
	pfx := netip.MustParsePrefix
	tests := []struct {
		name      string
		pool      *Pool
		within    string
		bits      int
		claimed   []netip.Prefix
		allocated []netip.Addr
		want      string // "" = none left
	}{
		{"first block of a segment", doc, "10.244.5.0/24", 26, nil, nil, "10.244.5.0/26"},
		{"skips claimed blocks", doc, "10.244.5.0/24", 26, []netip.Prefix{pfx("10.244.5.0/26"), pfx("10.244.5.64/26")}, nil, "10.244.5.128/26"},
		{"skips a block holding an allocated address", doc, "10.244.5.0/24", 26, nil, []netip.Addr{netip.MustParseAddr("10.244.5.3")}, "10.244.5.64/26"},
		{"never the subnet's first address", doc, "10.244.0.0/24", 26, nil, nil, "10.244.0.64/26"},
		{"stays inside the pool's ips", doc, "10.244.20.0/24", 26, nil, nil, "10.244.20.0/26"},
		{"the pool's tail is not a whole block", doc, "10.244.20.192/26", 26, nil, nil, ""},
		{"segment full", doc, "10.244.5.0/25", 26, []netip.Prefix{pfx("10.244.5.0/26"), pfx("10.244.5.64/26")}, nil, ""},
		{"segment outside the pool", doc, "10.250.0.0/24", 26, nil, nil, ""},
		{"block larger than the segment is the segment", doc, "10.244.6.0/27", 26, nil, nil, "10.244.6.0/27"},
		{"excludeIPs respected", mustPool(t, `{kind: SpiderIPPool, metadata: {name: p}, spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.0-10.244.5.255"], excludeIPs: ["10.244.5.70"]}}`),
			"10.244.5.0/24", 26, []netip.Prefix{pfx("10.244.5.0/26")}, nil, "10.244.5.128/26"},
		{"IPv6", mustPool(t, `{kind: SpiderIPPool, metadata: {name: v6}, spec: {subnet: "fd00:244::/48", ips: ["fd00:244::-fd00:244::ffff:ffff"]}}`),
			"fd00:244::/48", 122, nil, nil, "fd00:244::40/122"},
		{"family mismatch", doc, "fd00::/64", 122, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := CarveBlock(tt.pool, pfx(tt.within), tt.bits, tt.claimed, tt.allocated)
			if tt.want == "" {
				if ok {
					t.Errorf("got %s, want none", got)
				}
				return
			}
			if !ok || got != pfx(tt.want) {
				t.Errorf("got %s %v, want %s", got, ok, tt.want)
			}
		})
	}
}

func TestClaimsRoundTrip(t *testing.T) {
	c, err := ParseClaims(`{"10.244.5.64/26":"edge-1","10.244.5.0/26":"edge-2","10.244.6.0/26":"edge-1"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String(); got != `{"10.244.5.0/26":"edge-2","10.244.5.64/26":"edge-1","10.244.6.0/26":"edge-1"}` {
		t.Errorf("String() = %s", got)
	}
	if got := c.Of("edge-1"); len(got) != 2 || got[0].String() != "10.244.5.64/26" {
		t.Errorf("Of(edge-1) = %v", got)
	}
	for _, bad := range []string{`[]`, `{"10.244.5.1/26":"edge-1"}`, `{"x":"edge-1"}`, `{"10.244.5.0/26":""}`} {
		if _, err := ParseClaims(bad); err == nil || !strings.Contains(err.Error(), AnnoBlocks) {
			t.Errorf("ParseClaims(%s) = %v, want an error naming the annotation", bad, err)
		}
	}
	if _, err := ParsePool(&SpiderIPPool{}); err == nil {
		t.Error("a pool without a name parsed")
	}
}

func TestBlockNameAndRange(t *testing.T) {
	p := netip.MustParsePrefix("10.244.5.64/26")
	uid := "node-uid-1"
	const h = "fa7e17aa" // sha256("node-uid-1"), first 4 bytes
	if got := BlockName("default-v4", p, uid); got != "default-v4-10-244-5-64-26-"+h {
		t.Errorf("BlockName = %s", got)
	}
	if got := BlockName("v6", netip.MustParsePrefix("fd00:244::40/122"), uid); got != "v6-fd00-244--40-122-"+h {
		t.Errorf("BlockName v6 = %s", got)
	}
	if a, b := BlockName("default-v4", p, "uid-a"), BlockName("default-v4", p, "uid-b"); a == b {
		t.Errorf("one name %s for a block claimed by two Node objects", a)
	}
	if got := BlockName(strings.Repeat("p", 260), p, uid); len(got) != 253 || !strings.HasSuffix(got, "-10-244-5-64-26-"+h) {
		t.Errorf("long BlockName = %d %s", len(got), got)
	}
	if got := RangeString(p); got != "10.244.5.64-10.244.5.127" {
		t.Errorf("RangeString = %s", got)
	}
}

// The document's layout at the edge: one cluster default pool, shared by
// every node, served from this node's blocks only; full blocks say that
// no more can be claimed offline.
const sharedYAML = `
apiVersion: v1
kind: Node
metadata: {name: edge-1}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: default-v4, annotations: {edgelink.io/blocks: '{"10.244.5.0/30":"edge-1","10.244.5.4/30":"edge-2"}'}}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.0.0-10.244.20.200"], excludeIPs: ["10.244.5.0-10.244.5.7"], default: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: default-v4-10-244-5-0-30, annotations: {edgelink.io/block-of: default-v4}}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.0-10.244.5.3"], excludeIPs: ["10.244.5.0"], gateway: 10.244.5.0, nodeName: [edge-1]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: default-v4-10-244-5-4-30, annotations: {edgelink.io/block-of: default-v4}}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.4-10.244.5.7"], excludeIPs: ["10.244.5.4"], gateway: 10.244.5.4, nodeName: [edge-2]}
`

func TestSharedPoolAllocatesFromOwnBlocks(t *testing.T) {
	objs, err := DecodeObjects(strings.NewReader(sharedYAML), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	store, err := OpenStore(filepath.Join(t.TempDir(), "ipam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a := NewAllocator(store, NewView("edge-1", objs))
	var got []string
	for _, n := range []string{"a", "b", "c"} {
		l, err := a.Allocate(req(n))
		if err != nil {
			t.Fatalf("pod %s: %v", n, err)
		}
		if l.IPs[0].Gateway != "10.244.5.0" {
			t.Errorf("pod %s: gateway %q, want the block's 10.244.5.0", n, l.IPs[0].Gateway)
		}
		got = append(got, addrs(l))
	}
	if want := "10.244.5.1/16@default-v4-10-244-5-0-30 10.244.5.2/16@default-v4-10-244-5-0-30 10.244.5.3/16@default-v4-10-244-5-0-30"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	_, err = a.Allocate(req("d"))
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("a fourth pod: %v, want pool exhausted", err)
	}
	for _, want := range []string{"default-v4 (this node's blocks default-v4-10-244-5-0-30: all 3 addresses allocated", "none while it is offline", "node edge-1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// Usage shows what this node allocates from: its block, not the
	// shared pool nor another node's block.
	if u, err := a.Usage(); err != nil || len(u) != 1 || u[0] != (PoolUsage{Pool: "default-v4-10-244-5-0-30", Allocated: 3, Size: "3", BlockOf: "default-v4"}) {
		t.Errorf("Usage() = %+v, %v", u, err)
	}
	// Another node's block is never borrowed, and the shared pool's own
	// addresses are never handed out directly.
	r := req("e")
	r.DefaultIPv4Pools = []string{"default-v4-10-244-5-4-30"}
	if _, err := a.Allocate(r); !errors.Is(err, ErrNoPool) || !strings.Contains(err.Error(), "is pinned to nodes [edge-2]") {
		t.Errorf("another node's block: %v", err)
	}
	// A node with no block of the shared pool is told why.
	b := NewAllocator(store, NewView("edge-3", objs))
	if _, err := b.Allocate(req("f")); !errors.Is(err, ErrNoPool) {
		t.Errorf("node without blocks: %v", err)
	}
}

func TestBlockRoutesAsOnePrefix(t *testing.T) {
	p := mustPool(t, `{kind: SpiderIPPool, metadata: {name: b}, spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.0-10.244.5.63"], excludeIPs: ["10.244.5.0"], gateway: 10.244.5.0, nodeName: [edge-1]}}`)
	if got := p.Prefixes(); len(got) != 1 || got[0].String() != "10.244.5.0/26" {
		t.Errorf("Prefixes() = %v, want [10.244.5.0/26]", got)
	}
	if p.Contains(netip.MustParseAddr("10.244.5.0")) || p.Size() != 63 {
		t.Errorf("the gateway is allocatable or size %d", p.Size())
	}
}

// The block record comes from an annotation anyone with write access to a
// pool can edit: it parses or errs, never panics, and what parses renders
// back to a record that parses to the same claims.
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"10.244.5.0/26":"edge-1"}`, `{"fd00::/122":"n","10.0.0.0/8":"m"}`, `{"10.244.5.1/26":"x"}`, `[1]`, `{"a":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseClaims(s)
		if err != nil {
			return
		}
		again, err := ParseClaims(c.String())
		if err != nil {
			t.Fatalf("%q parsed, its rendering %q does not: %v", s, c.String(), err)
		}
		if len(again) != len(c) {
			t.Fatalf("%q: %d claims, re-parsed %d", s, len(c), len(again))
		}
		for p, n := range c {
			if again[p] != n || p != p.Masked() {
				t.Fatalf("%q: claim %s=%s lost or unmasked", s, p, n)
			}
		}
	})
}

// Releasing a block takes exactly its addresses out of excludeIPs, also
// when SpiderPool's webhook merged it with its neighbours into one range;
// other entries keep their form.
func TestExcludeWithout(t *testing.T) {
	b := netip.MustParsePrefix("10.251.5.16/28")
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"the block's own entry", []string{"10.251.9.1", "10.251.5.16-10.251.5.31"}, []string{"10.251.9.1"}},
		{"merged with the block before it", []string{"10.251.5.0-10.251.5.31", "10.251.6.0-10.251.6.15"}, []string{"10.251.5.0-10.251.5.15", "10.251.6.0-10.251.6.15"}},
		{"in the middle of a range", []string{"10.251.5.0-10.251.5.47"}, []string{"10.251.5.0-10.251.5.15", "10.251.5.32-10.251.5.47"}},
		{"one address left on each side", []string{"10.251.5.15-10.251.5.32"}, []string{"10.251.5.15", "10.251.5.32"}},
		{"not excluded: nothing changes", []string{"10.251.5.0-10.251.5.15", "bad entry", "fd00::1"}, []string{"10.251.5.0-10.251.5.15", "bad entry", "fd00::1"}},
		{"entries inside the block", []string{"10.251.5.17", "10.251.5.20-10.251.5.25"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ExcludeWithout(tt.in, b)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("ExcludeWithout(%v) = %v, want %v", tt.in, got, tt.want)
			}
			if ExcludesBlock(got, b) {
				t.Errorf("%v still excludes %s", got, b)
			}
		})
	}
	if !ExcludesBlock([]string{"10.251.5.0-10.251.5.20", "10.251.5.21-10.251.5.40"}, b) {
		t.Error("a block covered by two adjacent entries is not excluded")
	}
	if ExcludesBlock([]string{"10.251.5.16-10.251.5.30"}, b) {
		t.Error("a block missing its last address is excluded")
	}
}
