package vspherecpi

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

// vmProps are the vSphere CPI's VM cloud_properties this CPI reads, as
// the director merges them from the az, the vm_type and the
// vm_extensions. Keys it does not know are left alone, as the vSphere CPI
// leaves them.
type vmProps struct {
	CPU  int32 // cpu
	RAM  int64 // ram, MB
	Disk int64 // disk: the ephemeral disk, MB
	// Datastores are the ephemeral datastores asked for: exact names, or
	// /regular expressions/.
	Datastores []datastorePattern
	// Datacenter is datacenters[0]: its name and the clusters to choose
	// among, in order.
	Datacenter string
	Clusters   []clusterProps
	VMGroup    string // vm_group
	NSXT       nsxtProps
}

type datastorePattern struct {
	name string         // an exact name, or
	re   *regexp.Regexp // a /pattern/
}

func (p datastorePattern) match(name string) bool {
	if p.re != nil {
		return p.re.MatchString(name)
	}
	return p.name == name
}

func (p datastorePattern) String() string {
	if p.re != nil {
		return "/" + p.re.String() + "/"
	}
	return p.name
}

// clusterProps are one entry of datacenters[0].clusters: {<cluster>:
// {resource_pool, drs_rules, host_group}}.
type clusterProps struct {
	Name          string
	Entry         string // the path of its entry, for errors
	Field         string // the path of its settings, for errors
	ResourcePool  string
	DRSRule       string // drs_rules[0].name, of type separate_vms
	HostGroup     string // host_group (a name, or {name, drs_rule})
	HostGroupMust bool   // host_group.drs_rule MUST; SHOULD otherwise
}

// nsxtProps are nsxt: ns_groups and lb.server_pools.
type nsxtProps struct {
	NSGroups    []string
	ServerPools []ServerPool
}

func (n nsxtProps) empty() bool { return len(n.NSGroups) == 0 && len(n.ServerPools) == 0 }

// The DRS rule type the vSphere CPI knows.
const separateVMs = "separate_vms"

// propsError is what invalid cloud_properties are: a CloudError for the
// director, whose message names every bad field, that also wraps the
// *kubefoundry.ValidationError (so errors.Is(err, kubefoundry.ErrInvalid)
// and errors.As to a *kubefoundry.FieldError work in Go).
type propsError struct {
	ce   *cpi.Error
	verr *kubefoundry.ValidationError
}

func (e *propsError) Error() string   { return e.ce.Error() }
func (e *propsError) Unwrap() []error { return []error{e.ce, e.verr} }

func invalidProps(v *kubefoundry.ValidationError) error {
	if v.Err() == nil {
		return nil
	}
	return &propsError{ce: &cpi.Error{Type: cpi.CloudError, Message: v.Error()}, verr: v}
}

// parseVMProps reads the cloud_properties, recording every problem in v.
func parseVMProps(p cpi.CloudProps, v *kubefoundry.ValidationError) vmProps {
	var out vmProps
	if n, ok := integer(v, "cpu", p["cpu"], 1, math.MaxInt32); ok {
		out.CPU = int32(n)
	}
	if n, ok := integer(v, "ram", p["ram"], 1, math.MaxInt32); ok {
		if n%4 != 0 {
			v.Add("ram", fmt.Sprint(n), "must be a multiple of 4 (MB)")
		}
		out.RAM = n
	}
	if n, ok := integer(v, "disk", p["disk"], 0, math.MaxInt32); ok {
		out.Disk = n
	}
	if raw, ok := p["datastores"]; ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			v.Add("datastores", "", "must be a list of datastore names or /patterns/")
		}
		for i, e := range list {
			f := fmt.Sprintf("datastores[%d]", i)
			switch e := e.(type) {
			case string:
				if e == "" {
					v.Add(f, "", "must not be empty")
					continue
				}
				if len(e) > 2 && strings.HasPrefix(e, "/") && strings.HasSuffix(e, "/") {
					re, err := regexp.Compile(e[1 : len(e)-1])
					if err != nil {
						v.Add(f, e, "not a regular expression: %v", err)
						continue
					}
					out.Datastores = append(out.Datastores, datastorePattern{re: re})
					continue
				}
				out.Datastores = append(out.Datastores, datastorePattern{name: e})
			case map[string]any:
				v.Add(f, "", "datastore clusters ({clusters: [...]}) are not supported by this CPI: name the datastores")
			default:
				v.Add(f, "", "must be a datastore name or a /pattern/")
			}
		}
	}
	parseDatacenters(p["datacenters"], v, &out)
	if raw, ok := p["vm_group"]; ok && raw != nil {
		if s, ok := raw.(string); !ok || s == "" {
			v.Add("vm_group", "", "must be the name of a VM group")
		} else {
			out.VMGroup = s
		}
	}
	out.NSXT = parseNSXT(p["nsxt"], v)
	return out
}

