package metadata

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Save writes s to path atomically: a temporary file in the same
// directory, fsync'd, renamed over path, and the directory fsync'd. A crash
// leaves either the old file or the new one, never a torn one.
func Save(path string, s *Snapshot) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load reads a snapshot saved by Save. A missing file returns (nil, nil).
func Load(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := Empty()
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("metadata snapshot %s is corrupt: %w", path, err)
	}
	for _, m := range []bool{s.Pods == nil, s.Nodes == nil, s.Namespaces == nil, s.Pools == nil} {
		if m {
			return nil, fmt.Errorf("metadata snapshot %s is incomplete", path)
		}
	}
	s.index()
	return s, nil
}
