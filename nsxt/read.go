package nsxt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/search"

	"github.com/kubefoundry/kubefoundry/internal/workpool"
)

// current is what NSX holds for a cluster: its owned objects by path.
type current map[string]map[string]any

// owned reads every object tagged with the cluster (and namespace, when
// not empty) through the search API.
func (c *Client) owned(ctx context.Context, clusterID, namespace string) (current, error) {
	q := fmt.Sprintf("tags.scope:%s AND tags.tag:%s", escape(TagCluster), escape(clusterID))
	if namespace != "" {
		q += " AND tags.tag:" + escape(namespace)
	}
	res, err := searchAll(ctx, c, q)
	if err != nil {
		return nil, err
	}
	out := current{}
	for _, m := range res {
		if hasTag(m, TagCluster, clusterID) && (namespace == "" || hasTag(m, TagNamespace, namespace)) {
			if p, _ := m["path"].(string); p != "" {
				out[p] = m
			}
		}
	}
	return out, nil
}

// searchAll runs a search query through every page. What NSX has deleted
// and not purged yet is left out: the search shows it, marked_for_delete,
// where GET and lists do not.
func searchAll(ctx context.Context, c *Client, q string) ([]map[string]any, error) {
	var out []map[string]any
	q += " AND marked_for_delete:false"
	conn, cause := c.connector(ctx)
	qc := search.NewQueryClient(conn)
	var cursor *string
	for {
		res, err := qc.List(q, cursor, nil, ptr(int64(1000)), nil, nil)
		if err != nil {
			return nil, apiError("search "+q, err, cause.get())
		}
		for _, sv := range res.Results {
			m, err := toMap(sv)
			if err != nil {
				return nil, fmt.Errorf("nsxt: decoding a search result: %w", err)
			}
			if marked, _ := m["marked_for_delete"].(bool); !marked {
				out = append(out, m)
			}
		}
		if res.Cursor == nil || *res.Cursor == "" || len(res.Results) == 0 {
			return out, nil
		}
		cursor = res.Cursor
	}
}

// escape escapes the characters NSX's search syntax reserves.
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`+-&|!(){}[]^"~*?:\/ `, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hasTag(m map[string]any, scope, tag string) bool {
	list, _ := m["tags"].([]any)
	for _, t := range list {
		tm, _ := t.(map[string]any)
		if tm["scope"] == scope && tm["tag"] == tag {
			return true
		}
	}
	return false
}

// tagValue is the tag of the first tag with scope, or "".
func tagValue(m map[string]any, scope string) string {
	list, _ := m["tags"].([]any)
	for _, t := range list {
		if tm, _ := t.(map[string]any); tm["scope"] == scope {
			s, _ := tm["tag"].(string)
			return s
		}
	}
	return ""
}

