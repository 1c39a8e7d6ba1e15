package metadata

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgelink/edgelink/pkg/atomicfile"
)

// Save writes s to path atomically: a temporary file in the same
// directory, fsync'd, renamed over path, and the directory fsync'd. A crash
// leaves either the old file or the new one, never a torn one.
func Save(path string, s *Snapshot) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, data, 0o600)
}

// Load reads a snapshot saved by Save, parsing its pools into their typed
// form (NewPoolInfo). A missing file returns (nil, nil).
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
	for name, p := range s.Pools { // the file has the JSON only
		s.Pools[name] = NewPoolInfo(p.Name, p.Object)
	}
	s.index()
	return s, nil
}
