// Package install renders the CNI conflist for edgelink-cni and installs it
// and the plugin binary where a container runtime finds them. Both files are
// written to a temporary name, fsync'd and renamed, so a runtime never reads
// a half-written conflist or executes a half-copied binary.
package install

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgelink/edgelink/cni/netconf"
	"github.com/edgelink/edgelink/pkg/atomicfile"
)

// Defaults of `edgelink cni install`.
const (
	DefaultBinDir      = "/opt/cni/bin"
	DefaultConfDir     = "/etc/cni/net.d"
	DefaultConfName    = "10-edgelink.conflist"
	DefaultNetworkName = "edgelink"
	PluginName         = "edgelink-cni"
)

// ConfVersion is the conflist's cniVersion: the newest that containerd 1.6's
// libcni (Debian's) accepts. The conflist's cniVersions (confVersions) lets
// newer runtimes pick 1.1.0, which brings STATUS and GC.
const ConfVersion = "1.0.0"

func confVersions() []string { return []string{"1.0.0", "1.1.0"} }

// Options describe one installation.
type Options struct {
	BinDir   string
	ConfDir  string
	ConfName string
	// PluginSource is the edgelink-cni binary to copy into BinDir; empty
	// skips the copy (the conflist alone is written).
	PluginSource string

	NetworkName string
	Bridge      string
	MTU         int
	HairpinMode bool
	DataDir     string

	// IPAMType is "spiderpool" (default) or "host-local".
	IPAMType string
	// IPAMSocket is the spiderpool socket (the agent's ipam module).
	IPAMSocket      string
	DefaultIPv4Pool []string
	DefaultIPv6Pool []string
	// Subnets are host-local ranges, one per IP family.
	Subnets []string
}

func (o *Options) setDefaults() {
	if o.BinDir == "" {
		o.BinDir = DefaultBinDir
	}
	if o.ConfDir == "" {
		o.ConfDir = DefaultConfDir
	}
	if o.ConfName == "" {
		o.ConfName = DefaultConfName
	}
	if o.NetworkName == "" {
		o.NetworkName = DefaultNetworkName
	}
	if o.IPAMType == "" {
		o.IPAMType = netconf.SpiderpoolType
	}
}

// Conflist renders the network configuration list. Every plugin entry is
// checked with the same parser the plugin uses.
func Conflist(o Options) ([]byte, error) {
	o.setDefaults()
	ipam := map[string]any{"type": o.IPAMType}
	switch o.IPAMType {
	case netconf.SpiderpoolType:
		if o.IPAMSocket != "" {
			ipam["ipam_unix_socket_path"] = o.IPAMSocket
		}
		if len(o.DefaultIPv4Pool) > 0 {
			ipam["default_ipv4_ippool"] = o.DefaultIPv4Pool
		}
		if len(o.DefaultIPv6Pool) > 0 {
			ipam["default_ipv6_ippool"] = o.DefaultIPv6Pool
		}
	case "host-local":
		if len(o.Subnets) == 0 {
			return nil, fmt.Errorf("ipam host-local needs at least one subnet (--subnet)")
		}
		var ranges [][]map[string]string
		for _, s := range o.Subnets {
			ranges = append(ranges, []map[string]string{{"subnet": s}})
		}
		ipam["ranges"] = ranges
		if o.DataDir != "" {
			ipam["dataDir"] = filepath.Join(o.DataDir, "host-local")
		}
	default:
		return nil, fmt.Errorf("ipam type %q: use %q or %q", o.IPAMType, netconf.SpiderpoolType, "host-local")
	}
	plugin := map[string]any{"type": PluginName, "ipam": ipam}
	if o.Bridge != "" {
		plugin["bridge"] = o.Bridge
	}
	if o.MTU != 0 {
		plugin["mtu"] = o.MTU
	}
	if o.HairpinMode {
		plugin["hairpinMode"] = true
	}
	if o.DataDir != "" {
		plugin["dataDir"] = o.DataDir
	}
	list := map[string]any{
		"cniVersion":  ConfVersion,
		"cniVersions": confVersions(),
		"name":        o.NetworkName,
		"plugins":     []any{plugin},
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	// Check the entry as the plugin will see it (name and version injected).
	plugin["name"], plugin["cniVersion"] = o.NetworkName, ConfVersion
	entry, _ := json.Marshal(plugin)
	if _, err := netconf.Parse(entry); err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Install copies the plugin binary (when PluginSource is set) and writes the
// conflist, each atomically. It returns the conflist's path.
func Install(o Options) (string, error) {
	o.setDefaults()
	conf, err := Conflist(o)
	if err != nil {
		return "", err
	}
	if o.PluginSource != "" {
		src, err := os.Open(o.PluginSource)
		if err != nil {
			return "", fmt.Errorf("plugin binary: %w", err)
		}
		defer src.Close()
		if err := atomicfile.Write(filepath.Join(o.BinDir, PluginName), src, 0o755); err != nil {
			return "", err
		}
	}
	path := filepath.Join(o.ConfDir, o.ConfName)
	if err := atomicfile.Write(path, bytes.NewReader(conf), 0o644); err != nil {
		return "", err
	}
	return path, nil
}
