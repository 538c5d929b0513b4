package nsxt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/bindings"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data/serializers/cleanjson"
	nsx "github.com/vmware/vsphere-automation-sdk-go/services/nsxt"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/workpool"
)

// Action is what a plan does to one object.
type Action string

// The actions of a plan.
const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Change is one object a plan creates, updates or deletes.
type Change struct {
	Action Action
	Path   string
	Type   string   // NSX resource_type
	Fields []string // for an update, the fields that differ
}

func (c Change) String() string {
	s := fmt.Sprintf("%-6s %s %s", c.Action, c.Type, c.Path)
	if len(c.Fields) > 0 {
		s += " (" + strings.Join(c.Fields, ", ") + ")"
	}
	return s
}

// Plan is the difference between a Topology and what NSX holds. Allocate
// runs first: NSX computes subnets and addresses, which the Configure
// stage needs. Each non-empty stage is one hierarchical PATCH of /infra.
type Plan struct {
	ClusterID string
	Allocate  []Change
	Configure []Change

	allocate  []pending
	configure []pending
}

// pending is a change with what the tree needs to send it.
type pending struct {
	Change
	obj      map[string]any // the body to send; nil for a delete
	revision *int64
}

// Empty reports whether applying the plan would write nothing.
func (p *Plan) Empty() bool { return len(p.Allocate) == 0 && len(p.Configure) == 0 }

// Changes lists both stages in order.
func (p *Plan) Changes() []Change { return append(append([]Change{}, p.Allocate...), p.Configure...) }

