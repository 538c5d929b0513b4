package cloudconfig

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// Request asks for the addresses of one instance group's instances on
// one network, as the director works them out on every deploy.
type Request struct {
	// Network is the name of a network in the cloud config.
	Network string
	// AZs are the instance group's azs; none when it has none.
	AZs []string
	// Instances are the group's instances, in index order.
	Instances []Instance
	// StaticIPs are the group's static_ips on this network as the
	// manifest writes them: addresses, ranges ("a - b") and CIDRs adding
	// up to one address per instance.
	StaticIPs []string
	// Taken holds the addresses held by anything else on the director
	// (other instance groups and deployments, compilation VMs, an
	// operator's reservation), each with a name for its holder. An entry
	// whose holder is the ID of an instance of the request is that
	// instance's own, from the last deploy: it is free to the request.
	Taken map[netip.Addr]string
}

// Instance is one instance of the group.
type Instance struct {
	// ID is the instance's id, unique in the request.
	ID string
	// AZ is the AZ the director placed the instance in: one of the
	// group's AZs, or "" when the group has none. On a manual network
	// with static IPs it may be "": the AZ of its static IP's subnet
	// is then the instance's.
	AZ string
	// IP is the address the instance had on this network after the last
	// deploy; the zero Addr for a new instance. An instance keeps it as
	// long as it may: in a subnet of its AZ, not reserved, and static
	// when the group has static IPs and dynamic when it has none.
	IP netip.Addr
}

// Address is an instance's place on the network.
type Address struct {
	ID string
	// AZ is the instance's AZ (from its static IP's subnet when the
	// instance had none).
	AZ string
	// IP is the instance's address; the zero Addr on a dynamic network,
	// where the IaaS assigns it.
	IP netip.Addr
	// Static is true for an address from the group's static_ips.
	Static bool
	// Subnet is the cloud config subnet the address belongs to, whose
	// gateway, dns and cloud_properties the instance's network settings
	// take; nil on a network without subnets. It points into the
	// CloudConfig.
	Subnet *Subnet
}

// ExhaustedError says that a network has no address left for an
// instance in its AZ. It wraps kubefoundry.ErrLimitExceeded.
type ExhaustedError struct {
	Network  string
	AZ       string // "" when the group has no AZs
	Instance string // the instance ID left without an address
	// Subnets says, for each subnet searched, how its addresses are used.
	Subnets []string
}

func (e *ExhaustedError) Error() string {
	in := ""
	if e.AZ != "" {
		in = " in az " + e.AZ
	}
	return fmt.Sprintf("network %s has no free address%s for instance %s: %s", e.Network, in, e.Instance, strings.Join(e.Subnets, "; "))
}

// Unwrap makes errors.Is(err, kubefoundry.ErrLimitExceeded) true.
func (e *ExhaustedError) Unwrap() error { return kubefoundry.ErrLimitExceeded }

// Allocate assigns each instance of req an address on req.Network the
// way the director does, and returns them in the order of
// req.Instances.
//
// On a manual network an instance keeps the address it had (Instance.IP)
// while it may; the others get, in order, the lowest address of a subnet
// of their AZ (subnets in the cloud config's order) that is not the
// range's first or last address, the gateway, reserved, static, taken
// (req.Taken) or given to another instance. With StaticIPs, every
// address must be in the static list of a subnet of one of the group's
// AZs and not taken: instances keep theirs, and the rest go out in the
// order listed, each to an instance of its subnet's AZ.
//
// On a vip network the addresses are the group's StaticIPs when the
// network has no subnets, and otherwise come from its subnets' static
// lists (first free in the order listed); a dynamic network gives each
// instance its AZ's subnet and no address.
//
// A request that does not fit the cloud config is a
// *kubefoundry.ValidationError naming the field of the Request
// (StaticIPs[1], Instances[2].AZ); a network with no address left for
// an instance is an *ExhaustedError. An invalid cloud config is its
// Validate error.
func (c *CloudConfig) Allocate(req Request) ([]Address, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	a := &allocator{req: req, problems: &kubefoundry.ValidationError{Object: "allocation on network " + req.Network}}
	if a.net = c.Network(req.Network); a.net == nil {
		a.problems.Add("Network", req.Network, "is not a network in the cloud config")
		return nil, a.problems
	}
	a.check(c)
	if err := a.problems.Err(); err != nil {
		return nil, err
	}
	switch a.net.kindOf() {
	case Dynamic:
		return a.dynamic()
	case VIP:
		if len(a.net.Subnets) == 0 {
			return a.static(nil)
		}
		return a.vip()
	}
	pools := make([]*pool, len(a.net.Subnets))
	for i := range a.net.Subnets {
		pools[i] = newPool(&a.net.Subnets[i])
	}
	if len(req.StaticIPs) > 0 {
		return a.static(pools)
	}
	return a.manual(pools)
}

