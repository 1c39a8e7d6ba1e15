package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// An edged's cgroupRoot: every edged on the machine needs its own, made
// before edgecore starts, in every cgroup v1 hierarchy. A missing one makes
// the whole edgecore exit ("cgroup [...] has some missing paths"); two
// edged sharing one kill each other's pods. runc also makes cgroups under
// the same root in the unified (v2) hierarchy, so removal covers it too.

const cgroupFS = "/sys/fs/cgroup"

// cgroupV1Hierarchies are the v1 controllers kubelet checks for a cgroupRoot.
var cgroupV1Hierarchies = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd"}

// makeCgroupRoot creates /<root> in every v1 hierarchy and gives its cpuset
// the root's cpus and mems (an empty cpuset admits no task).
func makeCgroupRoot(root string) error {
	for _, h := range cgroupV1Hierarchies {
		hdir := filepath.Join(cgroupFS, h)
		if _, err := os.Stat(hdir); err != nil {
			return fmt.Errorf("cgroupRoot %s: hierarchy %s: %w (edged needs cgroup v1)", root, h, err)
		}
		// cpu and cpuacct are often one mount with two names: MkdirAll is
		// then a no-op the second time.
		if err := os.MkdirAll(filepath.Join(hdir, root), 0o755); err != nil {
			return fmt.Errorf("cgroupRoot %s in %s: %w", root, h, err)
		}
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		v, err := os.ReadFile(filepath.Join(cgroupFS, "cpuset", f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cgroupFS, "cpuset", root, f), v, 0o644); err != nil {
			return fmt.Errorf("cgroupRoot %s: %s: %w", root, f, err)
		}
	}
	return nil
}

// removeCgroupRoot removes /<root> and every cgroup under it, deepest
// first, in every hierarchy including unified. A cgroup that still has
// tasks stays (rmdir fails with EBUSY); the error names it.
func removeCgroupRoot(root string) error {
	var busy []string
	for _, h := range append(append([]string{}, cgroupV1Hierarchies...), "unified") {
		top := filepath.Join(cgroupFS, h, root)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				busy = append(busy, d)
			}
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("cgroups left (tasks still in them?): %s", strings.Join(busy, ", "))
	}
	return nil
}
