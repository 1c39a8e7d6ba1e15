package v1alpha1

import (
	"strings"
	"testing"
)

func TestMetricsAddress(t *testing.T) {
	for _, c := range []struct {
		addr, want string // want: "" valid, else a substring of the one error
	}{
		{"", ""},
		{"127.0.0.1:9091", ""},
		{":9091", ""},
		{"[::1]:9091", ""},
		{"localhost:9091", ""},
		{"127.0.0.1", `metricsAddress: "127.0.0.1" must be host:port`},
		{"127.0.0.1:0", `metricsAddress: "127.0.0.1:0" has port "0"`},
		{"127.0.0.1:70000", `has port "70000"`},
		{"127.0.0.1:http", `has port "http"`},
	} {
		t.Run(c.addr, func(t *testing.T) {
			cfg := NewDefault()
			cfg.NodeName = "edge-1"
			cfg.MetricsAddress = c.addr
			_, err := Validate(cfg)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
