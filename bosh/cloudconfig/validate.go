package cloudconfig

import (
	"slices"
	"strconv"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// Validate checks a cloud config built or changed in Go by the rules
// Parse applies after reading:
//
//   - names are given and unique within azs, vm_types, vm_extensions,
//     disk_types and networks; disk sizes are positive;
//   - at least one network; a type of manual (the default), dynamic or
//     vip, and only the keys that type takes;
//   - a manual network has subnets; each has a range (a CIDR of two
//     addresses or more, without host bits), a gateway inside it that is
//     neither its first nor its last address, DNS servers that are
//     addresses, and reserved and static entries (addresses, "a - b"
//     ranges, CIDRs) inside the range; a static entry holds no reserved
//     address, nor the gateway, nor the first or last address; the
//     subnets of a network do not overlap;
//   - a subnet has az or azs, not both, naming AZs from azs; a network's
//     subnets all have AZs or none has;
//   - compilation is given, with at least one worker, a network from
//     networks on which its az (from azs) has a subnet, a vm_type from
//     vm_types or vm_resources (not both), cloud_properties only without
//     vm_type, vm_extensions from vm_extensions and only with vm_type.
//
// It returns every problem at once as a *kubefoundry.ValidationError;
// problems have no line.
func (c *CloudConfig) Validate() error {
	return yamltree.Finish(cloudObject, checkCloud(c, nil), nil, c.selectors())
}

// selectors names the named lists of a cloud config by index path.
func (c *CloudConfig) selectors() yamltree.Selectors {
	s := yamltree.Selectors{}
	s.Add("/azs", "name", len(c.AZs), func(i int) string { return c.AZs[i].Name })
	s.Add("/vm_types", "name", len(c.VMTypes), func(i int) string { return c.VMTypes[i].Name })
	s.Add("/vm_extensions", "name", len(c.VMExtensions), func(i int) string { return c.VMExtensions[i].Name })
	s.Add("/disk_types", "name", len(c.DiskTypes), func(i int) string { return c.DiskTypes[i].Name })
	s.Add("/networks", "name", len(c.Networks), func(i int) string { return c.Networks[i].Name })
	return s
}

// checkCloud applies the rules of Validate. unread, when not nil,
// reports the paths Parse could not read.
func checkCloud(c *CloudConfig, unread func(string) bool) []kubefoundry.FieldError {
	return checkCloudConfig(c, unread, false)
}

// checkCloudConfig applies the rules of Validate; a part (one named cloud
// config of several) need not have the compilation block.
func checkCloudConfig(c *CloudConfig, unread func(string) bool, part bool) []kubefoundry.FieldError {
	k := newChecker(unread)
	azs := map[string]bool{}
	for i, az := range c.AZs {
		at := yamltree.Index("/azs", i)
		k.Required(at+"/name", az.Name)
		k.Unique(azs, at+"/name", az.Name, "the AZ")
	}
	seen := map[string]bool{}
	for i, v := range c.VMTypes {
		at := yamltree.Index("/vm_types", i)
		k.Required(at+"/name", v.Name)
		k.Unique(seen, at+"/name", v.Name, "the VM type")
	}
	seen = map[string]bool{}
	for i, v := range c.VMExtensions {
		at := yamltree.Index("/vm_extensions", i)
		k.Required(at+"/name", v.Name)
		k.Unique(seen, at+"/name", v.Name, "the VM extension")
	}
	seen = map[string]bool{}
	for i, v := range c.DiskTypes {
		at := yamltree.Index("/disk_types", i)
		k.Required(at+"/name", v.Name)
		k.Unique(seen, at+"/name", v.Name, "the disk type")
		switch {
		case v.DiskSize == 0 && !k.Unread(at+"/disk_size"):
			k.Add(at+"/disk_size", "", "is required (the size in MB)")
		case v.DiskSize < 0:
			k.Add(at+"/disk_size", strconv.Itoa(v.DiskSize), "must be a positive number of MB")
		}
	}
	if len(c.Networks) == 0 && !part {
		k.Add("/networks", "", "at least one network is required")
	}
	if part {
		azs = nil // a part's subnets may name the AZs of another part
	}
	seen = map[string]bool{}
	for i := range c.Networks {
		at := yamltree.Index("/networks", i)
		k.Required(at+"/name", c.Networks[i].Name)
		k.Unique(seen, at+"/name", c.Networks[i].Name, "the network")
		k.network(at, &c.Networks[i], azs)
	}
	if c.Compilation == nil {
		if !part {
			k.Add("/compilation", "", "is required")
		}
	} else {
		k.compilation(c)
	}
	return k.Problems
}

// notOn reports a key the network's type does not take.
func (k *checker) notOn(at string, set bool, key, reason string) {
	if set {
		k.Add(at+"/"+key, "", "%s", reason)
	}
}

func (k *checker) network(at string, n *Network, azs map[string]bool) {
	defer k.subnetZones(at, n, azs)
	if k.Unread(at + "/type") {
		return // which keys belong depends on the type
	}
	switch n.Type {
	case "", Manual:
		k.notOn(at, len(n.DNS) > 0, "dns", "a manual network's dns goes on its subnets")
		k.notOn(at, n.CloudProperties != nil, "cloud_properties", "a manual network's cloud_properties go on its subnets")
		if len(n.Subnets) == 0 {
			k.Add(at+"/subnets", "", "a manual network needs at least one subnet")
		}
		var ranges []indexed
		for i := range n.Subnets {
			if r := k.manualSubnet(yamltree.Index(at+"/subnets", i), &n.Subnets[i]); r.Lo.IsValid() {
				ranges = append(ranges, indexed{r, i})
			}
		}
		for _, o := range overlapping(ranges) {
			k.Add(yamltree.Index(at+"/subnets", o[0])+"/range", n.Subnets[o[0]].Range, "overlaps subnet %d (%s) of this network", o[1], n.Subnets[o[1]].Range)
		}
	case Dynamic:
		if len(n.Subnets) > 0 {
			k.notOn(at, len(n.DNS) > 0, "dns", "with subnets, a dynamic network's dns goes on its subnets")
			k.notOn(at, n.CloudProperties != nil, "cloud_properties", "with subnets, a dynamic network's cloud_properties go on its subnets")
		}
		k.addresses(at+"/dns", n.DNS)
		for i := range n.Subnets {
			sat, s := yamltree.Index(at+"/subnets", i), &n.Subnets[i]
			for _, key := range []struct {
				name string
				set  bool
			}{{"range", s.Range != ""}, {"gateway", s.Gateway != ""}, {"reserved", len(s.Reserved) > 0}, {"static", len(s.Static) > 0}} {
				k.notOn(sat, key.set, key.name, "a dynamic network's subnets have no "+key.name+": the IaaS assigns the addresses")
			}
			k.addresses(sat+"/dns", s.DNS)
		}
	case VIP:
		k.notOn(at, len(n.DNS) > 0, "dns", "a vip network has no dns")
		for i := range n.Subnets {
			sat, s := yamltree.Index(at+"/subnets", i), &n.Subnets[i]
			for _, key := range []struct {
				name string
				set  bool
			}{{"range", s.Range != ""}, {"gateway", s.Gateway != ""}, {"dns", len(s.DNS) > 0}, {"reserved", len(s.Reserved) > 0}} {
				k.notOn(sat, key.set, key.name, "a vip network's subnets have no "+key.name+": only static addresses")
			}
			for j, e := range s.Static {
				if _, err := parseSpan(e); err != nil {
					k.Add(yamltree.Index(sat+"/static", j), e, "%v", err)
				}
			}
		}
	default:
		k.Add(at+"/type", string(n.Type), "must be manual, dynamic or vip")
	}
}

// addresses checks a list of single addresses (dns).
func (k *checker) addresses(at string, list []string) {
	for i, a := range list {
		if _, err := parseAddr(a); err != nil {
			k.Add(yamltree.Index(at, i), a, "%v", err)
		}
	}
}

// manualSubnet checks a manual network's subnet and returns its range,
// zero when it has none.
func (k *checker) manualSubnet(at string, s *Subnet) span {
	k.addresses(at+"/dns", s.DNS)
	if s.Range == "" {
		if !k.Unread(at + "/range") {
			k.Add(at+"/range", "", "is required (a CIDR)")
		}
		if s.Gateway == "" && !k.Unread(at+"/gateway") {
			k.Add(at+"/gateway", "", "is required")
		}
		return span{}
	}
	p, err := parseRange(s.Range)
	if err != nil {
		k.Add(at+"/range", s.Range, "%v", err)
		return span{}
	}
	rng := prefixSpan(p)
	// What the director never assigns: the range's first and last
	// addresses, the gateway, the reserved entries.
	restricted := []indexed{{span{rng.Lo, rng.Lo}, 0}, {span{rng.Hi, rng.Hi}, 1}}
	names := []string{"the network's first address " + rng.Lo.String(), "the network's last address " + rng.Hi.String()}
	switch gw, err := parseAddr(s.Gateway); {
	case s.Gateway == "":
		if !k.Unread(at + "/gateway") {
			k.Add(at+"/gateway", "", "is required")
		}
	case err != nil:
		k.Add(at+"/gateway", s.Gateway, "%v", err)
	case !rng.contains(gw):
		k.Add(at+"/gateway", s.Gateway, "is not inside the range %s", s.Range)
	case gw == rng.Lo:
		k.Add(at+"/gateway", s.Gateway, "is the range's network address")
	case gw == rng.Hi:
		k.Add(at+"/gateway", s.Gateway, "is the range's last (broadcast) address")
	default:
		restricted = append(restricted, indexed{span{gw, gw}, len(names)})
		names = append(names, "the gateway")
	}
	for i, e := range s.Reserved {
		r, err := parseSpan(e)
		switch {
		case err != nil:
			k.Add(yamltree.Index(at+"/reserved", i), e, "%v", err)
		case !r.within(rng):
			k.Add(yamltree.Index(at+"/reserved", i), e, "is not inside the range %s", s.Range)
		default:
			restricted = append(restricted, indexed{r, len(names)})
			names = append(names, "reserved "+e)
		}
	}
	never := newSpanIndex(restricted)
	for i, e := range s.Static {
		r, err := parseSpan(e)
		switch {
		case err != nil:
			k.Add(yamltree.Index(at+"/static", i), e, "%v", err)
			continue
		case !r.within(rng):
			k.Add(yamltree.Index(at+"/static", i), e, "is not inside the range %s", s.Range)
			continue
		}
		if j, ok := never.overlap(r); ok {
			k.Add(yamltree.Index(at+"/static", i), e, "holds %s, which BOSH never assigns", names[j])
		}
	}
	return rng
}

// subnetZones checks the az and azs of a network's subnets.
func (k *checker) subnetZones(at string, n *Network, azs map[string]bool) {
	first := -1 // the first subnet with AZs
	for i := range n.Subnets {
		sat, s := yamltree.Index(at+"/subnets", i), &n.Subnets[i]
		switch {
		case s.AZ != "" && s.AZs != nil:
			k.Add(sat+"/azs", "", "az and azs are both set: choose one")
		case s.AZs != nil && len(s.AZs) == 0:
			k.Add(sat+"/azs", "", "names no AZ: name one, or leave azs out")
		}
		if s.AZ != "" && azs != nil && !azs[s.AZ] {
			k.Add(sat+"/az", s.AZ, "is not an AZ in azs")
		}
		for j, z := range s.AZs {
			if z != "" && azs != nil && !azs[z] {
				k.Add(yamltree.Index(sat+"/azs", j), z, "is not an AZ in azs")
			}
		}
		if first < 0 && len(s.Zones()) > 0 {
			first = i
		}
	}
	if first < 0 {
		return
	}
	for i := range n.Subnets {
		sat := yamltree.Index(at+"/subnets", i)
		if s := &n.Subnets[i]; s.AZ == "" && s.AZs == nil && !k.Unread(sat+"/az") && !k.Unread(sat+"/azs") && !k.Unread(sat) {
			k.Add(sat, "", "has no az while subnet %d has: a network's subnets all have AZs or none has", first)
		}
	}
}

func (k *checker) compilation(c *CloudConfig) {
	const at = "/compilation"
	cp := c.Compilation
	switch {
	case cp.Workers == 0 && !k.Unread(at+"/workers"):
		k.Add(at+"/workers", "", "is required (at least 1)")
	case cp.Workers < 0:
		k.Add(at+"/workers", strconv.Itoa(cp.Workers), "must be at least 1")
	}
	if cp.AZ != "" && c.AZ(cp.AZ) == nil {
		k.Add(at+"/az", cp.AZ, "is not an AZ in azs")
	}
	switch n := c.Network(cp.Network); {
	case cp.Network == "":
		k.Add(at+"/network", "", "is required")
	case n == nil:
		k.Add(at+"/network", cp.Network, "is not a network in networks")
	case n.Type == VIP:
		k.Add(at+"/network", cp.Network, "is a vip network: compilation VMs need a manual or dynamic one")
	case !serves(n, cp.AZ):
		zones := zonesOf(n)
		if cp.AZ == "" {
			k.Add(at+"/az", "", "is required: network %s has its subnets in azs %s", n.Name, strings.Join(zones, ", "))
		} else if c.AZ(cp.AZ) != nil {
			if len(zones) == 0 {
				k.Add(at+"/az", cp.AZ, "network %s has no subnet with azs: leave az out, or give its subnets azs", n.Name)
			} else {
				k.Add(at+"/az", cp.AZ, "network %s has no subnet in this AZ", n.Name)
			}
		}
	}
	switch {
	case cp.VMType != "" && cp.VMResources != nil:
		k.Add(at+"/vm_resources", "", "vm_type and vm_resources are both set: choose one")
	case cp.VMType != "" && c.VMType(cp.VMType) == nil:
		k.Add(at+"/vm_type", cp.VMType, "is not a VM type in vm_types")
	case cp.VMType != "" && cp.CloudProperties != nil:
		k.Add(at+"/cloud_properties", "", "with a vm_type, the VM's cloud_properties come from the VM type")
	}
	if r := cp.VMResources; r != nil {
		for _, v := range []struct {
			key string
			n   int
		}{{"cpu", r.CPU}, {"ram", r.RAM}, {"ephemeral_disk_size", r.EphemeralDiskSize}} {
			switch {
			case v.n == 0 && !k.Unread(at+"/vm_resources/"+v.key):
				k.Add(at+"/vm_resources/"+v.key, "", "is required (a positive integer)")
			case v.n < 0:
				k.Add(at+"/vm_resources/"+v.key, strconv.Itoa(v.n), "must be a positive integer")
			}
		}
	}
	exts := map[string]bool{}
	for _, v := range c.VMExtensions {
		exts[v.Name] = true
	}
	for i, e := range cp.VMExtensions {
		switch {
		case !exts[e]:
			k.Add(yamltree.Index(at+"/vm_extensions", i), e, "is not a VM extension in vm_extensions")
		case cp.VMType == "":
			k.Add(yamltree.Index(at+"/vm_extensions", i), e, "VM extensions need a vm_type")
		}
	}
}

// zonesOf lists the AZs a network's subnets name, each once, in order.
func zonesOf(n *Network) []string {
	var out []string
	seen := map[string]bool{}
	for i := range n.Subnets {
		for _, z := range n.Subnets[i].Zones() {
			if !seen[z] {
				seen[z] = true
				out = append(out, z)
			}
		}
	}
	return out
}

// serves reports whether an instance in az can be on network n, as the
// director decides it: a vip network serves every AZ; otherwise "" (no
// AZ) is served when no subnet has AZs, and an AZ when a subnet has it.
func serves(n *Network, az string) bool {
	if n.Type == VIP {
		return true
	}
	zones := zonesOf(n)
	if az == "" {
		return len(zones) == 0
	}
	return slices.Contains(zones, az)
}
