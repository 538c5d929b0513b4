package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

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
	d := &decoder{lines: map[string]int{}, bad: map[string]bool{}, budget: budget}
	m := d.manifest(root)
	probs := d.probs
	if d.budget >= 0 { // else what was not read would be reported as missing
		for _, p := range check(m, d.isBad) {
			if !d.isBad(p.Field) {
				probs = append(probs, p)
			}
		}
	}
	if err := finish(m, probs, d.lines); err != nil {
		return nil, err
	}
	return m, nil
}

// decoder walks the YAML node tree into a Manifest. Paths are ops-file
// paths with indexes for sequence elements (/instance_groups/1/jobs/0);
// finish turns them into name= selectors.
type decoder struct {
	probs  []kubefoundry.FieldError
	lines  map[string]int  // path -> line of its key or element
	bad    map[string]bool // paths with a structural problem
	budget int             // nodes left to visit
}

// failAt records a problem at path on a given line.
func (d *decoder) failAt(path string, line int, value, format string, args ...any) {
	d.bad[path] = true
	d.probs = append(d.probs, kubefoundry.FieldError{Field: path, Value: value, Reason: fmt.Sprintf(format, args...), Line: line})
}

// fail records a problem at path. Its line is the path's own (the line
// of its key or list element), else n's, else its parent's.
func (d *decoder) fail(path string, n *yaml.Node, value, format string, args ...any) {
	line, ok := d.lines[path]
	switch {
	case ok:
	case n != nil:
		line = n.Line
	default:
		line = yamltree.LineOf(d.lines, path)
	}
	d.failAt(path, line, value, format, args...)
}

// isBad reports whether path is, or is under, a path with a structural
// problem, so that check does not report it again.
func (d *decoder) isBad(path string) bool {
	for p := path; ; {
		if d.bad[p] {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// spend counts a node visit against the budget; false once it is spent.
func (d *decoder) spend() bool {
	d.budget--
	if d.budget == -1 {
		d.probs = append(d.probs, kubefoundry.FieldError{Field: "/", Reason: "the document expands to too many nodes through aliases"})
	}
	return d.budget >= 0
}

// resolve follows an alias; nil when the budget is spent.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	if n == nil || !d.spend() {
		return nil
	}
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < MaxDepth; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

type pair struct{ key, val *yaml.Node }

// pairs returns the key/value pairs of a mapping with merge keys (<<)
// applied: explicit keys first, then merged keys they do not override.
// It reports keys that are not scalars and keys defined twice.
func (d *decoder) pairs(path string, n *yaml.Node, depth int) []pair {
	if depth > MaxDepth {
		d.fail(path, n, "", "nested deeper than %d levels", MaxDepth)
		return nil
	}
	var out, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.spend() {
			return out
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(path, v, depth)...)
			continue
		}
		if k.Kind == yaml.AliasNode && k.Alias != nil && k.Alias.Kind == yaml.ScalarNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.failAt(path, k.Line, "", "keys must be strings, not %s", yamltree.Kind(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.failAt(yamltree.Join(path, k.Value), k.Line, "", "defined twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key.Line
			out = append(out, p)
		}
	}
	return out
}

// merge returns the pairs a merge key's value brings: a mapping or a list
// of mappings, the earlier ones winning.
func (d *decoder) merge(path string, v *yaml.Node, depth int) []pair {
	v = d.resolve(v)
	if v == nil {
		return nil
	}
	sources := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		sources = sources[:0]
		for _, s := range v.Content {
			sources = append(sources, d.resolve(s))
		}
	}
	var out []pair
	seen := map[string]bool{}
	for _, s := range sources {
		if s == nil || s.Kind != yaml.MappingNode {
			d.failAt(path, v.Line, "", "a merge key (<<) takes a mapping or a list of mappings")
			return out
		}
		for _, p := range d.pairs(path, s, depth+1) {
			if !seen[p.key.Value] {
				seen[p.key.Value] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// fields reads a mapping of known keys: it records their lines, reports
// unknown keys, and returns the values by key. A null value is an empty
// mapping. ok is false when n is not a mapping.
func (d *decoder) fields(path string, n *yaml.Node, depth int, known ...string) (map[string]*yaml.Node, bool) {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return map[string]*yaml.Node{}, n != nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "", "must be a mapping, not %s", yamltree.Kind(n))
		return nil, false
	}
	out := map[string]*yaml.Node{}
	for _, p := range d.pairs(path, n, depth) {
		key := p.key.Value
		at := yamltree.Join(path, key)
		if !slices.Contains(known, key) {
			d.failAt(at, p.key.Line, "", "unknown key %q%s", key, unknownHint(path, key))
			continue
		}
		d.lines[at] = p.key.Line
		out[key] = p.val
	}
	return out, true
}

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

// str reads a scalar as a string; numbers are kept as written (BOSH reads
// version: 3147 as "3147"). Null is "".
func (d *decoder) str(path string, n *yaml.Node) string {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" {
		d.fail(path, n, "", "must be a string, not %s", yamltree.Kind(n))
		return ""
	}
	return n.Value
}

// integer reads an integer that fits an int.
func (d *decoder) integer(path string, n *yaml.Node) (int, bool) {
	n = d.resolve(n)
	if n == nil {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.fail(path, n, shortValue(n), "must be an integer, not %s", yamltree.Kind(n))
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		d.fail(path, n, shortValue(n), "is out of range")
		return 0, false
	}
	return v, true
}

// boolean reads true or false; null is nil.
func (d *decoder) boolean(path string, n *yaml.Node) *bool {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.fail(path, n, shortValue(n), "must be true or false, not %s", yamltree.Kind(n))
		return nil
	}
	return &b
}

// list reads a sequence, recording each element's line; null is nil.
func (d *decoder) list(path string, n *yaml.Node) []*yaml.Node {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n, "", "must be a list, not %s", yamltree.Kind(n))
		return nil
	}
	for i, e := range n.Content {
		d.lines[yamltree.Index(path, i)] = e.Line
	}
	return n.Content
}

