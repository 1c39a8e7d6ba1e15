// Package statusclient talks to the local agent over its status socket
// (statusSocket, a root-only unix socket serving JSON over HTTP): the
// client behind `edgelink status`, `ping`, `routes` and `diagnose`. The
// wire types are pkg/agentapi's (which, like this package, links neither
// libp2p nor the data plane).
package statusclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/pkg/unixsock"
)

// NotRunningError is returned when nothing answers on the socket.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("cannot reach the EdgeLink agent on %s: %v\n"+
		"Is the agent running? Check `systemctl status edgelink` (or its DaemonSet pod on this node); "+
		"if it uses another status socket, pass --socket PATH (the config's statusSocket). The socket is root-only: run as root.",
		e.Socket, e.Err)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// HTTPError is an answer other than 200: the agent's message, verbatim.
type HTTPError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *HTTPError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
}

// IsUnavailable reports whether err says a module is not up or disabled
// (503, or 404 for an endpoint a disabled module does not serve).
func IsUnavailable(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && (he.Status == http.StatusServiceUnavailable || he.Status == http.StatusNotFound)
}

// DefaultTimeout bounds a request whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// pingMargin is how much longer than its probe a ping request may take.
const pingMargin = 5 * time.Second

// Client talks to one agent.
type Client struct {
	Socket string
	// Timeout bounds a request whose context has no deadline
	// (DefaultTimeout); a request with a deadline (Ping) has its own.
	Timeout time.Duration
	hc      *http.Client
}

// New returns a client for the agent serving socket.
func New(socket string) *Client {
	return &Client{Socket: socket, Timeout: DefaultTimeout, hc: &http.Client{Transport: unixsock.HTTPTransport(socket)}}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, body, v any) error {
	if _, ok := ctx.Deadline(); !ok && c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return &NotRunningError{Socket: c.Socket, Err: op.Err}
		}
		return fmt.Errorf("%s %s on %s: %w", method, path, c.Socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	if s, ok := v.(*string); ok {
		*s = string(data)
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

// AgentInfo is GET /v1/agent.
type AgentInfo = agentapi.AgentInfo

// TunnelStatus is GET /v1/tunnel/status.
type TunnelStatus = agentapi.TunnelStatus

// DataplaneStatus is GET /v1/dataplane.
type DataplaneStatus = agentapi.DataplaneStatus

func (c *Client) Agent(ctx context.Context) (AgentInfo, error) {
	var v AgentInfo
	return v, c.do(ctx, http.MethodGet, "/v1/agent", nil, &v)
}

func (c *Client) TunnelStatus(ctx context.Context) (TunnelStatus, error) {
	var v TunnelStatus
	return v, c.do(ctx, http.MethodGet, "/v1/tunnel/status", nil, &v)
}

func (c *Client) Peers(ctx context.Context) ([]agentapi.Peer, error) {
	var v []agentapi.Peer
	return v, c.do(ctx, http.MethodGet, "/v1/tunnel/peers", nil, &v)
}

func (c *Client) Dataplane(ctx context.Context) (DataplaneStatus, error) {
	var v DataplaneStatus
	return v, c.do(ctx, http.MethodGet, "/v1/dataplane", nil, &v)
}

func (c *Client) Routes(ctx context.Context) (agentapi.Routes, error) {
	var v agentapi.Routes
	return v, c.do(ctx, http.MethodGet, "/v1/dataplane/routes", nil, &v)
}

func (c *Client) PeerTraffic(ctx context.Context) ([]agentapi.PeerTraffic, error) {
	var v []agentapi.PeerTraffic
	return v, c.do(ctx, http.MethodGet, "/v1/dataplane/peers", nil, &v)
}

func (c *Client) Metadata(ctx context.Context) (metadata.Status, error) {
	var v metadata.Status
	return v, c.do(ctx, http.MethodGet, "/v1/metasync", nil, &v)
}

// Ping sends one probe to target (a pod IP or a node name) and waits for
// it at most timeout (between agentapi.MinPingTimeout and MaxPingTimeout)
// plus a margin for the request itself.
func (c *Client) Ping(ctx context.Context, target string, timeout time.Duration) (agentapi.PingResult, error) {
	var v agentapi.PingResult
	if err := agentapi.CheckPingTimeout(timeout); err != nil {
		return v, fmt.Errorf("ping timeout %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+pingMargin)
	defer cancel()
	return v, c.do(ctx, http.MethodPost, "/v1/ping", agentapi.PingRequest{Target: target, TimeoutMillis: int(timeout / time.Millisecond)}, &v)
}

func (c *Client) Diagnose(ctx context.Context) (agentapi.Diagnosis, error) {
	var v agentapi.Diagnosis
	return v, c.do(ctx, http.MethodGet, "/v1/diagnose", nil, &v)
}

// Metrics returns the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var s string
	return s, c.do(ctx, http.MethodGet, "/metrics", nil, &s)
}
