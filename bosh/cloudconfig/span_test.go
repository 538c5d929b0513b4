package cloudconfig

import (
	"math"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSpan(t *testing.T) {
	for _, tc := range []struct {
		in, lo, hi string
		size       uint64
	}{
		{"10.0.1.5", "10.0.1.5", "10.0.1.5", 1},
		{" 10.0.1.5 - 10.0.1.9 ", "10.0.1.5", "10.0.1.9", 5},
		{"10.0.1.5-10.0.1.5", "10.0.1.5", "10.0.1.5", 1},
		{"10.0.1.16/28", "10.0.1.16", "10.0.1.31", 16},
		{"10.0.1.17/28", "10.0.1.16", "10.0.1.31", 16},
		{"::ffff:10.0.1.5", "10.0.1.5", "10.0.1.5", 1},
		{"::ffff:10.0.1.5 - ::ffff:10.0.1.6", "10.0.1.5", "10.0.1.6", 2},
		{"fd00::/120", "fd00::", "fd00::ff", 256},
		{"fd00::/64", "fd00::", "fd00::ffff:ffff:ffff:ffff", math.MaxUint64},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", math.MaxUint64},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255", 1 << 32},
	} {
		s, err := parseSpan(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, span{netip.MustParseAddr(tc.lo), netip.MustParseAddr(tc.hi)}, s, tc.in)
		assert.Equal(t, tc.size, s.size(), tc.in)
	}
	for _, in := range []string{"", "10.0.1", "10.0.1.5 -", "- 10.0.1.5", "10.0.1.5 - 10.0.1.6 - 10.0.1.7", "fe80::1%eth0", "10.0.1.0/40"} {
		_, err := parseSpan(in)
		assert.Error(t, err, in)
	}
}

func TestFirstFree(t *testing.T) {
	in := span{netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.0.0.15")}
	b := func(lo, hi string) span { return span{netip.MustParseAddr(lo), netip.MustParseAddr(hi)} }
	for _, tc := range []struct {
		name    string
		from    string
		blocked []span
		want    string // "" when none is free
	}{
		{"nothing blocked", "10.0.0.0", nil, "10.0.0.0"},
		{"from inside", "10.0.0.7", nil, "10.0.0.7"},
		{"from before the range", "9.255.255.0", nil, "10.0.0.0"},
		{"skips adjoining spans", "10.0.0.0", []span{b("10.0.0.0", "10.0.0.0"), b("10.0.0.1", "10.0.0.4"), b("10.0.0.3", "10.0.0.6")}, "10.0.0.7"},
		{"a gap", "10.0.0.0", []span{b("10.0.0.0", "10.0.0.3"), b("10.0.0.5", "10.0.0.9")}, "10.0.0.4"},
		{"spans below from", "10.0.0.10", []span{b("10.0.0.0", "10.0.0.9"), b("10.0.0.10", "10.0.0.10")}, "10.0.0.11"},
		{"other family", "10.0.0.0", []span{b("::", "::ffff")}, "10.0.0.0"},
		{"blocked to the end", "10.0.0.0", []span{b("10.0.0.0", "10.0.0.3"), b("10.0.0.4", "10.0.0.20")}, ""},
		{"blocked to the last address", "10.0.0.0", []span{b("10.0.0.0", "10.0.0.15")}, ""},
		{"from past the range", "10.0.0.16", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := firstFree(in, netip.MustParseAddr(tc.from), tc.blocked)
			if tc.want == "" {
				assert.False(t, ok, got)
				return
			}
			require.True(t, ok)
			assert.Equal(t, tc.want, got.String())
		})
	}
}