// strs reads a list of strings; a list with a bad element keeps its
// length with "" in its place.
func (d *decoder) strs(path string, n *yaml.Node) []string {
	var out []string
	for i, e := range d.list(path, n) {
		out = append(out, d.str(yamltree.Index(path, i), e))
	}
	return out
}

// shortValue shows a scalar in a problem, cut to a readable length.
func shortValue(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	if len(n.Value) > 64 {
		return n.Value[:61] + "..."
	}
	return n.Value
}

// freeMap reads a free-form mapping (properties, env, options, links):
// any keys, any values, depth and size bounded.
func (d *decoder) freeMap(path string, n *yaml.Node, depth int) Map {
	n = d.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "", "must be a mapping, not %s", yamltree.Kind(n))
		return nil
	}
	v, _ := d.value(path, n, depth).(map[string]any)
	if v == nil {
		return nil
	}
	return Map(v)
}

// value converts a free-form node: mappings to map[string]any, sequences
// to []any, scalars by their YAML tag.
func (d *decoder) value(path string, n *yaml.Node, depth int) any {
	n = d.resolve(n)
	if n == nil {
		return nil
	}
	if depth > MaxDepth {
		d.fail(path, n, "", "nested deeper than %d levels", MaxDepth)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for _, p := range d.pairs(path, n, depth) {
			m[p.key.Value] = d.value(yamltree.Join(path, p.key.Value), p.val, depth+1)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, e := range n.Content {
			s[i] = d.value(yamltree.Index(path, i), e, depth+1)
		}
		return s
	case yaml.ScalarNode:
		return yamltree.Scalar(n)
	}
	return nil
}

// manifest reads the root mapping.
func (d *decoder) manifest(root *yaml.Node) *Manifest {
	m := &Manifest{}
	d.lines[""] = root.Line
	f, ok := d.fields("", root, 0, "name", "director_uuid", "features", "releases", "stemcells", "update",
		"instance_groups", "addons", "properties", "variables", "tags")
	if !ok {
		d.bad[""] = true
		return m
	}
	m.Name = d.str("/name", f["name"])
	m.DirectorUUID = d.str("/director_uuid", f["director_uuid"])
	if n, ok := f["features"]; ok {
		m.Features = d.features("/features", n)
	}
	for i, e := range d.list("/releases", f["releases"]) {
		m.Releases = append(m.Releases, d.release(yamltree.Index("/releases", i), e))
	}
	for i, e := range d.list("/stemcells", f["stemcells"]) {
		m.Stemcells = append(m.Stemcells, d.stemcell(yamltree.Index("/stemcells", i), e))
	}
	if n, ok := f["update"]; ok {
		m.Update = d.update("/update", n)
	}
	for i, e := range d.list("/instance_groups", f["instance_groups"]) {
		m.InstanceGroups = append(m.InstanceGroups, d.instanceGroup(yamltree.Index("/instance_groups", i), e))
	}
	for i, e := range d.list("/addons", f["addons"]) {
		m.Addons = append(m.Addons, d.addon(yamltree.Index("/addons", i), e))
	}
	m.Properties = d.freeMap("/properties", f["properties"], 1)
	for i, e := range d.list("/variables", f["variables"]) {
		m.Variables = append(m.Variables, d.variable(yamltree.Index("/variables", i), e))
	}
	m.Tags = d.tags("/tags", f["tags"])
	return m
}

func (d *decoder) features(path string, n *yaml.Node) *Features {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return &Features{}
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "", "must be a mapping, not %s", yamltree.Kind(n))
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
	for _, p := range d.pairs(path, n, 1) {
		at := yamltree.Join(path, p.key.Value)
		d.lines[at] = p.key.Line
		if field, ok := known[p.key.Value]; ok {
			*field = d.boolean(at, p.val)
			continue
		}
		if f.Other == nil {
			f.Other = Map{}
		}
		f.Other[p.key.Value] = d.value(at, p.val, 2)
	}
	return f
}

