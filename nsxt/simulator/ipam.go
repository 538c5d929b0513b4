package simulator

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"net/http"
	"net/netip"
	"strconv"
)

// ipam allocates what o asks of NSX's IPAM when it is created: a subnet
// carved from an IP block, or an address from a pool. An address asked for
// by value that is taken or outside the pool is refused (400); running out
// of space leaves the intent in place with a realization error, as NSX
// does (a block subnet with Config.RefuseFullBlocks is refused instead:
// 400 with error code 520012 among the related errors). Allocations are held by the objects
// themselves, so deleting the object releases them (once it is purged,
// with Config.PurgeAfter).
func (s *store) ipam(o, old *object) error {
	switch o.kind.resourceType {
	case "IpAddressPoolBlockSubnet":
		if old != nil {
			if o.str("ip_block_path") != old.str("ip_block_path") || blockSize(o.body) != blockSize(old.body) {
				return errorf(http.StatusBadRequest, "%s: ip_block_path and size cannot change once the subnet is allocated", o.path)
			}
			return nil
		}
		return s.allocSubnet(o)
	case "IpAddressPoolStaticSubnet":
		pfx, err := netip.ParsePrefix(o.str("cidr"))
		if err != nil {
			return errorf(http.StatusBadRequest, "%s: cidr %q: %v", o.path, o.str("cidr"), err)
		}
		o.realized.attrs["cidr"] = pfx.String()
		for _, r := range staticRanges(o) {
			if !pfx.Contains(r[0]) || !pfx.Contains(r[1]) || r[1].Less(r[0]) {
				return errorf(http.StatusBadRequest, "%s: allocation range %s-%s is not inside %s", o.path, r[0], r[1], pfx)
			}
		}
	case "IpAddressAllocation":
		if old != nil {
			if ip := o.str("allocation_ip"); ip != "" && ip != old.str("allocation_ip") {
				return errorf(http.StatusBadRequest, "%s: allocation_ip cannot change (allocated %s)", o.path, old.str("allocation_ip"))
			}
			o.body["allocation_ip"] = old.body["allocation_ip"]
			return nil
		}
		return s.allocIP(o)
	}
	return nil
}

// blockSize is the size a block subnet asks for: subnet_size (a string,
// the current field) or the deprecated size; 0 when neither parses.
func blockSize(body map[string]any) int64 {
	if ss, ok := body["subnet_size"].(string); ok {
		if n, err := strconv.ParseInt(ss, 10, 64); err == nil {
			return n
		}
	}
	n, _ := toInt(body["size"])
	return n
}

func (s *store) allocSubnet(o *object) error {
	blockPath := o.str("ip_block_path")
	block := s.objs[blockPath]
	if block == nil || block.kind.resourceType != "IpAddressBlock" {
		return errorf(http.StatusBadRequest, "%s: ip_block_path %q is not an IP block", o.path, blockPath)
	}
	size := blockSize(o.body)
	if size > 0 {
		o.body["size"] = json.Number(fmt.Sprint(size))
		o.body["subnet_size"] = fmt.Sprint(size)
	}
	if size < 4 || size&(size-1) != 0 {
		return errorf(http.StatusBadRequest, "%s: size must be a power of two of at least 4, got %v", o.path, o.body["size"])
	}
	bpfx, err := netip.ParsePrefix(block.str("cidr"))
	if err != nil || !bpfx.Addr().Is4() {
		return errorf(http.StatusBadRequest, "%s: block %s has no IPv4 cidr", o.path, blockPath)
	}
	bpfx = bpfx.Masked()
	bitsLen := 32 - (63 - bits.LeadingZeros64(uint64(size)))
	if bitsLen < bpfx.Bits() {
		return errorf(http.StatusBadRequest, "%s: a subnet of %d addresses does not fit in block %s (%s)", o.path, size, blockPath, bpfx)
	}
	var used []netip.Prefix
	var inUse int64
	// What awaits the purge still holds its subnet.
	for _, other := range s.heldAllocations() {
		if other.kind.resourceType == "IpAddressPoolBlockSubnet" && other.str("ip_block_path") == blockPath {
			if c, err := netip.ParsePrefix(other.realized.attrs["cidr"]); err == nil {
				used = append(used, c)
				inUse += 1 << (32 - c.Bits())
			}
		}
	}
	total := int64(1) << (32 - bpfx.Bits())
	for base := addrToInt(bpfx.Addr()); base < addrToInt(bpfx.Addr())+uint32(total); base += uint32(size) {
		cand := netip.PrefixFrom(intToAddr(base), bitsLen)
		free := true
		for _, u := range used {
			if u.Overlaps(cand) {
				free = false
				break
			}
		}
		if !free {
			continue
		}
		o.realized.attrs["cidr"] = cand.String()
		auto, set := o.body["auto_assign_gateway"].(bool)
		if !set || auto {
			o.realized.attrs["gateway_address"] = intToAddr(base + 1).String()
		}
		return nil
	}
	if s.refuseFull {
		msg := fmt.Sprintf("IpAddressBlock with path=[%s] does not have spare capacity to satisfy new block subnet of size %d", blockPath, size)
		rel := &apiError{status: http.StatusBadRequest, code: blockFullCode, msg: msg}
		return &apiError{status: http.StatusBadRequest, code: requestFailedCode, msg: "Error creating " + o.path, related: []*apiError{rel}}
	}
	o.realized.state = "ERROR"
	o.realized.err = fmt.Sprintf("IP block %s (%s) is exhausted: no free subnet of %d addresses (%d of %d in use)", blockPath, bpfx, size, inUse, total)
	return nil
}

