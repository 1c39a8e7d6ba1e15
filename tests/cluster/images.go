package cluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Test images: no registry. Each image is one static Go binary from
// tests/images/<name>, packed as a docker-archive tarball that
// `ctr -n k8s.io images import` takes (pods then use
// imagePullPolicy: Never). The pause image is built the same way.
//
// docker-archive, as written here (the subset containerd's importer reads):
//
//	manifest.json        [{"Config":"<cfg>.json","RepoTags":["<ref>"],"Layers":["<diff>/layer.tar"]}]
//	<cfg>.json           image config: os, architecture, config.Entrypoint, rootfs.diff_ids
//	<diff>/layer.tar     one uncompressed layer: the binary at /<name>
//
// <cfg> is the sha256 of the config file and <diff> the sha256 of the layer
// tar (its diff_id), both in hex.

// Image names and references of the tests' images.
const (
	PauseImage     = "registry.k8s.io/pause:3.6" // edged's podSandboxImage
	PodServerImage = "edgelink.test/podserver:e2e"
)

// imageSources maps an image reference to its source under tests/images.
var imageSources = map[string]string{
	PauseImage:     "pause",
	PodServerImage: "podserver",
}

// BuildImage builds the static binary of tests/images/<name> and writes it
// as a docker-archive tarball tagged ref into dir; it returns the tarball's
// path. repoRoot is the EdgeLink checkout (the binary builds in its module).
func BuildImage(repoRoot, dir, name, ref string) (string, error) {
	bin := filepath.Join(dir, name+".bin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./tests/images/"+name)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build image %s: %v\n%s", ref, err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	tarball, err := DockerArchive(ref, name, exe)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name+".tar")
	return path, os.WriteFile(path, tarball, 0o644)
}

// DockerArchive packs exe as /<name>, the image's entrypoint, into a
// docker-archive tarball tagged ref.
func DockerArchive(ref, name string, exe []byte) ([]byte, error) {
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	if err := lw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(exe)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := lw.Write(exe); err != nil {
		return nil, err
	}
	if err := lw.Close(); err != nil {
		return nil, err
	}
	diff := sha256hex(layer.Bytes())

	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": []string{"/" + name}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + diff}},
	})
	if err != nil {
		return nil, err
	}
	cfgName := sha256hex(cfg) + ".json"
	layerName := diff + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{
		"Config": cfgName, "RepoTags": []string{ref}, "Layers": []string{layerName},
	}})
	if err != nil {
		return nil, err
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, f := range []struct {
		name string
		data []byte
	}{{cfgName, cfg}, {layerName, layer.Bytes()}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// ImportImages builds every test image and imports it into the containerd
// listening on socket, in the k8s.io namespace the CRI plugin uses.
func ImportImages(t testing.TB, repoRoot, socket string) {
	t.Helper()
	dir := t.TempDir()
	for ref, name := range imageSources {
		path, err := BuildImage(repoRoot, dir, name, ref)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ctr", "--address", socket, "-n", "k8s.io", "images", "import", path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("import %s into %s: %v\n%s", ref, socket, err, out)
		}
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
