package links

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/template"
)

// Specs returns the spec of a release's job, as the director has it from
// the uploaded release.
type Specs func(releaseName, job string) (*release.JobSpec, error)

// Provider is a link some job provides: declared in its spec's provides
// (or in the manifest's custom_provider_definitions), named in the
// deployment by its alias.
type Provider struct {
	Deployment string
	Group      string // instance group
	Job        string
	// Name is the link's name in the job's spec; Alias the name consumers
	// use with from: (provides: {name: {as: alias}}), Name when not
	// aliased.
	Name, Alias string
	Type        string
	// Shared providers can be consumed from other deployments.
	Shared bool
	// Properties are the job properties the link shares.
	Properties []string
	// Custom is set for a custom_provider_definitions entry.
	Custom bool
}

func (p *Provider) String() string {
	return fmt.Sprintf("%s/%s/%s (%s, type %s)", p.Deployment, p.Group, p.Job, p.Alias, p.Type)
}

// Binding is what one consumed link of a job resolved to: a provider, a
// manual link written in the manifest, or nothing (an optional link with
// no provider, or a link the manifest sets to nil).
type Binding struct {
	// Name and Type are the consumed link's, from the consuming job's spec.
	Name, Type string
	Optional   bool
	Provider   *Provider
	Manual     *Manual
	// Network is the provider's network to address its instances on
	// (consumes: {name: {network: ...}}); empty for its default network.
	Network string
	// IPAddresses asks for the provider's IPs rather than DNS names
	// (consumes: {name: {ip_addresses: true}}).
	IPAddresses bool
}

// Manual is a link written in the manifest (consumes: {name: {instances:
// [...], properties: {...}, address: ...}}) instead of being resolved.
type Manual struct {
	Instances  []template.LinkInstance
	Properties map[string]any
	Address    string
}

// Key names a job on an instance group.
type Key struct{ Group, Job string }

// Links is a deployment's resolved links.
type Links struct {
	// Providers lists every link the deployment provides, in manifest order.
	Providers []*Provider
	// Bindings holds every consumed link of every job by the job's key and
	// the link's name.
	Bindings map[Key]map[string]*Binding
}

// For returns the bindings of a job's consumed links.
func (l *Links) For(group, job string) map[string]*Binding { return l.Bindings[Key{group, job}] }

// Shared returns the providers other deployments may consume.
func (l *Links) Shared() []*Provider {
	var out []*Provider
	for _, p := range l.Providers {
		if p.Shared {
			out = append(out, p)
		}
	}
	return out
}

