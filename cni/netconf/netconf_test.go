package netconf

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
		errHas  string
		check   func(*testing.T, *NetConf)
	}{
		{
			name: "defaults",
			in:   `{"cniVersion":"1.0.0","name":"edgelink","type":"edgelink-cni","ipam":{"type":"host-local"}}`,
			check: func(t *testing.T, c *NetConf) {
				if c.Bridge != DefaultBridge || c.DataDir != DefaultDataDir || c.MTU != 0 || c.IPAMSocket != "" {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{
			name: "spiderpool socket default and override",
			in:   `{"cniVersion":"1.1.0","name":"n","type":"edgelink-cni","ipam":{"type":"spiderpool"}}`,
			check: func(t *testing.T, c *NetConf) {
				if c.IPAMSocket != DefaultSpiderpoolSocket {
					t.Errorf("socket = %q", c.IPAMSocket)
				}
			},
		},
		{
			name: "all fields",
			in: `{"cniVersion":"1.0.0","name":"n","type":"edgelink-cni","bridge":"br-x","mtu":1400,"hairpinMode":true,
			      "dataDir":"/run/x","ipam":{"type":"spiderpool","ipam_unix_socket_path":"/run/el/ipam.sock"}}`,
			check: func(t *testing.T, c *NetConf) {
				if c.Bridge != "br-x" || c.MTU != 1400 || !c.HairpinMode || c.DataDir != "/run/x" || c.IPAMSocket != "/run/el/ipam.sock" {
					t.Errorf("parsed %+v", c)
				}
			},
		},
		{name: "empty", in: " \n", wantErr: ErrDecode, errHas: "stdin is empty"},
		{name: "syntax", in: `{"name": "n",}`, wantErr: ErrDecode, errHas: "not valid JSON at byte"},
		{name: "type", in: `{"name":"n","mtu":"1400","ipam":{"type":"x"}}`, wantErr: ErrDecode, errHas: "mtu: got JSON string, want int"},
		{name: "socket type", in: `{"name":"n","ipam":{"type":"spiderpool","ipam_unix_socket_path":7}}`, wantErr: ErrDecode, errHas: "ipam.ipam_unix_socket_path"},
		{name: "every problem at once", in: `{"bridge":"this-is-far-too-long","mtu":70000,"dataDir":"rel"}`, wantErr: ErrInvalid,
			errHas: `name: is required; ipam.type: is required (e.g. "spiderpool" or "host-local"); bridge: "this-is-far-too-long" is not a valid interface name (1-15 characters, no "/", ":" or spaces); mtu: 70000 must be 0 (kernel default) or between 68 and 65535; dataDir: "rel" must be an absolute path`},
		{name: "ipam path", in: `{"name":"n","ipam":{"type":"../../bin/sh"}}`, wantErr: ErrInvalid, errHas: `ipam.type: "../../bin/sh" must be a plugin name`},
		{name: "relative socket", in: `{"name":"n","ipam":{"type":"spiderpool","ipam_unix_socket_path":"x.sock"}}`, wantErr: ErrInvalid, errHas: `ipam.ipam_unix_socket_path: "x.sock" must be an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %q\nwant it to contain %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestDelegateConf(t *testing.T) {
	in := []byte(`{"cniVersion":"1.1.0","name":"n","type":"edgelink-cni","ipam":{"type":"spiderpool","x":1}}`)
	c, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.DelegateConf(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["cniVersion"] != "1.0.0" || m["ipam"].(map[string]any)["x"] != float64(1) {
		t.Errorf("spiderpool gets %s, want cniVersion 1.0.0 and the rest unchanged", out)
	}
	if c.ForwardStatusAndGC() {
		t.Error("STATUS/GC must not be forwarded to spiderpool")
	}

	// Older versions and other IPAM types pass through untouched.
	for _, s := range []string{
		`{"cniVersion":"0.3.1","name":"n","ipam":{"type":"spiderpool"}}`,
		`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local"}}`,
	} {
		c, err := Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if out, _ := c.DelegateConf([]byte(s)); string(out) != s {
			t.Errorf("%s became %s", s, out)
		}
	}
}

// FuzzParse feeds arbitrary bytes to the netconf parser: it must never
// panic, and whatever it accepts must satisfy the validated invariants.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.0.0","name":"edgelink","type":"edgelink-cni","ipam":{"type":"host-local"}}`,
		`{"cniVersion":"1.1.0","name":"n","type":"edgelink-cni","bridge":"br0","mtu":1400,"ipam":{"type":"spiderpool","ipam_unix_socket_path":"/run/s.sock"}}`,
		`{"name":"n","mtu":"x"}`, `[]`, `null`, `{"ipam":null}`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v wraps neither ErrDecode nor ErrInvalid", err)
			}
			return
		}
		if c.Name == "" || c.IPAM.Type == "" || !ValidLinkName(c.Bridge) || (c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535)) {
			t.Fatalf("accepted an invalid netconf: %+v", c)
		}
		if _, err := c.DelegateConf(data); err != nil {
			t.Fatalf("DelegateConf on accepted input: %v", err)
		}
	})
}
