package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgelink/edgelink/pkg/atomicfile"
)

// attachment is the on-disk record of one ADD, written before any resource
// is created and removed by DEL (or GC), so that GC can release attachments
// the runtime forgot, including ones whose ADD was interrupted.
//
// File: <dataDir>/<network>/<containerID>_<ifName>.json, mode 0600, written
// to a temporary file, fsync'd and renamed into place.
type attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	NetNS       string `json:"netns,omitempty"`
	HostVeth    string `json:"hostVeth"`
	// CNIArgs is CNI_ARGS of the ADD (pod identity for spiderpool's DEL).
	CNIArgs string `json:"cniArgs,omitempty"`
}

func stateDir(dataDir, network string) string {
	return filepath.Join(dataDir, network)
}

func recordPath(dir, containerID, ifName string) string {
	return filepath.Join(dir, containerID+"_"+ifName+".json")
}

func writeRecord(dir string, a *attachment) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(recordPath(dir, a.ContainerID, a.IfName), data, 0o600)
}

func readRecord(dir, containerID, ifName string) (*attachment, error) {
	data, err := os.ReadFile(recordPath(dir, containerID, ifName))
	if err != nil {
		return nil, err
	}
	a := &attachment{}
	if err := json.Unmarshal(data, a); err != nil {
		return nil, fmt.Errorf("corrupt attachment record %s: %w", recordPath(dir, containerID, ifName), err)
	}
	return a, nil
}

func removeRecord(dir, containerID, ifName string) error {
	err := os.Remove(recordPath(dir, containerID, ifName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// listRecords returns every attachment record in dir. Unreadable records are
// reported in the joined error and skipped.
func listRecords(dir string) ([]*attachment, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*attachment
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a := &attachment{}
		if err := json.Unmarshal(data, a); err != nil || a.ContainerID == "" || a.IfName == "" {
			errs = append(errs, fmt.Errorf("corrupt attachment record %s", filepath.Join(dir, name)))
			continue
		}
		out = append(out, a)
	}
	return out, errors.Join(errs...)
}
