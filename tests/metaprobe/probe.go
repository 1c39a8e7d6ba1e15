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
	"maps"
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

// Event is one publish. On the wire it carries only what changed; the
// parent keeps the accumulated picture, and predicates given to WaitFor see
// it in Pods.
type Event struct {
	Time    time.Time       `json:"time"`
	Version uint64          `json:"version"`
	Changes []Change        `json:"changes"`
	Status  metadata.Status `json:"status"`
	// Full marks an event carrying the whole picture (the first one).
	Full bool `json:"full,omitempty"`
	// PodIPs holds the changed pods (all pods when Full): namespace/name
	// -> first IP ("" if none).
	PodIPs map[string]string `json:"podIPs,omitempty"`

	// Pods is the probe's current picture (namespace/name -> first IP)
	// when a WaitFor predicate runs; not the picture at this event.
	Pods map[string]string `json:"-"`
}

// Change is one published change.
type Change struct {
	Op       string `json:"op"`
	Resource string `json:"resource"`
}

// Config is what the child's Service is built from.
type Config struct {
	Source, Server, Kubeconfig, SnapshotPath string
	// AuditPeriod, when set, replaces the service's (30 s): a test that
	// checks what the watches deliver sets it beyond its own waits, so the
	// audit cannot repair a missed event in time.
	AuditPeriod time.Duration
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
	svc := &metasync.Service{Source: pc.Source, Server: pc.Server, Kubeconfig: pc.Kubeconfig, SnapshotPath: pc.SnapshotPath, AuditPeriod: pc.AuditPeriod}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	first := true
	svc.Publish = func(snap *metadata.Snapshot, changes []metadata.Change) {
		ev := Event{Time: time.Now(), Version: snap.Version, PodIPs: map[string]string{}, Status: svc.Status(), Full: first}
		first = false
		ipOf := func(p *metadata.PodInfo) string {
			if len(p.IPs) > 0 {
				return p.IPs[0].String()
			}
			return ""
		}
		for _, c := range changes {
			ev.Changes = append(ev.Changes, Change{c.Op, c.Resource})
			if p, ok := c.Object.(*metadata.PodInfo); ok && c.Op != metadata.OpDelete {
				ev.PodIPs[p.Key()] = ipOf(p)
			}
		}
		if ev.Full {
			for k, p := range snap.Pods {
				ev.PodIPs[k] = ipOf(p)
			}
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
	stderr *strings.Builder
	done   chan struct{}

	// mu guards everything below; the reader goroutine applies events.
	mu     sync.Mutex
	state  map[string]string // the accumulated picture
	all    []Event           // as received (PodIPs: what changed)
	notify chan struct{}     // closed and replaced on every event
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
	p := &Probe{t: t, cmd: cmd, stderr: &strings.Builder{}, done: make(chan struct{}), state: map[string]string{}, notify: make(chan struct{})}
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
			if ev.Full {
				p.state = map[string]string{}
			}
			for k, ip := range ev.PodIPs {
				p.state[k] = ip
			}
			for _, c := range ev.Changes {
				if ns, typ, name, err := metadata.ParseResource(c.Resource); err == nil && typ == metadata.ResourcePod && c.Op == metadata.OpDelete {
					delete(p.state, ns+"/"+name)
				}
			}
			p.all = append(p.all, ev)
			close(p.notify)
			p.notify = make(chan struct{})
			p.mu.Unlock()
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

// WaitFor waits until an event satisfies pred and returns it; every
// event since the probe started is offered once, with Pods set to the
// current picture.
func (p *Probe) WaitFor(what string, timeout time.Duration, pred func(Event) bool) Event {
	p.t.Helper()
	return p.WaitForSince(0, what, timeout, pred)
}

// WaitForSince is WaitFor offering only events from index i on (see
// EventCount): take the count before causing a change to wait for the
// event that carries it.
func (p *Probe) WaitForSince(i int, what string, timeout time.Duration, pred func(Event) bool) Event {
	p.t.Helper()
	deadline := time.After(timeout)
	next := i
	for {
		p.mu.Lock()
		for ; next < len(p.all); next++ {
			ev := p.all[next]
			ev.Pods = p.state
			if pred(ev) {
				ev.Pods = maps.Clone(p.state)
				p.mu.Unlock()
				return ev
			}
		}
		notify := p.notify
		p.mu.Unlock()
		select {
		case <-notify:
		case <-p.done:
			p.t.Fatalf("probe exited while waiting for %s:\n%s", what, p.stderrTail())
		case <-deadline:
			last := p.LastEvent()
			p.t.Fatalf("no %s within %s; last event v%d %+v, %d pods known\n%s", what, timeout, last.Version, last.Status, len(last.Pods), p.stderrTail())
		}
	}
}

// LastEvent is the latest event with a copy of the current picture.
func (p *Probe) LastEvent() Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ev Event
	if len(p.all) > 0 {
		ev = p.all[len(p.all)-1]
	}
	ev.Pods = maps.Clone(p.state)
	return ev
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
