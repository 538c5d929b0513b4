package nsxt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	if err := checkClusterID("Topology", clusterID); err != nil {
		return nil, err
	}
	return c.teardown(ctx, clusterID, "", nil, reachAll)
}

// TeardownNamespace deletes the network of one namespace of a cluster:
// its segment, subnet, SNAT rule and address, group and DFW policy, and
// its LoadBalancer Services and NetworkPolicies, found as TeardownTopology
// finds them. The next BuildTopology must not list the namespace, or it
// comes back.
func (c *Client) TeardownNamespace(ctx context.Context, clusterID, namespace string) (*Teardown, error) {
	if err := checkClusterID("Topology", clusterID); err != nil {
		return nil, err
	}
	if !dnsLabelRe.MatchString(namespace) {
		return nil, &FieldError{"Topology", "Namespace", namespace, "is not a Kubernetes namespace name"}
	}
	return c.teardown(ctx, clusterID, namespace, nil, reachAll&^reachCluster)
}

// reach names the places in NSX's store a teardown reads, besides the
// search: those where what it deletes may live.
type reach uint8

const (
	// reachCluster: the cluster's tier-1 and load balancer, read by path,
	// and the tier-1's locale services.
	reachCluster reach = 1 << iota
	// reachSegments: the segments, and the NAT rules of the gateways the
	// cluster's segments hang off.
	reachSegments
	// reachLB: the load balancer pools and virtual servers.
	reachLB
	// reachDFW: the groups and security policies of the default domain,
	// and the rules of the policies the teardown deletes.
	reachDFW
	// reachSubnets: the IP pools, and the subnets of the cluster's own.
	reachSubnets
	// reachFloating: the IP pools (the cluster's own among them), and the
	// addresses allocated in every pool kubefoundry did not make.
	reachFloating

	reachAll = reachCluster | reachSegments | reachLB | reachDFW | reachSubnets | reachFloating
)

// teardown deletes the objects tagged with the cluster (and namespace),
// those member accepts when it is not nil.
//
// It finds them in two ways and deletes the union, in one hierarchical
// PATCH: the search API by tag, and reads of NSX's store, which hold every
// write made before them, where the search index trails by a moment. The
// store reads are GETs of the objects whose paths follow from the cluster
// id and listings of the collections the others live in (where says
// which), kept when their tags say the teardown owns them. A search hit
// in a collection the reads cover that NSX no longer holds is the index
// showing the past, and is left out: a second teardown writes nothing.
// After deleting it reads again, at once (the reads are authoritative),
// until nothing of its own is left; a PATCH NSX refuses (a concurrent
// change) is met by reading again, with backoff.
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
		st, err := c.stored(ctx, clusterID, where, owns, hits)
		if err != nil {
			return nil, err
		}
		cur := st.owned
		for p, m := range hits {
			// What the search alone shows: one the store reads cover and
			// do not hold is gone, and one this teardown deleted is the
			// index trailing.
			if _, ok := cur[p]; !ok && !deleted[p] && !st.gone(p) {
				cur[p] = m
			}
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
		case errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid):
			// A stale read (an object changed, or a child another writer
			// added since): read again.
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
	for p := path; p != "" && p != "/infra"; p = parentPath(p) {
		i := strings.LastIndex(p, "/")
		if (i > 0 && v.listed[p[:i]]) || v.got[p] {
			_, ok := v.all[p]
			return !ok
		}
	}
	return false
}

// stored reads what where names from NSX's store, at bounded
// concurrency: first the objects whose paths follow from the cluster id
// and the collections of the others, then the collections under what that
// found: the locale services of the cluster's tier-1, the NAT rules of the
// gateways its segments hang off, the subnets of its pool, the rules of
// the security policies owns accepts and the addresses of the pools
// kubefoundry did not make. hits are what the search showed, for the
// gateways and pools only they may name.
//
// For reachAll that is 2 GETs and 6 listings, then one listing each for
// the locale services, a gateway, the cluster's pool, a policy of its own
// and an IP pool kubefoundry did not make (each listing a page per 1000
// objects).
func (c *Client) stored(ctx context.Context, clusterID string, where reach, owns func(map[string]any) bool, hits current) (*storeView, error) {
	prefix := "kf_" + clusterID
	t1 := "/infra/tier-1s/" + prefix
	pool := "/infra/ip-pools/" + prefix
	domain := "/infra/domains/default"
	v := &storeView{owned: current{}, all: current{}, listed: map[string]bool{}, got: map[string]bool{}}
	var gets, lists []string
	if where&reachCluster != 0 {
		gets = append(gets, t1, "/infra/lb-services/"+prefix)
	}
	if where&reachSegments != 0 {
		lists = append(lists, "/infra/segments")
	}
	if where&reachLB != 0 {
		lists = append(lists, "/infra/lb-pools", "/infra/lb-virtual-servers")
	}
	if where&reachDFW != 0 {
		lists = append(lists, domain+"/groups", domain+"/security-policies")
	}
	if where&(reachSubnets|reachFloating) != 0 {
		lists = append(lists, "/infra/ip-pools")
	}
	if err := c.readStore(ctx, v, gets, lists); err != nil {
		return nil, err
	}

	more := map[string]bool{}
	if _, ok := v.all[t1]; ok && where&reachCluster != 0 {
		more[t1+"/locale-services"] = true
	}
	if where&reachSegments != 0 {
		for _, gw := range gateways(clusterID, v.all, hits) {
			more[gw+"/nat/USER/nat-rules"] = true
		}
	}
	for path, m := range v.all {
		switch rt := m["resource_type"]; {
		case rt == "SecurityPolicy" && owns(m):
			more[path+"/rules"] = true
		case rt == "IpAddressPool" && path == pool && where&reachSubnets != 0:
			more[path+"/ip-subnets"] = true
		case rt == "IpAddressPool" && where&reachFloating != 0 && !hasScope(m, TagCluster):
			more[path+"/ip-allocations"] = true
		}
	}
	for path, m := range hits {
		// An address the search shows in a pool the listing of pools
		// holds but that was not listed (one kubefoundry made).
		if m["resource_type"] == "IpAddressAllocation" && where&reachFloating != 0 {
			if _, ok := v.all[parentPath(path)]; ok {
				more[parentPath(path)+"/ip-allocations"] = true
			}
		}
	}
	lists = lists[:0]
	for l := range more {
		lists = append(lists, l)
	}
	sort.Strings(lists)
	if err := c.readStore(ctx, v, nil, lists); err != nil {
		return nil, err
	}
	for path, m := range v.all {
		if owns(m) {
			v.owned[path] = m
		}
	}
	return v, nil
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
// and names the field whose object does not exist.
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
	for _, f := range fields {
		if !found[f.path] {
			return &FieldError{"Topology", f.name, f.path, "does not exist in NSX"}
		}
	}
	return nil
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
	_, err := infra.NewDomainsClient(c.connector(ctx)).Get("default")
	if err != nil {
		return fmt.Errorf("nsxt: connecting to %s: %w", c.cfg.URLs[0], apiError("get /infra/domains/default", err))
	}
	return nil
}
