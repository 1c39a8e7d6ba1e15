package topology

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// RecordDir holds one owner record per live topology.
const RecordDir = "/run/edgelink-topology"

// record is what a topology leaves behind for Sweep.
type record struct {
	PID        int      `json:"pid"`
	StartTicks uint64   `json:"startTicks"` // /proc/<pid>/stat field 22, guards against PID reuse
	NetNS      []string `json:"netns"`
}

func writeRecord(id string, names []string) (string, error) {
	if err := os.MkdirAll(RecordDir, 0o755); err != nil {
		return "", err
	}
	start, err := startTicks(os.Getpid())
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(record{PID: os.Getpid(), StartTicks: start, NetNS: names})
	if err != nil {
		return "", err
	}
	path := filepath.Join(RecordDir, id+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// startTicks is the start time of process pid in clock ticks since boot.
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// after it start behind the last ')'. Field 22 is starttime.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func alive(r record) bool {
	st, err := startTicks(r.PID)
	return err == nil && st == r.StartTicks
}

// Sweep removes what topologies of dead processes left behind: for every
// owner record in RecordDir whose process is gone, it deletes the listed
// namespaces (only names with the "elt-" prefix) and then the record.
// Records of live processes are left alone. New calls it.
func Sweep() error {
	entries, err := os.ReadDir(RecordDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		path := filepath.Join(RecordDir, e.Name())
		if strings.HasSuffix(e.Name(), ".json.tmp") {
			// A writer died between write and rename; a live one renames
			// within microseconds.
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Minute {
				_ = os.Remove(path)
			}
			continue
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue // removed by a concurrent Sweep or teardown
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.PID <= 0 {
			errs = append(errs, fmt.Errorf("%s: unreadable owner record, left alone", path))
			continue
		}
		if alive(r) {
			continue
		}
		ok := true
		for _, name := range r.NetNS {
			if !strings.HasPrefix(name, nsPrefix) || strings.ContainsRune(name, '/') {
				continue
			}
			if err := deleteNetNS(name); err != nil {
				errs = append(errs, err)
				ok = false
			}
		}
		if ok {
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// deleteNetNS does what `ip netns delete` does: detach the bind mount that
// keeps the namespace alive and remove the mount point. The namespace dies
// with its last process; its links vanish with it. A name that does not
// exist is not an error.
func deleteNetNS(name string) error {
	path := filepath.Join(nsRunDir, name)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}
