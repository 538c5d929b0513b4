package nsxt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/internal/retry"
	"github.com/kubefoundry/kubefoundry/internal/workpool"
)

// Teardown reports what TeardownTopology or TeardownNamespace deleted.
type Teardown struct {
	Deleted []string // policy paths
	Writes  int
}

// TeardownTopology deletes every object tagged with the cluster, so it
// works after the caller has lost every id: its LoadBalancer Services and
// NetworkPolicies go with it, and the allocated subnets and addresses go
// back to whichever block and pool they came from. It finds them through
// the search API and, since NSX's index trails writes, in NSX's store
// too (see teardown). Calling it again finds nothing and writes nothing.
func (c *Client) TeardownTopology(ctx context.Context, clusterID string) (*Teardown, error) {
	p := newProblems("Topology")
	p.clusterID(clusterID)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c.teardown(ctx, clusterID, "", nil, reach{cluster: true, networks: true, services: true, policies: true})
}

// TeardownNamespace deletes the network of one namespace of a cluster:
// its segment, subnet, SNAT rule and address, group and DFW policy, and
// its LoadBalancer Services and NetworkPolicies, found as TeardownTopology
// finds them. The next BuildTopology must not list the namespace, or it
// comes back.
func (c *Client) TeardownNamespace(ctx context.Context, clusterID, namespace string) (*Teardown, error) {
	p := newProblems("Topology")
	p.clusterID(clusterID)
	p.namespace("Namespace", namespace)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c.teardown(ctx, clusterID, namespace, nil, reach{networks: true, services: true, policies: true})
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

// teardown deletes the objects tagged with the cluster (and namespace),
// those member accepts when it is not nil.
//
// It finds them in two ways and deletes the union, in one hierarchical
// PATCH, with every port NSX holds on the segments it deletes: the search
// API by tag, and reads of NSX's store, which hold every write made before
// them, where the search index trails by a moment. The store reads (see
// stored; where says which) are GETs of the objects whose paths follow
// from the cluster id, and listings of the cluster's own collections and
// of those whose ids cannot be known, kept when their tags say the
// teardown owns them. A search hit
// in a collection the reads cover that NSX no longer holds is the index
// showing the past, and is left out: a second teardown writes nothing.
// After deleting it reads again, at once (the reads are authoritative),
// until nothing of its own is left; a PATCH NSX refuses for a concurrent
// change, or for a child or reference added since the read (error codes
// 500030, 503040), is met by reading again, with backoff; any other
// refusal is returned at once.
func (c *Client) teardown(ctx context.Context, clusterID, namespace string, member func(map[string]any) bool, where reach) (*Teardown, error) {
	ctx, writes := countWrites(ctx)
	out := &Teardown{}
	owns := func(m map[string]any) bool {
		return hasTag(m, TagCluster, clusterID) && (namespace == "" || hasTag(m, TagNamespace, namespace)) &&
			(member == nil || member(m))
	}
	deleted := map[string]bool{}
	bo := retry.Backoff{Initial: 250 * time.Millisecond, Max: 4 * time.Second}
	var lastErr error
	inUse := 0 // refusals for what holds an object
	for round := 0; ; round++ {
		hits, err := c.owned(ctx, clusterID, namespace)
		if err != nil {
			return nil, err
		}
		for p, m := range hits {
			if !owns(m) {
				delete(hits, p)
			}
		}
		st, err := c.stored(ctx, clusterID, namespace, where, owns, hits)
		if err != nil {
			return nil, err
		}
		// What the search alone shows: one the store reads cover and do
		// not hold is gone, and one this teardown deleted is the index
		// trailing. The segments go with every port NSX holds on them.
		cur := st.join(hits, func(p string) bool { return deleted[p] })
		if err := st.attached(cur, nil, clusterID); err != nil {
			return nil, err
		}
		if len(cur) == 0 {
			break
		}
		if round == conflictRetries {
			err := fmt.Errorf("nsxt: teardown of %s: %d objects are still there after %d rounds, such as %s",
				clusterID, len(cur), round, deletions(nil, cur)[0].Path)
			if lastErr != nil {
				err = fmt.Errorf("%w: %w", err, lastErr)
			}
			return nil, err
		}
		dels := deletions(nil, cur)
		c.log.Info("nsx teardown", zap.String("cluster", clusterID), zap.String("namespace", namespace), zap.Int("objects", len(dels)))
		err = c.patch(ctx, dels)
		switch {
		case err == nil:
			for _, d := range dels {
				if !deleted[d.Path] {
					deleted[d.Path] = true
					out.Deleted = append(out.Deleted, d.Path)
				}
			}
			continue
		case refusedInUse(err) && inUse >= inUseRetries:
			// Held by what the reads cannot see (a reference from
			// someone else's object).
			return nil, fmt.Errorf("nsxt: teardown of %s: NSX still refuses a delete for what holds the object after reading again %d times: %w: %w",
				clusterID, inUseRetries, ErrInUse, err)
		case errors.Is(err, ErrConflict) || refusedInUse(err):
			// A stale read (an object changed, or a child or reference
			// another writer added since): read again.
			if refusedInUse(err) {
				inUse++
			}
			c.log.Info("nsx teardown refused; reading again", zap.Error(err))
			lastErr = err
		default:
			return nil, err
		}
		if !bo.Sleep(ctx) {
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("nsxt: teardown of %s: %w: %w", clusterID, cause, lastErr)
		}
	}
	sort.Strings(out.Deleted)
	out.Writes = int(writes.Load())
	return out, nil
}

// attached adds to cur the ports NSX holds (the reads listed them) on the
// segments cur holds but keep names: NSX refuses to delete a segment that
// has ports. The ports a segment of the cluster's takes with it are those
// the cluster's CNI made (tagged with the cluster, or container ports:
// attachment CHILD or INDEPENDENT) and those with nothing attached. A port
// with a VM's NIC on it (any other attachment), or one NSX protects or owns
// (another principal's: only it may delete it), is not kubefoundry's to
// delete: deleting it would leave the VM attached, in vCenter, to a
// network that is gone. Those make it an error wrapping ErrInUse, naming
// them, before anything is written.
func (v *storeView) attached(cur current, keep map[string]bool, cluster string) error {
	var blocked []string
	for p, m := range v.all {
		if m["resource_type"] != "SegmentPort" {
			continue
		}
		seg := parentPath(p)
		s, ok := cur[seg]
		if !ok || s["resource_type"] != "Segment" || keep[seg] {
			continue
		}
		if why := portKept(m, cluster); why != "" {
			blocked = append(blocked, p+" ("+why+")")
			continue
		}
		cur[p] = m
	}
	if len(blocked) == 0 {
		return nil
	}
	sort.Strings(blocked)
	return fmt.Errorf("nsxt: cluster %s: its segments have ports that are not its to delete: %s; disconnect the VMs, or have their owner delete the ports, first: %w",
		cluster, strings.Join(blocked, ", "), ErrInUse)
}

// portKept says why a port on a segment of the cluster's may not go with
// it, or "" when it may.
func portKept(m map[string]any, cluster string) string {
	if owned, _ := m["_system_owned"].(bool); owned {
		return "owned by NSX"
	}
	switch prot, _ := m["_protection"].(string); prot {
	case "PROTECTED", "REQUIRE_OVERRIDE":
		return "protected: made by another principal"
	}
	if hasTag(m, TagCluster, cluster) {
		return ""
	}
	att, _ := m["attachment"].(map[string]any)
	if att == nil {
		return ""
	}
	switch typ, _ := att["type"].(string); typ {
	case "CHILD", "INDEPENDENT":
		return ""
	default:
		id, _ := att["id"].(string)
		return "a VM NIC is attached: " + id
	}
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

// getObject GETs one object as plain JSON values.
func (c *Client) getObject(ctx context.Context, path string) (map[string]any, error) {
	body, err := c.get(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("nsxt: get %s: %w", path, err)
	}
	return m, nil
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

// ping checks that a manager answers and accepts the credentials.
func (c *Client) ping(ctx context.Context) error {
	conn, cause := c.connector(ctx)
	_, err := infra.NewDomainsClient(conn).Get("default")
	if err != nil {
		return fmt.Errorf("nsxt: connecting to %s: %w", c.cfg.URLs[0], apiError("get /infra/domains/default", err, cause.get()))
	}
	return nil
}
