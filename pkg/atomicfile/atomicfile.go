// Package atomicfile replaces files so that a reader or a crash sees the
// old content or the new, never a torn file: write a temporary file in the
// same directory, fsync it, rename it over the target, fsync the
// directory.
package atomicfile

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with the content of r, with permissions mode. The
// directory is created (0755) if missing.
func Write(path string, r io.Reader, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer root.Close()
	return writeIn(root, filepath.Base(path), path, r, mode)
}

// WriteBytes is Write for a byte slice.
func WriteBytes(path string, data []byte, mode os.FileMode) error {
	return Write(path, bytes.NewReader(data), mode)
}

// WriteIn is Write for name inside root: every component of name is
// resolved within root (os.Root), so a symlink leading out of it makes the
// write fail instead of being followed. name is relative to root; the
// directory is created (0755) if missing.
func WriteIn(root *os.Root, name string, r io.Reader, mode os.FileMode) error {
	return writeIn(root, name, name, r, mode)
}

// writeIn writes name inside root; errors name the file as shown.
func writeIn(root *os.Root, name, shown string, r io.Reader, mode os.FileMode) error {
	dir := filepath.Dir(name)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	var (
		tmp     *os.File
		tmpName string
		err     error
	)
	for range 10 {
		tmpName = filepath.Join(dir, "."+filepath.Base(name)+".tmp-"+rand.Text()[:10])
		tmp, err = root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", shown, err)
	}
	defer root.Remove(tmpName) // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", shown, err)
	}
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", shown, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", shown, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", shown, err)
	}
	if err := root.Rename(tmpName, name); err != nil {
		return fmt.Errorf("replace %s: %w", shown, err)
	}
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
