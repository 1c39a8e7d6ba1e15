package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/containernetworking/plugins/pkg/ns"
	"k8s.io/client-go/rest"
)

// NetNSDialer returns a DialContext that opens its connections inside the
// network namespace at nsPath (e.g. /var/run/netns/NAME). The socket is
// created on an OS thread switched into that namespace, so it stays there
// for its whole life while the test process itself keeps running in the
// host namespace.
func NetNSDialer(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			conn = c
			return err
		})
		return conn, err
	}
}

// NetNSHTTPClient is an HTTP client whose connections are opened inside the
// network namespace at nsPath. Use IP literals in URLs: names would be
// resolved in the host namespace.
func NetNSHTTPClient(nsPath string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:       NetNSDialer(nsPath),
		DisableKeepAlives: true,
	}}
}

// HTTPGet GETs url from inside the network namespace at nsPath and returns
// the status code and body.
func HTTPGet(ctx context.Context, nsPath, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := NetNSHTTPClient(nsPath).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Get GETs path (e.g. "/api/v1/pods") from this edge node's metaServer,
// from inside its network namespace. A non-2xx status is an error that
// carries the body.
func (e *EdgeNode) Get(ctx context.Context, path string) ([]byte, error) {
	code, body, err := HTTPGet(ctx, e.NetNSPath, e.MetaServer+path)
	if err != nil {
		return nil, err
	}
	if code/100 != 2 {
		return body, fmt.Errorf("GET %s on %s: HTTP %d: %s", path, e.Name, code, body)
	}
	return body, nil
}

// RestConfig is a client-go config for this edge node's metaServer (plain
// HTTP, no auth, JSON only), dialing from inside the node's namespace: a
// typed clientset or an informer built on it sees what a pod on the edge
// sees. The metaServer serves no discovery (/api, /apis).
func (e *EdgeNode) RestConfig() *rest.Config {
	return &rest.Config{
		Host:          e.MetaServer,
		Dial:          NetNSDialer(e.NetNSPath),
		ContentConfig: rest.ContentConfig{ContentType: "application/json"},
	}
}
