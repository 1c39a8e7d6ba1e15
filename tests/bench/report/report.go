// Package report holds what every EdgeLink benchmark shares: waiting for a
// quiet machine, repeating runs, and printing results as a table and as
// bench-results.json entries (docs/development.md).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Result is one line of bench-results.json.
type Result struct {
	Name   string  `json:"name"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Runs   int     `json:"runs"`
	Stat   string  `json:"stat"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Summarize turns repeated samples into a median Result.
func Summarize(name, metric, unit string, samples []float64) Result {
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Result{Name: name, Metric: metric, Value: med, Unit: unit, Runs: len(s), Stat: "median", Min: s[0], Max: s[len(s)-1]}
}

// WaitQuiet waits until the machine is under 15% CPU busy for half a
// second, up to limit, and says so when it never got quiet.
func WaitQuiet(w io.Writer, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		busy, err := cpuBusy(500 * time.Millisecond)
		if err != nil || busy < 0.15 {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(w, "note: machine never got quiet (%.0f%% busy) within %s; measuring anyway\n", busy*100, limit)
			return
		}
	}
}

func cpuBusy(d time.Duration) (float64, error) {
	read := func() (idle, total float64, err error) {
		data, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0, err
		}
		fields := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1:]
		for i, f := range fields {
			v, _ := strconv.ParseFloat(f, 64)
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		return idle, total, nil
	}
	i1, t1, err := read()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	i2, t2, err := read()
	if err != nil || t2 == t1 {
		return 0, err
	}
	return 1 - (i2-i1)/(t2-t1), nil
}

// PrintTable writes results as a table; results sharing a case (the last
// dotted part) are grouped so a subject sits beside its baseline.
func PrintTable(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-44s %-10s %12s %12s %12s %-8s %s\n", "name", "metric", "median", "min", "max", "unit", "runs")
	for _, r := range results {
		fmt.Fprintf(w, "%-44s %-10s %12.3f %12.3f %12.3f %-8s %d\n", r.Name, r.Metric, r.Value, r.Min, r.Max, r.Unit, r.Runs)
	}
}

// AppendJSON merges results into path (a JSON array), replacing entries of
// the same name.
func AppendJSON(path string, results []Result) error {
	var all []Result
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, &all)
	}
	byName := map[string]int{}
	for i, r := range all {
		byName[r.Name] = i
	}
	for _, r := range results {
		if i, ok := byName[r.Name]; ok {
			all[i] = r
		} else {
			all = append(all, r)
		}
	}
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
