package app

import (
	"slices"
	"testing"
)

func TestAddrRanges(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		// a pool range 10.245.1.2-10.245.1.250 as the plan splits it
		{[]string{"10.245.1.2/31", "10.245.1.4/30", "10.245.1.8/29", "10.245.1.16/28", "10.245.1.32/27", "10.245.1.64/26",
			"10.245.1.128/26", "10.245.1.192/27", "10.245.1.224/28", "10.245.1.240/29", "10.245.1.248/31", "10.245.1.250/32"},
			[]string{"10.245.1.2-10.245.1.250"}},
		{[]string{"10.244.1.0/24"}, []string{"10.244.1.0/24"}},
		{[]string{"10.0.0.2/31", "10.0.0.0/31"}, []string{"10.0.0.0/30"}}, // contiguous into an exact prefix
		{[]string{"10.0.0.0/24", "fd00:245:5::2/128", "10.0.2.0/24"}, []string{"10.0.0.0/24", "10.0.2.0/24", "fd00:245:5::2/128"}},
		{[]string{"junk"}, []string{"junk"}},
		{nil, nil},
	} {
		if got := addrRanges(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("addrRanges(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
