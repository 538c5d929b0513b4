package nsxt

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/realized_state"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/internal/retry"
	"github.com/kubefoundry/kubefoundry/internal/workpool"
)

// Network is what BuildTopology built for a cluster.
type Network struct {
	Plan            *Plan
	Tier1Path       string
	NodeSegmentPath string
	NodeSubnet      netip.Prefix
	SNATAddress     string // the nodes' SNAT address
	APIAddress      string // the Kubernetes API virtual server's address
	APIPort         int
	Namespaces      map[string]NamespaceNetwork
	// Writes is the number of write requests the apply made.
	Writes int
}

// NamespaceNetwork is one namespace's segment, subnet and SNAT address.
type NamespaceNetwork struct {
	SegmentPath string
	Subnet      netip.Prefix
	SNATAddress string
}

// conflictRetries bounds re-reading and re-applying after NSX reports a
// concurrent change.
const conflictRetries = 6

// desiredSet is a set of objects converged together: the topology of a
// cluster, one LoadBalancer Service, one NetworkPolicy. member picks, among
// the objects tagged with the cluster, those that belong to the set: the
// ones it deletes when no intent keeps them.
type desiredSet struct {
	cluster string
	member  func(m map[string]any) bool
	ipam    []intent
	config  func(addresses) []intent
}

// PlanTopology computes what BuildTopology would change, without writing
// anything: a dry run. Subnets and addresses NSX has not allocated yet
// show as "<allocated by NSX>".
func (c *Client) PlanTopology(ctx context.Context, t Topology) (*Plan, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if err := c.checkInventory(ctx, t); err != nil {
		return nil, err
	}
	set := t.desired()
	cur, err := c.current(ctx, set)
	if err != nil {
		return nil, err
	}
	return c.plan(ctx, set, cur, nil)
}

func (t Topology) desired() desiredSet {
	return desiredSet{
		cluster: t.ClusterID,
		member: func(m map[string]any) bool {
			return !hasScope(m, TagService) && !hasScope(m, TagNetworkPolicy) &&
				!(t.NamespacesManagedElsewhere && hasScope(m, TagNamespace))
		},
		ipam:   t.ipamIntents(),
		config: t.configIntents,
	}
}

// current reads the set's members.
func (c *Client) current(ctx context.Context, set desiredSet) (current, error) {
	all, err := c.owned(ctx, set.cluster, "")
	if err != nil {
		return nil, err
	}
	for p, m := range all {
		if !set.member(m) {
			delete(all, p)
		}
	}
	return all, nil
}

// plan diffs both stages. known are addresses already read (nil: read
// those that exist).
func (c *Client) plan(ctx context.Context, set desiredSet, cur current, known *addresses) (*Plan, error) {
	alloc, err := diff(set.ipam, cur)
	if err != nil {
		return nil, err
	}
	if known == nil {
		a, err := c.addresses(ctx, set.ipam, cur, nil)
		if err != nil {
			return nil, err
		}
		known = &a
	}
	cfg := set.config(*known)
	conf, err := diff(cfg, cur)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, in := range append(append([]intent{}, set.ipam...), cfg...) {
		keep[in.path] = true
	}
	conf = append(conf, deletions(keep, cur)...)
	p := &Plan{ClusterID: set.cluster, allocate: alloc, configure: conf}
	for _, x := range alloc {
		p.Allocate = append(p.Allocate, x.Change)
	}
	for _, x := range conf {
		p.Configure = append(p.Configure, x.Change)
	}
	return p, nil
}

// BuildTopology makes NSX hold exactly t: it reads what is tagged with the
// cluster, allocates what is missing (one hierarchical PATCH), waits for
// NSX to realize the allocations, then creates, updates and deletes the
// rest (one more PATCH) and waits for it to be realized. A second call
// with the same t writes nothing. A concurrent change reported by NSX is
// met by reading again and re-applying. The objects of LoadBalancer
// Services and NetworkPolicies of the cluster are left alone.
func (c *Client) BuildTopology(ctx context.Context, t Topology) (*Network, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if err := c.checkInventory(ctx, t); err != nil {
		return nil, err
	}
	p, addr, writes, err := c.converge(ctx, t.desired())
	if err != nil {
		return nil, err
	}
	n := &Network{Plan: p, Writes: writes, Tier1Path: t.tier1Path(), NodeSegmentPath: "/infra/segments/" + t.prefix() + "_nodes",
		NodeSubnet: addr.subnets[t.nodeSubnetPath()], SNATAddress: addr.ips[t.snatAllocPath()],
		APIAddress: addr.ips[t.vipAllocPath()], APIPort: t.apiPort(), Namespaces: map[string]NamespaceNetwork{}}
	for _, ns := range t.namespaces() {
		n.Namespaces[ns] = NamespaceNetwork{SegmentPath: "/infra/segments/" + t.prefix() + "_ns_" + ns,
			Subnet: addr.subnets[t.nsSubnetPath(ns)], SNATAddress: addr.ips[t.nsSNATAllocPath(ns)]}
	}
	return n, nil
}