// allocator is one call of Allocate.
type allocator struct {
	req      Request
	net      *Network
	problems *kubefoundry.ValidationError
	ids      map[string]bool // the instances' IDs
}

// heldBy reports who else holds ip: not an instance of the request.
func (a *allocator) heldBy(ip netip.Addr) (string, bool) {
	h, ok := a.req.Taken[ip]
	if !ok {
		h, ok = a.req.Taken[netip.AddrFrom16(ip.As16())] // the same address written as IPv4-mapped IPv6
	}
	return h, ok && !a.ids[h]
}

// check checks the request's AZs and instances against the network.
func (a *allocator) check(c *CloudConfig) {
	n, req, p := a.net, a.req, a.problems
	derives := len(req.StaticIPs) > 0 && n.kindOf() == Manual // an instance's AZ may come from its static IP
	for i, z := range req.AZs {
		switch {
		case c.AZ(z) == nil:
			p.Add("AZs["+strconv.Itoa(i)+"]", z, "is not an AZ in the cloud config")
		case !serves(n, z):
			p.Add("AZs["+strconv.Itoa(i)+"]", z, "network %s has no subnet in this AZ", n.Name)
		}
	}
	if len(req.AZs) == 0 && !serves(n, "") {
		p.Add("AZs", "", "are required: network %s has its subnets in azs %s", n.Name, strings.Join(zonesOf(n), ", "))
	}
	a.ids = map[string]bool{}
	for i, in := range req.Instances {
		at := "Instances[" + strconv.Itoa(i) + "]"
		switch {
		case in.ID == "":
			p.Add(at+".ID", "", "is required")
		case a.ids[in.ID]:
			p.Add(at+".ID", in.ID, "is the ID of an earlier instance too")
		}
		if in.ID != "" {
			a.ids[in.ID] = true
		}
		switch {
		case len(req.AZs) == 0 && in.AZ != "":
			p.Add(at+".AZ", in.AZ, "the instance group has no azs")
		case len(req.AZs) > 0 && in.AZ == "" && !derives:
			p.Add(at+".AZ", "", "is required: the instance group is in azs %s", strings.Join(req.AZs, ", "))
		case in.AZ != "" && !slices.Contains(req.AZs, in.AZ):
			p.Add(at+".AZ", in.AZ, "is not one of the instance group's azs")
		}
	}
}

// pool is a subnet as the director allocates from it.
type pool struct {
	subnet     *Subnet
	rng        span       // a manual subnet's range; zero on a vip subnet
	restricted []span     // first and last address, gateway, reserved
	static     []span     // in the order listed
	blocked    []span     // what may not be given out, sorted
	next       netip.Addr // where the search for a free address resumes
	given      uint64     // addresses take gave out
	full       bool
}

// newPool reads a subnet of a valid cloud config.
func newPool(s *Subnet) *pool {
	p := &pool{subnet: s, static: spans(s.Static)}
	if r, err := parseRange(s.Range); err == nil {
		p.rng = prefixSpan(r)
		p.next = p.rng.Lo
		p.restricted = []span{{p.rng.Lo, p.rng.Lo}, {p.rng.Hi, p.rng.Hi}}
		if gw, err := parseAddr(s.Gateway); err == nil {
			p.restricted = append(p.restricted, span{gw, gw})
		}
		p.restricted = append(p.restricted, spans(s.Reserved)...)
	}
	return p
}

// serves reports whether an instance in az may have an address in the
// subnet. On a manual network every AZ a subnet names is served; a
// subnet without AZs serves the groups without AZs. A vip subnet
// without AZs serves every AZ.
func (p *pool) serves(az string, vip bool) bool {
	zones := p.subnet.Zones()
	if vip && len(zones) == 0 {
		return true
	}
	if az == "" {
		return len(zones) == 0
	}
	return slices.Contains(zones, az)
}

