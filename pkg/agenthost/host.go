// Package agenthost runs the agent's beehive modules.
//
// beehive's own core.Run starts each module as soon as its channel exists,
// in random map order, so a module that sends at start-up can hit a peer
// whose channel is not registered yet, and the message is dropped. It also
// returns on a signal without waiting for modules to finish. Run fixes
// both: every enabled module's channel and group are registered before any
// module starts (the ready barrier), and shutdown cancels beehive's context,
// then waits, bounded, for every Start to return: a module releases what it
// created before its Start returns.
//
// Shutdown order: cancel beehive's context (modules see Done), clean up every
// channel (a module blocked in Receive wakes up; see Receive), then wait for
// every Start to return.
//
// beehive keeps its state in package globals, so Run may be called once per
// process.
package agenthost

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeedge/beehive/pkg/common"
	"github.com/kubeedge/beehive/pkg/core"
	beehiveContext "github.com/kubeedge/beehive/pkg/core/context"
	"github.com/kubeedge/beehive/pkg/core/model"
	"k8s.io/klog/v2"
)

// ErrShutdownTimeout means a module did not return from Start within the
// shutdown timeout; what it created may be left behind.
var ErrShutdownTimeout = errors.New("modules did not stop in time")

// ErrModuleExited means a module's Start returned before shutdown began.
var ErrModuleExited = errors.New("module stopped on its own")

var ran atomic.Bool

// Run registers mods (disabled ones are logged and skipped), starts the
// enabled ones behind the ready barrier, and blocks until ctx is done or a
// module's Start returns early. It then shuts every module down, waiting up
// to shutdownTimeout, and returns nil only for a clean shutdown requested
// through ctx.
func Run(ctx context.Context, mods []core.Module, shutdownTimeout time.Duration) error {
	if !ran.CompareAndSwap(false, true) {
		return errors.New("agenthost.Run called twice: beehive supports one run per process")
	}
	names := map[string]bool{}
	for _, m := range mods {
		if names[m.Name()] {
			return fmt.Errorf("two modules named %q", m.Name())
		}
		names[m.Name()] = true
		core.Register(m)
	}
	enabled := sortedModules()

	// The ready barrier: every channel exists before any module runs.
	beehiveContext.InitContext([]string{common.MsgCtxTypeChannel})
	for _, m := range enabled {
		beehiveContext.AddModule(&common.ModuleInfo{ModuleName: m.Name(), ModuleType: common.MsgCtxTypeChannel})
		beehiveContext.AddModuleGroup(m.Name(), m.Group())
	}

	exited := make(chan string, len(enabled))
	var wg sync.WaitGroup
	for _, m := range enabled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			klog.InfoS("Starting module", "module", m.Name(), "group", m.Group())
			m.Start()
			exited <- m.Name()
		}()
	}
	klog.InfoS("Agent running", "modules", len(enabled))

	var runErr error
	select {
	case <-ctx.Done():
		klog.InfoS("Shutting down", "reason", context.Cause(ctx))
	case name := <-exited:
		runErr = fmt.Errorf("%w: %s", ErrModuleExited, name)
		klog.ErrorS(runErr, "Shutting down")
	}
	beehiveContext.Cancel()
	for _, m := range enabled {
		beehiveContext.Cleanup(m.Name())
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
		var pending []string
		stopped := map[string]bool{}
	drain:
		for {
			select {
			case n := <-exited:
				stopped[n] = true
			default:
				break drain
			}
		}
		for _, m := range enabled {
			if !stopped[m.Name()] {
				pending = append(pending, m.Name())
			}
		}
		return errors.Join(runErr, fmt.Errorf("%w after %s: %v", ErrShutdownTimeout, shutdownTimeout, pending))
	}
	klog.InfoS("All modules stopped")
	return runErr
}

// Receive returns the next message for module. It returns ok=false once the
// agent is shutting down: beehive then hands out zero messages or errors,
// which a module must not mistake for input.
func Receive(module string) (msg model.Message, ok bool) {
	for {
		msg, err := beehiveContext.Receive(module)
		select {
		case <-beehiveContext.Done():
			return model.Message{}, false
		default:
		}
		if err != nil || msg.GetID() == "" {
			klog.V(4).InfoS("Ignoring empty beehive message", "module", module, "err", err)
			time.Sleep(10 * time.Millisecond) // not shutting down: a spurious wake-up
			continue
		}
		return msg, true
	}
}

func sortedModules() []core.Module {
	var out []core.Module
	for _, info := range core.GetModules() {
		out = append(out, info.GetModule())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
