package director

import (
	"fmt"
	"maps"
	"slices"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cloudconfig"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// placeAddons places the manifest's add-ons and the runtime config's (rc
// may be nil) on the instance groups, as the director does before it
// plans: an add-on's jobs join every group its include rule selects (every
// group when it has none) and its exclude rule does not; a job of
// an add-on with no properties of its own takes the add-on's. The runtime
// config's releases join the manifest's; one the manifest has at another
// version is an error, as is an add-on job a group has already. stemcellOS
// says a group's stemcell's OS. Every problem is reported at once; m is
// changed only when there is none.
func placeAddons(m *manifest.Manifest, rc *cloudconfig.RuntimeConfig, stemcellOS func(alias string) string) error {
	var ve kubefoundry.ValidationError
	ve.Object = "deployment " + m.Name + " add-ons"
	releases := slices.Clone(m.Releases)
	addons := slices.Clone(m.Addons)
	if rc != nil {
		for _, r := range rc.Releases {
			i := slices.IndexFunc(releases, func(have manifest.Release) bool { return have.Name == r.Name })
			switch {
			case i < 0:
				releases = append(releases, r)
			case releases[i].Version != r.Version:
				ve.Add("/releases/name="+r.Name, r.Version, "the runtime config wants version %s, the manifest %s", r.Version, releases[i].Version)
			}
		}
		addons = append(addons, rc.Addons...)
	}
	groups := slices.Clone(m.InstanceGroups)
	for i := range groups {
		groups[i].Jobs = slices.Clone(groups[i].Jobs)
	}
	for _, a := range addons {
		for gi := range groups {
			g := &groups[gi]
			if !selects(a.Include, m.Name, g, stemcellOS, true) || selects(a.Exclude, m.Name, g, stemcellOS, false) {
				continue
			}
			for _, j := range a.Jobs {
				if g.Job(j.Name) != nil {
					ve.Add(fmt.Sprintf("/addons/name=%s/jobs/name=%s", a.Name, j.Name), g.Name,
						"instance group %s has a job %s already: colocated jobs' names must be unique", g.Name, j.Name)
					continue
				}
				if j.Properties == nil && a.Properties != nil {
					j.Properties = a.Properties
				}
				g.Jobs = append(g.Jobs, j)
			}
		}
	}
	if err := ve.Err(); err != nil {
		return err
	}
	m.Releases, m.InstanceGroups, m.Addons = releases, groups, nil
	// The runtime config's tags join the manifest's; the manifest's win.
	if rc != nil && len(rc.Tags) > 0 {
		tags := maps.Clone(rc.Tags)
		maps.Copy(tags, m.Tags)
		m.Tags = tags
	}
	return nil
}

// selects says whether a placement rule selects a group, as BOSH's add-on
// filter does: no rule, or a rule with nothing in it, selects every group
// when it is an include rule (errand groups too) and none when it is an
// exclude rule; otherwise every list the rule has must match (any entry of
// it), lifecycle included when the rule names one.
func selects(r *manifest.PlacementRule, deployment string, g *manifest.InstanceGroup, stemcellOS func(string) string, include bool) bool {
	if r == nil || isEmptyRule(r) {
		return include
	}
	lifecycle := g.Lifecycle
	if lifecycle == "" {
		lifecycle = manifest.LifecycleService
	}
	if r.Lifecycle != "" && r.Lifecycle != lifecycle {
		return false
	}
	if len(r.Deployments) > 0 && !slices.Contains(r.Deployments, deployment) {
		return false
	}
	if len(r.Teams) > 0 {
		return false // deployments here have no teams
	}
	if len(r.InstanceGroups) > 0 && !slices.Contains(r.InstanceGroups, g.Name) {
		return false
	}
	if len(r.Jobs) > 0 && !slices.ContainsFunc(r.Jobs, func(j manifest.JobRef) bool {
		have := g.Job(j.Name)
		return have != nil && have.Release == j.Release
	}) {
		return false
	}
	if len(r.Stemcell) > 0 && !slices.ContainsFunc(r.Stemcell, func(s manifest.StemcellRule) bool { return s.OS == stemcellOS(g.Stemcell) }) {
		return false
	}
	if len(r.Networks) > 0 && !slices.ContainsFunc(g.Networks, func(n manifest.Network) bool { return slices.Contains(r.Networks, n.Name) }) {
		return false
	}
	if len(r.AZs) > 0 && !slices.ContainsFunc(g.AZs, func(az string) bool { return slices.Contains(r.AZs, az) }) {
		return false
	}
	return true
}

func isEmptyRule(r *manifest.PlacementRule) bool {
	return len(r.Deployments) == 0 && len(r.Jobs) == 0 && len(r.InstanceGroups) == 0 && len(r.Stemcell) == 0 &&
		len(r.Networks) == 0 && len(r.Teams) == 0 && len(r.AZs) == 0 && r.Lifecycle == ""
}

// stemcellOSOf says the OS of a manifest's stemcell alias: the alias's os,
// or that of the uploaded stemcells of its name.
func (d *Director) stemcellOSOf(m *manifest.Manifest) func(alias string) string {
	all, _ := d.cfg.Store.Stemcells()
	return func(alias string) string {
		s := m.Stemcell(alias)
		if s == nil {
			return ""
		}
		if s.OS != "" {
			return s.OS
		}
		for _, have := range all {
			if have.Name == s.Name {
				return have.OS
			}
		}
		return ""
	}
}
