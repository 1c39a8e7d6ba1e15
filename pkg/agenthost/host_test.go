package agenthost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kubeedge/beehive/pkg/core"
	beehiveContext "github.com/kubeedge/beehive/pkg/core/context"
	"github.com/kubeedge/beehive/pkg/core/model"
	"go.uber.org/goleak"
)

// beehive keeps global state, so each scenario runs Run in a child process:
// this test binary re-executed with scenarioEnv set.
const scenarioEnv = "EDGELINK_AGENTHOST_SCENARIO"

const nChatty = 8

// chatty sends one message to every other module the moment it starts (the
// start-order race drops these without the ready barrier), reports when it
// has heard from all of them, and on shutdown reports that it released its
// resources.
type chatty struct {
	name    string
	ignore  bool // never returns: a module that cannot shut down
	early   bool // returns at once: a module that crashed
	enabled bool
}

var _ core.Module = (*chatty)(nil)

func (m *chatty) Name() string  { return m.name }
func (m *chatty) Group() string { return "test" }
func (m *chatty) Enable() bool  { return m.enabled }
func (m *chatty) Start() {
	if m.early {
		return
	}
	for i := 0; i < nChatty; i++ {
		to := fmt.Sprintf("m%d", i)
		if to != m.name {
			beehiveContext.Send(to, *model.NewMessage("").SetRoute(m.name, "test").FillBody(m.name))
		}
	}
	got := 0
	for {
		_, ok := Receive(m.name)
		if !ok {
			break
		}
		if got++; got == nChatty-1 {
			fmt.Printf("%s got %d\n", m.name, got)
		}
	}
	if m.ignore {
		select {} // never releases
	}
	fmt.Printf("%s released\n", m.name)
}

func runScenario(scenario string) int {
	var mods []core.Module
	for i := 0; i < nChatty; i++ {
		mods = append(mods, &chatty{name: fmt.Sprintf("m%d", i), enabled: true})
	}
	mods = append(mods, &chatty{name: "disabled", enabled: false})
	switch scenario {
	case "stuck":
		mods[3].(*chatty).ignore = true
	case "early":
		mods = append(mods, &chatty{name: "crasher", early: true, enabled: true})
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	before := goleak.IgnoreCurrent() // what ran before Run may keep running
	err := Run(ctx, mods, 2*time.Second)
	switch {
	case err == nil:
		if leaks := goleak.Find(before); leaks != nil && scenario == "clean" {
			fmt.Println("LEAK", leaks)
			return 4
		}
		fmt.Println("exit ok")
		return 0
	case errors.Is(err, ErrShutdownTimeout):
		fmt.Println("exit timeout:", err)
		return 3
	case errors.Is(err, ErrModuleExited):
		fmt.Println("exit early:", err)
		return 5
	}
	fmt.Println("exit error:", err)
	return 1
}

func TestMain(m *testing.M) {
	if s := os.Getenv(scenarioEnv); s != "" {
		os.Exit(runScenario(s))
	}
	os.Exit(m.Run())
}

// child starts a scenario and returns its output lines as they come.
func child(t *testing.T, scenario string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), scenarioEnv+"="+scenario)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return cmd, lines
}

// waitFor reads lines until n of them start with want, or fails.
func waitFor(t *testing.T, lines <-chan string, n int, pred func(string) bool, seen *[]string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for n > 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child exited early; output:\n%s", strings.Join(*seen, "\n"))
			}
			*seen = append(*seen, l)
			if pred(l) {
				n--
			}
		case <-deadline:
			t.Fatalf("timed out; output so far:\n%s", strings.Join(*seen, "\n"))
		}
	}
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(15 * time.Second):
		t.Fatal("child did not exit")
		return -1
	}
}

// Every module hears from every other although they all send at start
// (the barrier), and SIGTERM makes each release and the host exit cleanly.
func TestRunBarrierAndCleanShutdown(t *testing.T) {
	for round := 0; round < 3; round++ { // beehive's start order is random per run
		cmd, lines := child(t, "clean")
		var seen []string
		waitFor(t, lines, nChatty, func(l string) bool { return strings.HasSuffix(l, fmt.Sprintf("got %d", nChatty-1)) }, &seen)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitFor(t, lines, nChatty, func(l string) bool { return strings.HasSuffix(l, "released") }, &seen)
		waitFor(t, lines, 1, func(l string) bool { return l == "exit ok" }, &seen)
		if code := exitCode(t, cmd); code != 0 {
			t.Fatalf("exit code %d; output:\n%s", code, strings.Join(seen, "\n"))
		}
		for _, l := range seen {
			if strings.Contains(l, "disabled") {
				t.Errorf("disabled module ran: %q", l)
			}
		}
	}
}

// A module that does not stop is reported by name after the timeout.
func TestRunShutdownTimeoutNamesModule(t *testing.T) {
	cmd, lines := child(t, "stuck")
	var seen []string
	waitFor(t, lines, nChatty, func(l string) bool { return strings.HasSuffix(l, "got 7") }, &seen)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, lines, 1, func(l string) bool { return strings.HasPrefix(l, "exit ") }, &seen)
	last := seen[len(seen)-1]
	if !strings.Contains(last, "exit timeout") || !strings.Contains(last, "[m3]") {
		t.Errorf("last line %q, want a timeout naming only m3", last)
	}
	if code := exitCode(t, cmd); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
}

// A module whose Start returns on its own brings the agent down, with every
// other module released, and the error names it.
func TestRunModuleExitStopsAgent(t *testing.T) {
	cmd, lines := child(t, "early")
	var seen []string
	var released atomic.Int32
	waitFor(t, lines, 1, func(l string) bool {
		if strings.HasSuffix(l, "released") {
			released.Add(1)
		}
		return strings.HasPrefix(l, "exit ")
	}, &seen)
	if last := seen[len(seen)-1]; !strings.Contains(last, "exit early") || !strings.Contains(last, "crasher") {
		t.Errorf("last line %q, want an early exit naming crasher", last)
	}
	if released.Load() != nChatty {
		t.Errorf("%d modules released, want %d:\n%s", released.Load(), nChatty, strings.Join(seen, "\n"))
	}
	if code := exitCode(t, cmd); code != 5 {
		t.Errorf("exit code %d, want 5", code)
	}
}
