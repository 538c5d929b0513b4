package manifest

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// Limits on what Parse reads, so that hostile input costs bounded time
// and memory.
const (
	// MaxSize is the largest manifest Parse reads, in bytes.
	MaxSize = 32 << 20
	// MaxDepth is the deepest nesting of mappings and sequences Parse
	// follows, in free-form values as anywhere else.
	MaxDepth = 64
	// maxAliasNodes bounds the nodes visited on top of the document's own
	// through aliases and merge keys (a "billion laughs" document).
	maxAliasNodes = 1 << 20
)

// object names the manifest in a *kubefoundry.ValidationError.
const object = "deployment manifest"

// Parse reads a deployment manifest and checks it: its keys, the kinds and
// syntax of its values, required fields, duplicate names, references
// between its parts and BOSH's rules (see Validate). It returns every
// problem at once as a *kubefoundry.ValidationError whose problems carry
// the ops-file path of the field (/instance_groups/name=worker/instances)
// and its line.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, &kubefoundry.ValidationError{Object: object, Problems: []kubefoundry.FieldError{{
			Field: "/", Value: strconv.Itoa(len(data)) + " bytes", Reason: fmt.Sprintf("a manifest is at most %d bytes", MaxSize)}}}
	}
	root, err := yamltree.Document(data, "a manifest")
	if err != nil {
		return nil, &kubefoundry.ValidationError{Object: object, Problems: []kubefoundry.FieldError{{
			Field: "/", Reason: err.Error(), Line: yamltree.ErrorLine(err.Error())}}}
	}
	return parseRoot(root, len(data)+maxAliasNodes)
}

// ParseNode reads a deployment manifest held as a YAML node tree (a
// document or its top mapping), as package bosh/opsfile leaves it after
// ops-files and interpolation, so that problems keep the lines of the
// files they came from. It checks what Parse checks.
func ParseNode(doc *yaml.Node) (*Manifest, error) {
	root := doc
	if root != nil && root.Kind == yaml.DocumentNode {
		if len(root.Content) != 1 {
			root = nil
		} else {
			root = root.Content[0]
		}
	}
	if root == nil {
		return nil, &kubefoundry.ValidationError{Object: object, Problems: []kubefoundry.FieldError{{Field: "/", Reason: "the document is empty"}}}
	}
	return parseRoot(root, MaxSize+maxAliasNodes)
}

func parseRoot(root *yaml.Node, budget int) (*Manifest, error) {
	d := decoder{yamltree.NewDecoder(budget, MaxDepth, unknownHint)}
	m := d.manifest(root)
	probs := d.Problems(func(unread func(string) bool) []kubefoundry.FieldError { return check(m, unread) })
	if err := finish(m, probs, d.Lines()); err != nil {
		return nil, err
	}
	return m, nil
}

// decoder walks the YAML node tree into a Manifest. Paths are ops-file
// paths with indexes for sequence elements (/instance_groups/1/jobs/0);
// finish turns them into name= selectors.
type decoder struct{ *yamltree.Decoder }

// unknownHint explains an unknown key that belongs elsewhere.
func unknownHint(path, key string) string {
	if path == "" {
		switch key {
		case "azs", "vm_types", "vm_extensions", "disk_types", "networks", "compilation":
			return ": it belongs in a cloud config"
		case "jobs", "resource_pools", "disk_pools":
			return ": a v1 manifest key (v2 manifests use instance_groups and a cloud config)"
		}
	}
	return ""
}

// freeMap reads a free-form mapping (properties, env, options, links):
// any keys, any values, depth and size bounded.
func (d decoder) freeMap(path string, n *yaml.Node, depth int) Map {
	return Map(d.Free(path, n, depth))
}

