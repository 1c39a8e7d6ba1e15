package app

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/kubeedge/beehive/pkg/core"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/edgecni"
	"github.com/edgelink/edgelink/modules/ipam"
	"github.com/edgelink/edgelink/modules/metasync"
	"github.com/edgelink/edgelink/modules/tunnel"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/agenthost"
	"github.com/edgelink/edgelink/pkg/unixsock"
	"github.com/edgelink/edgelink/pkg/version"
)

func newAgentCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the EdgeLink agent (its beehive modules) until SIGTERM or SIGINT",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required (see `edgelink config default`)")
			}
			c, err := loadConfig(cmd, configPath)
			if err != nil {
				return err
			}
			timeout, _ := time.ParseDuration(c.ShutdownTimeout) // validated
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			klog.InfoS("Starting edgelink agent", "version", version.String(), "node", c.NodeName, "config", configPath)
			status := http.NewServeMux()
			status.HandleFunc("GET /v1/agent", func(w http.ResponseWriter, _ *http.Request) {
				agentapi.WriteJSON(w, agentRuntime(c.NodeName))
			})
			// Profiles for operators and benchmarks; the socket is root-only.
			status.HandleFunc("/debug/pprof/", pprof.Index)
			status.HandleFunc("/debug/pprof/profile", pprof.Profile)
			status.HandleFunc("/debug/pprof/trace", pprof.Trace)
			mods, ops := agentModules(c, status)
			reg := newRegistry(ops)
			registerOps(c, status, reg, ops) // agentops.go: /metrics, ping, diagnose
			stopStatus, err := serveStatus(c.StatusSocket, status)
			if err != nil {
				return err
			}
			defer stopStatus()
			if c.MetricsAddress != "" {
				stopMetrics, err := serveMetrics(c.MetricsAddress, reg)
				if err != nil {
					return err
				}
				defer stopMetrics()
			}
			return agenthost.Run(ctx, mods, timeout)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "agent config file (YAML)")
	return cmd
}

// agentModules builds every module the agent knows, each told by the config
// whether it is enabled; the host registers and starts the enabled ones.
func agentModules(c *v1.AgentConfig, status *http.ServeMux) ([]core.Module, opsModules) {
	meta := metasync.New(c)
	tun := tunnel.New(c, meta.Reader(), status)
	ops := opsModules{meta: meta, ipam: ipam.New(c, meta.Reader()), tun: tun,
		cni: edgecni.New(c, meta.Reader(), tun.Packets(), status)}
	return []core.Module{ops.meta, ops.ipam, ops.tun, ops.cni}, ops
}

// serveStatus answers the status API (read-only JSON over HTTP) on the
// agent's unix socket until the returned stop is called.
func serveStatus(path string, mux *http.ServeMux) (stop func(), err error) {
	ln, err := unixsock.Listen(path, "status socket", "statusSocket")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { // routineStatus
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-done
		_ = os.Remove(path)
	}, nil
}

func agentRuntime(node string) agentapi.AgentInfo {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, _ := os.ReadDir("/proc/self/fd")
	return agentapi.AgentInfo{Node: node, Version: version.String(), Goroutines: runtime.NumGoroutine(),
		OpenFDs: len(fds), HeapBytes: ms.HeapAlloc}
}
