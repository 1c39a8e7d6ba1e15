package cluster

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// TestDockerArchiveLayout reads the tarball back the way containerd's
// importer does: manifest.json names the config and layer, the config's
// diff_id is the layer's digest, and the layer holds the entrypoint.
func TestDockerArchiveLayout(t *testing.T) {
	exe := []byte("#!not-really-elf")
	tb, err := DockerArchive("edgelink.test/x:1", "x", exe)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(tb))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json = %q: %v", files["manifest.json"], err)
	}
	m := manifest[0]
	if len(m.RepoTags) != 1 || m.RepoTags[0] != "edgelink.test/x:1" || len(m.Layers) != 1 {
		t.Fatalf("manifest = %+v", m)
	}
	var cfg struct {
		OS     string `json:"os"`
		Config struct{ Entrypoint []string }
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[m.Config], &cfg); err != nil {
		t.Fatalf("config %s: %v", m.Config, err)
	}
	if m.Config != sha256hex(files[m.Config])+".json" {
		t.Errorf("config file %s is not named by its digest", m.Config)
	}
	layer := files[m.Layers[0]]
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != "sha256:"+sha256hex(layer) {
		t.Errorf("diff_ids %v, layer digest %s", cfg.RootFS.DiffIDs, sha256hex(layer))
	}
	if cfg.OS != "linux" || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/x" {
		t.Errorf("config = %+v", cfg)
	}
	lr := tar.NewReader(bytes.NewReader(layer))
	h, err := lr.Next()
	if err != nil || h.Name != "x" || h.Mode&0o111 == 0 {
		t.Fatalf("layer entry %+v: %v", h, err)
	}
	if b, _ := io.ReadAll(lr); !bytes.Equal(b, exe) {
		t.Errorf("layer holds %q, want %q", b, exe)
	}
}
