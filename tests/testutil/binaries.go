package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Main runs a test binary's tests and then removes what this package built
// for the whole process. Call it from TestMain: os.Exit(testutil.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	RemoveBuilt()
	return code
}

// RemoveBuilt deletes the binaries Binaries built for this process. Call it
// after m.Run when TestMain does not use Main.
func RemoveBuilt() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds edgelink and edgelink-cni once per test process and
// returns the directory holding them. With EDGELINK_BIN_DIR set (the
// Makefile sets it to bin/), that directory is used as is.
func Binaries(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("EDGELINK_BIN_DIR"); d != "" {
		for _, b := range []string{"edgelink", "edgelink-cni"} {
			if _, err := os.Stat(filepath.Join(d, b)); err != nil {
				t.Fatalf("EDGELINK_BIN_DIR=%s lacks %s: run `make build`", d, b)
			}
		}
		return d
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "edgelink-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/edgelink", "./cni/edgelink-cni")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

var (
	toolsMu sync.Mutex
	tools   = map[string]string{}
)

// Tool returns the path of a real test peer (cnitool, host-local, bridge,
// spiderpool), building it through tests/tools/build.sh on first use.
func Tool(t testing.TB, name string) string {
	t.Helper()
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if p, ok := tools[name]; ok {
		return p
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "tests", "tools", "build.sh"), name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build tool %s: %v\n%s", name, err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == name {
			tools[name] = v
			return v
		}
	}
	t.Fatalf("build tool %s: no path in output %q", name, out)
	return ""
}

// PluginDir makes a CNI_PATH directory holding edgelink-cni and the named
// tools (symlinked), removed at cleanup.
func PluginDir(t testing.TB, toolNames ...string) string {
	t.Helper()
	dir := t.TempDir()
	bin := Binaries(t)
	link := func(src, name string) {
		if err := os.Symlink(src, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	link(filepath.Join(bin, "edgelink-cni"), "edgelink-cni")
	for _, n := range toolNames {
		link(Tool(t, n), n)
	}
	return dir
}

// EdgelinkCmd is a command running the built edgelink binary with args.
func EdgelinkCmd(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	return exec.Command(filepath.Join(Binaries(t), "edgelink"), args...)
}

// IssueMember issues node's membership certificate with `edgelink ca
// issue` from the CA in issuerDir, for the identity key at
// tn.IdentityFile (created if missing), into outDir, and points tn's
// caFile at caDir's CA and certFile/keyFile at the new files. extra are
// more `ca issue` flags (--validity 1s).
func IssueMember(t testing.TB, tn *v1.Tunnel, node, issuerDir, caDir, outDir string, extra ...string) {
	t.Helper()
	args := append([]string{"ca", "issue", "--dir", issuerDir, "--node", node, "--identity", tn.IdentityFile, "--out", outDir}, extra...)
	if out, err := EdgelinkCmd(t, args...).CombinedOutput(); err != nil {
		t.Fatalf("edgelink ca issue %s: %v\n%s", node, err, out)
	}
	tn.CAFile = filepath.Join(caDir, "ca.crt")
	tn.CertFile, tn.KeyFile = filepath.Join(outDir, node+".crt"), filepath.Join(outDir, node+".key")
}