func (d *decoder) release(path string, n *yaml.Node) Release {
	var r Release
	f, ok := d.fields(path, n, 1, "name", "version", "url", "sha1", "stemcell", "exported_from")
	if !ok {
		return r
	}
	r.Name = d.str(yamltree.Join(path, "name"), f["name"])
	r.Version = d.str(yamltree.Join(path, "version"), f["version"])
	r.URL = d.str(yamltree.Join(path, "url"), f["url"])
	r.SHA1 = d.str(yamltree.Join(path, "sha1"), f["sha1"])
	if s, ok := f["stemcell"]; ok {
		rs := d.releaseStemcell(yamltree.Join(path, "stemcell"), s)
		r.Stemcell = &rs
	}
	at := yamltree.Join(path, "exported_from")
	for i, e := range d.list(at, f["exported_from"]) {
		r.ExportedFrom = append(r.ExportedFrom, d.releaseStemcell(yamltree.Index(at, i), e))
	}
	return r
}

func (d *decoder) releaseStemcell(path string, n *yaml.Node) ReleaseStemcell {
	var s ReleaseStemcell
	if f, ok := d.fields(path, n, 2, "os", "version"); ok {
		s.OS = d.str(yamltree.Join(path, "os"), f["os"])
		s.Version = d.str(yamltree.Join(path, "version"), f["version"])
	}
	return s
}

func (d *decoder) stemcell(path string, n *yaml.Node) Stemcell {
	var s Stemcell
	f, ok := d.fields(path, n, 1, "alias", "os", "name", "version")
	if !ok {
		return s
	}
	s.Alias = d.str(yamltree.Join(path, "alias"), f["alias"])
	s.OS = d.str(yamltree.Join(path, "os"), f["os"])
	s.Name = d.str(yamltree.Join(path, "name"), f["name"])
	s.Version = d.str(yamltree.Join(path, "version"), f["version"])
	return s
}

