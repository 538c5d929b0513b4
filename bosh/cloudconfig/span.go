package cloudconfig

import (
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// span is an inclusive range of addresses of one family: what an entry
// of reserved, static or static_ips names (see yamltree.Span, whose
// methods it takes under the names the allocator uses).
type span yamltree.Span

// parseSpan reads an address ("10.0.1.5"), a range ("10.0.1.5 -
// 10.0.1.9", spaces optional) or a CIDR ("10.0.1.16/28").
func parseSpan(s string) (span, error) {
	r, err := yamltree.ParseSpan(s)
	return span(r), err
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
func prefixSpan(p netip.Prefix) span { return span(yamltree.PrefixSpan(p)) }

func (s span) family() int                { return yamltree.Span(s).Family() }
func (s span) contains(a netip.Addr) bool { return yamltree.Span(s).Contains(a) }
func (s span) within(t span) bool         { return yamltree.Span(s).Within(yamltree.Span(t)) }
func (s span) overlaps(t span) bool       { return yamltree.Span(s).Overlaps(yamltree.Span(t)) }
func (s span) size() uint64               { return yamltree.Span(s).Size() }

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
	slices.SortFunc(s, func(a, b span) int { return a.Lo.Compare(b.Lo) })
}

// firstFree returns the lowest address of in at or after from that no
// span of blocked holds; blocked is sorted by first address.
func firstFree(in span, from netip.Addr, blocked []span) (netip.Addr, bool) {
	cand := from
	if cand.Less(in.Lo) {
		cand = in.Lo
	}
	for _, b := range blocked {
		if b.family() != in.family() || b.Hi.Less(cand) {
			continue
		}
		if cand.Less(b.Lo) {
			break
		}
		cand = b.Hi.Next() // past the range, or the zero Addr past the last address: none is free
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
		if c := a.Lo.Compare(b.Lo); c != 0 {
			return c
		}
		return b.Hi.Compare(a.Hi) // the wider first
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
	slices.SortStableFunc(s, func(a, b indexed) int { return a.Lo.Compare(b.Lo) })
	x := spanIndex{spans: s, furthest: make([]int, len(s))}
	for k := range s {
		x.furthest[k] = k
		if k > 0 && !s[x.furthest[k-1]].Hi.Less(s[k].Hi) {
			x.furthest[k] = x.furthest[k-1]
		}
	}
	return x
}

// overlap returns the entry index of a span overlapping r.
func (x spanIndex) overlap(r span) (int, bool) {
	// The spans starting at or before r.Hi; of those, the one reaching
	// furthest overlaps r if any does.
	n, _ := slices.BinarySearchFunc(x.spans, r.Hi, func(s indexed, a netip.Addr) int {
		if a.Less(s.Lo) {
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
