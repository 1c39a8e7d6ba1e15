//go:build !linux

package routing

import (
	"fmt"
	"net/netip"
	"runtime"
)

// errUnsupported answers every kernel operation off Linux: the module
// programs Linux routes, addresses, sysctls and iptables only.
var errUnsupported = fmt.Errorf("routing: the data plane is not supported on %s", runtime.GOOS)

// unsupportedKernel is the Kernel where the module cannot run.
type unsupportedKernel struct{}

func newKernel() Kernel { return unsupportedKernel{} }

func (unsupportedKernel) Link(string) (*Link, error)            { return nil, errUnsupported }
func (unsupportedKernel) DeleteLink(string) error               { return errUnsupported }
func (unsupportedKernel) SetLinkUp(string) error                { return errUnsupported }
func (unsupportedKernel) UnderlayMTU() int                      { return 1500 }
func (unsupportedKernel) Addrs() ([]LinkAddr, error)            { return nil, errUnsupported }
func (unsupportedKernel) ReplaceAddr(string, netip.Addr) error  { return errUnsupported }
func (unsupportedKernel) DeleteAddr(string, netip.Prefix) error { return errUnsupported }
func (unsupportedKernel) Routes() ([]Route, error)              { return nil, errUnsupported }
func (unsupportedKernel) ReplaceRoute(Route) error              { return errUnsupported }
func (unsupportedKernel) DeleteRoute(Route) error               { return errUnsupported }
func (unsupportedKernel) Sysctl(string) (string, error)         { return "", errUnsupported }
func (unsupportedKernel) SetSysctl(string, string) error        { return errUnsupported }
func (unsupportedKernel) IPTables(bool) (IPTables, error)       { return nil, errUnsupported }