// tagValues are the tags of every tag with scope.
func tagValues(m map[string]any, scope string) []string {
	var out []string
	list, _ := m["tags"].([]any)
	for _, t := range list {
		if tm, _ := t.(map[string]any); tm["scope"] == scope {
			if s, _ := tm["tag"].(string); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func hasScope(m map[string]any, scope string) bool {
	list, _ := m["tags"].([]any)
	for _, t := range list {
		if tm, _ := t.(map[string]any); tm["scope"] == scope {
			return true
		}
	}
	return false
}

// reach says what a teardown reads from NSX's store, besides the search.
type reach struct {
	// cluster: the cluster's own objects, read by path (the tier-1 and its
	// locale services, the load balancer, the node segment and group, the
	// cluster's IP pool).
	cluster bool
	// networks: the networks of the namespaces (the teardown's, or those
	// the cluster's IP pool holds a subnet for), read by path.
	networks bool
	// services: the load balancer pools and virtual servers, listed (their
	// ids follow from Service names), and the addresses of the Services.
	services bool
	// policies: the security policies of the default domain, listed (their
	// ids follow from NetworkPolicy names), with their rules and groups.
	policies bool
	// policy is the id of one NetworkPolicy's security policy: it and its
	// isolation policy are read by path instead.
	policy string
	// own: the security policies of the cluster (with cluster) and of the
	// namespaces (with networks) read by path instead of listed, and their
	// rules listed: what an update of the topology or of a namespace reads,
	// never the shared collection of every policy.
	own bool
	// service is one Service's key, "<ns>/<name>": the load balancer's
	// virtual servers are listed (their ids follow from ports the update
	// may no longer know), and the pools of that Service's read by path
	// (a pool has the id of its virtual server).
	service string
	// keep, for an update, are the paths it keeps whatever NSX holds: the
	// reads skip them where they can. An update reads the addresses of the
	// namespaces by path, in the floating pools the cluster's IP pool
	// records and in pools, rather than list those shared pools.
	keep  map[string]bool
	pools []string
}

// none reports whether r reads nothing.
func (r reach) none() bool {
	return !r.cluster && !r.networks && !r.services && !r.policies && r.policy == "" && r.service == ""
}

// join is what an update or a teardown may delete: what the store reads
// found, with what the search alone shows, less what the reads show NSX
// no longer holds (the index showing the past) and what skip names.
func (v *storeView) join(hits current, skip func(path string) bool) current {
	cur := v.owned
	for p, m := range hits {
		if _, ok := cur[p]; !ok && !v.gone(p) && (skip == nil || !skip(p)) {
			cur[p] = m
		}
	}
	return cur
}

// storeView is what a teardown read from NSX's store.
type storeView struct {
	owned  current         // the objects the teardown owns
	all    current         // every object read
	listed map[string]bool // collections read in full
	got    map[string]bool // objects read by path, found or not
}

// gone reports whether the reads show that NSX no longer holds path: its
// collection was listed, or it was read by path, without it; or the same
// holds for one of its parents.
func (v *storeView) gone(path string) bool {
	known, held := v.knows(path)
	return known && !held
}

// knows reports whether the reads tell if NSX holds path, and if so
// whether it does: it was read (by path or in a listing of its
// collection), or a parent of it was and NSX does not hold that.
func (v *storeView) knows(path string) (known, held bool) {
	if _, ok := v.all[path]; ok {
		return true, true
	}
	for p := path; p != "" && p != "/infra"; p = parentPath(p) {
		i := strings.LastIndex(p, "/")
		if (i > 0 && v.listed[p[:i]]) || v.got[p] {
			if _, ok := v.all[p]; !ok {
				return true, false
			}
		}
	}
	return false, false
}

// stored reads what where names from NSX's store, at bounded concurrency,
// in rounds, each from what the ones before found: it reads by path
// whatever follows from the cluster id, and lists only the collections
// whose ids follow from names it cannot know (the load balancer pools and
// virtual servers of Services, the security policies of NetworkPolicies)
// and collections of the cluster's own (its IP pool's subnets, its
// tier-1's locale services and NAT rules, its security policies' rules,
// its segments' ports) or that it recorded (the addresses of the floating
// pools named on its IP pool). hits are what the search showed, for the
// namespaces, gateways and pools only they may name; one of them the reads
// do not cover is read by path.
//
//  1. GETs of the cluster's IP pool, tier-1, load balancer, node segment
//     and node group (a namespace's teardown: of its subnet, segment and
//     group instead) and of one NetworkPolicy's security policies;
//     listings of the IP pool's subnets, the load balancer pools and
//     virtual servers and the security policies.
//  2. For each namespace of the IP pool's subnets (or of the search), GETs
//     of its segment and group; listings of the tier-1's locale services,
//     the rules of each security policy of the teardown, and the
//     addresses of each floating pool the IP pool records.
//  3. The NAT rules of the gateways the segments hang off (a listing for
//     the cluster's tier-1, GETs by id on a tier-0), the ports of each
//     segment it may delete (a listing each; none of those an update
//     keeps), GETs of the groups the teardown's security policies and
//     rules name. When the IP pool records no pool (a cluster built before
//     pools were recorded), or an object read carries an address none of
//     those pools holds (a Service's from a pool the topology does not
//     list), the IP pools are listed, then the addresses of each
//     kubefoundry did not make.
//  4. GETs of what the search showed that the reads left unknown, if
//     anything (usually nothing).
func (c *Client) stored(ctx context.Context, clusterID, namespace string, where reach, owns func(map[string]any) bool, hits current) (*storeView, error) {
	prefix := "kf_" + clusterID
	t1 := "/infra/tier-1s/" + prefix
	pool := "/infra/ip-pools/" + prefix
	groups := "/infra/domains/default/groups/"
	policies := "/infra/domains/default/security-policies"
	v := &storeView{owned: current{}, all: current{}, listed: map[string]bool{}, got: map[string]bool{}}
	addresses := where.cluster || where.networks || where.services

	// 1. What follows from the cluster id, and the collections of what
	// does not.
	var gets, lists []string
	if addresses {
		gets = append(gets, pool)
	}
	if where.cluster {
		gets = append(gets, t1, "/infra/lb-services/"+prefix, "/infra/segments/"+prefix+"_nodes", groups+prefix+"_nodes")
	}
	if where.networks {
		// A namespace's subnet's id names its block, which a teardown
		// does not know: the cluster's subnets are listed.
		lists = append(lists, pool+"/ip-subnets")
		if namespace != "" {
			gets = append(gets, "/infra/segments/"+prefix+"_ns_"+namespace, groups+prefix+"_ns_"+namespace)
		}
	}
	if where.services {
		lists = append(lists, "/infra/lb-pools", "/infra/lb-virtual-servers")
	}
	if where.policies {
		lists = append(lists, policies)
	}
	if where.policy != "" {
		gets = append(gets, policies+"/"+where.policy, policies+"/"+where.policy+"_isolation")
	}
	if where.own && where.cluster {
		gets = append(gets, policies+"/"+prefix)
		lists = append(lists, policies+"/"+prefix+"/rules")
	}
	if where.service != "" && !where.services {
		lists = append(lists, "/infra/lb-virtual-servers")
	}
	if err := c.readStore(ctx, v, gets, lists); err != nil {
		return nil, err
	}

	// 2. What that names: the namespaces, the rules of the policies, the
	// addresses of the recorded floating pools.
	gets, lists = nil, nil
	namespaces := map[string]bool{}
	if namespace != "" {
		namespaces[namespace] = true
	} else if where.networks {
		for path := range v.all {
			if rest, ok := strings.CutPrefix(path, pool+"/ip-subnets/ns_"); ok {
				// ns_<namespace>_<block id>: a namespace has no "_".
				ns, _, _ := strings.Cut(rest, "_")
				namespaces[ns] = true
			}
		}
		for _, m := range hits {
			if ns := tagValue(m, TagNamespace); ns != "" {
				namespaces[ns] = true
			}
		}
		for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
			gets = append(gets, "/infra/segments/"+prefix+"_ns_"+ns, groups+prefix+"_ns_"+ns)
		}
	}
	if where.own && where.networks {
		for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
			gets = append(gets, policies+"/"+prefix+"_ns_"+ns)
			lists = append(lists, policies+"/"+prefix+"_ns_"+ns+"/rules")
		}
	}
	if _, ok := v.all[t1]; ok && where.cluster {
		lists = append(lists, t1+"/locale-services")
	}
	for path, m := range v.all {
		if m["resource_type"] == "SecurityPolicy" && owns(m) && !v.listed[path+"/rules"] {
			lists = append(lists, path+"/rules")
		}
	}
	if where.service != "" {
		for path, m := range v.all {
			if m["resource_type"] == "LBVirtualServer" && hasTag(m, TagCluster, clusterID) && hasTag(m, TagService, where.service) {
				_, _, id := splitPath(path)
				if known, _ := v.knows("/infra/lb-pools/" + id); !known {
					gets = append(gets, "/infra/lb-pools/"+id)
				}
			}
		}
	}
	everyPool := false // look for addresses in every pool
	if addresses {
		pools := map[string]bool{}
		if m, ok := v.all[pool]; ok {
			for _, t := range tagValues(m, TagFloatingPool) {
				pools[t] = true
			}
			everyPool = len(pools) == 0 // built before pools were recorded
		}
		for path, m := range hits {
			if m["resource_type"] == "IpAddressAllocation" {
				pools[parentPath(path)] = true
			}
		}
		switch {
		case where.keep != nil:
			// An update: the namespaces' addresses it does not keep, by
			// path, in the pools it may use too.
			everyPool = false
			for _, p := range where.pools {
				pools[p] = true
			}
			for _, p := range slices.Sorted(maps.Keys(pools)) {
				for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
					if a := p + "/ip-allocations/" + prefix + "_ns_" + ns; !where.keep[a] {
						gets = append(gets, a)
					}
				}
			}
		default:
			for p := range pools {
				lists = append(lists, p+"/ip-allocations")
			}
		}
	}
	sort.Strings(gets)
	sort.Strings(lists)
	if err := c.readStore(ctx, v, gets, lists); err != nil {
		return nil, err
	}

	// 3. The NAT rules of the gateways, the ports of the segments, and the
	// groups the policies and rules name.
	gets, lists = nil, nil
	if where.cluster || where.networks {
		var ids []string
		if where.cluster {
			ids = append(ids, prefix+"_nodes_snat")
		}
		for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
			ids = append(ids, prefix+"_ns_"+ns+"_snat")
		}
		for _, gw := range gateways(clusterID, v.all, hits) {
			rules := gw + "/nat/USER/nat-rules"
			if gw == t1 {
				lists = append(lists, rules)
				continue
			}
			for _, id := range ids {
				gets = append(gets, rules+"/"+id)
			}
		}
	}
	// The ports of the segments it may delete: NSX refuses to delete a
	// segment that has any, whoever made them.
	for path, m := range v.all {
		if m["resource_type"] == "Segment" && owns(m) && !where.keep[path] && !v.listed[path+"/ports"] {
			lists = append(lists, path+"/ports")
		}
	}
	named := map[string]bool{}
	for _, m := range v.all {
		if rt := m["resource_type"]; (rt == "SecurityPolicy" || rt == "Rule") && owns(m) {
			for _, f := range []string{"scope", "source_groups", "destination_groups"} {
				list, _ := m[f].([]any)
				for _, g := range list {
					if g, _ := g.(string); strings.HasPrefix(g, groups+prefix+"_") {
						named[g] = true
					}
				}
			}
		}
	}
	for path := range named {
		if known, _ := v.knows(path); !known {
			gets = append(gets, path)
		}
	}
	sort.Strings(gets)
	sort.Strings(lists)
	if err := c.readStore(ctx, v, gets, lists); err != nil {
		return nil, err
	}

	// An object with an address whose allocation none of the pools read
	// holds (a Service's, or a namespace's of EnsureNamespace, from a
	// pool the topology does not list) has it elsewhere: look in every
	// pool kubefoundry did not make, as for a cluster that records none.
	if addresses && !everyPool && where.keep == nil {
		everyPool = lacksAddress(prefix, v.all, owns)
	}
	if everyPool {
		if err := c.readStore(ctx, v, nil, []string{"/infra/ip-pools"}); err != nil {
			return nil, err
		}
		lists = nil
		for path, m := range v.all {
			if m["resource_type"] == "IpAddressPool" && parentPath(path) == "/infra" && !hasScope(m, TagCluster) && !v.listed[path+"/ip-allocations"] {
				lists = append(lists, path+"/ip-allocations")
			}
		}
		sort.Strings(lists)
		if err := c.readStore(ctx, v, nil, lists); err != nil {
			return nil, err
		}
	}

	// 4. What the search showed that the reads left unknown, if anything.
	gets = nil
	for path, m := range hits {
		// An address an update keeps is read anyway (holdings, its
		// realized state), and found gone when the index shows the past.
		if known, _ := v.knows(path); !known && !(where.keep[path] && m["resource_type"] == "IpAddressAllocation") {
			gets = append(gets, path)
		}
	}
	sort.Strings(gets)
	if err := c.readStore(ctx, v, gets, nil); err != nil {
		return nil, err
	}
	for path, m := range v.all {
		if owns(m) {
			v.owned[path] = m
		}
	}
	return v, nil
}

