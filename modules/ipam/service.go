package ipam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/pkg/unixsock"
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
	// Metadata, when set (metaSync enabled), supplies pools, this node's
	// labels, namespaces and pods from the cloud channel.
	Metadata metadata.Reader
	// ReleaseGrace protects young leases from reconcile: a pod may be
	// allocated before the metadata picture shows it.
	ReleaseGrace time.Duration

	alloc    *ipam.Allocator
	store    *ipam.Store
	fileObjs atomic.Pointer[ipam.Objects]

	// rebuildMu serializes rebuilds (pool file and metadata) and guards
	// saved and savedJSON: the objects last written to the store, so a
	// rebuild writes (and fsyncs) only when they changed.
	rebuildMu sync.Mutex
	saved     *ipam.Objects
	savedJSON []byte

	counts Counts                         // metrics.go
	live   atomic.Pointer[ipam.Allocator] // the allocator while serving
}

// Allocator is the running allocator (nil before Run has started serving).
func (s *Service) Allocator() *ipam.Allocator { return s.alloc }

// Run serves until ctx is done, then stops serving, removes the socket and
// closes the store. ready, if not nil, is called once the socket answers.
func (s *Service) Run(ctx context.Context, ready func()) error {
	if s.ReleaseGrace <= 0 {
		s.ReleaseGrace = time.Minute
	}
	store, err := ipam.OpenStore(s.DBPath)
	if err != nil {
		return err
	}
	s.store = store
	defer store.Close()

	if s.saved, err = store.LoadObjects(); err != nil {
		return fmt.Errorf("lease store %s: saved objects: %w", s.DBPath, err)
	}
	if s.saved != nil {
		s.savedJSON, _ = json.Marshal(s.saved)
	}
	var fileStamp string
	if s.PoolFile != "" {
		fileStamp = stamp(s.PoolFile)
		fileObjs, err := ipam.LoadObjectsFile(s.PoolFile, s.NodeName)
		if err != nil {
			return err
		}
		s.fileObjs.Store(fileObjs)
	}
	var start *metadata.Snapshot // the picture the first view is built from
	if s.Metadata != nil {
		start = s.Metadata.Snapshot()
	}
	objs := s.objects(start, s.saved)
	if err := s.save(objs); err != nil {
		return err
	}
	s.alloc = ipam.NewAllocator(store, ipam.NewView(s.NodeName, objs))
	if s.Metadata != nil {
		s.alloc.PodWait = 3 * time.Second
	}
	s.live.Store(s.alloc)
	defer s.live.Store(nil)
	logView(s.alloc.View())

	ln, err := unixsock.Listen(s.SocketPath, "ipam socket", "modules.ipam.socketPath")
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newMux(&handler{alloc: s.alloc, counts: &s.counts}),
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
	if s.Metadata != nil {
		wg.Add(1)
		go func() { // routineRefresh: metadata changes -> view, reconcile
			defer wg.Done()
			s.refreshLoop(ctx, start)
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
		s.fileObjs.Store(objs)
		klog.InfoS("Pool file reloaded", "file", s.PoolFile)
		s.rebuild()
	}
}

// objects merges the metadata picture snap (or, without one, fallback:
// the objects saved in the store) with the pool file; the file's pools win
// over same-named pools from the cloud.
func (s *Service) objects(snap *metadata.Snapshot, fallback *ipam.Objects) *ipam.Objects {
	out := &ipam.Objects{}
	if snap != nil {
		out = objectsFromSnapshot(snap, s.NodeName)
		if len(out.Pools) == 0 && out.Node == nil && fallback != nil {
			out = fallback // the picture is empty: keep what the store remembers
		}
	} else if s.PoolFile == "" && fallback != nil {
		out = fallback
	}
	f := s.fileObjs.Load()
	if f == nil {
		return out
	}
	merged := &ipam.Objects{Node: out.Node, Namespaces: append(out.Namespaces, f.Namespaces...), Pods: append(out.Pods, f.Pods...)}
	if f.Node != nil {
		merged.Node = f.Node
	}
	fromFile := map[string]bool{}
	for _, p := range f.Pools {
		fromFile[p.Name] = true
	}
	for _, p := range out.Pools {
		if !fromFile[p.Name] {
			merged.Pools = append(merged.Pools, p)
		}
	}
	for name, r := range out.Parsed { // the file's are parsed by NewView
		if !fromFile[name] {
			if merged.Parsed == nil {
				merged.Parsed = map[string]ipam.Parsed{}
			}
			merged.Parsed[name] = r
		}
	}
	merged.Pools = append(merged.Pools, f.Pools...)
	return merged
}

// rebuild makes a new view from the current sources (the latest
// metadata picture, read under rebuildMu so no rebuild undoes a newer
// one) and saves what changed of it.
func (s *Service) rebuild() {
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	var snap *metadata.Snapshot
	if s.Metadata != nil {
		snap = s.Metadata.Snapshot()
	}
	objs := s.objects(snap, s.saved)
	if err := s.save(objs); err != nil {
		klog.ErrorS(err, "Cannot save pools")
	}
	old := s.alloc.View()
	s.alloc.SetView(ipam.NewView(s.NodeName, objs))
	if !samePools(old, s.alloc.View()) {
		logView(s.alloc.View())
	}
}

// refreshLoop rebuilds the view each time metasync publishes a new
// picture (the one change signal, Reader.Wait; start is the picture the
// first view was built from) and, once the picture is synced, frees the
// leases of pods that no longer exist.
func (s *Service) refreshLoop(ctx context.Context, start *metadata.Snapshot) {
	if start.Synced {
		s.reconcile(start)
	}
	version := start.Version
	for {
		if _, err := s.Metadata.Wait(ctx, version); err != nil {
			return
		}
		// Coalesce a burst of changes.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		snap := s.Metadata.Snapshot()
		version = snap.Version
		s.rebuild()
		if snap.Synced {
			s.reconcile(snap)
		}
	}
}

// save writes the pools, node and namespaces of objs to the store for an
// offline restart, unless they are what was last written (pods change far
// more often and come back from metasync's own snapshot). Called at start
// and with rebuildMu held.
func (s *Service) save(objs *ipam.Objects) error {
	keep := withoutPods(objs)
	data, err := json.Marshal(keep)
	if err != nil {
		return err
	}
	if bytes.Equal(data, s.savedJSON) {
		return nil
	}
	if err := s.store.SaveObjects(keep); err != nil {
		return err
	}
	s.saved, s.savedJSON = keep, data
	return nil
}

// reconcile frees the leases of pods the synced picture snap lacks.
func (s *Service) reconcile(snap *metadata.Snapshot) {
	alive := map[string]bool{}
	for _, p := range snap.Pods {
		alive[p.UID] = true
	}
	freed, err := s.alloc.ReleaseUnless(func(uid string) bool { return alive[uid] }, s.ReleaseGrace)
	if err != nil {
		klog.ErrorS(err, "Reconcile leases against pods failed")
		return
	}
	for _, l := range freed {
		klog.InfoS("Released lease of a deleted pod", "pod", l.PodNamespace+"/"+l.PodName, "uid", l.PodUID, "ips", l.IPs)
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