// manifest reads the root mapping.
func (d decoder) manifest(root *yaml.Node) *Manifest {
	m := &Manifest{}
	f, ok := d.Root(root, "name", "director_uuid", "features", "releases", "stemcells", "update",
		"instance_groups", "addons", "properties", "variables", "tags")
	if !ok {
		return m
	}
	m.Name = d.Str("/name", f["name"])
	m.DirectorUUID = d.Str("/director_uuid", f["director_uuid"])
	if n, ok := f["features"]; ok {
		m.Features = d.features("/features", n)
	}
	for i, e := range d.List("/releases", f["releases"]) {
		m.Releases = append(m.Releases, d.release(yamltree.Index("/releases", i), e))
	}
	for i, e := range d.List("/stemcells", f["stemcells"]) {
		m.Stemcells = append(m.Stemcells, d.stemcell(yamltree.Index("/stemcells", i), e))
	}
	if n, ok := f["update"]; ok {
		m.Update = d.update("/update", n)
	}
	for i, e := range d.List("/instance_groups", f["instance_groups"]) {
		m.InstanceGroups = append(m.InstanceGroups, d.instanceGroup(yamltree.Index("/instance_groups", i), e))
	}
	for i, e := range d.List("/addons", f["addons"]) {
		m.Addons = append(m.Addons, d.addon(yamltree.Index("/addons", i), e))
	}
	m.Properties = d.freeMap("/properties", f["properties"], 1)
	for i, e := range d.List("/variables", f["variables"]) {
		m.Variables = append(m.Variables, d.variable(yamltree.Index("/variables", i), e))
	}
	m.Tags = d.StringMap("/tags", f["tags"], "a tag's value")
	return m
}

func (d decoder) features(path string, n *yaml.Node) *Features {
	n = d.Resolve(n)
	if yamltree.IsNull(n) {
		return &Features{}
	}
	if n.Kind != yaml.MappingNode {
		d.Fail(path, n, "", "must be a mapping, not %s", yamltree.Kind(n))
		return nil
	}
	f := &Features{}
	known := map[string]**bool{
		"converge_variables":      &f.ConvergeVariables,
		"randomize_az_placement":  &f.RandomizeAZPlacement,
		"use_dns_addresses":       &f.UseDNSAddresses,
		"use_short_dns_addresses": &f.UseShortDNSAddresses,
		"use_link_dns_names":      &f.UseLinkDNSNames,
		"use_tmpfs_config":        &f.UseTmpfsConfig,
	}
	for _, p := range d.Pairs(path, n, 1) {
		at := yamltree.Join(path, p.Key.Value)
		d.SetLine(at, p.Key.Line)
		if field, ok := known[p.Key.Value]; ok {
			*field = d.Bool(at, p.Val)
			continue
		}
		if f.Other == nil {
			f.Other = Map{}
		}
		f.Other[p.Key.Value] = d.Value(at, p.Val, 2)
	}
	return f
}

func (d decoder) release(path string, n *yaml.Node) Release {
	var r Release
	f, ok := d.Fields(path, n, 1, "name", "version", "url", "sha1", "stemcell", "exported_from")
	if !ok {
		return r
	}
	r.Name = d.Str(yamltree.Join(path, "name"), f["name"])
	r.Version = d.Str(yamltree.Join(path, "version"), f["version"])
	r.URL = d.Str(yamltree.Join(path, "url"), f["url"])
	r.SHA1 = d.Str(yamltree.Join(path, "sha1"), f["sha1"])
	if s, ok := f["stemcell"]; ok {
		rs := d.releaseStemcell(yamltree.Join(path, "stemcell"), s)
		r.Stemcell = &rs
	}
	at := yamltree.Join(path, "exported_from")
	for i, e := range d.List(at, f["exported_from"]) {
		r.ExportedFrom = append(r.ExportedFrom, d.releaseStemcell(yamltree.Index(at, i), e))
	}
	return r
}

func (d decoder) releaseStemcell(path string, n *yaml.Node) ReleaseStemcell {
	var s ReleaseStemcell
	if f, ok := d.Fields(path, n, 2, "os", "version"); ok {
		s.OS = d.Str(yamltree.Join(path, "os"), f["os"])
		s.Version = d.Str(yamltree.Join(path, "version"), f["version"])
	}
	return s
}

func (d decoder) stemcell(path string, n *yaml.Node) Stemcell {
	var s Stemcell
	f, ok := d.Fields(path, n, 1, "alias", "os", "name", "version")
	if !ok {
		return s
	}
	s.Alias = d.Str(yamltree.Join(path, "alias"), f["alias"])
	s.OS = d.Str(yamltree.Join(path, "os"), f["os"])
	s.Name = d.Str(yamltree.Join(path, "name"), f["name"])
	s.Version = d.Str(yamltree.Join(path, "version"), f["version"])
	return s
}

