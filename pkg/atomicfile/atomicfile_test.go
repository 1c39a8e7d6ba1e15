package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

// What a reader sees while files are replaced: a reader that opened the
// file before a Write keeps reading the old content, whole (a rename
// leaves its inode alone; an in-place truncate and write would not), and
// readers opening it during a stream of Writes see one whole version
// each time, never an empty or torn file.
func TestReadersSeeWholeVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	a, b := []byte(strings.Repeat("a", 1<<20)), []byte(strings.Repeat("b", 1<<20))
	if err := WriteBytes(path, a, 0o644); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := WriteBytes(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(old)
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("a reader opened before the write read %d bytes, not the old content whole (err %v)", len(got), err)
	}

	stop := make(chan struct{})
	bad := make(chan string, 1)
	var reads atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := os.ReadFile(path)
			if err != nil || !(bytes.Equal(data, a) || bytes.Equal(data, b)) {
				select {
				case bad <- fmt.Sprintf("a reader saw %d bytes (err %v): neither version whole", len(data), err):
				default:
				}
				return
			}
			reads.Add(1)
		}
	}()
	for i := 0; i < 200; i++ {
		data := a
		if i%2 == 1 {
			data = b
		}
		if err := WriteBytes(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	if reads.Load() == 0 {
		t.Error("the reader never read during the writes")
	}
}
