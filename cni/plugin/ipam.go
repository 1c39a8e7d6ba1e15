package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/edgelink/edgelink/cni/netconf"
	"github.com/edgelink/edgelink/pkg/unixsock"
)

// ipamTimeout bounds one call to the IPAM delegate.
const ipamTimeout = 60 * time.Second

// delegate runs the IPAM plugin named by conf.IPAM.Type on stdin (adjusted
// by netconf.DelegateConf) with the CNI environment of this call.
type delegate struct {
	conf  *netconf.NetConf
	stdin []byte
}

func (d delegate) netconf() ([]byte, error) {
	return d.conf.DelegateConf(d.stdin)
}

func (d delegate) pluginPath() (string, error) {
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))
	p, err := invoke.FindInPath(d.conf.IPAM.Type, paths)
	if err != nil {
		return "", types.NewError(types.ErrPluginNotAvailable, "IPAM plugin not found",
			fmt.Sprintf("ipam.type %q: %v (CNI_PATH=%q)", d.conf.IPAM.Type, err, os.Getenv("CNI_PATH")))
	}
	return p, nil
}

// add allocates addresses and returns them as a 1.0.0-shaped result.
func (d delegate) add() (*current.Result, error) {
	path, err := d.pluginPath()
	if err != nil {
		return nil, err
	}
	nc, err := d.netconf()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipamTimeout)
	defer cancel()
	r, err := invoke.ExecPluginWithResult(ctx, path, nc, invoke.ArgsFromEnv(), nil)
	if err != nil {
		// A CNI error is the plugin saying it allocated nothing; anything
		// else (a reply that does not parse, a plugin killed mid-way) may
		// follow an allocation: release, so no lease outlives a failed ADD.
		var cniErr *types.Error
		if !errors.As(err, &cniErr) {
			_ = d.del()
		}
		return nil, ipamErr("ADD", d.conf.IPAM.Type, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		_ = d.del()
		return nil, fmt.Errorf("convert %s result: %w", d.conf.IPAM.Type, err)
	}
	if len(res.IPs) == 0 {
		_ = d.del()
		return nil, types.NewError(types.ErrInternal, "IPAM returned no address",
			fmt.Sprintf("ipam.type %q answered ADD without an IP", d.conf.IPAM.Type))
	}
	return res, nil
}

// del releases the addresses of this call's attachment.
func (d delegate) del() error {
	return d.run("DEL", nil)
}

// delAttachment releases a recorded attachment other than this call's (GC).
func (d delegate) delAttachment(a *attachment) error {
	return d.run("DEL", &invoke.Args{
		ContainerID:   a.ContainerID,
		NetNS:         a.NetNS,
		IfName:        a.IfName,
		PluginArgsStr: a.CNIArgs,
		Path:          os.Getenv("CNI_PATH"),
	})
}

// run executes verb on the delegate, for this call's attachment (the CNI
// environment) or, with other set, for another recorded attachment.
func (d delegate) run(verb string, other *invoke.Args) error {
	path, err := d.pluginPath()
	if err != nil {
		return err
	}
	nc, err := d.netconf()
	if err != nil {
		return err
	}
	var args invoke.CNIArgs = &invoke.DelegateArgs{Command: verb}
	if other != nil {
		other.Command = verb
		args = other
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipamTimeout)
	defer cancel()
	if err := invoke.ExecPluginWithoutResult(ctx, path, nc, args, nil); err != nil {
		return ipamErr(verb, d.conf.IPAM.Type, err)
	}
	return nil
}

// status reports whether IPAM can serve: spiderpool's socket must answer
// its health check; other delegates get STATUS forwarded.
func (d delegate) status() error {
	if !d.conf.ForwardStatusAndGC() {
		return probeSpiderpoolSocket(d.conf.IPAMSocket)
	}
	return d.run("STATUS", nil)
}

// gc forwards GC to delegates that implement it (not spiderpool).
func (d delegate) gc() error {
	if !d.conf.ForwardStatusAndGC() {
		return nil
	}
	return d.run("GC", nil)
}

// ipamErr keeps the delegate's CNI error code and prefixes where it came from.
func ipamErr(verb, typ string, err error) error {
	if e, ok := err.(*types.Error); ok {
		return types.NewError(e.Code, fmt.Sprintf("IPAM %s (%s): %s", verb, typ, e.Msg), e.Details)
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("IPAM %s (%s) failed", verb, typ), err.Error())
}

// probeSpiderpoolSocket does what the spiderpool binary does before every
// call: GET /v1/ipam/healthy on the agent's unix socket.
func probeSpiderpoolSocket(path string) error {
	client := &http.Client{Timeout: 3 * time.Second, Transport: unixsock.HTTPTransport(path)}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://localhost/v1/ipam/healthy")
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "IPAM not available",
			fmt.Sprintf("spiderpool agent socket %s does not answer: %v", path, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body json.RawMessage
		_ = json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 4096)).Decode(&body)
		return types.NewError(types.ErrPluginNotAvailable, "IPAM not available",
			fmt.Sprintf("spiderpool agent socket %s: health check answered %s %s", path, resp.Status, body))
	}
	return nil
}
