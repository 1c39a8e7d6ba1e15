package ipam

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct{ first, last, want string }{
		{"10.245.5.2", "10.245.5.254", "10.245.5.2/31 10.245.5.4/30 10.245.5.8/29 10.245.5.16/28 10.245.5.32/27 10.245.5.64/26 10.245.5.128/26 10.245.5.192/27 10.245.5.224/28 10.245.5.240/29 10.245.5.248/30 10.245.5.252/31 10.245.5.254/32"},
		{"10.244.16.0", "10.244.31.255", "10.244.16.0/20"},
		{"10.0.0.7", "10.0.0.7", "10.0.0.7/32"},
		{"fd00::", "fd00::ff", "fd00::/120"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
	} {
		var got []string
		for _, p := range rangePrefixes(netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)) {
			got = append(got, p.String())
		}
		if s := strings.Join(got, " "); s != tc.want {
			t.Errorf("%s-%s: %s, want %s", tc.first, tc.last, s, tc.want)
		}
	}
}
