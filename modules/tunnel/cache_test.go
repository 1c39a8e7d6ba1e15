package tunnel

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/unittest"
)

func samplePeers(t *testing.T) map[string]p2p.PeerRecord {
	return map[string]p2p.PeerRecord{
		"edge-b2": {Node: "edge-b2", Peer: unittest.NewPeerID(t).String(), Addrs: []string{"/ip4/192.168.2.12/tcp/20006"}, Seen: 1764200001},
		"edge-a2": {Node: "edge-a2", Peer: unittest.NewPeerID(t).String(), Addrs: []string{"/ip4/192.168.1.12/tcp/20006", "/ip6/fd00::12/udp/20006/quic-v1"}, Seen: 1764200000},
		"relay-1": {Node: "relay-1", Peer: unittest.NewPeerID(t).String(), Addrs: []string{}, Seen: 1764200002},
	}
}

// What is saved is what a restart loads: every record with its node,
// peer ID, addresses and Seen, in the documented format
// ({"peers":[...]}, sorted by node, readable by others: 0644), the data
// directory created if missing.
func TestCacheRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "tunnel", "peers.json")
	peers := samplePeers(t)
	if err := saveCache(path, peers); err != nil {
		t.Fatal(err)
	}
	if got := loadCache(path); !reflect.DeepEqual(got, peers) {
		t.Errorf("loaded\n %+v\nsaved\n %+v", got, peers)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Peers []map[string]any `json:"peers"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("peers.json is not JSON: %v\n%s", err, data)
	}
	var nodes []string
	for _, p := range f.Peers {
		for _, k := range []string{"node", "peer", "addrs", "seen"} {
			if _, ok := p[k]; !ok {
				t.Errorf("record %v has no %q", p, k)
			}
		}
		nodes = append(nodes, p["node"].(string))
	}
	if want := []string{"edge-a2", "edge-b2", "relay-1"}; !reflect.DeepEqual(nodes, want) {
		t.Errorf("records in order %v, want %v", nodes, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("peers.json mode: %v %v, want 0644", fi.Mode(), err)
	}

	// No members known: an empty list, loaded as no members.
	if err := saveCache(path, nil); err != nil {
		t.Fatal(err)
	}
	if got := loadCache(path); len(got) != 0 {
		t.Errorf("after saving none: %+v", got)
	}
}

// A missing, unreadable, corrupt or half-written peers.json starts the
// node without cached peers (never a crash or an error that stops the
// tunnel) and the log says why, naming the file; records without node or peer ID are skipped while the others
// are kept, and loading never changes the file: the damaged content
// stays for the user to inspect until the next save replaces it.
func TestCacheLoadDamaged(t *testing.T) {
	id := unittest.NewPeerID(t).String()
	full := `{"peers":[{"node":"edge-a2","peer":"` + id + `","addrs":["/ip4/192.168.1.12/tcp/20006"],"seen":1}]}`
	tests := []struct {
		name    string
		content *string // nil: no file
		dir     bool    // peers.json is a directory (unreadable)
		want    []string
		log     string // what the agent's log says ("": nothing)
	}{
		{name: "missing"},
		{name: "unreadable", dir: true, log: "Reading the peer cache failed; starting without it"},
		{name: "empty", content: ptr(""), log: "The peer cache is corrupt; starting without it"},
		{name: "garbage", content: ptr("\x00\x01not json"), log: "The peer cache is corrupt; starting without it"},
		{name: "truncated mid-write", content: ptr(full[:len(full)/2]), log: "The peer cache is corrupt; starting without it"},
		{name: "wrong shape", content: ptr(`{"peers":{"edge-a2":"x"}}`), log: "The peer cache is corrupt; starting without it"},
		{name: "null peers", content: ptr(`{"peers":null}`)},
		{name: "complete", content: ptr(full), want: []string{"edge-a2"}},
		{name: "records without node or peer skipped", content: ptr(`{"peers":[` +
			`{"node":"","peer":"` + id + `"},{"node":"edge-a3","peer":""},` +
			`{"node":"edge-a4","peer":"` + id + `","seen":3}]}`), want: []string{"edge-a4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "peers.json")
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.dir {
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			logs := captureLog(t)
			got := loadCache(path)
			switch out := logs.String(); {
			case tt.log == "" && out != "":
				t.Errorf("logged %q", out)
			case tt.log != "" && (!strings.Contains(out, tt.log) || !strings.Contains(out, path)):
				t.Errorf("log %q, want %q naming %s", out, tt.log, path)
			}
			if got == nil {
				t.Fatal("loadCache returned a nil map (discover writes into it)")
			}
			var nodes []string
			for n := range got {
				nodes = append(nodes, n)
			}
			if !reflect.DeepEqual(nodes, tt.want) {
				t.Errorf("loaded %v, want %v", nodes, tt.want)
			}
			if tt.content != nil {
				if data, err := os.ReadFile(path); err != nil || string(data) != *tt.content {
					t.Errorf("loading changed the file: %q %v", data, err)
				}
			}
		})
	}
}

// Saving replaces peers.json atomically: a reader that opened the old
// file (an agent starting while another discovery round saves) reads it
// whole, never a mix or a truncated file, and no temporary file is left
// beside it.
func TestCacheSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.json")
	old := samplePeers(t)
	if err := saveCache(path, old); err != nil {
		t.Fatal(err)
	}
	oldData, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	next := map[string]p2p.PeerRecord{"edge-c1": {Node: "edge-c1", Peer: unittest.NewPeerID(t).String(), Seen: 5}}
	if err := saveCache(path, next); err != nil {
		t.Fatal(err)
	}
	seen, err := io.ReadAll(reader)
	if err != nil {
		t.Fatal(err)
	}
	if string(seen) != string(oldData) {
		t.Errorf("a reader of the old file read\n%s\nnot the old content\n%s", seen, oldData)
	}
	if got := loadCache(path); !reflect.DeepEqual(got, next) {
		t.Errorf("after the save: %+v, want %+v", got, next)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "peers.json" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only peers.json", names)
	}
}

// A save that cannot write (the data directory is a file) says which
// file failed, and leaves what was there untouched.
func TestCacheSaveError(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "tunnel")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := saveCache(filepath.Join(blocker, "peers.json"), samplePeers(t))
	if err == nil || !strings.Contains(err.Error(), blocker) {
		t.Errorf("saving under a file: %v, want an error naming %s", err, blocker)
	}
	if data, _ := os.ReadFile(blocker); string(data) != "not a directory" {
		t.Errorf("the blocking file was changed: %q", data)
	}
}

func ptr[T any](v T) *T { return &v }

// captureLog sends klog's output to the returned buffer until the test
// ends.
func captureLog(t *testing.T) *bytes.Buffer {
	var b bytes.Buffer
	klog.LogToStderr(false)
	klog.SetOutput(&b)
	t.Cleanup(func() {
		klog.SetOutput(os.Stderr)
		klog.LogToStderr(true)
	})
	return &b
}