// inAny reports whether a span of spans holds ip.
func inAny(spans []span, ip netip.Addr) bool {
	return slices.ContainsFunc(spans, func(s span) bool { return s.contains(ip) })
}

// poolOf is the pool whose range holds ip, or nil.
func poolOf(pools []*pool, ip netip.Addr) *pool {
	for _, p := range pools {
		if p.rng.Lo.IsValid() && p.rng.contains(ip) {
			return p
		}
	}
	return nil
}

// manual gives out dynamic addresses on a manual network.
func (a *allocator) manual(pools []*pool) ([]Address, error) {
	out := make([]Address, len(a.req.Instances))
	used := map[netip.Addr]bool{}
	for i, inst := range a.req.Instances {
		ip := inst.IP.Unmap()
		if !ip.IsValid() || used[ip] {
			continue
		}
		p := poolOf(pools, ip)
		if p == nil || !p.serves(inst.AZ, false) || inAny(p.restricted, ip) || inAny(p.static, ip) {
			continue
		}
		if _, held := a.heldBy(ip); held {
			continue
		}
		used[ip] = true
		out[i] = Address{ID: inst.ID, AZ: inst.AZ, IP: ip, Subnet: p.subnet}
	}
	for _, p := range pools {
		p.blocked = append(append([]span{}, p.restricted...), p.static...)
		for ip := range a.req.Taken {
			if _, held := a.heldBy(ip); held && p.rng.contains(ip) {
				p.blocked = append(p.blocked, span{ip.Unmap(), ip.Unmap()})
			}
		}
		for ip := range used {
			if p.rng.contains(ip) {
				p.blocked = append(p.blocked, span{ip, ip})
			}
		}
		sortSpans(p.blocked)
	}
	for i, inst := range a.req.Instances {
		if out[i].IP.IsValid() {
			continue
		}
		var searched []*pool
		for _, p := range pools {
			if !p.serves(inst.AZ, false) {
				continue
			}
			searched = append(searched, p)
			if ip, ok := p.take(); ok {
				out[i] = Address{ID: inst.ID, AZ: inst.AZ, IP: ip, Subnet: p.subnet}
				break
			}
		}
		if !out[i].IP.IsValid() {
			return nil, a.exhausted(inst, searched)
		}
	}
	return out, nil
}

// take gives out the pool's lowest free address.
func (p *pool) take() (netip.Addr, bool) {
	if p.full {
		return netip.Addr{}, false
	}
	ip, ok := firstFree(p.rng, p.next, p.blocked)
	if !ok {
		p.full = true
		return netip.Addr{}, false
	}
	// Everything below ip is blocked or given out: the next search
	// starts after it. (ip is not the range's last address, which is
	// blocked, so it has a next.)
	p.next = ip.Next()
	p.given++
	return ip, true
}

func (a *allocator) exhausted(inst Instance, searched []*pool) error {
	e := &ExhaustedError{Network: a.net.Name, AZ: inst.AZ, Instance: inst.ID}
	for _, p := range searched {
		if !p.rng.Lo.IsValid() { // a vip subnet
			e.Subnets = append(e.Subnets, fmt.Sprintf("every static address of its subnet (%s) is taken", strings.Join(p.subnet.Static, ", ")))
			continue
		}
		var reserved, static, taken uint64
		for _, s := range merge(p.restricted) {
			reserved = yamltree.AddSat(reserved, s.size())
		}
		for _, s := range merge(p.static) {
			static = yamltree.AddSat(static, s.size())
		}
		for _, s := range merge(p.blocked) {
			taken = yamltree.AddSat(taken, s.size())
		}
		taken -= min(taken, yamltree.AddSat(reserved, static))
		taken = yamltree.AddSat(taken, p.given)
		e.Subnets = append(e.Subnets, fmt.Sprintf("subnet %s is full (%s addresses: %s never assigned, %s static, %s taken)",
			p.subnet.Range, count(p.rng.size()), count(reserved), count(static), count(taken)))
	}
	if len(searched) == 0 {
		e.Subnets = []string{"it has no subnet in this AZ"}
	}
	return e
}

