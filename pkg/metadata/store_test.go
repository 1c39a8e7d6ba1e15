package metadata

import (
	"net/netip"
	"testing"
)

// TestLoadSnapshotV0 proves a snapshot file written before pools carried
// their parsed form (testdata/snapshot-v0.json, saved by that code) still
// loads: every object, the pools' JSON as received and their typed form,
// the derived index.
func TestLoadSnapshotV0(t *testing.T) {
	s, err := Load("testdata/snapshot-v0.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 1 || len(s.Pods) != 2 || len(s.Nodes) != 2 || len(s.Namespaces) != 1 || len(s.Pools) != 5 {
		t.Fatalf("loaded version %d, %d pods, %d nodes, %d namespaces, %d pools", s.Version, len(s.Pods), len(s.Nodes), len(s.Namespaces), len(s.Pools))
	}
	if p := s.PodsByIP[netip.MustParseAddr("fd00:245:5::2")]; p == nil || p.Name != "web-1" {
		t.Errorf("PodsByIP not rebuilt: %v", p)
	}
	if _, ok := s.PodsByIP[netip.MustParseAddr("192.168.1.11")]; ok {
		t.Errorf("a hostNetwork pod is indexed by IP")
	}
	if n := s.Nodes["cloud-1"]; len(n.PodCIDRs) != 1 || n.PodCIDRs[0] != netip.MustParsePrefix("10.244.1.0/24") {
		t.Errorf("node cloud-1: %+v", n)
	}
	for name, p := range s.Pools {
		if p.Name != name || len(p.Object) == 0 || p.Spider == nil {
			t.Errorf("pool %s: %+v", name, p)
		}
	}
	// Load gives the pools their typed form (NewPoolInfo).
	if p := s.Pools["edge-1-v4"]; p.Err != nil || p.Node != "edge-1" || p.Pool == nil || p.Gateway != netip.MustParseAddr("10.245.5.1") {
		t.Errorf("edge-1-v4 typed form: %+v", p)
	}
	if p := s.Pools["broken"]; p.Err == nil || p.Pool != nil {
		t.Errorf("broken pool: %+v", p)
	}
}