func parseDatacenters(raw any, v *kubefoundry.ValidationError, out *vmProps) {
	if raw == nil {
		return
	}
	dcs, ok := raw.([]any)
	if !ok {
		v.Add("datacenters", "", "must be a list of one datacenter")
		return
	}
	if len(dcs) > 1 {
		v.Add("datacenters", "", "must have only one datacenter, the CPI's, not %d", len(dcs))
	}
	if len(dcs) == 0 {
		return
	}
	dc, ok := dcs[0].(map[string]any)
	if !ok {
		v.Add("datacenters[0]", "", "must be {name, clusters}")
		return
	}
	if name, ok := dc["name"].(string); !ok || name == "" {
		v.Add("datacenters[0].name", "", "required")
	} else {
		out.Datacenter = name
	}
	cls, ok := dc["clusters"].([]any)
	if !ok || len(cls) == 0 {
		v.Add("datacenters[0].clusters", "", "required: a list of {<cluster>: {resource_pool, drs_rules, host_group}}")
		return
	}
	seen := map[string]bool{}
	for i, e := range cls {
		f := fmt.Sprintf("datacenters[0].clusters[%d]", i)
		m, ok := e.(map[string]any)
		if !ok || len(m) != 1 {
			v.Add(f, "", "must be {<cluster name>: {resource_pool, drs_rules, host_group}}")
			continue
		}
		for name, cfg := range m {
			if name == "" {
				v.Add(f, "", "the cluster name must not be empty")
				continue
			}
			if seen[name] {
				v.Add(f, name, "cluster listed twice")
			}
			seen[name] = true
			cl := parseCluster(f+"."+name, name, cfg, v)
			cl.Entry = f
			out.Clusters = append(out.Clusters, cl)
		}
	}
}

func parseCluster(f, name string, raw any, v *kubefoundry.ValidationError) clusterProps {
	cl := clusterProps{Name: name, Field: f}
	if raw == nil {
		return cl
	}
	cfg, ok := raw.(map[string]any)
	if !ok {
		v.Add(f, "", "must be {resource_pool, drs_rules, host_group}")
		return cl
	}
	if rp, ok := cfg["resource_pool"]; ok && rp != nil {
		if s, ok := rp.(string); !ok || s == "" {
			v.Add(f+".resource_pool", "", "must be the name of a resource pool")
		} else {
			cl.ResourcePool = s
		}
	}
	if raw, ok := cfg["drs_rules"]; ok && raw != nil {
		rules, ok := raw.([]any)
		switch {
		case !ok:
			v.Add(f+".drs_rules", "", "must be a list of one {name, type: separate_vms}")
		case len(rules) > 1:
			v.Add(f+".drs_rules", "", "only one DRS rule per cluster, not %d", len(rules))
		}
		for i, r := range rules {
			rf := fmt.Sprintf("%s.drs_rules[%d]", f, i)
			m, ok := r.(map[string]any)
			if !ok {
				v.Add(rf, "", "must be {name, type: separate_vms}")
				continue
			}
			n, _ := m["name"].(string)
			if n == "" {
				v.Add(rf+".name", "", "required")
			}
			switch t, _ := m["type"].(string); {
			case t == "":
				v.Add(rf+".type", "", "required: separate_vms")
			case t != separateVMs:
				v.Add(rf+".type", t, "only separate_vms is supported")
			}
			if i == 0 {
				cl.DRSRule = n
			}
		}
	}
	switch hg := cfg["host_group"].(type) {
	case nil:
	case string:
		if hg == "" {
			v.Add(f+".host_group", "", "must be a host group name or {name, drs_rule}")
		}
		cl.HostGroup = hg
	case map[string]any:
		n, _ := hg["name"].(string)
		if n == "" {
			v.Add(f+".host_group.name", "", "required")
		}
		cl.HostGroup = n
		// As the vSphere CPI: MUST in any case; anything else is SHOULD.
		r, _ := hg["drs_rule"].(string)
		cl.HostGroupMust = strings.EqualFold(strings.TrimSpace(r), "MUST")
	default:
		v.Add(f+".host_group", "", "must be a host group name or {name, drs_rule}")
	}
	return cl
}