// EnsureNamespace gives one namespace of a built cluster its network (a
// segment with a subnet from the pod block, an SNAT address and rule, a
// group and a DFW policy), leaving every other namespace alone: what a
// namespace controller calls. It is BuildTopology for that namespace
// only, idempotent, two PATCHes the first time and none after; t.Namespaces
// is ignored. Pair it with Topology.NamespacesManagedElsewhere so that
// BuildTopology does not remove what it adds.
func (c *Client) EnsureNamespace(ctx context.Context, t Topology, namespace string) (*NamespaceNetwork, error) {
	t.Namespaces = nil
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if !dnsLabelRe.MatchString(namespace) {
		return nil, &FieldError{"Topology", "Namespace", namespace, "is not a Kubernetes namespace name"}
	}
	set := desiredSet{
		cluster: t.ClusterID,
		member: func(m map[string]any) bool {
			return hasTag(m, TagNamespace, namespace) && !hasScope(m, TagService) && !hasScope(m, TagNetworkPolicy)
		},
		ipam:   t.nsIPAM(namespace),
		config: func(a addresses) []intent { return t.nsConfig(namespace, a) },
	}
	_, addr, _, err := c.converge(ctx, set)
	if err != nil {
		return nil, err
	}
	return &NamespaceNetwork{SegmentPath: "/infra/segments/" + t.prefix() + "_ns_" + namespace,
		Subnet: addr.subnets[t.nsSubnetPath(namespace)], SNATAddress: addr.ips[t.nsSNATAllocPath(namespace)]}, nil
}

// converge applies a set, re-reading after a conflict. It returns the plan
// it applied, the addresses of the set and the write requests it made.
func (c *Client) converge(ctx context.Context, set desiredSet) (*Plan, addresses, int, error) {
	ctx, writes := countWrites(ctx)
	// NSX's search index follows writes with a delay, so what a re-read
	// shows right after a conflict may still be stale: wait a little
	// longer each time.
	bo := retry.Backoff{Initial: 250 * time.Millisecond, Max: 4 * time.Second}
	var lastErr error
	for attempt := 0; attempt < conflictRetries; attempt++ {
		p, addr, err := c.apply(ctx, set)
		if err == nil {
			return p, addr, int(writes.Load()), nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, addresses{}, 0, err
		}
		c.log.Info("nsx reported a concurrent change; reading again", zap.String("cluster", set.cluster), zap.Error(err))
		lastErr = err
		if attempt+1 < conflictRetries && !bo.Sleep(ctx) {
			break
		}
	}
	return nil, addresses{}, 0, lastErr
}

func (c *Client) apply(ctx context.Context, set desiredSet) (*Plan, addresses, error) {
	cur, err := c.current(ctx, set)
	if err != nil {
		return nil, addresses{}, err
	}
	alloc, err := diff(set.ipam, cur)
	if err != nil {
		return nil, addresses{}, err
	}
	c.log.Info("nsx allocate", zap.String("cluster", set.cluster), zap.Int("changes", len(alloc)))
	if err := c.patch(ctx, alloc); err != nil {
		return nil, addresses{}, err
	}
	// Wait for every allocation, not only the new ones: one created by an
	// earlier, interrupted run may not be realized yet.
	all := map[string]bool{}
	for _, in := range set.ipam {
		all[in.path] = true
	}
	addr, err := c.addresses(ctx, set.ipam, cur, all)
	if err != nil {
		return nil, addresses{}, err
	}
	// The allocation stage is done; what it created counts as present.
	for _, in := range set.ipam {
		if _, ok := cur[in.path]; !ok {
			m, _ := intentMap(in)
			cur[in.path] = m
		}
	}
	p, err := c.plan(ctx, set, cur, &addr)
	if err != nil {
		return nil, addresses{}, err
	}
	p.allocate, p.Allocate = alloc, nil
	for _, x := range alloc {
		p.Allocate = append(p.Allocate, x.Change)
	}
	for _, x := range p.configure {
		if x.obj != nil && holdsUnallocated(x.obj) {
			return nil, addresses{}, fmt.Errorf("nsxt: %s %s would be written with an address NSX has not allocated", x.Type, x.Path)
		}
	}
	c.log.Info("nsx configure", zap.String("cluster", set.cluster), zap.Int("changes", len(p.configure)))
	if err := c.patch(ctx, p.configure); err != nil {
		return nil, addresses{}, err
	}
	var written []string
	for _, x := range p.configure {
		if x.Action != Delete {
			written = append(written, x.Path)
		}
	}
	if err := c.WaitRealized(ctx, written...); err != nil {
		return nil, addresses{}, err
	}
	return p, addr, nil
}

