// Command testsummary reads `go test -json` on stdin, prints what a person
// needs (one line per package, the output of failed tests, skip reasons) and
// ends with one summary line for the suite:
//
//	SUITE e2e: PASS  41 passed, 0 failed, 2 skipped, 9 packages (63.2s)
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
		case "pass":
			if e.Test != "" {
				passed++
			} else {
				pkgs++
				fmt.Printf("ok    %s (%.1fs)\n", e.Package, e.Elapsed)
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
	fmt.Printf("SUITE %s: %s  %d passed, %d failed, %d skipped, %d packages (%.1fs)\n",
		*suite, status, passed, failed, skipped, pkgs, time.Since(start).Seconds())
	if status != "PASS" {
		os.Exit(1)
	}
}