// Resolve binds every link every job of the manifest's instance groups
// consumes, as the director does:
//
//   - consumes: {name: {from: alias}} takes the provider of that alias (and
//     of the link's type); with deployment: other, a shared provider of
//     that deployment from shared.
//   - otherwise the one provider of the link's type in the deployment;
//     several are an error naming them (say which with from:).
//   - an optional link with no provider, or set to nil in the manifest,
//     binds to nothing; a required one is an error.
//   - consumes: {name: {instances: [...], properties: ...}} is a manual
//     link, taken as written.
//
// Providers come from the jobs' specs, renamed by provides: {name: {as:
// alias, shared: true}}, left out by provides: {name: nil}, and from
// custom_provider_definitions. Every problem is reported at once at its
// manifest path (instance_groups/name=web/jobs/name=api/consumes/db).
// Add-on jobs are bound once they are placed on instance groups.
func Resolve(m *manifest.Manifest, specs Specs, shared []*Provider) (*Links, error) {
	var verr kubefoundry.ValidationError
	l := &Links{Bindings: map[Key]map[string]*Binding{}}
	jobSpecs := map[Key]*release.JobSpec{}

	// Providers first: every job's provides, aliased or blocked.
	for gi := range m.InstanceGroups {
		g := &m.InstanceGroups[gi]
		for ji := range g.Jobs {
			j := &g.Jobs[ji]
			path := fmt.Sprintf("instance_groups/name=%s/jobs/name=%s", g.Name, j.Name)
			spec, err := specs(j.Release, j.Name)
			if err != nil {
				verr.Add(path, "", "release %q job %q: %v", j.Release, j.Name, err)
				continue
			}
			jobSpecs[Key{g.Name, j.Name}] = spec
			l.Providers = append(l.Providers, providers(m.Name, g.Name, j, spec, path, &verr)...)
		}
	}

	for gi := range m.InstanceGroups {
		g := &m.InstanceGroups[gi]
		for ji := range g.Jobs {
			j := &g.Jobs[ji]
			spec := jobSpecs[Key{g.Name, j.Name}]
			if spec == nil {
				continue
			}
			path := fmt.Sprintf("instance_groups/name=%s/jobs/name=%s/consumes", g.Name, j.Name)
			declared := map[string]bool{}
			bindings := map[string]*Binding{}
			for _, c := range spec.Consumes {
				declared[c.Name] = true
				b, problem := bind(m.Name, c, j.Consumes, l.Providers, shared)
				if problem != "" {
					verr.Add(path+"/"+c.Name, "", "%s", problem)
					continue
				}
				bindings[c.Name] = b
			}
			for _, name := range sortedKeys(j.Consumes) {
				if !declared[name] {
					verr.Add(path+"/"+name, "", "job %q does not consume a link %q (its spec consumes: %s)", j.Name, name, names(spec.Consumes))
				}
			}
			l.Bindings[Key{g.Name, j.Name}] = bindings
		}
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	return l, nil
}

// providers lists what one job provides.
func providers(deployment, group string, j *manifest.Job, spec *release.JobSpec, path string, verr *kubefoundry.ValidationError) []*Provider {
	var out []*Provider
	declared := map[string]bool{}
	add := func(link release.Link, custom bool) {
		declared[link.Name] = true
		p := &Provider{Deployment: deployment, Group: group, Job: j.Name, Name: link.Name, Alias: link.Name,
			Type: link.Type, Properties: link.Properties, Custom: custom}
		raw, set := j.Provides[link.Name]
		if set {
			if isNil(raw) {
				return // provides: {name: nil} blocks the link
			}
			opts, ok := raw.(map[string]any)
			if !ok {
				verr.Add(path+"/provides/"+link.Name, "", "must be a mapping (as, shared) or nil, not %T", raw)
				return
			}
			for k, v := range opts {
				switch k {
				case "as":
					s, ok := v.(string)
					if !ok || s == "" {
						verr.Add(path+"/provides/"+link.Name+"/as", "", "must be a non-empty string")
						continue
					}
					p.Alias = s
				case "shared":
					b, ok := v.(bool)
					if !ok {
						verr.Add(path+"/provides/"+link.Name+"/shared", "", "must be true or false")
						continue
					}
					p.Shared = b
				default:
					verr.Add(path+"/provides/"+link.Name+"/"+k, "", "unknown key %q (as, shared)", k)
				}
			}
		}
		out = append(out, p)
	}
	for _, link := range spec.Provides {
		add(link, false)
	}
	for i, c := range j.CustomProviderDefinitions {
		if declared[c.Name] {
			verr.Add(fmt.Sprintf("%s/custom_provider_definitions/%d/name", path, i), c.Name,
				"job %q already provides a link %q", j.Name, c.Name)
			continue
		}
		add(release.Link{Name: c.Name, Type: c.Type, Properties: c.Properties}, true)
	}
	for _, name := range sortedKeys(j.Provides) {
		if !declared[name] {
			verr.Add(path+"/provides/"+name, "", "job %q does not provide a link %q (its spec provides: %s)", j.Name, name, names(spec.Provides))
		}
	}
	return out
}

// bind resolves one consumed link; a non-empty problem says why it can't.
func bind(deployment string, c release.Link, consumes map[string]any, local, shared []*Provider) (*Binding, string) {
	b := &Binding{Name: c.Name, Type: c.Type, Optional: c.Optional}
	raw, set := consumes[c.Name]
	if set && isNil(raw) {
		if !c.Optional {
			return nil, fmt.Sprintf("link %q (type %s) is not optional and the manifest sets it to nil", c.Name, c.Type)
		}
		return b, ""
	}
	var from, fromDeployment string
	if set {
		opts, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Sprintf("must be a mapping (from, deployment, network, ip_addresses, or instances and properties for a manual link) or nil, not %T", raw)
		}
		var problems []string
		manual := &Manual{}
		isManual := false
		for _, k := range sortedKeys(opts) {
			v := opts[k]
			switch k {
			case "from":
				from, _ = v.(string)
				if from == "" {
					problems = append(problems, "from: must be a non-empty string")
				}
			case "deployment":
				fromDeployment, _ = v.(string)
				if fromDeployment == "" {
					problems = append(problems, "deployment: must be a non-empty string")
				}
			case "network":
				b.Network, _ = v.(string)
				if b.Network == "" {
					problems = append(problems, "network: must be a non-empty string")
				}
			case "ip_addresses":
				ip, ok := v.(bool)
				if !ok {
					problems = append(problems, "ip_addresses: must be true or false")
				}
				b.IPAddresses = ip
			case "instances":
				isManual = true
				list, ok := v.([]any)
				if !ok {
					problems = append(problems, "instances: must be a list")
					continue
				}
				for i, e := range list {
					inst, ok := e.(map[string]any)
					addr, _ := inst["address"].(string)
					if !ok || addr == "" {
						problems = append(problems, fmt.Sprintf("instances/%d: needs an address", i))
						continue
					}
					manual.Instances = append(manual.Instances, template.LinkInstance{Address: addr, Index: i})
				}
			case "properties":
				isManual = true
				p, ok := v.(map[string]any)
				if !ok && v != nil {
					problems = append(problems, "properties: must be a mapping")
				}
				manual.Properties = p
			case "address":
				isManual = true
				manual.Address, _ = v.(string)
			default:
				problems = append(problems, fmt.Sprintf("unknown key %q", k))
			}
		}
		if len(problems) > 0 {
			return nil, strings.Join(problems, "; ")
		}
		if isManual {
			if from != "" {
				return nil, "a manual link (instances, properties, address) cannot also name a provider with from:"
			}
			b.Manual = manual
			return b, ""
		}
	}

	candidates := local
	where := "deployment " + deployment
	if fromDeployment != "" && fromDeployment != deployment {
		candidates = nil
		for _, p := range shared {
			if p.Deployment == fromDeployment {
				candidates = append(candidates, p)
			}
		}
		where = "deployment " + fromDeployment + "'s shared links"
	}
	var found []*Provider
	for _, p := range candidates {
		if p.Type == c.Type && (from == "" || p.Alias == from) {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 1:
		if fromDeployment != "" && fromDeployment != deployment && !found[0].Shared {
			return nil, fmt.Sprintf("provider %s is not shared", found[0])
		}
		b.Provider = found[0]
		return b, ""
	case len(found) > 1:
		list := make([]string, len(found))
		for i, p := range found {
			list[i] = p.String()
		}
		return nil, fmt.Sprintf("link %q (type %s): %d providers in %s (%s); say which with from:", c.Name, c.Type, len(found), where, strings.Join(list, ", "))
	case from != "":
		for _, p := range candidates {
			if p.Alias == from {
				return nil, fmt.Sprintf("link %q wants type %s, and %s provides %q with type %s", c.Name, c.Type, p.Group+"/"+p.Job, from, p.Type)
			}
		}
		return nil, fmt.Sprintf("link %q: no provider %q in %s", c.Name, from, where)
	case c.Optional:
		return b, ""
	}
	return nil, fmt.Sprintf("link %q (type %s): no provider of that type in %s", c.Name, c.Type, where)
}

// Link makes the link a template sees from a binding: the provider's
// instances (as the caller places them, on the binding's network) and the
// properties it shares, taken from the providing job's properties (as
// template.Properties binds them). A nil binding or one bound to nothing
// gives nil (if_link's else branch).
func (b *Binding) Link(instances []template.LinkInstance, providerProperties map[string]any, defaultNetwork string, azIDs map[string]int) *template.Link {
	switch {
	case b == nil:
		return nil
	case b.Manual != nil:
		return &template.Link{Instances: b.Manual.Instances, Properties: b.Manual.Properties, Address: b.Manual.Address}
	case b.Provider == nil:
		return nil
	}
	p := b.Provider
	props := map[string]any{}
	for _, name := range p.Properties {
		if v, ok := dig(providerProperties, name); ok {
			put(props, name, v)
		}
	}
	network := b.Network
	if network == "" {
		network = defaultNetwork
	}
	return &template.Link{
		InstanceGroup: p.Group, DefaultNetwork: network, DeploymentName: p.Deployment,
		Instances: instances, Properties: props, AZIDs: azIDs,
	}
}

// isNil reports a manifest's nil: YAML's null, or the word nil that BOSH's
// documentation writes (which YAML reads as a string).
func isNil(v any) bool { return v == nil || v == "nil" }

func dig(m map[string]any, name string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(name, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

func put(m map[string]any, name string, v any) {
	keys := strings.Split(name, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

func names(links []release.Link) string {
	if len(links) == 0 {
		return "none"
	}
	s := make([]string, len(links))
	for i, l := range links {
		s[i] = l.Name
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
