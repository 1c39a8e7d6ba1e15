// Command testsummary reads `go test -json` on stdin, prints what a person
// needs (one line per package, the output of failed tests, skip reasons) and
// ends with one summary line for the suite:
//
//	SUITE e2e: PASS  41 passed, 0 failed, 2 skipped, 9 packages (63.2s)
//
// With `go test -cover` each package's statement coverage follows its
// line, and the summary line lists them all (module prefix cut):
//
//	SUITE unit: PASS  292 passed, ... (43.5s); coverage: pkg/ipam 81.2%, pkg/p2p 62.0%
//
// Before the summary line it repeats each failed test that has no failed
// subtest, with the last lines its test code reported (file.go:N: ...),
// and the summary line names them: the end of a long log says what broke.
//
// It exits non-zero when any test or package failed (including build
// failures), so `set -o pipefail` is not needed to catch them.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	suite := flag.String("suite", "tests", "suite name for the summary line")
	flag.Parse()
	start := time.Now()
	var passed, failed, skipped, pkgs, pkgFailed int
	buf := map[string][]string{} // package/test -> output
	type failure struct {
		pkg, test string
		said      []string // its last test-code lines
	}
	var failures []failure
	coverage := map[string]string{} // package -> "81.2%"
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Println(string(line)) // build errors arrive as plain text
			continue
		}
		key := e.Package + "/" + e.Test
		switch e.Action {
		case "output":
			buf[key] = append(buf[key], e.Output)
			if e.Test == "" {
				if _, rest, ok := strings.Cut(e.Output, "coverage: "); ok {
					if pct, _, ok := strings.Cut(rest, " of statements"); ok {
						coverage[e.Package] = pct
					}
				}
			}
		case "pass":
			if e.Test != "" {
				passed++
			} else {
				pkgs++
				cov := ""
				if c, ok := coverage[e.Package]; ok {
					cov = ", coverage " + c
				}
				fmt.Printf("ok    %s (%.1fs%s)\n", e.Package, e.Elapsed, cov)
			}
			delete(buf, key)
		case "skip":
			if e.Test != "" {
				skipped++
				reason := ""
				for _, o := range buf[key] {
					if s := strings.TrimSpace(o); strings.Contains(s, ".go:") {
						reason = s
					}
				}
				fmt.Printf("SKIP  %s %s %s\n", e.Package, e.Test, reason)
			} else {
				pkgs++
			}
			delete(buf, key)
		case "fail":
			if e.Test != "" {
				failed++
				fmt.Printf("FAIL  %s %s (%.1fs)\n%s", e.Package, e.Test, e.Elapsed, strings.Join(buf[key], ""))
				// A parent fails after its subtests: keep the leaves only.
				leaf := true
				for _, f := range failures {
					if f.pkg == e.Package && strings.HasPrefix(f.test, e.Test+"/") {
						leaf = false
					}
				}
				if leaf {
					failures = append(failures, failure{e.Package, e.Test, testLines(buf[key], 3)})
				}
			} else {
				pkgs++
				pkgFailed++
				fmt.Printf("FAIL  %s (%.1fs)\n%s", e.Package, e.Elapsed, strings.Join(buf[key], ""))
			}
			delete(buf, key)
		}
	}
	status := "PASS"
	if failed > 0 || pkgFailed > 0 {
		status = "FAIL"
	}
	var names []string
	for _, f := range failures {
		fmt.Printf("FAILED %s %s\n", f.pkg, f.test)
		for _, l := range f.said {
			fmt.Printf("    %s\n", l)
		}
		names = append(names, f.test)
	}
	which := ""
	if len(names) > 0 {
		if len(names) > 5 {
			names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
		}
		which = ": " + strings.Join(names, ", ")
	}
	if len(coverage) > 0 {
		var cov []string
		for pkg, c := range coverage {
			cov = append(cov, shortPackage(pkg)+" "+c)
		}
		sort.Strings(cov)
		which += "; coverage: " + strings.Join(cov, ", ")
	}
	fmt.Printf("SUITE %s: %s  %d passed, %d failed, %d skipped, %d packages (%.1fs)%s\n",
		*suite, status, passed, failed, skipped, pkgs, time.Since(start).Seconds(), which)
	if status != "PASS" {
		os.Exit(1)
	}
}

// testLines is the last n lines of a test's output that its own code
// reported (t.Error, t.Fatal, t.Log: "    name_test.go:42: ..."), each cut
// to 300 bytes; continuation lines and process logs are left out.
func testLines(out []string, n int) []string {
	var said []string
	for _, o := range out {
		s := strings.TrimSpace(o)
		file, _, ok := strings.Cut(s, ":")
		if !ok || !strings.HasSuffix(file, ".go") || strings.ContainsAny(file, " /") {
			continue
		}
		if len(s) > 300 {
			s = s[:300] + "..."
		}
		said = append(said, s)
	}
	if len(said) > n {
		said = said[len(said)-n:]
	}
	return said
}

// shortPackage cuts the module path off an import path:
// github.com/edgelink/edgelink/pkg/ipam -> pkg/ipam.
func shortPackage(pkg string) string {
	const module = "github.com/edgelink/edgelink/"
	if rest, ok := strings.CutPrefix(pkg, module); ok {
		return rest
	}
	return pkg
}