// holdsUnallocated reports whether a body still holds the dry-run
// placeholder anywhere.
func holdsUnallocated(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, unallocated)
	case []any:
		for _, e := range x {
			if holdsUnallocated(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if holdsUnallocated(e) {
				return true
			}
		}
	}
	return false
}

// addresses reads the subnets and addresses NSX allocated for the IPAM
// intents. Paths in wait were just written: their realization is awaited,
// and a realization error is returned. Without wait (a dry run) an intent
// that does not exist is simply not known yet.
func (c *Client) addresses(ctx context.Context, ipam []intent, cur current, wait map[string]bool) (addresses, error) {
	a := addresses{subnets: map[string]netip.Prefix{}, ips: map[string]string{}}
	var paths []string
	for _, in := range ipam {
		if in.rtype == "IpAddressPool" {
			continue
		}
		if _, ok := cur[in.path]; ok || wait[in.path] {
			paths = append(paths, in.path)
		}
	}
	var mu sync.Mutex
	errs := make([]error, len(paths))
	workpool.Run(ctx, 8, len(paths), func(i int) {
		attrs, err := c.realized(ctx, paths[i], wait[paths[i]])
		if err != nil {
			errs[i] = err
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if v := attrs["cidr"]; v != "" {
			if p, err := netip.ParsePrefix(v); err == nil {
				a.subnets[paths[i]] = p
			}
		}
		if v := attrs["allocation_ip"]; v != "" {
			a.ips[paths[i]] = v
		}
	}, func(i int, err error) { errs[i] = err })
	return a, errors.Join(errs...)
}

// WaitRealized waits until NSX reports every path realized. An intent in
// state ERROR gives a *RealizationError naming it and NSX's reason; the
// others are still awaited, and every error is returned.
func (c *Client) WaitRealized(ctx context.Context, paths ...string) error {
	errs := make([]error, len(paths))
	workpool.Run(ctx, 8, len(paths), func(i int) {
		_, errs[i] = c.realized(ctx, paths[i], true)
	}, func(i int, err error) { errs[i] = err })
	return errors.Join(errs...)
}

// realized returns the extended attributes of path's realized entity. With
// wait it polls until the state is REALIZED or ERROR.
func (c *Client) realized(ctx context.Context, path string, wait bool) (map[string]string, error) {
	rc := realized_state.NewRealizedEntitiesClient(c.connector(ctx))
	bo := retry.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		res, err := rc.List(path, nil)
		if err != nil {
			return nil, apiError("realized state of "+path, err)
		}
		// Every realized entity of the intent counts: any ERROR is an
		// error, only all REALIZED is realized.
		state, msg := "UNREALIZED", ""
		attrs := map[string]string{}
		realized := 0
		for _, e := range res.Results {
			switch {
			case e.State == nil:
			case *e.State == "ERROR":
				state = "ERROR"
			case *e.State == "REALIZED":
				realized++
			case state != "ERROR":
				state = *e.State
			}
			if e.RuntimeError != nil {
				msg = *e.RuntimeError
			}
			for _, al := range e.Alarms {
				if al.Message != nil && msg == "" {
					msg = *al.Message
				}
			}
			for _, kv := range e.ExtendedAttributes {
				if kv.Key != nil && len(kv.Values) > 0 {
					attrs[*kv.Key] = kv.Values[0]
				}
			}
		}
		if state != "ERROR" && len(res.Results) > 0 && realized == len(res.Results) {
			state = "REALIZED"
		}
		switch {
		case state == "REALIZED":
			return attrs, nil
		case state == "ERROR":
			return nil, &RealizationError{Path: path, State: state, Message: msg}
		case !wait:
			return attrs, nil
		}
		if !bo.Sleep(ctx) {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", &RealizationError{Path: path, State: state, Message: msg}, ctx.Err())
			}
			return nil, &RealizationError{Path: path, State: state, Message: "the context ends before NSX realizes it"}
		}
	}
}
