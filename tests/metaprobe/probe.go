// Package metaprobe runs the real metasync Service in a child process (the
// calling test binary re-executed, inside a node's network namespace when
// the source is that node's metaServer) and streams every publish back as
// one JSON line, so tests and benchmarks see exactly what the module
// publishes and when. A test binary's TestMain must call RunIfChild first.
package metaprobe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgelink/edgelink/modules/metasync"
	"github.com/edgelink/edgelink/pkg/metadata"
)

const childEnv = "EDGELINK_METASYNC_PROBE"

// Event is one line of probe output.
type Event struct {
	Time    time.Time         `json:"time"`
	Version uint64            `json:"version"`
	Changes []Change          `json:"changes"`
	Pods    map[string]string `json:"pods"` // namespace/name -> first IP ("" if none)
	Nodes   []string          `json:"nodes"`
	Pools   []string          `json:"pools"`
	Status  metadata.Status   `json:"status"`
}

// Change is one published change.
type Change struct {
	Op       string `json:"op"`
	Resource string `json:"resource"`
}

// Config is what the child's Service is built from.
type Config struct {
	Source, Server, Kubeconfig, SnapshotPath string
}

// RunIfChild runs the child side and exits when this process was started
// by Start; otherwise it returns. Call it first in TestMain.
func RunIfChild() {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
}

// PID is the child's process ID (for memory readings).
func (p *Probe) PID() int { return p.cmd.Process.Pid }

// runChild is the child side: the config comes as JSON in childEnv.
func runChild() int {
	var pc Config
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &pc); err != nil {
		fmt.Fprintln(os.Stderr, "probe config:", err)
		return 2
	}
	svc := &metasync.Service{Source: pc.Source, Server: pc.Server, Kubeconfig: pc.Kubeconfig, SnapshotPath: pc.SnapshotPath}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	svc.Publish = func(snap *metadata.Snapshot, changes []metadata.Change) {
		ev := Event{Time: time.Now(), Version: snap.Version, Pods: map[string]string{}, Status: svc.Status()}
		for _, c := range changes {
			ev.Changes = append(ev.Changes, Change{c.Op, c.Resource})
		}
		for k, p := range snap.Pods {
			ip := ""
			if len(p.IPs) > 0 {
				ip = p.IPs[0].String()
			}
			ev.Pods[k] = ip
		}
		for n := range snap.Nodes {
			ev.Nodes = append(ev.Nodes, n)
		}
		for n := range snap.Pools {
			ev.Pools = append(ev.Pools, n)
		}
		mu.Lock()
		_ = enc.Encode(ev)
		mu.Unlock()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := svc.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	return 0
}

// Probe is the parent side.
type Probe struct {
	t      *testing.T
	cmd    *exec.Cmd
	events chan Event
	stderr *strings.Builder
	done   chan struct{}

	mu   sync.Mutex
	last Event
	all  []Event
}

// Start runs the metasync Service in netns (or the host namespace
// when netns is "").
func Start(t *testing.T, netns string, pc Config) *Probe {
	t.Helper()
	cfg, _ := json.Marshal(pc)
	args := []string{"-test.run=^$"}
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", netns, os.Args[0]}, args...)...)
	} else {
		cmd = exec.Command(os.Args[0], args...)
	}
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Probe{t: t, cmd: cmd, events: make(chan Event, 4096), stderr: &strings.Builder{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{b: p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var ev Event
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			p.mu.Lock()
			p.last = ev
			p.all = append(p.all, ev)
			p.mu.Unlock()
			select {
			case p.events <- ev:
			default:
			}
		}
	}()
	t.Cleanup(func() { p.Kill() })
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// WaitFor waits until an event satisfies pred.
func (p *Probe) WaitFor(what string, timeout time.Duration, pred func(Event) bool) Event {
	p.t.Helper()
	p.mu.Lock()
	for _, ev := range p.all {
		if pred(ev) {
			p.mu.Unlock()
			return ev
		}
	}
	p.mu.Unlock()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-p.events:
			if pred(ev) {
				return ev
			}
		case <-p.done:
			p.t.Fatalf("probe exited while waiting for %s:\n%s", what, p.stderrTail())
		case <-deadline:
			p.t.Fatalf("no %s within %s; last event %+v\n%s", what, timeout, p.LastEvent(), p.stderrTail())
		}
	}
}

func (p *Probe) LastEvent() Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// EventsSince returns the events after index i (see EventCount).
func (p *Probe) EventsSince(i int) []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.all[i:]...)
}

func (p *Probe) EventCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.all)
}

func (p *Probe) stderrTail() string {
	s := p.stderr.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

// Stop sends SIGTERM and waits (the Service saves its snapshot).
func (p *Probe) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("probe did not stop on SIGTERM")
	}
	_ = p.cmd.Wait()
}

func (p *Probe) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.cmd.Wait()
}

func HasChange(ev Event, op, resource string) bool {
	for _, c := range ev.Changes {
		if c.Op == op && c.Resource == resource {
			return true
		}
	}
	return false
}
