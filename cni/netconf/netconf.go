// Package netconf defines edgelink-cni's network configuration and parses
// it from the bytes a CNI runtime writes to the plugin's stdin.
//
// Example (one entry of a conflist's "plugins"):
//
//	{
//	  "cniVersion": "1.0.0",
//	  "name": "edgelink",
//	  "type": "edgelink-cni",
//	  "bridge": "edgelink-br0",
//	  "mtu": 1400,
//	  "hairpinMode": false,
//	  "dataDir": "/var/lib/cni/edgelink",
//	  "ipam": {"type": "spiderpool", "ipam_unix_socket_path": "/var/run/edgelink/ipam.sock"}
//	}
package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Defaults for fields a netconf may leave out.
const (
	DefaultBridge  = "edgelink-br0"
	DefaultDataDir = "/var/lib/cni/edgelink"
	// DefaultSpiderpoolSocket is where the spiderpool binary looks when the
	// netconf names no socket (SpiderPool's own agent listens there).
	DefaultSpiderpoolSocket = "/var/run/spidernet/spiderpool.sock"
	// SpiderpoolType is the IPAM type of SpiderPool's plugin binary.
	SpiderpoolType = "spiderpool"
	// SpiderpoolMaxCNIVersion is the newest CNI version spiderpool v0.9.3
	// accepts; it rejects 1.1.0.
	SpiderpoolMaxCNIVersion = "1.0.0"
)

// NetConf is edgelink-cni's configuration.
type NetConf struct {
	types.PluginConf

	// Bridge is the node bridge the host ends of pod veths join; created on
	// first ADD. The gateway addresses from the IPAM result go on it.
	Bridge string `json:"bridge,omitempty"`
	// MTU of the bridge and both veth ends; 0 keeps the kernel default.
	MTU int `json:"mtu,omitempty"`
	// HairpinMode lets a pod reach itself through a service address.
	HairpinMode bool `json:"hairpinMode,omitempty"`
	// DataDir keeps one record per attachment, for GC.
	DataDir string `json:"dataDir,omitempty"`

	// IPAMSocket is ipam.ipam_unix_socket_path, read for STATUS when the
	// IPAM type is spiderpool.
	IPAMSocket string `json:"-"`
}

// ErrInvalid marks a netconf that decoded but does not make sense; the
// message names the field and value.
var ErrInvalid = errors.New("invalid network configuration")

// ErrDecode marks bytes that are not a JSON network configuration.
var ErrDecode = errors.New("cannot decode network configuration")

// Parse decodes stdin into a NetConf, applies defaults and validates it.
// Errors wrap ErrDecode or ErrInvalid.
func Parse(stdin []byte) (*NetConf, error) {
	if len(strings.TrimSpace(string(stdin))) == 0 {
		return nil, fmt.Errorf("%w: stdin is empty; the runtime must pass the network configuration as JSON", ErrDecode)
	}
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrDecode, describeJSONError(stdin, err))
	}
	var ipam struct {
		Socket *string `json:"ipam_unix_socket_path"`
	}
	var raw struct {
		IPAM json.RawMessage `json:"ipam"`
	}
	_ = json.Unmarshal(stdin, &raw) // already decoded above
	if len(raw.IPAM) > 0 {
		if err := json.Unmarshal(raw.IPAM, &ipam); err != nil {
			return nil, fmt.Errorf("%w: ipam.ipam_unix_socket_path: %w", ErrDecode, err)
		}
	}
	if ipam.Socket != nil {
		conf.IPAMSocket = *ipam.Socket
	}
	conf.setDefaults()
	if err := conf.validate(); err != nil {
		return nil, err
	}
	return conf, nil
}

func (c *NetConf) setDefaults() {
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.IPAM.Type == SpiderpoolType && c.IPAMSocket == "" {
		c.IPAMSocket = DefaultSpiderpoolSocket
	}
}

func (c *NetConf) validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Name == "" {
		bad(`name: is required`)
	} else if strings.ContainsAny(c.Name, "/\x00") || c.Name == "." || c.Name == ".." {
		bad(`name: %q may not contain "/" or be "." or ".."`, c.Name)
	}
	if c.IPAM.Type == "" {
		bad(`ipam.type: is required (e.g. "spiderpool" or "host-local")`)
	} else if strings.ContainsAny(c.IPAM.Type, "/\x00") {
		bad(`ipam.type: %q must be a plugin name, not a path`, c.IPAM.Type)
	}
	if !ValidLinkName(c.Bridge) {
		bad(`bridge: %q is not a valid interface name (1-15 characters, no "/", ":" or spaces)`, c.Bridge)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		bad(`mtu: %d must be 0 (kernel default) or between 68 and 65535`, c.MTU)
	}
	if !filepath.IsAbs(c.DataDir) {
		bad(`dataDir: %q must be an absolute path`, c.DataDir)
	}
	if c.IPAM.Type == SpiderpoolType && !filepath.IsAbs(c.IPAMSocket) {
		bad(`ipam.ipam_unix_socket_path: %q must be an absolute path`, c.IPAMSocket)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
}

// ValidLinkName reports whether s can name a Linux network interface.
func ValidLinkName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\r\x00")
}

// describeJSONError turns encoding/json's errors into one that names the
// field (type errors) or the byte offset (syntax errors).
func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("%s: got JSON %s, want %s", field, typ.Value, typ.Type)
	}
	return err.Error()
}

// DelegateConf returns the netconf bytes to hand the IPAM delegate: stdin
// unchanged, except that spiderpool gets cniVersion 1.0.0 when the runtime
// asked for something newer (it rejects 1.1.0).
func (c *NetConf) DelegateConf(stdin []byte) ([]byte, error) {
	if c.IPAM.Type != SpiderpoolType || c.CNIVersion == "" {
		return stdin, nil
	}
	if newer, err := version.GreaterThan(c.CNIVersion, SpiderpoolMaxCNIVersion); err != nil || !newer {
		return stdin, nil // skel has already rejected unparsable versions
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	v, _ := json.Marshal(SpiderpoolMaxCNIVersion)
	m["cniVersion"] = v
	return json.Marshal(m)
}

// ForwardStatusAndGC reports whether STATUS and GC may be passed to the IPAM
// delegate. spiderpool implements neither (it predates CNI 1.1).
func (c *NetConf) ForwardStatusAndGC() bool {
	return c.IPAM.Type != SpiderpoolType
}