func (d decoder) update(path string, n *yaml.Node) *Update {
	u := &Update{}
	f, ok := d.Fields(path, n, 1, "canaries", "max_in_flight", "canary_watch_time", "update_watch_time",
		"serial", "vm_strategy", "initial_deploy_az_update_strategy")
	if !ok {
		return u
	}
	u.Canaries = Canaries{d.amount(yamltree.Join(path, "canaries"), f["canaries"])}
	u.MaxInFlight = MaxInFlight{d.amount(yamltree.Join(path, "max_in_flight"), f["max_in_flight"])}
	u.CanaryWatchTime = d.watchTime(yamltree.Join(path, "canary_watch_time"), f["canary_watch_time"])
	u.UpdateWatchTime = d.watchTime(yamltree.Join(path, "update_watch_time"), f["update_watch_time"])
	u.Serial = d.Bool(yamltree.Join(path, "serial"), f["serial"])
	u.VMStrategy = VMStrategy(d.Str(yamltree.Join(path, "vm_strategy"), f["vm_strategy"]))
	u.InitialDeployAZUpdateStrategy = d.Str(yamltree.Join(path, "initial_deploy_az_update_strategy"), f["initial_deploy_az_update_strategy"])
	return u
}

// text reads an integer or string scalar as text; ok is false when the
// key is absent, null or not such a scalar.
func (d decoder) text(path string, n *yaml.Node) (*yaml.Node, bool) {
	n = d.Resolve(n)
	if yamltree.IsNull(n) {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		d.Fail(path, n, yamltree.Shown(n), "must be an integer or a string, not %s", yamltree.Kind(n))
		return nil, false
	}
	return n, true
}

func (d decoder) amount(path string, n *yaml.Node) amount {
	n, ok := d.text(path, n)
	if !ok {
		return amount{}
	}
	a, err := parseAmount(n.Value)
	if err != nil {
		d.Fail(path, n, yamltree.Shown(n), "%v", err)
	}
	return a
}

func (d decoder) watchTime(path string, n *yaml.Node) WatchTime {
	n, ok := d.text(path, n)
	if !ok {
		return WatchTime{}
	}
	w, err := parseWatchTime(n.Value)
	if err != nil {
		d.Fail(path, n, yamltree.Shown(n), "%v", err)
	}
	return w
}