// lacksAddress reports whether an object of the teardown that carries an
// address (a SNAT rule of the cluster, a virtual server) is read without
// the allocation of that address.
func lacksAddress(prefix string, all current, owns func(map[string]any) bool) bool {
	held := map[string]bool{}
	for _, m := range all {
		if m["resource_type"] == "IpAddressAllocation" {
			held[allocKey(m)] = true
		}
	}
	for path, m := range all {
		if !owns(m) {
			continue
		}
		_, _, id := splitPath(path)
		var want string
		switch m["resource_type"] {
		case "PolicyNatRule":
			if id == prefix+"_nodes_snat" {
				want = prefix + "_snat"
			} else if ns, ok := strings.CutPrefix(id, prefix+"_ns_"); ok {
				want = prefix + "_ns_" + strings.TrimSuffix(ns, "_snat")
			}
		case "LBVirtualServer":
			if id == prefix+"_api" {
				want = id
			} else if ns, name, ok := strings.Cut(tagValue(m, TagService), "/"); ok {
				want = objectID(prefix, "svc", ns, name)
			}
		}
		if want != "" && !held[want] {
			return true
		}
	}
	return false
}

// readStore GETs gets and lists lists into v. A 404 is an answer: the
// object, or the parent of the collection, does not exist.
func (c *Client) readStore(ctx context.Context, v *storeView, gets, lists []string) error {
	var mu sync.Mutex
	n := len(gets) + len(lists)
	errs := make([]error, n)
	workpool.Run(ctx, 8, n, func(i int) {
		var items []map[string]any
		var err error
		if i < len(gets) {
			var m map[string]any
			if m, err = c.getObject(ctx, gets[i]); err == nil {
				items = []map[string]any{m}
			}
		} else {
			items, err = c.list(ctx, lists[i-len(gets)])
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs[i] = err
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if i < len(gets) {
			v.got[gets[i]] = true
		} else {
			v.listed[lists[i-len(gets)]] = true
		}
		for _, m := range items {
			if path, _ := m["path"].(string); path != "" {
				v.all[path] = m
			}
		}
	}, func(i int, err error) { errs[i] = err })
	return errors.Join(errs...)
}

// gateways are the tier-0s and tier-1s whose NAT rules may hold the
// cluster's: those its segments hang off (a segment and its SNAT rule are
// written in the same PATCH, created and deleted together), as the store
// reads show them, and those that hold a NAT rule of the cluster or that a
// segment of the cluster hangs off as the search shows them.
func gateways(clusterID string, objs ...current) []string {
	set := map[string]bool{}
	for _, cur := range objs {
		for path, m := range cur {
			if !hasTag(m, TagCluster, clusterID) {
				continue
			}
			switch m["resource_type"] {
			case "Segment":
				if s, _ := m["connectivity_path"].(string); strings.HasPrefix(s, "/infra/tier-0s/") || strings.HasPrefix(s, "/infra/tier-1s/") {
					set[s] = true
				}
			case "PolicyNatRule":
				if i := strings.Index(path, "/nat/"); i > 0 {
					set[path[:i]] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// checkInventory reads the pre-existing objects t refers to in one search
// and names every field whose object does not exist.
func (c *Client) checkInventory(ctx context.Context, t Topology) error {
	fields := []struct{ name, path string }{
		{"Tier0Path", t.Tier0Path}, {"EdgeClusterPath", t.EdgeClusterPath},
		{"TransportZonePath", t.TransportZonePath}, {"NodeIPBlockPath", t.NodeIPBlockPath},
	}
	for i, p := range t.PodIPBlockPaths {
		fields = append(fields, struct{ name, path string }{fmt.Sprintf("PodIPBlockPaths[%d]", i), p})
	}
	for i, p := range t.FloatingIPPoolPaths {
		fields = append(fields, struct{ name, path string }{fmt.Sprintf("FloatingIPPoolPaths[%d]", i), p})
	}
	var alts []string
	for _, f := range fields {
		alts = append(alts, escape(f.path))
	}
	found, err := c.searchPaths(ctx, "path:("+strings.Join(alts, " OR ")+")")
	if err != nil {
		return err
	}
	p := newProblems("Topology")
	for _, f := range fields {
		if !found[f.path] {
			p.add(f.name, f.path, "does not exist in NSX")
		}
	}
	return p.err()
}

func (c *Client) searchPaths(ctx context.Context, q string) (map[string]bool, error) {
	res, err := searchAll(ctx, c, q)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, m := range res {
		if p, _ := m["path"].(string); p != "" {
			out[p] = true
		}
	}
	return out, nil
}
