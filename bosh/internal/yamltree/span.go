package yamltree

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"net/netip"
	"strings"
)

// Span is an inclusive range of addresses of one family: what an entry
// of a manifest's static_ips or a subnet's reserved and static lists
// names. It is two addresses, however many it holds: a /8 is never
// expanded into its addresses.
type Span struct{ Lo, Hi netip.Addr }

var errEntry = errors.New("is not an address, a range (a - b) or a CIDR")

// ParseSpan reads an entry as BOSH writes them: an address ("10.0.1.5"),
// a range of two addresses ("10.0.1.5 - 10.0.1.9", spaces optional), or
// a CIDR ("10.0.1.16/28", host bits ignored). IPv4-mapped IPv6 addresses
// read as IPv4; addresses with a zone (fe80::1%eth0) are refused, and
// so is a second "-". The error is a reason for a problem: "ends before
// it starts", "mixes IPv4 and IPv6", "is not a range of two addresses
// (a - b)", "is not an address, a range (a - b) or a CIDR".
func ParseSpan(s string) (Span, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	lo = strings.TrimSpace(lo)
	if strings.Contains(hi, "-") {
		return Span{}, errEntry
	}
	if isRange {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		switch {
		case err1 != nil || err2 != nil || a.Zone() != "" || b.Zone() != "":
			return Span{}, errors.New("is not a range of two addresses (a - b)")
		case a.Unmap().Is4() != b.Unmap().Is4():
			return Span{}, errors.New("mixes IPv4 and IPv6")
		case b.Unmap().Less(a.Unmap()):
			return Span{}, errors.New("ends before it starts")
		}
		return Span{a.Unmap(), b.Unmap()}, nil
	}
	if strings.Contains(lo, "/") {
		p, err := netip.ParsePrefix(lo)
		if err != nil {
			return Span{}, errEntry
		}
		return PrefixSpan(p), nil
	}
	a, err := netip.ParseAddr(lo)
	if err != nil || a.Zone() != "" {
		return Span{}, errEntry
	}
	return Span{a.Unmap(), a.Unmap()}, nil
}

// PrefixSpan is every address of a prefix, its host bits ignored.
func PrefixSpan(p netip.Prefix) Span {
	p = p.Masked()
	b := p.Addr().As16()
	host := p.Addr().BitLen() - p.Bits()
	for i := 15; host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	hi := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		hi = hi.Unmap()
	}
	return Span{p.Addr(), hi}
}

// Family is the bit length of s's addresses: 32 or 128, 0 for the zero
// Span.
func (s Span) Family() int { return s.Lo.BitLen() }

// Contains reports whether s holds a (IPv4-mapped addresses as IPv4).
func (s Span) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return a.BitLen() == s.Family() && !a.Less(s.Lo) && !s.Hi.Less(a)
}

// Within reports whether all of s lies in t.
func (s Span) Within(t Span) bool { return t.Contains(s.Lo) && t.Contains(s.Hi) }

// Overlaps reports whether s and t share an address.
func (s Span) Overlaps(t Span) bool {
	return s.Family() == t.Family() && !s.Hi.Less(t.Lo) && !t.Hi.Less(s.Lo)
}

// Size is how many addresses s holds, saturated at math.MaxUint64.
func (s Span) Size() uint64 {
	lo, hi := s.Lo.As16(), s.Hi.As16()
	l, borrow := bits.Sub64(binary.BigEndian.Uint64(hi[8:]), binary.BigEndian.Uint64(lo[8:]), 0)
	h, _ := bits.Sub64(binary.BigEndian.Uint64(hi[:8]), binary.BigEndian.Uint64(lo[:8]), borrow)
	if h != 0 || l == math.MaxUint64 {
		return math.MaxUint64
	}
	return l + 1
}

// String writes s as ParseSpan reads it: one address, or "lo - hi".
func (s Span) String() string {
	if s.Lo == s.Hi {
		return s.Lo.String()
	}
	return s.Lo.String() + " - " + s.Hi.String()
}

// AddSat adds two counts of addresses, saturated at math.MaxUint64.
func AddSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