// merge merges overlapping spans, so that their sizes add up.
func merge(s []span) []span {
	s = slices.Clone(s)
	sortSpans(s)
	var out []span
	for _, x := range s {
		if n := len(out); n > 0 && out[n-1].family() == x.family() && !out[n-1].Hi.Less(x.Lo) {
			if out[n-1].Hi.Less(x.Hi) {
				out[n-1].Hi = x.Hi
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

func count(n uint64) string {
	if n == math.MaxUint64 {
		return "2^64 or more"
	}
	return strconv.FormatUint(n, 10)
}

// staticIPs expands the request's StaticIPs into one address per
// instance, in the order listed.
func (a *allocator) staticIPs() ([]netip.Addr, []int) {
	var total uint64
	var ss []span
	var entries []int
	for i, e := range a.req.StaticIPs {
		s, err := parseSpan(e)
		if err != nil {
			a.problems.Add("StaticIPs["+strconv.Itoa(i)+"]", e, "%v", err)
			continue
		}
		ss, entries = append(ss, s), append(entries, i)
		total = yamltree.AddSat(total, s.size())
	}
	if len(ss) < len(a.req.StaticIPs) {
		return nil, nil
	}
	if total != uint64(len(a.req.Instances)) {
		a.problems.Add("StaticIPs", "", "name %s addresses for %d instances: BOSH needs exactly one static IP per instance",
			count(total), len(a.req.Instances))
		return nil, nil
	}
	var ips []netip.Addr
	var from []int // the entry of each address
	seen := map[netip.Addr]bool{}
	for k, s := range ss {
		for ip := s.Lo; ip.IsValid() && !s.Hi.Less(ip); ip = ip.Next() {
			if seen[ip] {
				a.problems.Add("StaticIPs["+strconv.Itoa(entries[k])+"]", a.req.StaticIPs[entries[k]],
					"names %s, which an earlier entry names too", ip)
				return nil, nil
			}
			seen[ip] = true
			ips, from = append(ips, ip), append(from, entries[k])
		}
	}
	return ips, from
}

// static hands out the group's static IPs: on a manual network, from
// the pools' static lists; on a vip network without subnets (pools nil),
// any address.
func (a *allocator) static(pools []*pool) ([]Address, error) {
	req := a.req
	if len(req.StaticIPs) == 0 {
		a.problems.Add("StaticIPs", "", "are required: vip network %s has no subnets to take addresses from", a.net.Name)
		return nil, a.problems
	}
	ips, from := a.staticIPs()
	owner := make([]*pool, len(ips))
	for k, ip := range ips {
		at, entry := "StaticIPs["+strconv.Itoa(from[k])+"]", req.StaticIPs[from[k]]
		if pools != nil {
			p := poolOf(pools, ip)
			switch {
			case p == nil:
				a.problems.Add(at, entry, "%s is in no subnet of network %s", ip, a.net.Name)
				continue
			case !inAny(p.static, ip):
				a.problems.Add(at, entry, "%s is not in the static list of its subnet (%s): a static IP must be listed there", ip, p.subnet.Range)
				continue
			case len(req.AZs) > 0 && !slices.ContainsFunc(req.AZs, func(z string) bool { return p.serves(z, false) }):
				a.problems.Add(at, entry, "%s is in a subnet of az %s, not of the instance group's azs", ip, strings.Join(p.subnet.Zones(), ", "))
				continue
			}
			owner[k] = p
		}
		if h, held := a.heldBy(ip); held {
			a.problems.Add(at, entry, "%s is taken by %s", ip, h)
		}
	}
	if err := a.problems.Err(); err != nil {
		return nil, err
	}
	// count is how many of the group's instances each AZ has so far.
	count := map[string]int{}
	// fits reports whether the k-th address may go to an instance in az,
	// and the AZ the instance then has: one without an AZ takes its
	// address's subnet's, and of a subnet of several of the group's AZs
	// the one with the fewest instances yet (the first listed on a tie),
	// so that a group's static IPs in one subnet spread its instances
	// over its AZs as BOSH balances them.
	fits := func(k int, az string) (string, bool) {
		switch {
		case owner[k] == nil || owner[k].serves(az, false):
			return az, true
		case az != "":
			return "", false
		}
		best := ""
		for _, z := range req.AZs {
			if owner[k].serves(z, false) && (best == "" || count[z] < count[best]) {
				best = z
			}
		}
		return best, best != ""
	}
	out := make([]Address, len(req.Instances))
	left := make([]bool, len(ips))
	for k := range left {
		left[k] = true
	}
	give := func(i, k int, az string) {
		left[k] = false
		count[az]++
		out[i] = Address{ID: req.Instances[i].ID, AZ: az, IP: ips[k], Static: true}
		if owner[k] != nil {
			out[i].Subnet = owner[k].subnet
		}
	}
	at := make(map[netip.Addr]int, len(ips))
	for k, ip := range ips {
		at[ip] = k
	}
	for i, inst := range req.Instances { // instances keep their addresses
		if k, ok := at[inst.IP.Unmap()]; ok && left[k] {
			if az, ok := fits(k, inst.AZ); ok {
				give(i, k, az)
			}
		}
	}
	// Then the instances placed in an AZ take the first address left of
	// that AZ, before those that take any AZ.
	for _, placed := range []bool{true, false} {
		for i, inst := range req.Instances {
			if out[i].IP.IsValid() || (inst.AZ != "") != placed {
				continue
			}
			for k := range ips {
				if az, ok := fits(k, inst.AZ); ok && left[k] {
					give(i, k, az)
					break
				}
			}
			if !out[i].IP.IsValid() {
				a.problems.Add("Instances["+strconv.Itoa(i)+"].AZ", inst.AZ,
					"no static IP is left in this AZ: the group's static_ips are one per instance, each in the subnet of its instance's AZ")
				return nil, a.problems
			}
		}
	}
	return out, nil
}

// vip gives out addresses from a vip network's subnets' static lists.
func (a *allocator) vip() ([]Address, error) {
	if len(a.req.StaticIPs) > 0 {
		a.problems.Add("StaticIPs", "", "vip network %s gives out the static addresses of its subnets: leave static_ips out", a.net.Name)
		return nil, a.problems
	}
	pools := make([]*pool, len(a.net.Subnets))
	for i := range a.net.Subnets {
		pools[i] = newPool(&a.net.Subnets[i])
	}
	out := make([]Address, len(a.req.Instances))
	var blocked []span
	for ip := range a.req.Taken {
		if _, held := a.heldBy(ip); held {
			blocked = append(blocked, span{ip.Unmap(), ip.Unmap()})
		}
	}
	used := map[netip.Addr]bool{}
	for i, inst := range a.req.Instances {
		ip := inst.IP.Unmap()
		if !ip.IsValid() || used[ip] {
			continue
		}
		if _, held := a.heldBy(ip); held {
			continue
		}
		for _, p := range pools {
			if p.serves(inst.AZ, true) && inAny(p.static, ip) {
				used[ip] = true
				blocked = append(blocked, span{ip, ip})
				out[i] = Address{ID: inst.ID, AZ: inst.AZ, IP: ip, Subnet: p.subnet}
				break
			}
		}
	}
	sortSpans(blocked)
	for i, inst := range a.req.Instances {
		if out[i].IP.IsValid() {
			continue
		}
		var searched []*pool
		for _, p := range pools {
			if !p.serves(inst.AZ, true) {
				continue
			}
			searched = append(searched, p)
			for _, s := range p.static {
				if ip, ok := firstFree(s, s.Lo, blocked); ok {
					at, _ := slices.BinarySearchFunc(blocked, ip, func(b span, a netip.Addr) int { return b.Lo.Compare(a) })
					blocked = slices.Insert(blocked, at, span{ip, ip})
					out[i] = Address{ID: inst.ID, AZ: inst.AZ, IP: ip, Subnet: p.subnet}
					break
				}
			}
			if out[i].IP.IsValid() {
				break
			}
		}
		if !out[i].IP.IsValid() {
			return nil, a.exhausted(inst, searched)
		}
	}
	return out, nil
}

// dynamic gives each instance its AZ's subnet of a dynamic network.
func (a *allocator) dynamic() ([]Address, error) {
	if len(a.req.StaticIPs) > 0 {
		a.problems.Add("StaticIPs", "", "dynamic network %s takes no static_ips: the IaaS assigns the addresses", a.net.Name)
		return nil, a.problems
	}
	out := make([]Address, len(a.req.Instances))
	for i, inst := range a.req.Instances {
		out[i] = Address{ID: inst.ID, AZ: inst.AZ}
		for k := range a.net.Subnets {
			if s := &a.net.Subnets[k]; (&pool{subnet: s}).serves(inst.AZ, false) {
				out[i].Subnet = s
				break
			}
		}
	}
	return out, nil
}