func (d decoder) instanceGroup(path string, n *yaml.Node) InstanceGroup {
	var g InstanceGroup
	f, ok := d.Fields(path, n, 1, "name", "lifecycle", "azs", "instances", "jobs", "vm_type", "vm_resources",
		"vm_extensions", "stemcell", "persistent_disk", "persistent_disk_type", "persistent_disks", "networks",
		"update", "migrated_from", "env", "properties")
	if !ok {
		return g
	}
	g.Name = d.Str(yamltree.Join(path, "name"), f["name"])
	g.Lifecycle = Lifecycle(d.Str(yamltree.Join(path, "lifecycle"), f["lifecycle"]))
	g.AZs = d.Strs(yamltree.Join(path, "azs"), f["azs"])
	if d.Present(f, "instances") {
		g.Instances, _ = d.IntNotNull(yamltree.Join(path, "instances"), f["instances"])
	} else {
		d.Fail(yamltree.Join(path, "instances"), nil, "", "is required")
	}
	at := yamltree.Join(path, "jobs")
	if !d.Present(f, "jobs") {
		d.Fail(at, nil, "", "is required (a list of jobs, [] for none)")
	}
	for i, e := range d.List(at, f["jobs"]) {
		g.Jobs = append(g.Jobs, d.job(yamltree.Index(at, i), e))
	}
	g.VMType = d.Str(yamltree.Join(path, "vm_type"), f["vm_type"])
	if d.Present(f, "vm_resources") {
		g.VMResources = d.vmResources(yamltree.Join(path, "vm_resources"), f["vm_resources"])
	}
	g.VMExtensions = d.Strs(yamltree.Join(path, "vm_extensions"), f["vm_extensions"])
	g.Stemcell = d.Str(yamltree.Join(path, "stemcell"), f["stemcell"])
	if d.Present(f, "persistent_disk") {
		if size, ok := d.IntNotNull(yamltree.Join(path, "persistent_disk"), f["persistent_disk"]); ok {
			g.PersistentDisk = &size
		}
	}
	g.PersistentDiskType = d.Str(yamltree.Join(path, "persistent_disk_type"), f["persistent_disk_type"])
	at = yamltree.Join(path, "persistent_disks")
	for i, e := range d.List(at, f["persistent_disks"]) {
		var pd PersistentDisk
		if pf, ok := d.Fields(yamltree.Index(at, i), e, 2, "name", "type"); ok {
			pd.Name = d.Str(yamltree.Join(yamltree.Index(at, i), "name"), pf["name"])
			pd.Type = d.Str(yamltree.Join(yamltree.Index(at, i), "type"), pf["type"])
		}
		g.PersistentDisks = append(g.PersistentDisks, pd)
	}
	at = yamltree.Join(path, "networks")
	for i, e := range d.List(at, f["networks"]) {
		g.Networks = append(g.Networks, d.network(yamltree.Index(at, i), e))
	}
	if d.Present(f, "update") {
		g.Update = d.update(yamltree.Join(path, "update"), f["update"])
	}
	at = yamltree.Join(path, "migrated_from")
	for i, e := range d.List(at, f["migrated_from"]) {
		var mf MigratedFrom
		if mff, ok := d.Fields(yamltree.Index(at, i), e, 2, "name", "az"); ok {
			mf.Name = d.Str(yamltree.Join(yamltree.Index(at, i), "name"), mff["name"])
			mf.AZ = d.Str(yamltree.Join(yamltree.Index(at, i), "az"), mff["az"])
		}
		g.MigratedFrom = append(g.MigratedFrom, mf)
	}
	g.Env = d.freeMap(yamltree.Join(path, "env"), f["env"], 2)
	g.Properties = d.freeMap(yamltree.Join(path, "properties"), f["properties"], 2)
	return g
}

func (d decoder) vmResources(path string, n *yaml.Node) *VMResources {
	r := &VMResources{}
	f, ok := d.Fields(path, n, 2, "cpu", "ram", "ephemeral_disk_size")
	if !ok {
		return r
	}
	r.CPU, _ = d.IntNotNull(yamltree.Join(path, "cpu"), f["cpu"])
	r.RAM, _ = d.IntNotNull(yamltree.Join(path, "ram"), f["ram"])
	r.EphemeralDiskSize, _ = d.IntNotNull(yamltree.Join(path, "ephemeral_disk_size"), f["ephemeral_disk_size"])
	return r
}

func (d decoder) job(path string, n *yaml.Node) Job {
	var j Job
	f, ok := d.Fields(path, n, 2, "name", "release", "consumes", "provides", "custom_provider_definitions", "properties")
	if !ok {
		return j
	}
	j.Name = d.Str(yamltree.Join(path, "name"), f["name"])
	j.Release = d.Str(yamltree.Join(path, "release"), f["release"])
	j.Consumes = d.freeMap(yamltree.Join(path, "consumes"), f["consumes"], 3)
	j.Provides = d.freeMap(yamltree.Join(path, "provides"), f["provides"], 3)
	at := yamltree.Join(path, "custom_provider_definitions")
	for i, e := range d.List(at, f["custom_provider_definitions"]) {
		var c CustomProvider
		if cf, ok := d.Fields(yamltree.Index(at, i), e, 3, "name", "type", "properties"); ok {
			c.Name = d.Str(yamltree.Join(yamltree.Index(at, i), "name"), cf["name"])
			c.Type = d.Str(yamltree.Join(yamltree.Index(at, i), "type"), cf["type"])
			c.Properties = d.Strs(yamltree.Join(yamltree.Index(at, i), "properties"), cf["properties"])
		}
		j.CustomProviderDefinitions = append(j.CustomProviderDefinitions, c)
	}
	j.Properties = d.freeMap(yamltree.Join(path, "properties"), f["properties"], 3)
	return j
}

