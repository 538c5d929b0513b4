package manifest

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// Validate checks a manifest built or changed in Go by the rules Parse
// applies after reading: required fields, duplicate names (instance
// groups, jobs of a group, releases, stemcell aliases, variables),
// references (a job's release, a group's stemcell alias, a migrated_from
// AZ), instances >= 0, exactly one static IP per instance on a network
// that lists them, default networks, vm_type xor vm_resources, at most
// one of persistent_disk / persistent_disk_type / persistent_disks, the
// update block, lifecycles and variable types. It returns every problem
// at once as a *kubefoundry.ValidationError; problems have no line.
func (m *Manifest) Validate() error {
	return finish(m, check(m, nil), nil)
}

// finish turns problems with index paths into the error Parse and
// Validate return: name= selectors in paths, lines, in document order.
func finish(m *Manifest, probs []kubefoundry.FieldError, lines map[string]int) error {
	if len(probs) == 0 {
		return nil
	}
	sel := selectors(m)
	for i := range probs {
		p := &probs[i]
		if p.Line == 0 && lines != nil {
			p.Line = yamltree.LineOf(lines, p.Field)
		}
		p.Field = pretty(p.Field, sel)
		if p.Field == "" {
			p.Field = "/"
		}
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	return &kubefoundry.ValidationError{Object: object, Problems: probs}
}

// selector names the elements of one list of named things.
type selector struct {
	key   string         // name, alias
	names []string       // by index
	first map[string]int // name -> index of its first element
}

// selectors lists the named lists of m by their index path.
func selectors(m *Manifest) map[string]selector {
	sel := map[string]selector{}
	add := func(path, key string, n int, name func(int) string) {
		s := selector{key: key, names: make([]string, n), first: map[string]int{}}
		for i := range n {
			s.names[i] = name(i)
			if _, ok := s.first[s.names[i]]; !ok {
				s.first[s.names[i]] = i
			}
		}
		sel[path] = s
	}
	jobs := func(path string, js []Job) {
		add(path, "name", len(js), func(i int) string { return js[i].Name })
		for i, j := range js {
			add(yamltree.Index(path, i)+"/custom_provider_definitions", "name", len(j.CustomProviderDefinitions),
				func(k int) string { return j.CustomProviderDefinitions[k].Name })
		}
	}
	rule := func(path string, r *PlacementRule) {
		if r != nil {
			add(path+"/jobs", "name", len(r.Jobs), func(i int) string { return r.Jobs[i].Name })
		}
	}
	add("/releases", "name", len(m.Releases), func(i int) string { return m.Releases[i].Name })
	add("/stemcells", "alias", len(m.Stemcells), func(i int) string { return m.Stemcells[i].Alias })
	add("/instance_groups", "name", len(m.InstanceGroups), func(i int) string { return m.InstanceGroups[i].Name })
	for i, g := range m.InstanceGroups {
		at := yamltree.Index("/instance_groups", i)
		jobs(at+"/jobs", g.Jobs)
		add(at+"/networks", "name", len(g.Networks), func(k int) string { return g.Networks[k].Name })
		add(at+"/persistent_disks", "name", len(g.PersistentDisks), func(k int) string { return g.PersistentDisks[k].Name })
		add(at+"/migrated_from", "name", len(g.MigratedFrom), func(k int) string { return g.MigratedFrom[k].Name })
	}
	add("/addons", "name", len(m.Addons), func(i int) string { return m.Addons[i].Name })
	for i, a := range m.Addons {
		at := yamltree.Index("/addons", i)
		jobs(at+"/jobs", a.Jobs)
		rule(at+"/include", a.Include)
		rule(at+"/exclude", a.Exclude)
	}
	add("/variables", "name", len(m.Variables), func(i int) string { return m.Variables[i].Name })
	return sel
}

// pretty rewrites the indexes of named elements in an index path as
// key=value selectors, as ops-files write them: /instance_groups/1/jobs/0
// becomes /instance_groups/name=worker/jobs/name=kubelet. An element keeps
// its index when it has no name or an earlier element has the same one.
func pretty(path string, sel map[string]selector) string {
	if path == "" {
		return ""
	}
	tokens := strings.Split(path[1:], "/")
	var b strings.Builder
	raw := ""
	for _, t := range tokens {
		out := t
		if s, ok := sel[raw]; ok {
			if i, err := strconv.Atoi(t); err == nil && i >= 0 && i < len(s.names) {
				if name := s.names[i]; strings.TrimSpace(name) != "" && s.first[name] == i {
					out = s.key + "=" + strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
				}
			}
		}
		raw += "/" + t
		b.WriteString("/" + out)
	}
	return b.String()
}

// checker collects the problems of a manifest, with index paths.
type checker struct {
	releases, stemcells map[string]bool // names in the manifest
	probs               []kubefoundry.FieldError
	// unread reports a path whose value could not be read (Parse), so
	// that rules depending on it are not applied to its zero value.
	unread func(path string) bool
}

func (c *checker) add(path, value, format string, args ...any) {
	c.probs = append(c.probs, kubefoundry.FieldError{Field: path, Value: value, Reason: fmt.Sprintf(format, args...)})
}

func (c *checker) required(path, value string) {
	if strings.TrimSpace(value) == "" {
		c.add(path, "", "is required")
	}
}

// unique reports a name already used at an earlier index of the list.
func (c *checker) unique(seen map[string]bool, path, name, what string) {
	if name == "" {
		return
	}
	if seen[name] {
		c.add(path, name, "%s is defined more than once", what)
		return
	}
	seen[name] = true
}

// check applies the rules of Validate. unread, when not nil, reports the
// paths Parse could not read.
func check(m *Manifest, unread func(string) bool) []kubefoundry.FieldError {
	if unread == nil {
		unread = func(string) bool { return false }
	}
	c := &checker{unread: unread, releases: map[string]bool{}, stemcells: map[string]bool{}}
	for _, r := range m.Releases {
		c.releases[r.Name] = true
	}
	for _, s := range m.Stemcells {
		c.stemcells[s.Alias] = true
	}
	c.required("/name", m.Name)
	if len(m.Releases) == 0 {
		c.add("/releases", "", "at least one release is required")
	}
	seen := map[string]bool{}
	for i, r := range m.Releases {
		at := yamltree.Index("/releases", i)
		c.required(at+"/name", r.Name)
		c.unique(seen, at+"/name", r.Name, "the release")
		c.required(at+"/version", r.Version)
		if r.Stemcell != nil {
			c.required(at+"/stemcell/os", r.Stemcell.OS)
			c.required(at+"/stemcell/version", r.Stemcell.Version)
		}
		for k, s := range r.ExportedFrom {
			c.required(yamltree.Index(at+"/exported_from", k)+"/os", s.OS)
			c.required(yamltree.Index(at+"/exported_from", k)+"/version", s.Version)
		}
	}
	if len(m.Stemcells) == 0 {
		c.add("/stemcells", "", "at least one stemcell is required")
	}
	seen = map[string]bool{}
	for i, s := range m.Stemcells {
		at := yamltree.Index("/stemcells", i)
		c.required(at+"/alias", s.Alias)
		c.unique(seen, at+"/alias", s.Alias, "the stemcell alias")
		c.required(at+"/version", s.Version)
		switch {
		case s.OS != "" && s.Name != "":
			c.add(at+"/name", s.Name, "os and name are both set: choose one (os matches the stemcell on any IaaS)")
		case s.OS == "" && s.Name == "":
			c.add(at+"/os", "", "is required (or name, the stemcell's full name)")
		}
	}
	if m.Update == nil {
		c.add("/update", "", "is required")
	} else {
		c.update("/update", m.Update, true)
	}
	if len(m.InstanceGroups) == 0 {
		c.add("/instance_groups", "", "at least one instance group is required")
	}
	seen = map[string]bool{}
	for i := range m.InstanceGroups {
		at := yamltree.Index("/instance_groups", i)
		c.unique(seen, at+"/name", m.InstanceGroups[i].Name, "the instance group")
		c.instanceGroup(at, &m.InstanceGroups[i])
	}
	for i := range m.Addons {
		c.addon(yamltree.Index("/addons", i), &m.Addons[i])
	}
	seen = map[string]bool{}
	for i, v := range m.Variables {
		at := yamltree.Index("/variables", i)
		c.required(at+"/name", v.Name)
		c.unique(seen, at+"/name", v.Name, "the variable")
		switch v.Type {
		case "":
			c.add(at+"/type", "", "is required (password, certificate, ssh, rsa or user)")
		case VariablePassword, VariableCertificate, VariableSSH, VariableRSA, VariableUser:
		default:
			c.add(at+"/type", string(v.Type), "must be password, certificate, ssh, rsa or user")
		}
	}
	return c.probs
}

func (c *checker) update(path string, u *Update, top bool) {
	if top {
		if u.Canaries.IsZero() {
			c.add(path+"/canaries", "", "is required")
		}
		if u.MaxInFlight.IsZero() {
			c.add(path+"/max_in_flight", "", "is required")
		}
		if u.CanaryWatchTime.IsZero() {
			c.add(path+"/canary_watch_time", "", "is required")
		}
		if u.UpdateWatchTime.IsZero() {
			c.add(path+"/update_watch_time", "", "is required")
		}
	}
	if u.Canaries.n < 0 {
		c.add(path+"/canaries", u.Canaries.String(), "must not be negative")
	}
	if u.MaxInFlight.n < 0 {
		c.add(path+"/max_in_flight", u.MaxInFlight.String(), "must not be negative")
	}
	for _, w := range []struct {
		key string
		t   WatchTime
	}{{"canary_watch_time", u.CanaryWatchTime}, {"update_watch_time", u.UpdateWatchTime}} {
		if w.t.min > w.t.max {
			c.add(path+"/"+w.key, w.t.String(), "the minimum is greater than the maximum")
		}
	}
	switch u.VMStrategy {
	case "", VMStrategyDeleteCreate, VMStrategyCreateSwapDelete:
	default:
		c.add(path+"/vm_strategy", string(u.VMStrategy), "must be delete-create or create-swap-delete")
	}
	switch u.InitialDeployAZUpdateStrategy {
	case "", "serial", "parallel":
	default:
		c.add(path+"/initial_deploy_az_update_strategy", u.InitialDeployAZUpdateStrategy, "must be serial or parallel")
	}
}

func (c *checker) lifecycle(path string, l Lifecycle) {
	switch l {
	case "", LifecycleService, LifecycleErrand:
	default:
		c.add(path, string(l), "must be service or errand")
	}
}

func (c *checker) instanceGroup(at string, g *InstanceGroup) {
	c.required(at+"/name", g.Name)
	c.lifecycle(at+"/lifecycle", g.Lifecycle)
	if g.Instances < 0 {
		c.add(at+"/instances", strconv.Itoa(g.Instances), "must not be negative")
	}
	seen := map[string]bool{}
	for k := range g.Jobs {
		jat := yamltree.Index(at+"/jobs", k)
		c.unique(seen, jat+"/name", g.Jobs[k].Name, "the job on this instance group")
		c.job(jat, &g.Jobs[k])
	}
	switch {
	case g.VMType == "" && g.VMResources == nil:
		c.add(at+"/vm_type", "", "is required (or vm_resources)")
	case g.VMType != "" && g.VMResources != nil:
		c.add(at+"/vm_resources", "", "vm_type and vm_resources are both set: choose one")
	case g.VMResources != nil:
		r := g.VMResources
		for _, v := range []struct {
			key string
			n   int
		}{{"cpu", r.CPU}, {"ram", r.RAM}, {"ephemeral_disk_size", r.EphemeralDiskSize}} {
			switch {
			case v.n == 0:
				c.add(at+"/vm_resources/"+v.key, "", "is required (a positive integer)")
			case v.n < 0:
				c.add(at+"/vm_resources/"+v.key, strconv.Itoa(v.n), "must be a positive integer")
			}
		}
	}
	if g.Stemcell == "" {
		c.add(at+"/stemcell", "", "is required (an alias from stemcells)")
	} else if !c.stemcells[g.Stemcell] {
		c.add(at+"/stemcell", g.Stemcell, "is not an alias in stemcells")
	}
	disks := 0
	for _, set := range []bool{g.PersistentDisk != nil, g.PersistentDiskType != "", len(g.PersistentDisks) > 0} {
		if set {
			disks++
		}
	}
	if disks > 1 {
		c.add(at+"/persistent_disk_type", g.PersistentDiskType,
			"persistent_disk, persistent_disk_type and persistent_disks: choose one")
	}
	if g.PersistentDisk != nil && *g.PersistentDisk < 0 {
		c.add(at+"/persistent_disk", strconv.Itoa(*g.PersistentDisk), "must not be negative")
	}
	seen = map[string]bool{}
	for k, pd := range g.PersistentDisks {
		pat := yamltree.Index(at+"/persistent_disks", k)
		c.required(pat+"/name", pd.Name)
		c.unique(seen, pat+"/name", pd.Name, "the persistent disk")
		c.required(pat+"/type", pd.Type)
	}
	c.networks(at, g)
	if g.Update != nil {
		c.update(at+"/update", g.Update, false)
	}
	azs := map[string]bool{}
	for _, az := range g.AZs {
		azs[az] = true
	}
	for k, mf := range g.MigratedFrom {
		mat := yamltree.Index(at+"/migrated_from", k)
		c.required(mat+"/name", mf.Name)
		if mf.AZ != "" && !azs[mf.AZ] {
			c.add(mat+"/az", mf.AZ, "is not one of the instance group's azs")
		}
	}
}

func (c *checker) job(at string, j *Job) {
	c.required(at+"/name", j.Name)
	if j.Release == "" {
		c.add(at+"/release", "", "is required")
	} else if !c.releases[j.Release] {
		c.add(at+"/release", j.Release, "is not a release in releases")
	}
	seen := map[string]bool{}
	for k, p := range j.CustomProviderDefinitions {
		pat := yamltree.Index(at+"/custom_provider_definitions", k)
		c.required(pat+"/name", p.Name)
		c.unique(seen, pat+"/name", p.Name, "the custom provider")
		c.required(pat+"/type", p.Type)
	}
}

// validDefaults are what a network may be the default for; dns and
// gateway need a default when a group has several networks.
var validDefaults = []string{"addressable", "dns", "gateway"}

func (c *checker) networks(at string, g *InstanceGroup) {
	if len(g.Networks) == 0 {
		c.add(at+"/networks", "", "at least one network is required")
		return
	}
	defaults := map[string][]string{}
	for k, n := range g.Networks {
		nat := yamltree.Index(at+"/networks", k)
		c.required(nat+"/name", n.Name)
		for d, v := range n.Default {
			if !slices.Contains(validDefaults, v) {
				c.add(yamltree.Index(nat+"/default", d), v, "must be dns, gateway or addressable")
				continue
			}
			defaults[v] = append(defaults[v], n.Name)
		}
		if n.StaticIPs != nil && !c.unread(at+"/instances") {
			c.staticIPs(nat, n.StaticIPs, g.Instances)
		}
	}
	for _, v := range validDefaults {
		if len(defaults[v]) > 1 {
			c.add(at+"/networks", "", "%s has more than one default network: %s", v, strings.Join(defaults[v], ", "))
		}
	}
	if len(g.Networks) > 1 {
		var missing []string
		for _, v := range []string{"dns", "gateway"} {
			if len(defaults[v]) == 0 {
				missing = append(missing, v)
			}
		}
		if len(missing) > 0 {
			c.add(at+"/networks", "", "with more than one network, one must be the default for %s", strings.Join(missing, " and "))
		}
	}
}

// ipRange is an inclusive range of addresses of one family.
type ipRange struct {
	lo, hi netip.Addr
	entry  int
}

// staticIPs checks a network's static_ips: each entry an address, a range
// "a - b" or a CIDR, no address twice, and as many addresses as
// instances (BOSH gives each instance one, and refuses spares).
func (c *checker) staticIPs(nat string, entries []string, instances int) {
	at := nat + "/static_ips"
	var ranges []ipRange
	var total uint64
	ok := true
	for k, e := range entries {
		r, err := parseIPRange(e)
		if err != nil {
			c.add(yamltree.Index(at, k), e, "%v", err)
			ok = false
			continue
		}
		r.entry = k
		ranges = append(ranges, r)
		total = addSat(total, r.size())
	}
	// In address order, an entry that starts before the furthest end so
	// far overlaps an earlier one; the later of the two in the list is
	// reported, once.
	sort.SliceStable(ranges, func(i, j int) bool { return ranges[i].lo.Less(ranges[j].lo) })
	reported := map[int]bool{}
	for i := 1; i < len(ranges); i++ {
		far, cur := ranges[i-1], ranges[i]
		if far.lo.Is4() == cur.lo.Is4() && !far.hi.Less(cur.lo) {
			if e := max(far.entry, cur.entry); !reported[e] {
				reported[e] = true
				c.add(yamltree.Index(at, e), entries[e], "names an address that another entry names too")
			}
			ok = false
		}
		if far.lo.Is4() == cur.lo.Is4() && cur.hi.Less(far.hi) {
			ranges[i] = far // carry the furthest end forward
		}
	}
	if ok && instances >= 0 && total != uint64(instances) {
		c.add(at, "", "names %s for %d instances: BOSH needs exactly one static IP per instance", plural(total, "address"), instances)
	}
}

func plural(n uint64, what string) string {
	if n == math.MaxUint64 {
		return "too many addresses"
	}
	if n == 1 {
		return "1 " + what
	}
	return strconv.FormatUint(n, 10) + " " + what + "es"
}

func parseIPRange(s string) (ipRange, error) {
	parts := strings.Split(s, "-")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	switch len(parts) {
	case 1:
		if strings.Contains(parts[0], "/") {
			p, err := netip.ParsePrefix(parts[0])
			if err != nil {
				return ipRange{}, fmt.Errorf("is not an address, a range (a - b) or a CIDR")
			}
			p = p.Masked()
			return ipRange{lo: p.Addr(), hi: lastAddr(p)}, nil
		}
		a, err := netip.ParseAddr(parts[0])
		if err != nil {
			return ipRange{}, fmt.Errorf("is not an address, a range (a - b) or a CIDR")
		}
		return ipRange{lo: a, hi: a}, nil
	case 2:
		lo, err1 := netip.ParseAddr(parts[0])
		hi, err2 := netip.ParseAddr(parts[1])
		switch {
		case err1 != nil || err2 != nil:
			return ipRange{}, fmt.Errorf("is not a range of two addresses (a - b)")
		case lo.Is4() != hi.Is4():
			return ipRange{}, fmt.Errorf("mixes IPv4 and IPv6")
		case hi.Less(lo):
			return ipRange{}, fmt.Errorf("ends before it starts")
		}
		return ipRange{lo: lo, hi: hi}, nil
	}
	return ipRange{}, fmt.Errorf("is not an address, a range (a - b) or a CIDR")
}

// lastAddr is the last address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	hostBits := p.Addr().BitLen() - p.Bits()
	for i := 15; hostBits > 0 && i >= 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// size is how many addresses the range holds, saturated at MaxUint64.
func (r ipRange) size() uint64 {
	lo, hi := r.lo.As16(), r.hi.As16()
	loH, loL := binary.BigEndian.Uint64(lo[:8]), binary.BigEndian.Uint64(lo[8:])
	hiH, hiL := binary.BigEndian.Uint64(hi[:8]), binary.BigEndian.Uint64(hi[8:])
	l, borrow := bits.Sub64(hiL, loL, 0)
	h, _ := bits.Sub64(hiH, loH, borrow)
	if h != 0 || l == math.MaxUint64 {
		return math.MaxUint64
	}
	return l + 1
}

func addSat(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

func (c *checker) addon(at string, a *Addon) {
	c.required(at+"/name", a.Name)
	for k := range a.Jobs {
		c.job(yamltree.Index(at+"/jobs", k), &a.Jobs[k])
	}
	for k, r := range []*PlacementRule{a.Include, a.Exclude} {
		if r == nil {
			continue
		}
		rat := at + []string{"/include", "/exclude"}[k]
		if len(r.Deployments) > 0 {
			c.add(rat+"/deployments", "", "a deployment manifest's add-ons cannot filter on deployments (a runtime config's can)")
		}
		for k, j := range r.Jobs {
			jat := yamltree.Index(rat+"/jobs", k)
			c.required(jat+"/name", j.Name)
			c.required(jat+"/release", j.Release)
		}
		for k, s := range r.Stemcell {
			c.required(yamltree.Index(rat+"/stemcell", k)+"/os", s.OS)
		}
		c.lifecycle(rat+"/lifecycle", r.Lifecycle)
	}
}
