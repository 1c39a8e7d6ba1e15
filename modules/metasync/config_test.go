package metasync

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/tests/unittest"
)

// TestRestConfig proves how each source is reached: the metaServer with
// JSON only (it serves no protobuf) and its CA and token when configured;
// a kubeconfig's server; and errors that name what is wrong — the
// kubeconfig path, the unknown source, the missing in-cluster setup.
func TestRestConfig(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := unittest.Kubeconfig(t, "https://10.0.0.1:6443")

	t.Run("metaServer", func(t *testing.T) {
		s := &Service{Source: v1.SourceMetaServer, Server: "https://127.0.0.1:10550", CAFile: "/etc/kubeedge/ca/rootCA.crt", TokenFile: "/var/run/token"}
		cfg, err := s.restConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != "https://127.0.0.1:10550" || cfg.ContentType != "application/json" || cfg.AcceptContentTypes != "application/json" ||
			cfg.TLSClientConfig.CAFile != "/etc/kubeedge/ca/rootCA.crt" || cfg.BearerTokenFile != "/var/run/token" ||
			cfg.UserAgent != "edgelink-metasync" || cfg.QPS != 50 || cfg.Burst != 100 {
			t.Errorf("metaServer config = %+v", cfg)
		}
		plain, err := (&Service{Source: v1.SourceMetaServer, Server: "http://127.0.0.1:10550"}).restConfig()
		if err != nil || plain.TLSClientConfig.CAFile != "" || plain.BearerTokenFile != "" {
			t.Errorf("plain metaServer config = %+v, %v; want no CA or token", plain, err)
		}
	})
	t.Run("kubeconfig", func(t *testing.T) {
		cfg, err := (&Service{Source: v1.SourceKubeconfig, Kubeconfig: kubeconfig}).restConfig()
		if err != nil || cfg.Host != "https://10.0.0.1:6443" || cfg.UserAgent != "edgelink-metasync" {
			t.Errorf("kubeconfig config = %+v, %v", cfg, err)
		}
	})
	for _, tc := range []struct {
		name string
		s    *Service
		want string
	}{
		{"missing kubeconfig", &Service{Source: v1.SourceKubeconfig, Kubeconfig: filepath.Join(dir, "nope")}, "kubeconfig " + filepath.Join(dir, "nope")},
		{"unknown source", &Service{Source: "metaserver"}, `unknown metadata source "metaserver"`},
		{"in-cluster outside a cluster", &Service{Source: v1.SourceInCluster}, "in-cluster config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.s.restConfig()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("restConfig = %v, %v; want an error containing %q", cfg, err, tc.want)
			}
		})
	}
}

// TestInitSnapshotFile proves how the saved snapshot is used at start: a
// missing one means an empty picture; a good one is the picture (marked
// FromDisk); a corrupt or incomplete one is ignored — the agent starts
// empty rather than failing, and Init leaves the file as it was for the
// operator to inspect.
func TestInitSnapshotFile(t *testing.T) {
	good := metadata.Empty()
	good.Version = 3
	good.Pods["shop/web-1"] = podInfo(fullPod())
	tests := []struct {
		name     string
		write    func(path string) error
		fromDisk bool
		pods     int
	}{
		{"missing", func(string) error { return nil }, false, 0},
		{"good", func(p string) error { return metadata.Save(p, good) }, true, 1},
		{"corrupt", func(p string) error { return os.WriteFile(p, []byte(`{"version": 3, "pods": {`), 0o600) }, false, 0},
		{"incomplete", func(p string) error {
			return os.WriteFile(p, []byte(`{"version":3,"pods":{},"nodes":null,"namespaces":{},"pools":{}}`), 0o600)
		}, false, 0},
		{"empty file", func(p string) error { return os.WriteFile(p, nil, 0o600) }, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "snapshot.json")
			if err := tc.write(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			s := &Service{Source: v1.SourceMetaServer, Server: "http://127.0.0.1:10550", SnapshotPath: path}
			if err := s.Init(); err != nil {
				t.Fatalf("Init: %v", err)
			}
			st := s.Status()
			if st.FromDisk != tc.fromDisk || st.Pods != tc.pods || st.Synced || st.Server != "http://127.0.0.1:10550" {
				t.Errorf("status = %+v, want fromDisk %v with %d pods", st, tc.fromDisk, tc.pods)
			}
			if snap := s.Reader().Snapshot(); snap == nil || len(snap.Pods) != tc.pods {
				t.Errorf("Reader().Snapshot() = %+v", snap)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Errorf("Init rewrote the snapshot file")
			}
			// Init is idempotent: a second call (Run's) keeps the picture.
			snap := s.Reader().Snapshot()
			if err := s.Init(); err != nil || s.Reader().Snapshot() != snap {
				t.Errorf("a second Init replaced the picture")
			}
		})
	}
}