func (d *decoder) update(path string, n *yaml.Node) *Update {
	u := &Update{}
	f, ok := d.fields(path, n, 1, "canaries", "max_in_flight", "canary_watch_time", "update_watch_time",
		"serial", "vm_strategy", "initial_deploy_az_update_strategy")
	if !ok {
		return u
	}
	u.Canaries = Canaries{d.amount(yamltree.Join(path, "canaries"), f["canaries"])}
	u.MaxInFlight = MaxInFlight{d.amount(yamltree.Join(path, "max_in_flight"), f["max_in_flight"])}
	u.CanaryWatchTime = d.watchTime(yamltree.Join(path, "canary_watch_time"), f["canary_watch_time"])
	u.UpdateWatchTime = d.watchTime(yamltree.Join(path, "update_watch_time"), f["update_watch_time"])
	u.Serial = d.boolean(yamltree.Join(path, "serial"), f["serial"])
	u.VMStrategy = VMStrategy(d.str(yamltree.Join(path, "vm_strategy"), f["vm_strategy"]))
	u.InitialDeployAZUpdateStrategy = d.str(yamltree.Join(path, "initial_deploy_az_update_strategy"), f["initial_deploy_az_update_strategy"])
	return u
}

// text reads an integer or string scalar as text; ok is false when the
// key is absent, null or not such a scalar.
func (d *decoder) text(path string, n *yaml.Node) (*yaml.Node, bool) {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		d.fail(path, n, shortValue(n), "must be an integer or a string, not %s", yamltree.Kind(n))
		return nil, false
	}
	return n, true
}

func (d *decoder) amount(path string, n *yaml.Node) amount {
	n, ok := d.text(path, n)
	if !ok {
		return amount{}
	}
	a, err := parseAmount(n.Value)
	if err != nil {
		d.fail(path, n, shortValue(n), "%v", err)
	}
	return a
}

func (d *decoder) watchTime(path string, n *yaml.Node) WatchTime {
	n, ok := d.text(path, n)
	if !ok {
		return WatchTime{}
	}
	w, err := parseWatchTime(n.Value)
	if err != nil {
		d.fail(path, n, shortValue(n), "%v", err)
	}
	return w
}

func (d *decoder) instanceGroup(path string, n *yaml.Node) InstanceGroup {
	var g InstanceGroup
	f, ok := d.fields(path, n, 1, "name", "lifecycle", "azs", "instances", "jobs", "vm_type", "vm_resources",
		"vm_extensions", "stemcell", "persistent_disk", "persistent_disk_type", "persistent_disks", "networks",
		"update", "migrated_from", "env", "properties")
	if !ok {
		return g
	}
	g.Name = d.str(yamltree.Join(path, "name"), f["name"])
	g.Lifecycle = Lifecycle(d.str(yamltree.Join(path, "lifecycle"), f["lifecycle"]))
	g.AZs = d.strs(yamltree.Join(path, "azs"), f["azs"])
	if v, ok := f["instances"]; ok && !yamltree.IsNull(d.resolve(v)) {
		g.Instances, _ = d.integer(yamltree.Join(path, "instances"), v)
	} else {
		d.fail(yamltree.Join(path, "instances"), nil, "", "is required")
	}
	at := yamltree.Join(path, "jobs")
	if v, ok := f["jobs"]; !ok || yamltree.IsNull(d.resolve(v)) {
		d.fail(at, nil, "", "is required (a list of jobs, [] for none)")
	}
	for i, e := range d.list(at, f["jobs"]) {
		g.Jobs = append(g.Jobs, d.job(yamltree.Index(at, i), e))
	}
	g.VMType = d.str(yamltree.Join(path, "vm_type"), f["vm_type"])
	if v, ok := f["vm_resources"]; ok && !yamltree.IsNull(d.resolve(v)) {
		g.VMResources = d.vmResources(yamltree.Join(path, "vm_resources"), v)
	}
	g.VMExtensions = d.strs(yamltree.Join(path, "vm_extensions"), f["vm_extensions"])
	g.Stemcell = d.str(yamltree.Join(path, "stemcell"), f["stemcell"])
	if v, ok := f["persistent_disk"]; ok && !yamltree.IsNull(d.resolve(v)) {
		if size, ok := d.integer(yamltree.Join(path, "persistent_disk"), v); ok {
			g.PersistentDisk = &size
		}
	}
	g.PersistentDiskType = d.str(yamltree.Join(path, "persistent_disk_type"), f["persistent_disk_type"])
	at = yamltree.Join(path, "persistent_disks")
	for i, e := range d.list(at, f["persistent_disks"]) {
		var pd PersistentDisk
		if pf, ok := d.fields(yamltree.Index(at, i), e, 2, "name", "type"); ok {
			pd.Name = d.str(yamltree.Join(yamltree.Index(at, i), "name"), pf["name"])
			pd.Type = d.str(yamltree.Join(yamltree.Index(at, i), "type"), pf["type"])
		}
		g.PersistentDisks = append(g.PersistentDisks, pd)
	}
	at = yamltree.Join(path, "networks")
	for i, e := range d.list(at, f["networks"]) {
		g.Networks = append(g.Networks, d.network(yamltree.Index(at, i), e))
	}
	if v, ok := f["update"]; ok && !yamltree.IsNull(d.resolve(v)) {
		g.Update = d.update(yamltree.Join(path, "update"), v)
	}
	at = yamltree.Join(path, "migrated_from")
	for i, e := range d.list(at, f["migrated_from"]) {
		var mf MigratedFrom
		if mff, ok := d.fields(yamltree.Index(at, i), e, 2, "name", "az"); ok {
			mf.Name = d.str(yamltree.Join(yamltree.Index(at, i), "name"), mff["name"])
			mf.AZ = d.str(yamltree.Join(yamltree.Index(at, i), "az"), mff["az"])
		}
		g.MigratedFrom = append(g.MigratedFrom, mf)
	}
	g.Env = d.freeMap(yamltree.Join(path, "env"), f["env"], 2)
	g.Properties = d.freeMap(yamltree.Join(path, "properties"), f["properties"], 2)
	return g
}

