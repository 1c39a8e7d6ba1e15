package app

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// repoRoot is the module's root, two levels above this package.
const repoRoot = "../../.."

// readDocs returns README.md and every docs/*.md, joined.
func readDocs(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/*.md under %s: %v", repoRoot, err)
	}
	var b strings.Builder
	for _, f := range append(files, filepath.Join(repoRoot, "README.md")) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
		b.WriteByte('\n')
	}
	return b.String()
}

// Every flag of every command is documented: its long form appears as
// `--name` (or its shorthand as `-x` in backquotes) in README.md or docs/
// (klog's logging flags, shared by every command, are left to klog).
func TestDocsNameEveryFlag(t *testing.T) {
	docs := readDocs(t)
	root := newRoot(io.Discard, io.Discard)
	klog := map[string]bool{}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { klog[f.Name] = true })
	var missing []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || klog[f.Name] || f.Name == "help" {
				return
			}
			if !strings.Contains(docs, "--"+f.Name) && (f.Shorthand == "" || !strings.Contains(docs, "`-"+f.Shorthand)) {
				missing = append(missing, c.CommandPath()+" --"+f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if len(missing) > 0 {
		t.Errorf("flags not documented in README.md or docs/*.md:\n  %s", strings.Join(missing, "\n  "))
	}
}

// Every metric the agent exports is in the metrics tables of docs/cli.md.
func TestDocsNameEveryMetric(t *testing.T) {
	cli, err := os.ReadFile(filepath.Join(repoRoot, "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`"(edgelink_[a-z_]+)"`)
	found := map[string]string{}
	for _, dir := range []string{"pkg", "modules", "cmd", "cni"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range name.FindAllSubmatch(src, -1) {
				found[string(m[1])] = p
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(found) < 20 {
		t.Fatalf("found only %d metric names in the source: the scan is broken", len(found))
	}
	var missing []string
	for m, p := range found {
		if !strings.Contains(string(cli), m) {
			missing = append(missing, m+" ("+strings.TrimPrefix(p, repoRoot+"/")+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics not documented in docs/cli.md:\n  %s", strings.Join(missing, "\n  "))
	}
}
