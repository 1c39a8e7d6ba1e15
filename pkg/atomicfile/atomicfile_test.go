package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesWithModeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "f")
	for _, content := range []string{"one", "two"} {
		if err := WriteBytes(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q %v, want %q", got, err, content)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

// WriteIn replaces a file inside a root like Write, and refuses a path
// that leads out of the root through a symlink (relative or absolute)
// without writing anything outside.
func TestWriteInStaysInRoot(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, content := range []string{"one", "two"} {
		if err := WriteIn(root, "sub/f", strings.NewReader(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, "sub", "f")); err != nil || string(got) != "two" {
		t.Fatalf("read %q %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "sub", "f")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "sub")); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}

	rel, _ := filepath.Rel(dir, outside)
	for name, target := range map[string]string{"abs": outside, "rel": rel} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		if err := WriteIn(root, name+"/x/f", strings.NewReader("escaped"), 0o644); err == nil {
			t.Errorf("%s: write through a symlink out of the root succeeded", name)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("written outside the root: %v", entries)
	}
}
