package yamltree_test

import (
	"math"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

func span(lo, hi string) yamltree.Span {
	return yamltree.Span{Lo: netip.MustParseAddr(lo), Hi: netip.MustParseAddr(hi)}
}

// TestParseSpan reads every form of entry: single addresses, "a - b"
// ranges, CIDRs, in both families, and their sizes, with hostile sizes
// (a /8, all of IPv6) counted, not expanded.
func TestParseSpan(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi string
		size   uint64
		text   string
	}{
		{"10.0.1.5", "10.0.1.5", "10.0.1.5", 1, "10.0.1.5"},
		{" 10.0.1.5 ", "10.0.1.5", "10.0.1.5", 1, "10.0.1.5"},
		{"fd00::1", "fd00::1", "fd00::1", 1, "fd00::1"},
		{"::ffff:10.0.1.5", "10.0.1.5", "10.0.1.5", 1, "10.0.1.5"},
		{"10.0.1.5 - 10.0.1.9", "10.0.1.5", "10.0.1.9", 5, "10.0.1.5 - 10.0.1.9"},
		{"10.0.1.5-10.0.1.9", "10.0.1.5", "10.0.1.9", 5, "10.0.1.5 - 10.0.1.9"},
		{"10.0.1.5 - 10.0.1.5", "10.0.1.5", "10.0.1.5", 1, "10.0.1.5"},
		{"10.0.0.255 - 10.0.1.0", "10.0.0.255", "10.0.1.0", 2, "10.0.0.255 - 10.0.1.0"},
		{"::ffff:10.0.1.5 - 10.0.1.6", "10.0.1.5", "10.0.1.6", 2, "10.0.1.5 - 10.0.1.6"},
		{"fd00::1 - fd00::1:0", "fd00::1", "fd00::1:0", 0x10000, "fd00::1 - fd00::1:0"},
		{"10.0.1.16/28", "10.0.1.16", "10.0.1.31", 16, "10.0.1.16 - 10.0.1.31"},
		{"10.0.1.17/28", "10.0.1.16", "10.0.1.31", 16, "10.0.1.16 - 10.0.1.31"},
		{"10.0.1.7/32", "10.0.1.7", "10.0.1.7", 1, "10.0.1.7"},
		{"10.0.0.0/8", "10.0.0.0", "10.255.255.255", 1 << 24, "10.0.0.0 - 10.255.255.255"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255", 1 << 32, "0.0.0.0 - 255.255.255.255"},
		{"fd00::/120", "fd00::", "fd00::ff", 256, "fd00:: - fd00::ff"},
		{"fd00::/65", "fd00::", "fd00::7fff:ffff:ffff:ffff", 1 << 63, "fd00:: - fd00::7fff:ffff:ffff:ffff"},
		{"fd00::/64", "fd00::", "fd00::ffff:ffff:ffff:ffff", math.MaxUint64, "fd00:: - fd00::ffff:ffff:ffff:ffff"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", math.MaxUint64, ":: - ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			s, err := yamltree.ParseSpan(tc.in)
			require.NoError(t, err)
			assert.Equal(t, span(tc.lo, tc.hi), s)
			assert.Equal(t, tc.size, s.Size())
			assert.Equal(t, tc.text, s.String())
		})
	}
}

