package manifest

import (
	"math"
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
	return yamltree.Finish(object, probs, lines, selectors(m))
}

// selectors names the elements of m's named lists by their index path.
func selectors(m *Manifest) yamltree.Selectors {
	sel := yamltree.Selectors{}
	add := sel.Add
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

// checker collects the problems of a manifest, with index paths.
type checker struct {
	*yamltree.Checker
	releases, stemcells map[string]bool // names in the manifest
}

// check applies the rules of Validate. unread, when not nil, reports the
// paths Parse could not read.
func check(m *Manifest, unread func(string) bool) []kubefoundry.FieldError {
	c := &checker{Checker: yamltree.NewChecker(unread), releases: map[string]bool{}, stemcells: map[string]bool{}}
	for _, r := range m.Releases {
		c.releases[r.Name] = true
	}
	for _, s := range m.Stemcells {
		c.stemcells[s.Alias] = true
	}
	c.Required("/name", m.Name)
	if len(m.Releases) == 0 {
		c.Add("/releases", "", "at least one release is required")
	}
	seen := map[string]bool{}
	for i, r := range m.Releases {
		at := yamltree.Index("/releases", i)
		c.Required(at+"/name", r.Name)
		c.Unique(seen, at+"/name", r.Name, "the release")
		c.Required(at+"/version", r.Version)
		if r.Stemcell != nil {
			c.Required(at+"/stemcell/os", r.Stemcell.OS)
			c.Required(at+"/stemcell/version", r.Stemcell.Version)
		}
		for k, s := range r.ExportedFrom {
			c.Required(yamltree.Index(at+"/exported_from", k)+"/os", s.OS)
			c.Required(yamltree.Index(at+"/exported_from", k)+"/version", s.Version)
		}
	}
	if len(m.Stemcells) == 0 {
		c.Add("/stemcells", "", "at least one stemcell is required")
	}
	seen = map[string]bool{}
	for i, s := range m.Stemcells {
		at := yamltree.Index("/stemcells", i)
		c.Required(at+"/alias", s.Alias)
		c.Unique(seen, at+"/alias", s.Alias, "the stemcell alias")
		c.Required(at+"/version", s.Version)
		switch {
		case s.OS != "" && s.Name != "":
			c.Add(at+"/name", s.Name, "os and name are both set: choose one (os matches the stemcell on any IaaS)")
		case s.OS == "" && s.Name == "":
			c.Add(at+"/os", "", "is required (or name, the stemcell's full name)")
		}
	}
	if m.Update == nil {
		c.Add("/update", "", "is required")
	} else {
		c.update("/update", m.Update, true)
	}
	if len(m.InstanceGroups) == 0 {
		c.Add("/instance_groups", "", "at least one instance group is required")
	}
	seen = map[string]bool{}
	for i := range m.InstanceGroups {
		at := yamltree.Index("/instance_groups", i)
		c.Unique(seen, at+"/name", m.InstanceGroups[i].Name, "the instance group")
		c.instanceGroup(at, &m.InstanceGroups[i])
	}
	for i := range m.Addons {
		c.addon(yamltree.Index("/addons", i), &m.Addons[i])
	}
	seen = map[string]bool{}
	for i, v := range m.Variables {
		at := yamltree.Index("/variables", i)
		c.Required(at+"/name", v.Name)
		c.Unique(seen, at+"/name", v.Name, "the variable")
		switch v.Type {
		case "":
			c.Add(at+"/type", "", "is required (password, certificate, ssh, rsa or user)")
		case VariablePassword, VariableCertificate, VariableSSH, VariableRSA, VariableUser:
		default:
			c.Add(at+"/type", string(v.Type), "must be password, certificate, ssh, rsa or user")
		}
	}
	return c.Problems
}

func (c *checker) update(path string, u *Update, top bool) {
	if top {
		if u.Canaries.IsZero() {
			c.Add(path+"/canaries", "", "is required")
		}
		if u.MaxInFlight.IsZero() {
			c.Add(path+"/max_in_flight", "", "is required")
		}
		if u.CanaryWatchTime.IsZero() {
			c.Add(path+"/canary_watch_time", "", "is required")
		}
		if u.UpdateWatchTime.IsZero() {
			c.Add(path+"/update_watch_time", "", "is required")
		}
	}
	if u.Canaries.n < 0 {
		c.Add(path+"/canaries", u.Canaries.String(), "must not be negative")
	}
	if u.MaxInFlight.n < 0 {
		c.Add(path+"/max_in_flight", u.MaxInFlight.String(), "must not be negative")
	}
	for _, w := range []struct {
		key string
		t   WatchTime
	}{{"canary_watch_time", u.CanaryWatchTime}, {"update_watch_time", u.UpdateWatchTime}} {
		if w.t.min > w.t.max {
			c.Add(path+"/"+w.key, w.t.String(), "the minimum is greater than the maximum")
		}
	}
	switch u.VMStrategy {
	case "", VMStrategyDeleteCreate, VMStrategyCreateSwapDelete:
	default:
		c.Add(path+"/vm_strategy", string(u.VMStrategy), "must be delete-create or create-swap-delete")
	}
	switch u.InitialDeployAZUpdateStrategy {
	case "", "serial", "parallel":
	default:
		c.Add(path+"/initial_deploy_az_update_strategy", u.InitialDeployAZUpdateStrategy, "must be serial or parallel")
	}
}

func (c *checker) lifecycle(path string, l Lifecycle) {
	switch l {
	case "", LifecycleService, LifecycleErrand:
	default:
		c.Add(path, string(l), "must be service or errand")
	}
}

func (c *checker) instanceGroup(at string, g *InstanceGroup) {
	c.Required(at+"/name", g.Name)
	c.lifecycle(at+"/lifecycle", g.Lifecycle)
	if g.Instances < 0 {
		c.Add(at+"/instances", strconv.Itoa(g.Instances), "must not be negative")
	}
	seen := map[string]bool{}
	for k := range g.Jobs {
		jat := yamltree.Index(at+"/jobs", k)
		c.Unique(seen, jat+"/name", g.Jobs[k].Name, "the job on this instance group")
		c.job(jat, &g.Jobs[k])
	}
	switch {
	case g.VMType == "" && g.VMResources == nil:
		c.Add(at+"/vm_type", "", "is required (or vm_resources)")
	case g.VMType != "" && g.VMResources != nil:
		c.Add(at+"/vm_resources", "", "vm_type and vm_resources are both set: choose one")
	case g.VMResources != nil:
		r := g.VMResources
		for _, v := range []struct {
			key string
			n   int
		}{{"cpu", r.CPU}, {"ram", r.RAM}, {"ephemeral_disk_size", r.EphemeralDiskSize}} {
			switch {
			case v.n == 0:
				c.Add(at+"/vm_resources/"+v.key, "", "is required (a positive integer)")
			case v.n < 0:
				c.Add(at+"/vm_resources/"+v.key, strconv.Itoa(v.n), "must be a positive integer")
			}
		}
	}
	if g.Stemcell == "" {
		c.Add(at+"/stemcell", "", "is required (an alias from stemcells)")
	} else if !c.stemcells[g.Stemcell] {
		c.Add(at+"/stemcell", g.Stemcell, "is not an alias in stemcells")
	}
	disks := 0
	for _, set := range []bool{g.PersistentDisk != nil, g.PersistentDiskType != "", len(g.PersistentDisks) > 0} {
		if set {
			disks++
		}
	}
	if disks > 1 {
		c.Add(at+"/persistent_disk_type", g.PersistentDiskType,
			"persistent_disk, persistent_disk_type and persistent_disks: choose one")
	}
	if g.PersistentDisk != nil && *g.PersistentDisk < 0 {
		c.Add(at+"/persistent_disk", strconv.Itoa(*g.PersistentDisk), "must not be negative")
	}
	seen = map[string]bool{}
	for k, pd := range g.PersistentDisks {
		pat := yamltree.Index(at+"/persistent_disks", k)
		c.Required(pat+"/name", pd.Name)
		c.Unique(seen, pat+"/name", pd.Name, "the persistent disk")
		c.Required(pat+"/type", pd.Type)
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
		c.Required(mat+"/name", mf.Name)
		if mf.AZ != "" && !azs[mf.AZ] {
			c.Add(mat+"/az", mf.AZ, "is not one of the instance group's azs")
		}
	}
}

func (c *checker) job(at string, j *Job) {
	c.Required(at+"/name", j.Name)
	if j.Release == "" {
		c.Add(at+"/release", "", "is required")
	} else if !c.releases[j.Release] {
		c.Add(at+"/release", j.Release, "is not a release in releases")
	}
	seen := map[string]bool{}
	for k, p := range j.CustomProviderDefinitions {
		pat := yamltree.Index(at+"/custom_provider_definitions", k)
		c.Required(pat+"/name", p.Name)
		c.Unique(seen, pat+"/name", p.Name, "the custom provider")
		c.Required(pat+"/type", p.Type)
	}
}

// validDefaults are what a network may be the default for; dns and
// gateway need a default when a group has several networks.
var validDefaults = []string{"addressable", "dns", "gateway"}

func (c *checker) networks(at string, g *InstanceGroup) {
	if len(g.Networks) == 0 {
		c.Add(at+"/networks", "", "at least one network is required")
		return
	}
	defaults := map[string][]string{}
	for k, n := range g.Networks {
		nat := yamltree.Index(at+"/networks", k)
		c.Required(nat+"/name", n.Name)
		for d, v := range n.Default {
			if !slices.Contains(validDefaults, v) {
				c.Add(yamltree.Index(nat+"/default", d), v, "must be dns, gateway or addressable")
				continue
			}
			defaults[v] = append(defaults[v], n.Name)
		}
		if n.StaticIPs != nil && !c.Unread(at+"/instances") {
			c.staticIPs(nat, n.StaticIPs, g.Instances)
		}
	}
	for _, v := range validDefaults {
		if len(defaults[v]) > 1 {
			c.Add(at+"/networks", "", "%s has more than one default network: %s", v, strings.Join(defaults[v], ", "))
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
			c.Add(at+"/networks", "", "with more than one network, one must be the default for %s", strings.Join(missing, " and "))
		}
	}
}

// staticIPs checks a network's static_ips: each entry an address, a range
// "a - b" or a CIDR, no address twice, and as many addresses as
// instances (BOSH gives each instance one, and refuses spares).
func (c *checker) staticIPs(nat string, entries []string, instances int) {
	at := nat + "/static_ips"
	type entry struct {
		yamltree.Span
		i int
	}
	var spans []entry
	var total uint64
	ok := true
	for k, e := range entries {
		s, err := yamltree.ParseSpan(e)
		if err != nil {
			c.Add(yamltree.Index(at, k), e, "%v", err)
			ok = false
			continue
		}
		spans = append(spans, entry{s, k})
		total = yamltree.AddSat(total, s.Size())
	}
	// In address order, an entry that starts before the furthest end so
	// far overlaps an earlier one; the later of the two in the list is
	// reported, once.
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Lo.Less(spans[j].Lo) })
	reported := map[int]bool{}
	for i := 1; i < len(spans); i++ {
		far, cur := spans[i-1], spans[i]
		if far.Overlaps(cur.Span) {
			if e := max(far.i, cur.i); !reported[e] {
				reported[e] = true
				c.Add(yamltree.Index(at, e), entries[e], "names an address that another entry names too")
			}
			ok = false
		}
		if far.Family() == cur.Family() && cur.Hi.Less(far.Hi) {
			spans[i] = far // carry the furthest end forward
		}
	}
	if ok && instances >= 0 && total != uint64(instances) {
		c.Add(at, "", "names %s for %d instances: BOSH needs exactly one static IP per instance", plural(total, "address"), instances)
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

func (c *checker) addon(at string, a *Addon) {
	c.Required(at+"/name", a.Name)
	for k := range a.Jobs {
		c.job(yamltree.Index(at+"/jobs", k), &a.Jobs[k])
	}
	for k, r := range []*PlacementRule{a.Include, a.Exclude} {
		if r == nil {
			continue
		}
		rat := at + []string{"/include", "/exclude"}[k]
		if len(r.Deployments) > 0 {
			c.Add(rat+"/deployments", "", "a deployment manifest's add-ons cannot filter on deployments (a runtime config's can)")
		}
		for k, j := range r.Jobs {
			jat := yamltree.Index(rat+"/jobs", k)
			c.Required(jat+"/name", j.Name)
			c.Required(jat+"/release", j.Release)
		}
		for k, s := range r.Stemcell {
			c.Required(yamltree.Index(rat+"/stemcell", k)+"/os", s.OS)
		}
		c.lifecycle(rat+"/lifecycle", r.Lifecycle)
	}
}