// TestInitSnapshotV0 proves a snapshot file of the format before pools
// had a typed form (pkg/metadata/testdata/snapshot-v0.json: the JSON as
// received only) loads, and Init gives every pool its typed form, so
// routes and IPAM work from it before the cloud answers.
func TestInitSnapshotV0(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.json")
	data, err := os.ReadFile("../../pkg/metadata/testdata/snapshot-v0.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Service{Source: v1.SourceMetaServer, Server: "http://127.0.0.1:10550", SnapshotPath: path}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	snap := s.Reader().Snapshot()
	if snap.Version != 1 || len(snap.Pods) != 2 || len(snap.Pools) != 5 || snap.Synced {
		t.Fatalf("picture from the v0 file: version %d, %d pods, %d pools, synced %v", snap.Version, len(snap.Pods), len(snap.Pools), snap.Synced)
	}
	pin := snap.Pools["edge-1-v4"]
	if pin.Err != nil || pin.Node != "edge-1" || pin.Version != 4 || pin.Gateway != netip.MustParseAddr("10.245.5.1") ||
		fmt.Sprint(pin.Prefixes) != "[10.245.5.1/32 10.245.5.2/31 10.245.5.4/30 10.245.5.8/29 10.245.5.16/28 10.245.5.32/28 10.245.5.48/29 10.245.5.56/30 10.245.5.60/31 10.245.5.62/32]" || pin.Pool == nil {
		t.Errorf("edge-1-v4: %+v", pin)
	}
	shared := snap.Pools["shared-v4"]
	if shared.Err != nil || shared.Node != "" || shared.Blocks[netip.MustParsePrefix("10.246.0.0/26")] != "edge-1" {
		t.Errorf("shared-v4: %+v", shared)
	}
	if b := snap.Pools["shared-v4-10.246.0.0-26"]; b.Err != nil || b.BlockOf != "shared-v4" || b.Node != "edge-1" {
		t.Errorf("block: %+v", b)
	}
	if off := snap.Pools["off-v6"]; off.Err != nil || !off.Disabled || off.Version != 6 {
		t.Errorf("off-v6: %+v", off)
	}
	if broken := snap.Pools["broken"]; broken.Err == nil || broken.Pool != nil {
		t.Errorf("broken: %+v", broken)
	}
	// Saved again, the file keeps the v0 format: the typed form is derived.
	again := filepath.Join(t.TempDir(), "again.json")
	if err := metadata.Save(again, snap); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(again); !bytes.Equal(got, data) {
		t.Errorf("saving the loaded picture changed the file:\n%s\nwant\n%s", got, data)
	}
}

// TestRunRejectsUnusableSource proves Run fails at once, naming the
// problem, when the source cannot be configured, instead of syncing
// nothing forever; the snapshot on disk stays readable meanwhile.
func TestRunRejectsUnusableSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.json")
	disk := metadata.Empty()
	disk.Pods["shop/web-1"] = podInfo(fullPod())
	if err := metadata.Save(path, disk); err != nil {
		t.Fatal(err)
	}
	s := &Service{Source: v1.SourceKubeconfig, Kubeconfig: filepath.Join(t.TempDir(), "missing"), SnapshotPath: path}
	err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), s.Kubeconfig) {
		t.Fatalf("Run = %v, want an error naming %s", err, s.Kubeconfig)
	}
	if s.Reader().Snapshot().Pods["shop/web-1"] == nil {
		t.Errorf("the snapshot on disk is not readable after Run failed")
	}
}
