// Package unixsock listens on the agent's unix sockets: it refuses to
// take over a path another process serves or a file that is not a
// socket, removes a stale socket left by a crash, and makes the socket
// 0600 (root only).
package unixsock

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Listen listens on path. what names the socket in errors and field the
// config field that sets it ("ipam socket", "modules.ipam.socketPath").
func Listen(path, what, field string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("%s dir: %w", what, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s %s exists and is not a socket; remove it or set %s", what, path, field)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s %s is served by another process (is another agent running?)", what, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale %s: %w", what, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// HTTPTransport is an HTTP transport whose every connection goes to the
// unix socket at path (the request URL's host is ignored).
func HTTPTransport(path string) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
}