func (d decoder) network(path string, n *yaml.Node) Network {
	var nw Network
	f, ok := d.Fields(path, n, 2, "name", "static_ips", "default")
	if !ok {
		return nw
	}
	nw.Name = d.Str(yamltree.Join(path, "name"), f["name"])
	// static_ips is a list, or one string (BOSH takes either).
	at := yamltree.Join(path, "static_ips")
	if v := d.Resolve(f["static_ips"]); v != nil && v.Kind == yaml.ScalarNode && !yamltree.IsNull(v) {
		nw.StaticIPs = []string{d.Str(at, v)}
	} else {
		nw.StaticIPs = d.Strs(at, f["static_ips"])
	}
	nw.Default = d.Strs(yamltree.Join(path, "default"), f["default"])
	return nw
}

func (d decoder) addon(path string, n *yaml.Node) Addon {
	var a Addon
	f, ok := d.Fields(path, n, 1, "name", "jobs", "properties", "include", "exclude")
	if !ok {
		return a
	}
	a.Name = d.Str(yamltree.Join(path, "name"), f["name"])
	at := yamltree.Join(path, "jobs")
	for i, e := range d.List(at, f["jobs"]) {
		a.Jobs = append(a.Jobs, d.job(yamltree.Index(at, i), e))
	}
	a.Properties = d.freeMap(yamltree.Join(path, "properties"), f["properties"], 2)
	if d.Present(f, "include") {
		a.Include = d.rule(yamltree.Join(path, "include"), f["include"])
	}
	if d.Present(f, "exclude") {
		a.Exclude = d.rule(yamltree.Join(path, "exclude"), f["exclude"])
	}
	return a
}

func (d decoder) rule(path string, n *yaml.Node) *PlacementRule {
	r := &PlacementRule{}
	f, ok := d.Fields(path, n, 2, "deployments", "jobs", "instance_groups", "stemcell", "networks", "teams", "azs", "lifecycle")
	if !ok {
		return r
	}
	r.Deployments = d.Strs(yamltree.Join(path, "deployments"), f["deployments"])
	at := yamltree.Join(path, "jobs")
	for i, e := range d.List(at, f["jobs"]) {
		var j JobRef
		if jf, ok := d.Fields(yamltree.Index(at, i), e, 3, "name", "release"); ok {
			j.Name = d.Str(yamltree.Join(yamltree.Index(at, i), "name"), jf["name"])
			j.Release = d.Str(yamltree.Join(yamltree.Index(at, i), "release"), jf["release"])
		}
		r.Jobs = append(r.Jobs, j)
	}
	r.InstanceGroups = d.Strs(yamltree.Join(path, "instance_groups"), f["instance_groups"])
	at = yamltree.Join(path, "stemcell")
	for i, e := range d.List(at, f["stemcell"]) {
		var s StemcellRule
		if sf, ok := d.Fields(yamltree.Index(at, i), e, 3, "os"); ok {
			s.OS = d.Str(yamltree.Join(yamltree.Index(at, i), "os"), sf["os"])
		}
		r.Stemcell = append(r.Stemcell, s)
	}
	r.Networks = d.Strs(yamltree.Join(path, "networks"), f["networks"])
	r.Teams = d.Strs(yamltree.Join(path, "teams"), f["teams"])
	r.AZs = d.Strs(yamltree.Join(path, "azs"), f["azs"])
	r.Lifecycle = Lifecycle(d.Str(yamltree.Join(path, "lifecycle"), f["lifecycle"]))
	return r
}

func (d decoder) variable(path string, n *yaml.Node) Variable {
	var v Variable
	f, ok := d.Fields(path, n, 1, "name", "type", "options", "consumes", "update_mode")
	if !ok {
		return v
	}
	v.Name = d.Str(yamltree.Join(path, "name"), f["name"])
	v.Type = VariableType(d.Str(yamltree.Join(path, "type"), f["type"]))
	v.Options = d.freeMap(yamltree.Join(path, "options"), f["options"], 2)
	v.Consumes = d.freeMap(yamltree.Join(path, "consumes"), f["consumes"], 2)
	v.UpdateMode = d.Str(yamltree.Join(path, "update_mode"), f["update_mode"])
	return v
}
