package plugin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// gcConf is a GC netconf (cniVersion 1.1.0) listing the valid attachments.
func (n *node) gcConf(valid ...*pod) map[string]any {
	conf := n.netconf()
	conf["cniVersion"] = "1.1.0"
	list := []map[string]any{}
	for _, p := range valid {
		list = append(list, map[string]any{"containerID": p.cid, "ifname": p.ifName})
	}
	conf["cni.dev/valid-attachments"] = list
	return conf
}

func (n *node) gc(conf map[string]any) error {
	n.t.Helper()
	_, err := n.run(n.ns, "GC", cmdGC, conf, attachmentArgs{})
	return err
}

// staleRecord writes the record an interrupted ADD leaves: no links, a
// netns that is gone.
func (n *node) staleRecord(network, ifName string) *pod {
	n.t.Helper()
	return n.staleRecordID(network, "c"+randHex(8), ifName)
}

func (n *node) staleRecordID(network, cid, ifName string) *pod {
	n.t.Helper()
	p := &pod{attachmentArgs: attachmentArgs{cid: cid, ifName: ifName, netns: "/run/netns/eltest-gone-" + randHex(4), cniArgs: "K8S_POD_NAME=stale-" + cid}}
	p.hostVeth = hostVethName(cid, ifName)
	rec := &attachment{ContainerID: cid, IfName: ifName, NetNS: p.netns, HostVeth: p.hostVeth, CNIArgs: p.cniArgs}
	if err := writeRecord(stateDir(n.dataDir, network), rec); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// delCallFor returns the fake IPAM's DEL call for cid/ifName, or "".
func (n *node) delCallFor(cid, ifName string) string {
	for _, c := range n.callsOf("DEL") {
		if strings.Contains(c, " "+cid+" "+ifName+" ") {
			return c
		}
	}
	return ""
}

// TestGCReleasesOnlyStale proves GC releases every recorded attachment of
// its network the runtime does not list as valid (matched by container ID
// and interface): links, record and lease, with the recorded CNI_ARGS
// handed to IPAM; leaves valid attachments and other networks' records
// alone; and forwards GC to the IPAM delegate with the valid list.
func TestGCReleasesOnlyStale(t *testing.T) {
	n := newNode(t)
	keep, gone := n.newPod(), n.newPod()
	n.mustAdd(keep)
	conf := n.netconf()
	ipamOf(conf)["ips"] = []map[string]any{{"address": "10.244.5.8/24", "gateway": "10.244.5.1"}}
	if _, err := n.add(gone, conf); err != nil {
		t.Fatal(err)
	}
	interrupted := n.staleRecord("eltest", "eth0")
	keepEth1 := n.staleRecord("eltest", "eth1") // same container as keep, other interface
	if err := os.Rename(recordPath(stateDir(n.dataDir, "eltest"), keepEth1.cid, "eth1"), recordPath(stateDir(n.dataDir, "eltest"), keep.cid, "eth1")); err != nil {
		t.Fatal(err)
	}
	rec := &attachment{ContainerID: keep.cid, IfName: "eth1", NetNS: keep.netns, HostVeth: hostVethName(keep.cid, "eth1"), CNIArgs: keep.cniArgs}
	if err := writeRecord(stateDir(n.dataDir, "eltest"), rec); err != nil {
		t.Fatal(err)
	}
	otherNet := n.staleRecord("othernet", "eth0")

	if err := n.gc(n.gcConf(keep)); err != nil {
		t.Fatalf("GC: %v", err)
	}

	if link(t, n.ns, keep.hostVeth) == nil || link(t, keep.ns, "eth0") == nil || !n.recordExists(keep.cid, "eth0") || !n.hasLease(keep.cid, "eth0") {
		t.Error("GC released a valid attachment")
	}
	if n.delCallFor(keep.cid, "eth0") != "" {
		t.Errorf("GC asked IPAM to release the valid %s/eth0", keep.cid)
	}
	n.assertReleased(gone, true)
	for _, p := range []*pod{gone, interrupted, {attachmentArgs: attachmentArgs{cid: keep.cid, ifName: "eth1", cniArgs: keep.cniArgs}}} {
		if n.recordExists(p.cid, p.ifName) {
			t.Errorf("GC kept the record of stale %s/%s", p.cid, p.ifName)
		}
		if c := n.delCallFor(p.cid, p.ifName); !strings.Contains(c, `args="`+p.cniArgs+`"`) {
			t.Errorf("IPAM DEL for stale %s/%s = %q, want one with CNI_ARGS %q", p.cid, p.ifName, c, p.cniArgs)
		}
	}
	if _, err := readRecord(stateDir(n.dataDir, "othernet"), otherNet.cid, "eth0"); err != nil {
		t.Errorf("GC of network eltest touched network othernet's record: %v", err)
	}
	gcs := n.callsOf("GC")
	if len(gcs) != 1 || !strings.Contains(gcs[0], keep.cid) || !strings.Contains(gcs[0], "version=1.1.0") {
		t.Errorf("IPAM GC calls = %q, want one listing %s", gcs, keep.cid)
	}
}

// TestGCReportsFailuresAndContinues proves GC goes on past an attachment
// IPAM cannot release and past corrupt records: the failure is returned,
// the unreleased record is kept for the next GC (which releases it), the
// other stale attachment is released, GC is still forwarded, and corrupt
// records (not temporaries or other files) are named in the error.
func TestGCReportsFailuresAndContinues(t *testing.T) {
	n := newNode(t)
	// GC walks records in name order: stuck's comes first.
	stuck := n.staleRecordID("eltest", "c0"+randHex(8), "eth0")
	other := n.staleRecordID("eltest", "cz"+randHex(8), "eth0")
	dir := stateDir(n.dataDir, "eltest")
	corrupt := filepath.Join(dir, "cbroken_eth0.json")
	noID := filepath.Join(dir, "cnoid_eth0.json")
	for name, data := range map[string]string{
		corrupt:                                 "{not json",
		noID:                                    `{"ifName":"eth0"}`,
		filepath.Join(dir, ".c1_eth0.json.tmp"): "partial", // atomicfile's temporary: ignored
		filepath.Join(dir, "README"):            "not a record",
	} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	conf := n.gcConf()
	ipamOf(conf)["fail"] = map[string]any{"DEL " + stuck.cid: map[string]any{"code": 11, "msg": "agent busy"}}
	// Only IPAM's error comes back here: internalErr picks the CNI error
	// out of the joined ones (see the report).
	wantErrText(t, n.gc(conf), "IPAM DEL (fakeipam): agent busy")
	if !n.recordExists(stuck.cid, "eth0") {
		t.Error("GC removed the record of an attachment IPAM could not release")
	}
	if n.recordExists(other.cid, "eth0") || n.delCallFor(other.cid, "eth0") == "" {
		t.Error("GC stopped at the first failure: the other stale attachment was not released")
	}
	if len(n.callsOf("GC")) != 1 {
		t.Errorf("GC was not forwarded to IPAM after a per-attachment failure: %q", n.calls())
	}

	err := n.gc(n.gcConf())
	e := cniError(t, err, types.ErrInternal)
	wantErrText(t, e, "GC incomplete", "corrupt attachment record "+corrupt, "corrupt attachment record "+noID)
	if strings.Contains(e.Error(), ".tmp") || strings.Contains(e.Error(), "README") {
		t.Errorf("GC error mentions files that are not records: %v", e)
	}
	if n.recordExists(stuck.cid, "eth0") {
		t.Error("second GC did not release the attachment the first could not")
	}

	for _, f := range []string{corrupt, noID} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.gc(n.gcConf()); err != nil {
		t.Fatalf("GC with only good records: %v", err)
	}
}

// TestGCSpiderpool proves that with spiderpool as IPAM, GC releases stale
// attachments with DEL in cniVersion 1.0.0 (spiderpool rejects 1.1.0) and
// does not forward GC, which spiderpool does not implement.
func TestGCSpiderpool(t *testing.T) {
	n := newNode(t)
	stale := n.staleRecord("eltest", "eth0")
	conf := n.gcConf()
	ipamOf(conf)["type"] = "spiderpool"
	ipamOf(conf)["ipam_unix_socket_path"] = filepath.Join(n.ipamDir, "absent.sock")
	if err := n.gc(conf); err != nil {
		t.Fatalf("GC: %v", err)
	}
	calls := n.calls()
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "spiderpool DEL "+stale.cid+" eth0") || !strings.HasSuffix(calls[0], "version=1.0.0") {
		t.Errorf("IPAM calls = %q, want only spiderpool DEL %s eth0 at version 1.0.0", calls, stale.cid)
	}
	if slices.ContainsFunc(calls, func(c string) bool { return strings.Contains(c, " GC ") }) {
		t.Error("GC forwarded to spiderpool")
	}
	if n.recordExists(stale.cid, "eth0") {
		t.Error("stale record kept")
	}
}