func parseNSXT(raw any, v *kubefoundry.ValidationError) nsxtProps {
	var out nsxtProps
	if raw == nil {
		return out
	}
	m, ok := raw.(map[string]any)
	if !ok {
		v.Add("nsxt", "", "must be {ns_groups, lb: {server_pools}}")
		return out
	}
	if raw, ok := m["ns_groups"]; ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			v.Add("nsxt.ns_groups", "", "must be a list of group names")
		}
		for i, e := range list {
			s, ok := e.(string)
			if !ok || s == "" {
				v.Add(fmt.Sprintf("nsxt.ns_groups[%d]", i), "", "must be a group name")
				continue
			}
			if !slices.Contains(out.NSGroups, s) {
				out.NSGroups = append(out.NSGroups, s)
			}
		}
	}
	lb, ok := m["lb"]
	if !ok || lb == nil {
		return out
	}
	lbm, ok := lb.(map[string]any)
	if !ok {
		v.Add("nsxt.lb", "", "must be {server_pools}")
		return out
	}
	raw, ok = lbm["server_pools"]
	if !ok || raw == nil {
		return out
	}
	pools, ok := raw.([]any)
	if !ok {
		v.Add("nsxt.lb.server_pools", "", "must be a list of {name, port}")
		return out
	}
	for i, e := range pools {
		f := fmt.Sprintf("nsxt.lb.server_pools[%d]", i)
		pm, ok := e.(map[string]any)
		if !ok {
			v.Add(f, "", "must be {name, port}")
			continue
		}
		sp := ServerPool{}
		if sp.Name, _ = pm["name"].(string); sp.Name == "" {
			v.Add(f+".name", "", "required")
		}
		if n, ok := integer(v, f+".port", pm["port"], 1, 65535); ok {
			sp.Port = int(n)
		}
		out.ServerPools = append(out.ServerPools, sp)
	}
	return out
}

// integer reads an optional whole number in [min, max]; absent is (0,
// false), wrong is recorded in v.
func integer(v *kubefoundry.ValidationError, field string, raw any, lo, hi int64) (int64, bool) {
	var n int64
	switch x := raw.(type) {
	case nil:
		return 0, false
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			v.Add(field, fmt.Sprint(x), "must be a whole number")
			return 0, false
		}
		n = int64(x)
	case json.Number:
		var err error
		if n, err = x.Int64(); err != nil {
			v.Add(field, x.String(), "must be a whole number")
			return 0, false
		}
	default:
		v.Add(field, fmt.Sprint(raw), "must be a number")
		return 0, false
	}
	if n < lo || n > hi {
		v.Add(field, fmt.Sprint(n), "must be between %d and %d", lo, hi)
		return 0, false
	}
	return n, true
}
