package p2p

import (
	"net/netip"
	"slices"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func TestSubtract(t *testing.T) {
	got := subtract(netip.MustParsePrefix("192.168.0.0/16"), []netip.Prefix{netip.MustParsePrefix("192.168.100.0/24")})
	var covered uint64
	for _, p := range got {
		if p.Overlaps(netip.MustParsePrefix("192.168.100.0/24")) {
			t.Errorf("%s overlaps the removed range", p)
		}
		covered += 1 << (32 - p.Bits())
	}
	if covered != 65536-256 || len(got) != 8 {
		t.Errorf("subtract left %d addresses in %d prefixes %v, want 65280 in 8", covered, len(got), got)
	}
	if got := subtract(netip.MustParsePrefix("10.0.0.0/8"), []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}); got != nil {
		t.Errorf("a covering range must remove everything, left %v", got)
	}
	if got := subtract(netip.MustParsePrefix("10.0.0.0/8"), []netip.Prefix{netip.MustParsePrefix("fd00::/8")}); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}) {
		t.Errorf("another family must not change the range, got %v", got)
	}
}

// The ranges the operator lists become public to libp2p; neighbours stay
// private.
func TestSetRoutable(t *testing.T) {
	public := func(s string) bool { return manet.IsPublicAddr(ma.StringCast("/ip4/" + s + "/tcp/1")) }
	SetRoutable([]netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("10.20.0.0/16")})
	for ip, want := range map[string]bool{
		"198.18.0.11": true, "198.19.255.1": true, "10.20.3.4": true,
		"10.21.0.1": false, "192.168.1.1": false, "127.0.0.1": false, "8.8.8.8": true,
	} {
		if got := public(ip); got != want {
			t.Errorf("IsPublicAddr(%s) = %v, want %v", ip, got, want)
		}
	}
}