// String prints one change per line.
func (p *Plan) String() string {
	var b strings.Builder
	for _, c := range p.Changes() {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// toMap turns a DataValue into plain JSON values.
func toMap(dv data.DataValue) (map[string]any, error) {
	js, err := cleanjson.NewDataValueToJsonEncoder().Encode(dv)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(strings.NewReader(js))
	d.UseNumber()
	var m map[string]any
	return m, d.Decode(&m)
}

// intentMap converts a desired model value through its SDK binding.
func intentMap(in intent) (map[string]any, error) {
	bt, ok := bindingOf[in.rtype]
	if !ok {
		return nil, fmt.Errorf("nsxt: no binding for %s", in.rtype)
	}
	dv, errs := bindings.NewTypeConverter().ConvertToVapi(in.obj, bt())
	if len(errs) > 0 {
		return nil, fmt.Errorf("nsxt: %s %s: %w", in.rtype, in.path, bindings.VAPIerrorsToError(errs))
	}
	return toMap(dv)
}

// diff compares desired intents with what NSX holds: absent ones are
// created; present ones are updated when a field the package sets differs.
func diff(want []intent, cur current) ([]pending, error) {
	var out []pending
	var bad kubefoundry.ValidationError // every allocation asked to change
	for _, in := range want {
		m, err := intentMap(in)
		if err != nil {
			return nil, err
		}
		have, ok := cur[in.path]
		if !ok {
			out = append(out, pending{Change: Change{Action: Create, Path: in.path, Type: in.rtype}, obj: m})
			continue
		}
		var fields []string
		for k, v := range m {
			if k == "resource_type" || k == "id" {
				continue
			}
			if !subset(v, have[k]) {
				fields = append(fields, k)
			}
		}
		if len(fields) == 0 {
			continue
		}
		sort.Strings(fields)
		if in.ipam && in.rtype != "IpAddressPool" {
			// NSX allocates once: a subnet's size and block, an address,
			// cannot change in place.
			obj, field := immutableField(in.rtype)
			if bad.Object == "" {
				bad.Object = "nsxt." + obj
			}
			bad.Add(obj+"."+field, in.path,
				"cannot change once NSX has allocated it (%s differs); delete the cluster or namespace network first", strings.Join(fields, ", "))
			continue
		}
		var rev *int64
		if n, ok := have["_revision"].(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				rev = &i
			}
		}
		out = append(out, pending{Change: Change{Action: Update, Path: in.path, Type: in.rtype, Fields: fields}, obj: m, revision: rev})
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// immutableField names the spec field behind an allocation: a subnet's
// size (Topology) or a Service's address (LoadBalancer).
func immutableField(rtype string) (object, field string) {
	if rtype == "IpAddressPoolBlockSubnet" {
		return "Topology", "NodeSubnetSize/NamespaceSubnetSize"
	}
	return "LoadBalancer", "IP"
}

// subset reports whether have holds everything want says: maps may carry
// more keys in have (fields NSX fills in, such as the ids and paths of
// nested expressions), lists must match element by element.
func subset(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !subset(v, h[k]) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !subset(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(want, have)
	}
}

// deletions lists the owned objects that no intent keeps.
func deletions(keep map[string]bool, cur current) []pending {
	var out []pending
	for p, m := range cur {
		if keep[p] {
			continue
		}
		rt, _ := m["resource_type"].(string)
		out = append(out, pending{Change: Change{Action: Delete, Path: p, Type: rt}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// bindingOf is the SDK binding of every type the package writes.
var bindingOf = map[string]func() bindings.BindingType{
	"Tier1":                    model.Tier1BindingType,
	"LocaleServices":           model.LocaleServicesBindingType,
	"Segment":                  model.SegmentBindingType,
	"SegmentPort":              model.SegmentPortBindingType,
	"PolicyNat":                model.PolicyNatBindingType,
	"PolicyNatRule":            model.PolicyNatRuleBindingType,
	"LBService":                model.LBServiceBindingType,
	"LBPool":                   model.LBPoolBindingType,
	"LBVirtualServer":          model.LBVirtualServerBindingType,
	"Group":                    model.GroupBindingType,
	"SecurityPolicy":           model.SecurityPolicyBindingType,
	"Rule":                     model.RuleBindingType,
	"IpAddressPool":            model.IpAddressPoolBindingType,
	"IpAddressPoolBlockSubnet": model.IpAddressPoolBlockSubnetBindingType,
	"IpAddressAllocation":      model.IpAddressAllocationBindingType,
}

// wrapperOf is the hierarchical API's Child* wrapper of each type.
var wrapperOf = map[string]string{
	"Tier0": "ChildTier0", "Tier1": "ChildTier1", "LocaleServices": "ChildLocaleServices",
	"Segment": "ChildSegment", "SegmentPort": "ChildSegmentPort", "PolicyNat": "ChildPolicyNat", "PolicyNatRule": "ChildPolicyNatRule",
	"LBService": "ChildLBService", "LBPool": "ChildLBPool", "LBVirtualServer": "ChildLBVirtualServer",
	"Domain": "ChildDomain", "Group": "ChildGroup", "SecurityPolicy": "ChildSecurityPolicy", "Rule": "ChildRule",
	"IpAddressPool": "ChildIpAddressPool", "IpAddressPoolBlockSubnet": "ChildIpAddressPoolSubnet",
	"IpAddressAllocation": "ChildIpAddressAllocation",
}

// typeOfSegment names the resource type behind a collection, for
// ChildResourceReference to a parent the plan does not change.
var typeOfSegment = map[string]string{
	"tier-0s": "Tier0", "tier-1s": "Tier1", "segments": "Segment", "nat": "PolicyNat", "domains": "Domain",
	"security-policies": "SecurityPolicy", "ip-pools": "IpAddressPool", "locale-services": "LocaleServices",
}

// tree builds the hierarchical body for changes: each object sits under
// its parent path; parents the plan does not touch are
// ChildResourceReference nodes.
func tree(changes []pending) (model.Infra, error) {
	type node struct {
		path     string
		change   *pending
		children []string
	}
	nodes := map[string]*node{"/infra": {path: "/infra"}}
	var ensure func(p string) *node
	ensure = func(p string) *node {
		if n, ok := nodes[p]; ok {
			return n
		}
		n := &node{path: p}
		nodes[p] = n
		parent := parentPath(p)
		pn := ensure(parent)
		pn.children = append(pn.children, p)
		return n
	}
	for i := range changes {
		ensure(changes[i].Path).change = &changes[i]
	}
	var build func(n *node) (*data.StructValue, error)
	build = func(n *node) (*data.StructValue, error) {
		sort.Strings(n.children)
		kids := data.NewListValue()
		for _, c := range n.children {
			sv, err := build(nodes[c])
			if err != nil {
				return nil, err
			}
			kids.Add(sv)
		}
		_, collection, id := splitPath(n.path)
		if n.change == nil {
			target, ok := typeOfSegment[collection]
			if !ok {
				return nil, fmt.Errorf("nsxt: no parent type for %s", n.path)
			}
			return data.NewStructValue("child_resource_reference", map[string]data.DataValue{
				"resource_type": data.NewStringValue("ChildResourceReference"),
				"target_type":   data.NewStringValue(target),
				"id":            data.NewStringValue(id),
				"children":      kids,
			}), nil
		}
		ch := n.change
		wrapper := wrapperOf[ch.Type]
		if wrapper == "" {
			return nil, fmt.Errorf("nsxt: no hierarchical wrapper for %s %s", ch.Type, ch.Path)
		}
		body := ch.obj
		if ch.Action == Delete {
			body = map[string]any{"id": id, "resource_type": ch.Type}
		}
		inner, err := fromMap(body, ch.Type)
		if err != nil {
			return nil, fmt.Errorf("nsxt: %s %s: %w", ch.Type, ch.Path, err)
		}
		if ch.revision != nil {
			inner.SetField("_revision", data.NewIntegerValue(*ch.revision))
		}
		if len(n.children) > 0 {
			inner.SetField("children", kids)
		}
		if ch.Action == Delete {
			inner.SetField("marked_for_delete", data.NewBooleanValue(true))
		}
		return data.NewStructValue(strings.ToLower(wrapper), map[string]data.DataValue{
			"resource_type":                      data.NewStringValue(wrapper),
			strings.TrimPrefix(wrapper, "Child"): inner,
			"marked_for_delete":                  data.NewBooleanValue(ch.Action == Delete),
		}), nil
	}
	root := nodes["/infra"]
	infra := model.Infra{ResourceType: ptr("Infra")}
	sort.Strings(root.children)
	for _, c := range root.children {
		sv, err := build(nodes[c])
		if err != nil {
			return infra, err
		}
		infra.Children = append(infra.Children, sv)
	}
	return infra, nil
}

// fromMap turns a JSON body into a StructValue checked by its binding.
func fromMap(m map[string]any, rtype string) (*data.StructValue, error) {
	dv, err := cleanjson.NewJsonToDataValueDecoder().Decode(m)
	if err != nil {
		return nil, err
	}
	if bt, ok := bindingOf[rtype]; ok {
		tc := bindings.NewTypeConverter()
		g, errs := tc.ConvertToGolang(dv, bt())
		if len(errs) > 0 {
			return nil, bindings.VAPIerrorsToError(errs)
		}
		if dv, errs = tc.ConvertToVapi(g, bt()); len(errs) > 0 {
			return nil, bindings.VAPIerrorsToError(errs)
		}
	}
	sv, ok := dv.(*data.StructValue)
	if !ok {
		return nil, fmt.Errorf("not an object")
	}
	return sv, nil
}

// patch sends one hierarchical PATCH of /infra with revision checks on.
// Updates carry the _revision read from the object itself just before:
// the search index may still show an older one.
func (c *Client) patch(ctx context.Context, changes []pending) error {
	if len(changes) == 0 {
		return nil
	}
	if err := c.freshRevisions(ctx, changes); err != nil {
		return err
	}
	infra, err := tree(changes)
	if err != nil {
		return err
	}
	conn, cause := c.connector(ctx)
	err = nsx.NewInfraClient(conn).Patch(infra, ptr(true))
	return apiError("patch /infra", err, cause.get())
}

// freshRevisions reads the current _revision of every object an update
// changes, with a GET of the object (consistent, unlike the search index),
// at bounded concurrency.
func (c *Client) freshRevisions(ctx context.Context, changes []pending) error {
	var idx []int
	for i := range changes {
		if changes[i].Action == Update {
			idx = append(idx, i)
		}
	}
	errs := make([]error, len(idx))
	workpool.Run(ctx, 8, len(idx), func(j int) {
		ch := &changes[idx[j]]
		rev, err := c.revision(ctx, ch.Path)
		if err != nil {
			errs[j] = err
			return
		}
		ch.revision = &rev
	}, func(j int, err error) { errs[j] = err })
	return errors.Join(errs...)
}

func parentPath(p string) string {
	parent, _, _ := splitPath(p)
	return parent
}

// splitPath splits /infra/tier-1s/t1/segments/s into /infra/tier-1s/t1,
// segments and s.
func splitPath(path string) (parent, collection, id string) {
	i := strings.LastIndex(path, "/")
	if i <= 0 {
		return "", "", path
	}
	id = path[i+1:]
	rest := path[:i]
	j := strings.LastIndex(rest, "/")
	if j < 0 {
		return "", rest, id
	}
	return rest[:j], rest[j+1:], id
}
