package plugin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRecordFiles proves writeRecord creates the state directory (0700)
// and a 0600 record with no temporary left beside it, and that readRecord
// of a missing record reports it as not existing.
func TestRecordFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "eltest")
	if err := writeRecord(dir, &attachment{ContainerID: "c1", IfName: "eth0", HostVeth: hostVethName("c1", "eth0")}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, recordPath(dir, "c1", "eth0"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want just the record: %v", len(entries), entries)
	}
	if _, err := readRecord(dir, "c2", "eth0"); !os.IsNotExist(err) {
		t.Errorf("readRecord of a missing record: %v, want not-exist", err)
	}
}

// TestRecordsCorrupt proves a corrupt record is reported with its path by
// readRecord and listRecords, that listRecords still returns the good
// records and skips temporaries, hidden files, directories and non-record
// files, and
// that a missing state directory lists as empty.
func TestRecordsCorrupt(t *testing.T) {
	dir := t.TempDir()
	good := &attachment{ContainerID: "good", IfName: "eth0", HostVeth: "elx"}
	if err := writeRecord(dir, good); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"bad_eth0.json":          `{"containerID":`,
		"noif_eth0.json":         `{"containerID":"noif"}`,
		".good_eth0.json.tmp-x1": `{"containerID":"tmp","ifName":"eth0"}`,
		".hidden_eth0.json":      `{"containerID":"hidden","ifName":"eth0"}`,
		"notes.txt":              "x",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.json"), 0o700); err != nil {
		t.Fatal(err)
	}

	_, err := readRecord(dir, "bad", "eth0")
	wantErrText(t, err, "corrupt attachment record "+filepath.Join(dir, "bad_eth0.json"))

	recs, err := listRecords(dir)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ContainerID)
	}
	if !slices.Equal(ids, []string{"good"}) {
		t.Errorf("listRecords = %v, want only the good record", ids)
	}
	wantErrText(t, err, filepath.Join(dir, "bad_eth0.json"), filepath.Join(dir, "noif_eth0.json"))
	if strings.Contains(err.Error(), ".tmp-") || strings.Contains(err.Error(), "notes") || strings.Contains(err.Error(), "sub.json") {
		t.Errorf("listRecords complains about files that are not records: %v", err)
	}

	if recs, err := listRecords(filepath.Join(dir, "absent")); recs != nil || err != nil {
		t.Errorf("listRecords of a missing dir = %v, %v; want nothing and no error", recs, err)
	}
}

// TestAddOverwritesCorruptRecord proves a corrupt record of the same
// attachment does not block ADD's duplicate check forever: readRecord
// fails, so ADD treats the attachment as new. (Needs no kernel: ADD then
// fails at the netns, and its rollback removes the record it wrote.)
func TestAddOverwritesCorruptRecord(t *testing.T) {
	e := newIPAMEnv(t)
	dir := stateDir(e.dataDir, "eltest")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recordPath(dir, "c1", "eth0"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.run(nil, "ADD", cmdAdd, e.netconf("eltbr0"), attachmentArgs{cid: "c1", ifName: "eth0", netns: "/run/netns/eltest-none-" + randHex(4)})
	wantErrText(t, err, "cannot open netns")
	if strings.Contains(err.Error(), "already exists") {
		t.Errorf("a corrupt record blocked ADD: %v", err)
	}
	if _, err := os.Stat(recordPath(dir, "c1", "eth0")); !os.IsNotExist(err) {
		t.Errorf("record after the failed ADD: %v, want it rolled back", err)
	}
}
