package ipam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/ipam"
)

// Service is the ipam module's work, independent of beehive so tests can
// run it with their own context: the lease store, the allocator, the pool
// file, and the HTTP server on the unix socket.
type Service struct {
	NodeName   string
	SocketPath string
	DBPath     string
	// PoolFile, when set, is read at start and re-read when it changes.
	PoolFile string
	// PollInterval is how often the pool file is checked for changes.
	PollInterval time.Duration

	alloc *ipam.Allocator
	store *ipam.Store
}

// Allocator is the running allocator (nil before Run has started serving).
func (s *Service) Allocator() *ipam.Allocator { return s.alloc }

// Run serves until ctx is done, then stops serving, removes the socket and
// closes the store. ready, if not nil, is called once the socket answers.
func (s *Service) Run(ctx context.Context, ready func()) error {
	store, err := ipam.OpenStore(s.DBPath)
	if err != nil {
		return err
	}
	s.store = store
	defer store.Close()

	objs, err := store.LoadObjects()
	if err != nil {
		return fmt.Errorf("lease store %s: saved objects: %w", s.DBPath, err)
	}
	var fileStamp string
	if s.PoolFile != "" {
		fileStamp = stamp(s.PoolFile)
		if objs, err = ipam.LoadObjectsFile(s.PoolFile, s.NodeName); err != nil {
			return err
		}
		if err := store.SaveObjects(objs); err != nil {
			return err
		}
	}
	s.alloc = ipam.NewAllocator(store, ipam.NewView(s.NodeName, objs))
	logView(s.alloc.View())

	ln, err := listenUnix(s.SocketPath)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newMux(&handler{alloc: s.alloc}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          nil,
	}
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Add(1)
	go func() { // routineServe
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()
	if s.PoolFile != "" {
		wg.Add(1)
		go func() { // routineWatchPoolFile
			defer wg.Done()
			s.watchPoolFile(ctx, fileStamp)
		}()
	}
	klog.InfoS("IPAM serving SpiderPool's agent API", "socket", s.SocketPath, "node", s.NodeName, "store", s.DBPath)
	if ready != nil {
		ready()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
		runErr = fmt.Errorf("ipam socket %s: %w", s.SocketPath, runErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	wg.Wait()
	if err := os.Remove(s.SocketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		runErr = errors.Join(runErr, err)
	}
	klog.InfoS("IPAM stopped", "socket", s.SocketPath)
	return runErr
}

func (s *Service) watchPoolFile(ctx context.Context, last string) {
	interval := s.PollInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := stamp(s.PoolFile)
		if cur == last {
			continue
		}
		last = cur
		objs, err := ipam.LoadObjectsFile(s.PoolFile, s.NodeName)
		if err != nil {
			klog.ErrorS(err, "Pool file changed but cannot be used; keeping the previous pools", "file", s.PoolFile)
			continue
		}
		if err := s.store.SaveObjects(objs); err != nil {
			klog.ErrorS(err, "Cannot save pools", "file", s.PoolFile)
		}
		s.alloc.SetView(ipam.NewView(s.NodeName, objs))
		klog.InfoS("Pool file reloaded", "file", s.PoolFile)
		logView(s.alloc.View())
	}
}

// stamp identifies a version of a file by size and modification time.
func stamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
}

func logView(v *ipam.View) {
	for _, name := range v.PoolNames() {
		p := v.Pools[name]
		klog.InfoS("Pool", "name", name, "ipVersion", p.Version, "subnet", p.Subnet, "size", p.SizeString())
	}
	for name, err := range v.PoolErrors {
		klog.ErrorS(err, "Pool ignored", "name", name)
	}
}

// listenUnix listens on path, replacing a stale socket left by a crash but
// refusing to take over one another process still serves.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("ipam socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("ipam socket %s exists and is not a socket; remove it or set modules.ipam.socketPath", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("ipam socket %s is served by another process (is another agent or spiderpool-agent running?)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale ipam socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("ipam socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