func (d *decoder) vmResources(path string, n *yaml.Node) *VMResources {
	r := &VMResources{}
	f, ok := d.fields(path, n, 2, "cpu", "ram", "ephemeral_disk_size")
	if !ok {
		return r
	}
	r.CPU, _ = d.integer(yamltree.Join(path, "cpu"), f["cpu"])
	r.RAM, _ = d.integer(yamltree.Join(path, "ram"), f["ram"])
	r.EphemeralDiskSize, _ = d.integer(yamltree.Join(path, "ephemeral_disk_size"), f["ephemeral_disk_size"])
	return r
}

func (d *decoder) job(path string, n *yaml.Node) Job {
	var j Job
	f, ok := d.fields(path, n, 2, "name", "release", "consumes", "provides", "custom_provider_definitions", "properties")
	if !ok {
		return j
	}
	j.Name = d.str(yamltree.Join(path, "name"), f["name"])
	j.Release = d.str(yamltree.Join(path, "release"), f["release"])
	j.Consumes = d.freeMap(yamltree.Join(path, "consumes"), f["consumes"], 3)
	j.Provides = d.freeMap(yamltree.Join(path, "provides"), f["provides"], 3)
	at := yamltree.Join(path, "custom_provider_definitions")
	for i, e := range d.list(at, f["custom_provider_definitions"]) {
		var c CustomProvider
		if cf, ok := d.fields(yamltree.Index(at, i), e, 3, "name", "type", "properties"); ok {
			c.Name = d.str(yamltree.Join(yamltree.Index(at, i), "name"), cf["name"])
			c.Type = d.str(yamltree.Join(yamltree.Index(at, i), "type"), cf["type"])
			c.Properties = d.strs(yamltree.Join(yamltree.Index(at, i), "properties"), cf["properties"])
		}
		j.CustomProviderDefinitions = append(j.CustomProviderDefinitions, c)
	}
	j.Properties = d.freeMap(yamltree.Join(path, "properties"), f["properties"], 3)
	return j
}

func (d *decoder) network(path string, n *yaml.Node) Network {
	var nw Network
	f, ok := d.fields(path, n, 2, "name", "static_ips", "default")
	if !ok {
		return nw
	}
	nw.Name = d.str(yamltree.Join(path, "name"), f["name"])
	// static_ips is a list, or one string (BOSH takes either).
	at := yamltree.Join(path, "static_ips")
	if v := d.resolve(f["static_ips"]); v != nil && v.Kind == yaml.ScalarNode && !yamltree.IsNull(v) {
		nw.StaticIPs = []string{d.str(at, v)}
	} else {
		nw.StaticIPs = d.strs(at, f["static_ips"])
	}
	nw.Default = d.strs(yamltree.Join(path, "default"), f["default"])
	return nw
}