// TestParseSpanErrors: each malformed entry has the reason a problem
// shows.
func TestParseSpanErrors(t *testing.T) {
	const notEntry = "is not an address, a range (a - b) or a CIDR"
	for _, tc := range []struct{ in, want string }{
		{"", notEntry},
		{"10.0.1", notEntry},
		{"10.0.1.300", notEntry},
		{"host.example.com", notEntry},
		{"fe80::1%eth0", notEntry},
		{"10.0.1.0/33", notEntry},
		{"10.0.1.0/", notEntry},
		{"10.0.1.5 - 10.0.1.6 - 10.0.1.7", notEntry},
		{"10.0.1.5--10.0.1.7", notEntry},
		{"10.0.1.5 -", "is not a range of two addresses (a - b)"},
		{"- 10.0.1.5", "is not a range of two addresses (a - b)"},
		{"10.0.1.5 - x", "is not a range of two addresses (a - b)"},
		{"10.0.1.0/30 - 10.0.1.9", "is not a range of two addresses (a - b)"},
		{"fe80::1%eth0 - fe80::2", "is not a range of two addresses (a - b)"},
		{"10.0.1.9 - 10.0.1.5", "ends before it starts"},
		{"fd00::2 - fd00::1", "ends before it starts"},
		{"10.0.1.5 - fd00::1", "mixes IPv4 and IPv6"},
		{"fd00::1 - 10.0.1.5", "mixes IPv4 and IPv6"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := yamltree.ParseSpan(tc.in)
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error())
		})
	}
}

// TestParseSpanHostile: the largest entries cost what the smallest do:
// reading and sizing a /8 or all of IPv6 allocates nothing per address.
func TestParseSpanHostile(t *testing.T) {
	for _, in := range []string{"10.0.0.0/8", "0.0.0.0/0", "::/0", "0.0.0.0 - 255.255.255.255", ":: - ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		allocs := testing.AllocsPerRun(10, func() {
			s, err := yamltree.ParseSpan(in)
			if err != nil || s.Size() < 1<<24 {
				t.Fatalf("%s: %v, %d", in, err, s.Size())
			}
		})
		assert.LessOrEqual(t, allocs, 2.0, in)
	}
}

// TestSpanRelations: Contains, Within, Overlaps and Family keep the two
// families apart, and read IPv4-mapped addresses as IPv4.
func TestSpanRelations(t *testing.T) {
	r := span("10.0.1.0", "10.0.1.255")
	assert.Equal(t, 32, r.Family())
	assert.Equal(t, 128, span("fd00::", "fd00::ff").Family())
	assert.Equal(t, 0, yamltree.Span{}.Family())

	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"10.0.1.0", true}, {"10.0.1.255", true}, {"10.0.1.7", true}, {"::ffff:10.0.1.7", true},
		{"10.0.0.255", false}, {"10.0.2.0", false}, {"::a00:107", false}, {"fd00::1", false},
	} {
		assert.Equal(t, tc.want, r.Contains(netip.MustParseAddr(tc.ip)), tc.ip)
	}
	assert.False(t, yamltree.Span{}.Contains(netip.MustParseAddr("10.0.1.7")))

	assert.True(t, span("10.0.1.5", "10.0.1.9").Within(r))
	assert.True(t, r.Within(r))
	assert.False(t, span("10.0.0.250", "10.0.1.9").Within(r))
	assert.False(t, span("10.0.1.250", "10.0.2.9").Within(r))

	for _, tc := range []struct {
		a, b yamltree.Span
		want bool
	}{
		{span("10.0.1.0", "10.0.1.9"), span("10.0.1.9", "10.0.1.20"), true},
		{span("10.0.1.0", "10.0.1.9"), span("10.0.1.10", "10.0.1.20"), false},
		{span("10.0.1.5", "10.0.1.6"), span("10.0.1.0", "10.0.1.255"), true},
		{span("10.0.1.0", "10.0.1.255"), span("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), false},
	} {
		assert.Equal(t, tc.want, tc.a.Overlaps(tc.b), "%s ~ %s", tc.a, tc.b)
		assert.Equal(t, tc.want, tc.b.Overlaps(tc.a), "%s ~ %s", tc.b, tc.a)
	}
}

func TestAddSat(t *testing.T) {
	assert.Equal(t, uint64(5), yamltree.AddSat(2, 3))
	assert.Equal(t, uint64(math.MaxUint64), yamltree.AddSat(math.MaxUint64-1, 1))
	assert.Equal(t, uint64(math.MaxUint64), yamltree.AddSat(math.MaxUint64-1, 2))
	assert.Equal(t, uint64(math.MaxUint64), yamltree.AddSat(1<<63, 1<<63))
}
