package cloudconfig

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
)

// span is an inclusive range of addresses of one family: what an entry
// of reserved, static or static_ips names.
type span struct{ lo, hi netip.Addr }

var errEntry = errors.New("is not an address, a range (a - b) or a CIDR")

// parseSpan reads an address ("10.0.1.5"), a range ("10.0.1.5 -
// 10.0.1.9", spaces optional) or a CIDR ("10.0.1.16/28").
func parseSpan(s string) (span, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	lo = strings.TrimSpace(lo)
	if isRange {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		switch {
		case err1 != nil || err2 != nil || a.Zone() != "" || b.Zone() != "":
			return span{}, errors.New("is not a range of two addresses (a - b)")
		case a.Unmap().Is4() != b.Unmap().Is4():
			return span{}, errors.New("mixes IPv4 and IPv6")
		case b.Unmap().Less(a.Unmap()):
			return span{}, errors.New("ends before it starts")
		}
		return span{a.Unmap(), b.Unmap()}, nil
	}
	if strings.Contains(lo, "/") {
		p, err := netip.ParsePrefix(lo)
		if err != nil {
			return span{}, errEntry
		}
		return prefixSpan(p), nil
	}
	a, err := netip.ParseAddr(lo)
	if err != nil || a.Zone() != "" {
		return span{}, errEntry
	}
	return span{a.Unmap(), a.Unmap()}, nil
}

// parseAddr reads one address, as gateway and dns are written.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, errors.New("is not an IP address")
	}
	return a.Unmap(), nil
}

// parseRange reads a subnet's range: a CIDR without host bits that holds
// at least two addresses.
func parseRange(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, errors.New("is not a CIDR (10.0.1.0/24)")
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, errors.New("is an IPv4-mapped IPv6 CIDR: write it as IPv4")
	}
	if p.Masked() != p {
		return netip.Prefix{}, errors.New("has host bits set: the network is " + p.Masked().String())
	}
	if p.IsSingleIP() {
		return netip.Prefix{}, errors.New("holds one address: a range needs at least two")
	}
	return p, nil
}

// prefixSpan is every address of a prefix.
func prefixSpan(p netip.Prefix) span {
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
	return span{p.Addr(), hi}
}

func (s span) family() int { return s.lo.BitLen() }

func (s span) contains(a netip.Addr) bool {
	a = a.Unmap()
	return a.BitLen() == s.family() && !a.Less(s.lo) && !s.hi.Less(a)
}

// within reports whether all of s lies in t.
func (s span) within(t span) bool { return t.contains(s.lo) && t.contains(s.hi) }

func (s span) overlaps(t span) bool {
	return s.family() == t.family() && !s.hi.Less(t.lo) && !t.hi.Less(s.lo)
}

// size is how many addresses s holds, saturated at MaxUint64.
func (s span) size() uint64 {
	lo, hi := s.lo.As16(), s.hi.As16()
	l, borrow := bits.Sub64(binary.BigEndian.Uint64(hi[8:]), binary.BigEndian.Uint64(lo[8:]), 0)
	h, _ := bits.Sub64(binary.BigEndian.Uint64(hi[:8]), binary.BigEndian.Uint64(lo[:8]), borrow)
	if h != 0 || l == math.MaxUint64 {
		return math.MaxUint64
	}
	return l + 1
}

func (s span) String() string {
	if s.lo == s.hi {
		return s.lo.String()
	}
	return s.lo.String() + " - " + s.hi.String()
}

// spans parses a list of entries; the bad ones are left out.
func spans(entries []string) []span {
	var out []span
	for _, e := range entries {
		if s, err := parseSpan(e); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// sortSpans sorts spans by their first address.
func sortSpans(s []span) {
	slices.SortFunc(s, func(a, b span) int { return a.lo.Compare(b.lo) })
}

// firstFree returns the lowest address of in at or after from that no
// span of blocked holds; blocked is sorted by first address.
func firstFree(in span, from netip.Addr, blocked []span) (netip.Addr, bool) {
	cand := from
	if cand.Less(in.lo) {
		cand = in.lo
	}
	for _, b := range blocked {
		if b.family() != in.family() || b.hi.Less(cand) {
			continue
		}
		if cand.Less(b.lo) {
			break
		}
		cand = b.hi.Next() // past the range, or the zero Addr past the last address: none is free
	}
	if !in.contains(cand) {
		return netip.Addr{}, false
	}
	return cand, true
}

// indexed is a span and the index of the entry it came from.
type indexed struct {
	span
	i int
}

// overlapping returns, for each prefix that overlaps one of a lower
// index, the pair (its index, the lowest index it overlaps), by index.
// Prefixes overlap when one holds the other, so that in address order
// (holders first) they nest like parentheses: a stack of the prefixes
// holding the current one gives its ancestors, and each prefix learns
// the lowest index among its descendants as they are popped. The spans
// must be prefixes (a subnet's range); it sorts its argument.
func overlapping(s []indexed) [][2]int {
	slices.SortStableFunc(s, func(a, b indexed) int {
		if c := a.lo.Compare(b.lo); c != 0 {
			return c
		}
		return b.hi.Compare(a.hi) // the wider first
	})
	type frame struct {
		indexed
		up   int // the lowest index among it and the prefixes holding it
		down int // the lowest index among the prefixes it holds
	}
	var stack []frame
	var out [][2]int
	pop := func() {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		lowest := f.down
		if n := len(stack); n > 0 {
			lowest = min(lowest, stack[n-1].up)
			stack[n-1].down = min(stack[n-1].down, f.down, f.i)
		}
		if lowest < f.i {
			out = append(out, [2]int{f.i, lowest})
		}
	}
	for _, x := range s {
		for len(stack) > 0 && !x.within(stack[len(stack)-1].span) {
			pop()
		}
		up := x.i
		if n := len(stack); n > 0 {
			up = min(up, stack[n-1].up)
		}
		stack = append(stack, frame{x, up, math.MaxInt})
	}
	for len(stack) > 0 {
		pop()
	}
	slices.SortFunc(out, func(a, b [2]int) int { return a[0] - b[0] })
	return out
}

// spanIndex answers which of a set of spans overlaps a span, in
// O(log n): the spans sorted by first address, with the one reaching
// furthest among each prefix.
type spanIndex struct {
	spans    []indexed
	furthest []int // furthest[k]: the position in spans, among 0..k, of the highest end
}

func newSpanIndex(s []indexed) spanIndex {
	s = slices.Clone(s)
	slices.SortStableFunc(s, func(a, b indexed) int { return a.lo.Compare(b.lo) })
	x := spanIndex{spans: s, furthest: make([]int, len(s))}
	for k := range s {
		x.furthest[k] = k
		if k > 0 && !s[x.furthest[k-1]].hi.Less(s[k].hi) {
			x.furthest[k] = x.furthest[k-1]
		}
	}
	return x
}

// overlap returns the entry index of a span overlapping r.
func (x spanIndex) overlap(r span) (int, bool) {
	// The spans starting at or before r.hi; of those, the one reaching
	// furthest overlaps r if any does.
	n, _ := slices.BinarySearchFunc(x.spans, r.hi, func(s indexed, a netip.Addr) int {
		if a.Less(s.lo) {
			return 1
		}
		return -1
	})
	if n == 0 {
		return 0, false
	}
	if f := x.spans[x.furthest[n-1]]; f.overlaps(r) {
		return f.i, true
	}
	return 0, false
}
