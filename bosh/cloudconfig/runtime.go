package cloudconfig

import (
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// RuntimeConfig is a BOSH runtime config: add-ons the director places on
// the instance groups of every deployment their rules select, the
// releases they come from, the variables they use and tags for every VM.
// Its parts have the deployment manifest's types, so that a director
// merges them into a manifest as they are.
type RuntimeConfig struct {
	// Releases are the add-ons' releases, at exact versions.
	Releases []manifest.Release `json:"releases" yaml:"releases"`
	// Addons are placed where their include rules select and their
	// exclude rules do not; unlike a manifest's, their rules may name
	// deployments and teams.
	Addons    []manifest.Addon    `json:"addons,omitempty" yaml:"addons,omitempty"`
	Variables []manifest.Variable `json:"variables,omitempty" yaml:"variables,omitempty"`
	// Tags are added to every deployment's tags.
	Tags map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
}

// runtimeObject names a runtime config in a *kubefoundry.ValidationError.
const runtimeObject = "runtime config"

// ParseRuntime reads a runtime config and checks it (see
// RuntimeConfig.Validate), returning every problem at once as Parse does,
// at paths such as /addons/name=bosh-dns/jobs/name=bosh-dns/release.
func ParseRuntime(data []byte) (*RuntimeConfig, error) {
	return read(data, runtimeObject, runtimeHint, (*decoder).runtimeConfig, checkRuntime, (*RuntimeConfig).selectors)
}

// Validate checks a runtime config built or changed in Go by the rules
// ParseRuntime applies after reading: releases have names, unique, and
// exact versions (not latest); add-ons have unique names and jobs with a
// name and a release from releases; include and exclude rules name both
// name and release of a job, the os of a stemcell, and a lifecycle of
// service or errand; variables have unique names and a type BOSH
// generates. It returns every problem at once as a
// *kubefoundry.ValidationError; problems have no line.
func (r *RuntimeConfig) Validate() error {
	return yamltree.Finish(runtimeObject, checkRuntime(r, nil), nil, r.selectors())
}

func runtimeHint(path, key string) string {
	if path != "" {
		return ""
	}
	switch key {
	case "azs", "vm_types", "vm_extensions", "disk_types", "networks", "compilation":
		return ": it belongs in a cloud config"
	case "name", "stemcells", "update", "instance_groups", "features":
		return ": it belongs in a deployment manifest"
	}
	return ""
}

func (r *RuntimeConfig) selectors() yamltree.Selectors {
	s := yamltree.Selectors{}
	s.Add("/releases", "name", len(r.Releases), func(i int) string { return r.Releases[i].Name })
	s.Add("/addons", "name", len(r.Addons), func(i int) string { return r.Addons[i].Name })
	for i, a := range r.Addons {
		at := yamltree.Index("/addons", i)
		s.Add(at+"/jobs", "name", len(a.Jobs), func(k int) string { return a.Jobs[k].Name })
		for key, rule := range map[string]*manifest.PlacementRule{"/include": a.Include, "/exclude": a.Exclude} {
			if rule != nil {
				s.Add(at+key+"/jobs", "name", len(rule.Jobs), func(k int) string { return rule.Jobs[k].Name })
			}
		}
	}
	s.Add("/variables", "name", len(r.Variables), func(i int) string { return r.Variables[i].Name })
	return s
}

func (d *decoder) runtimeConfig(root *yaml.Node) *RuntimeConfig {
	r := &RuntimeConfig{}
	f, ok := d.Root(root, "releases", "addons", "variables", "tags")
	if !ok {
		return r
	}
	if _, ok := f["releases"]; !ok {
		d.FailAt("/releases", root.Line, "", "is required ([] when no add-on needs one)")
	}
	for i, e := range d.List("/releases", f["releases"]) {
		r.Releases = append(r.Releases, d.release(yamltree.Index("/releases", i), e))
	}
	for i, e := range d.List("/addons", f["addons"]) {
		r.Addons = append(r.Addons, d.addon(yamltree.Index("/addons", i), e))
	}
	for i, e := range d.List("/variables", f["variables"]) {
		r.Variables = append(r.Variables, d.variable(yamltree.Index("/variables", i), e))
	}
	r.Tags = d.StringMap("/tags", f["tags"], "")
	return r
}

func (d *decoder) release(path string, n *yaml.Node) manifest.Release {
	var r manifest.Release
	f, ok := d.Fields(path, n, 1, "name", "version", "url", "sha1", "stemcell", "exported_from")
	if !ok {
		return r
	}
	r.Name = d.Str(path+"/name", f["name"])
	r.Version = d.Str(path+"/version", f["version"])
	r.URL = d.Str(path+"/url", f["url"])
	r.SHA1 = d.Str(path+"/sha1", f["sha1"])
	if d.Present(f, "stemcell") {
		s := d.releaseStemcell(path+"/stemcell", f["stemcell"])
		r.Stemcell = &s
	}
	for i, e := range d.List(path+"/exported_from", f["exported_from"]) {
		r.ExportedFrom = append(r.ExportedFrom, d.releaseStemcell(yamltree.Index(path+"/exported_from", i), e))
	}
	return r
}

func (d *decoder) releaseStemcell(path string, n *yaml.Node) manifest.ReleaseStemcell {
	var s manifest.ReleaseStemcell
	if f, ok := d.Fields(path, n, 2, "os", "version"); ok {
		s = manifest.ReleaseStemcell{OS: d.Str(path+"/os", f["os"]), Version: d.Str(path+"/version", f["version"])}
	}
	return s
}

func (d *decoder) addon(path string, n *yaml.Node) manifest.Addon {
	var a manifest.Addon
	f, ok := d.Fields(path, n, 1, "name", "jobs", "properties", "include", "exclude")
	if !ok {
		return a
	}
	a.Name = d.Str(path+"/name", f["name"])
	for i, e := range d.List(path+"/jobs", f["jobs"]) {
		a.Jobs = append(a.Jobs, d.job(yamltree.Index(path+"/jobs", i), e))
	}
	a.Properties = d.free(path+"/properties", f["properties"], 2)
	if d.Present(f, "include") {
		a.Include = d.rule(path+"/include", f["include"])
	}
	if d.Present(f, "exclude") {
		a.Exclude = d.rule(path+"/exclude", f["exclude"])
	}
	return a
}

// job reads an add-on job with the keys the director takes for one.
func (d *decoder) job(path string, n *yaml.Node) manifest.Job {
	var j manifest.Job
	f, ok := d.Fields(path, n, 2, "name", "release", "properties", "consumes", "provides")
	if !ok {
		return j
	}
	j.Name = d.Str(path+"/name", f["name"])
	j.Release = d.Str(path+"/release", f["release"])
	j.Properties = d.free(path+"/properties", f["properties"], 3)
	j.Consumes = d.free(path+"/consumes", f["consumes"], 3)
	j.Provides = d.free(path+"/provides", f["provides"], 3)
	return j
}

func (d *decoder) rule(path string, n *yaml.Node) *manifest.PlacementRule {
	r := &manifest.PlacementRule{}
	f, ok := d.Fields(path, n, 2, "deployments", "jobs", "instance_groups", "stemcell", "networks", "teams", "azs", "lifecycle")
	if !ok {
		return r
	}
	r.Deployments = d.Strs(path+"/deployments", f["deployments"])
	for i, e := range d.List(path+"/jobs", f["jobs"]) {
		at := yamltree.Index(path+"/jobs", i)
		var j manifest.JobRef
		if g, ok := d.Fields(at, e, 3, "name", "release"); ok {
			j = manifest.JobRef{Name: d.Str(at+"/name", g["name"]), Release: d.Str(at+"/release", g["release"])}
		}
		r.Jobs = append(r.Jobs, j)
	}
	r.InstanceGroups = d.Strs(path+"/instance_groups", f["instance_groups"])
	for i, e := range d.List(path+"/stemcell", f["stemcell"]) {
		at := yamltree.Index(path+"/stemcell", i)
		var s manifest.StemcellRule
		if g, ok := d.Fields(at, e, 3, "os"); ok {
			s.OS = d.Str(at+"/os", g["os"])
		}
		r.Stemcell = append(r.Stemcell, s)
	}
	r.Networks = d.Strs(path+"/networks", f["networks"])
	r.Teams = d.Strs(path+"/teams", f["teams"])
	r.AZs = d.Strs(path+"/azs", f["azs"])
	r.Lifecycle = manifest.Lifecycle(d.Str(path+"/lifecycle", f["lifecycle"]))
	return r
}

func (d *decoder) variable(path string, n *yaml.Node) manifest.Variable {
	var v manifest.Variable
	f, ok := d.Fields(path, n, 1, "name", "type", "options", "consumes", "update_mode")
	if !ok {
		return v
	}
	v.Name = d.Str(path+"/name", f["name"])
	v.Type = manifest.VariableType(d.Str(path+"/type", f["type"]))
	v.Options = d.free(path+"/options", f["options"], 2)
	v.Consumes = d.free(path+"/consumes", f["consumes"], 2)
	v.UpdateMode = d.Str(path+"/update_mode", f["update_mode"])
	return v
}

// latest matches the versions the director refuses in a runtime config.
var latest = regexp.MustCompile(`(^|[._])latest$`)

// checkRuntime applies the rules of RuntimeConfig.Validate.
func checkRuntime(r *RuntimeConfig, unread func(string) bool) []kubefoundry.FieldError {
	k := newChecker(unread)
	releases := map[string]bool{}
	for i, rel := range r.Releases {
		at := yamltree.Index("/releases", i)
		k.Required(at+"/name", rel.Name)
		k.Unique(releases, at+"/name", rel.Name, "the release")
		switch {
		case rel.Version == "":
			k.Required(at+"/version", rel.Version)
		case latest.MatchString(rel.Version):
			k.Add(at+"/version", rel.Version, "a runtime config names an exact version, not latest")
		}
		if rel.Stemcell != nil {
			k.Required(at+"/stemcell/os", rel.Stemcell.OS)
			k.Required(at+"/stemcell/version", rel.Stemcell.Version)
		}
		for j, s := range rel.ExportedFrom {
			k.Required(yamltree.Index(at+"/exported_from", j)+"/os", s.OS)
			k.Required(yamltree.Index(at+"/exported_from", j)+"/version", s.Version)
		}
	}
	seen := map[string]bool{}
	for i := range r.Addons {
		at, a := yamltree.Index("/addons", i), &r.Addons[i]
		k.Required(at+"/name", a.Name)
		k.Unique(seen, at+"/name", a.Name, "the add-on")
		jobs := map[string]bool{}
		for j, job := range a.Jobs {
			jat := yamltree.Index(at+"/jobs", j)
			k.Required(jat+"/name", job.Name)
			k.Unique(jobs, jat+"/name", job.Name, "the job in this add-on")
			switch {
			case job.Release == "":
				k.Required(jat+"/release", job.Release)
			case !releases[job.Release] && !k.Unread("/releases"):
				k.Add(jat+"/release", job.Release, "is not a release in this runtime config's releases")
			}
		}
		k.rule(at+"/include", a.Include)
		k.rule(at+"/exclude", a.Exclude)
	}
	seen = map[string]bool{}
	for i, v := range r.Variables {
		at := yamltree.Index("/variables", i)
		k.Required(at+"/name", v.Name)
		k.Unique(seen, at+"/name", v.Name, "the variable")
		switch v.Type {
		case "":
			k.Add(at+"/type", "", "is required (password, certificate, ssh, rsa or user)")
		case manifest.VariablePassword, manifest.VariableCertificate, manifest.VariableSSH,
			manifest.VariableRSA, manifest.VariableUser:
		default:
			k.Add(at+"/type", string(v.Type), "must be password, certificate, ssh, rsa or user")
		}
	}
	return k.Problems
}

func (k *checker) rule(at string, r *manifest.PlacementRule) {
	if r == nil {
		return
	}
	for i, j := range r.Jobs {
		k.Required(yamltree.Index(at+"/jobs", i)+"/name", j.Name)
		k.Required(yamltree.Index(at+"/jobs", i)+"/release", j.Release)
	}
	for i, s := range r.Stemcell {
		k.Required(yamltree.Index(at+"/stemcell", i)+"/os", s.OS)
	}
	switch r.Lifecycle {
	case "", manifest.LifecycleService, manifest.LifecycleErrand:
	default:
		k.Add(at+"/lifecycle", string(r.Lifecycle), "must be service or errand")
	}
}