// blockFullCode is NSX's error code for a block subnet its IP block has no
// room for, when the block refuses it at once (Config.RefuseFullBlocks).
// NSX reports it as a related error, under an error with a code of its
// own, requestFailedCode: clients (nsx-operator among them) look for it
// among the related errors only.
const blockFullCode = 520012

// requestFailedCode is the generic error code the simulator gives a
// request refused for the reason its related errors hold.
const requestFailedCode = 500127

// poolRanges lists the allocatable address ranges of a pool's subnets.
func (s *store) poolRanges(pool string) [][2]netip.Addr {
	var out [][2]netip.Addr
	for _, sub := range s.children(pool, "ip-subnets") {
		switch sub.kind.resourceType {
		case "IpAddressPoolStaticSubnet":
			out = append(out, staticRanges(sub)...)
		case "IpAddressPoolBlockSubnet":
			c, err := netip.ParsePrefix(sub.realized.attrs["cidr"])
			if err != nil {
				continue
			}
			first := addrToInt(c.Addr()) + 1
			if sub.realized.attrs["gateway_address"] != "" {
				first++
			}
			last := addrToInt(c.Addr()) + uint32(1)<<(32-c.Bits()) - 2
			if first <= last {
				out = append(out, [2]netip.Addr{intToAddr(first), intToAddr(last)})
			}
		}
	}
	return out
}

func staticRanges(o *object) [][2]netip.Addr {
	var out [][2]netip.Addr
	list, _ := o.body["allocation_ranges"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		a, err1 := netip.ParseAddr(fmt.Sprint(m["start"]))
		b, err2 := netip.ParseAddr(fmt.Sprint(m["end"]))
		if err1 == nil && err2 == nil {
			out = append(out, [2]netip.Addr{a, b})
		}
	}
	return out
}

func (s *store) allocIP(o *object) error {
	used := map[netip.Addr]string{}
	for _, a := range s.heldAllocations() {
		if a.kind.resourceType != "IpAddressAllocation" || a.parent != o.parent {
			continue
		}
		if ip, err := netip.ParseAddr(a.str("allocation_ip")); err == nil && a.path != o.path {
			used[ip] = a.path
		}
	}
	ranges := s.poolRanges(o.parent)
	if want := o.str("allocation_ip"); want != "" {
		ip, err := netip.ParseAddr(want)
		if err != nil {
			return errorf(http.StatusBadRequest, "%s: allocation_ip %q: %v", o.path, want, err)
		}
		if by, ok := used[ip]; ok {
			return errorf(http.StatusBadRequest, "%s: %s is already allocated from pool %s to %s", o.path, ip, o.parent, by)
		}
		for _, r := range ranges {
			if !ip.Less(r[0]) && !r[1].Less(ip) {
				o.realized.attrs["allocation_ip"] = ip.String()
				return nil
			}
		}
		return errorf(http.StatusBadRequest, "%s: %s is not in any range of pool %s", o.path, ip, o.parent)
	}
	total := 0
	for _, r := range ranges {
		for n := addrToInt(r[0]); n <= addrToInt(r[1]) && n != 0; n++ {
			total++
			ip := intToAddr(n)
			if _, taken := used[ip]; !taken {
				o.body["allocation_ip"] = ip.String()
				o.realized.attrs["allocation_ip"] = ip.String()
				return nil
			}
		}
	}
	o.realized.state = "ERROR"
	o.realized.err = fmt.Sprintf("IP pool %s is exhausted: all %d addresses are allocated", o.parent, total)
	return nil
}

// heldAllocations are the block subnets and pool addresses that hold
// what they allocated: those that exist and those deleted that await the
// purge.
func (s *store) heldAllocations() []*object {
	var out []*object
	for _, o := range chainObjects(s.objs, s.purging) {
		if rt := o.kind.resourceType; rt == "IpAddressPoolBlockSubnet" || rt == "IpAddressAllocation" {
			out = append(out, o)
		}
	}
	return out
}

func addrToInt(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func intToAddr(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