func (d *decoder) addon(path string, n *yaml.Node) Addon {
	var a Addon
	f, ok := d.fields(path, n, 1, "name", "jobs", "properties", "include", "exclude")
	if !ok {
		return a
	}
	a.Name = d.str(yamltree.Join(path, "name"), f["name"])
	at := yamltree.Join(path, "jobs")
	for i, e := range d.list(at, f["jobs"]) {
		a.Jobs = append(a.Jobs, d.job(yamltree.Index(at, i), e))
	}
	a.Properties = d.freeMap(yamltree.Join(path, "properties"), f["properties"], 2)
	if v, ok := f["include"]; ok && !yamltree.IsNull(d.resolve(v)) {
		a.Include = d.rule(yamltree.Join(path, "include"), v)
	}
	if v, ok := f["exclude"]; ok && !yamltree.IsNull(d.resolve(v)) {
		a.Exclude = d.rule(yamltree.Join(path, "exclude"), v)
	}
	return a
}

func (d *decoder) rule(path string, n *yaml.Node) *PlacementRule {
	r := &PlacementRule{}
	f, ok := d.fields(path, n, 2, "deployments", "jobs", "instance_groups", "stemcell", "networks", "teams", "azs", "lifecycle")
	if !ok {
		return r
	}
	r.Deployments = d.strs(yamltree.Join(path, "deployments"), f["deployments"])
	at := yamltree.Join(path, "jobs")
	for i, e := range d.list(at, f["jobs"]) {
		var j JobRef
		if jf, ok := d.fields(yamltree.Index(at, i), e, 3, "name", "release"); ok {
			j.Name = d.str(yamltree.Join(yamltree.Index(at, i), "name"), jf["name"])
			j.Release = d.str(yamltree.Join(yamltree.Index(at, i), "release"), jf["release"])
		}
		r.Jobs = append(r.Jobs, j)
	}
	r.InstanceGroups = d.strs(yamltree.Join(path, "instance_groups"), f["instance_groups"])
	at = yamltree.Join(path, "stemcell")
	for i, e := range d.list(at, f["stemcell"]) {
		var s StemcellRule
		if sf, ok := d.fields(yamltree.Index(at, i), e, 3, "os"); ok {
			s.OS = d.str(yamltree.Join(yamltree.Index(at, i), "os"), sf["os"])
		}
		r.Stemcell = append(r.Stemcell, s)
	}
	r.Networks = d.strs(yamltree.Join(path, "networks"), f["networks"])
	r.Teams = d.strs(yamltree.Join(path, "teams"), f["teams"])
	r.AZs = d.strs(yamltree.Join(path, "azs"), f["azs"])
	r.Lifecycle = Lifecycle(d.str(yamltree.Join(path, "lifecycle"), f["lifecycle"]))
	return r
}

func (d *decoder) variable(path string, n *yaml.Node) Variable {
	var v Variable
	f, ok := d.fields(path, n, 1, "name", "type", "options", "consumes", "update_mode")
	if !ok {
		return v
	}
	v.Name = d.str(yamltree.Join(path, "name"), f["name"])
	v.Type = VariableType(d.str(yamltree.Join(path, "type"), f["type"]))
	v.Options = d.freeMap(yamltree.Join(path, "options"), f["options"], 2)
	v.Consumes = d.freeMap(yamltree.Join(path, "consumes"), f["consumes"], 2)
	v.UpdateMode = d.str(yamltree.Join(path, "update_mode"), f["update_mode"])
	return v
}

// tags reads a mapping of strings to strings.
func (d *decoder) tags(path string, n *yaml.Node) map[string]string {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "", "must be a mapping of strings, not %s", yamltree.Kind(n))
		return nil
	}
	var out map[string]string
	for _, p := range d.pairs(path, n, 1) {
		at := yamltree.Join(path, p.key.Value)
		d.lines[at] = p.key.Line
		v := d.resolve(p.val)
		if v == nil || v.Kind != yaml.ScalarNode || yamltree.IsNull(v) || v.ShortTag() == "!!bool" {
			if v != nil {
				d.fail(at, v, "", "a tag's value must be a string, not %s", yamltree.Kind(v))
			}
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[p.key.Value] = v.Value
	}
	return out
}
