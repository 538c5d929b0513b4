package nsxt

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
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
	SNATAddress string // empty when the Topology is PodRoutable
}

// conflictRetries bounds re-reading and re-applying after NSX reports a
// concurrent change; inUseRetries, after it refuses a delete for what
// holds the object (one re-read finds a port a CNI added since).
const (
	conflictRetries = 6
	inUseRetries    = 2
)

// desiredSet is a set of objects converged together: the topology of a
// cluster, one namespace's network, one LoadBalancer Service, one
// NetworkPolicy. member picks, among the objects tagged with the cluster,
// those that belong to the set: the ones it deletes when no intent keeps
// them. Since the search index trails writes, they are found as a
// teardown finds them: what the search shows, joined with what NSX's
// store holds where reach says (the set's own scope; namespace, when not
// empty, is the one namespace it covers). admit, when set, may refuse the
// set given every object of the cluster the search shows (and what it
// reads from NSX itself), before anything is written.
type desiredSet struct {
	cluster   string
	namespace string
	reach     reach
	member    func(m map[string]any) bool
	admit     func(ctx context.Context, c *Client, all current) error
	ipam      []allocation
	config    func(addresses) []intent
}

// PlanTopology computes what BuildTopology would change, without writing
// anything: a dry run. Subnets and addresses NSX has not allocated yet
// show as "<allocated by NSX>", and come from the first block or pool
// listed.
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
	if err := c.holdings(ctx, set.ipam, cur); err != nil {
		return nil, err
	}
	ps, err := place(set.ipam, cur, nil)
	if err != nil {
		return nil, err
	}
	return c.plan(ctx, set, ps, cur, nil)
}

func (t Topology) desired() desiredSet {
	return desiredSet{
		cluster: t.ClusterID,
		// What a teardown of the cluster reads by path and in the
		// cluster's own collections, not the shared ones of Services and
		// NetworkPolicies, which the topology leaves alone.
		reach: reach{cluster: true, networks: !t.NamespacesManagedElsewhere, own: true, pools: t.FloatingIPPoolPaths},
		member: func(m map[string]any) bool {
			return !hasScope(m, TagService) && !hasScope(m, TagNetworkPolicy) &&
				!(t.NamespacesManagedElsewhere && hasScope(m, TagNamespace))
		},
		ipam:   t.allocations(),
		config: t.configIntents,
	}
}

// current reads the set's members.
func (c *Client) current(ctx context.Context, set desiredSet) (current, error) {
	all, err := c.owned(ctx, set.cluster, "")
	if err != nil {
		return nil, err
	}
	return c.members(ctx, set, all)
}

// members are the set's members: those of all (what the search shows of
// the cluster) joined, as a teardown joins them, with those NSX's store
// holds where set.reach says. The index trails writes: without the store,
// an object made a moment ago that the set no longer wants would never be
// deleted; and a hit NSX no longer holds is left out.
func (c *Client) members(ctx context.Context, set desiredSet, all current) (current, error) {
	hits := current{}
	for p, m := range all {
		if set.owns(m) {
			hits[p] = m
		}
	}
	where := set.reach
	if where.none() {
		return hits, nil
	}
	// What the set keeps need not be read: it is written whatever NSX
	// holds.
	where.keep = map[string]bool{}
	for _, a := range set.ipam {
		for _, in := range a.sources {
			where.keep[in.path] = true
		}
	}
	for _, in := range set.config(newAddresses()) {
		where.keep[in.path] = true
	}
	st, err := c.stored(ctx, set.cluster, set.namespace, where, set.owns, hits)
	if err != nil {
		return nil, err
	}
	cur := st.join(hits, nil)
	if err := st.attached(cur, where.keep, set.cluster); err != nil {
		return nil, err
	}
	return cur, nil
}

// owns reports whether m is a member of the set. A segment port never is,
// tagged with the cluster or not: it is what a CNI (or vCenter) attached
// to a segment, which an update leaves alone; it goes only with a segment
// the update deletes (see storeView.attached).
func (set desiredSet) owns(m map[string]any) bool {
	return hasTag(m, TagCluster, set.cluster) && (set.namespace == "" || hasTag(m, TagNamespace, set.namespace)) &&
		m["resource_type"] != "SegmentPort" && set.member(m)
}

// plan diffs both stages, with the allocations placed as ps. known are
// addresses already read (nil: read those that exist).
func (c *Client) plan(ctx context.Context, set desiredSet, ps []placed, cur current, known *addresses) (*Plan, error) {
	if known == nil {
		a := newAddresses()
		_, gone, err := c.addresses(ctx, a, ps, cur, false, nil)
		if err != nil {
			return nil, err
		}
		for i := range gone {
			delete(cur, ps[i].intent().path)
		}
		known = &a
	}
	ipam := make([]intent, len(ps))
	for i, p := range ps {
		ipam[i] = p.intent()
	}
	alloc, err := diff(ipam, cur)
	if err != nil {
		return nil, err
	}
	cfg := set.config(*known)
	conf, err := diff(cfg, cur)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, in := range append(ipam, cfg...) {
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
// rest (one more PATCH) and waits for it to be realized. An allocation NSX
// cannot make from a block or pool is released and made from the next one
// listed (two more PATCHes; one when NSX refused the subnet at once); when
// none can make it, even after what t no longer wants is released to make
// room, the error wraps the *RealizationError (or the refusal) of the
// last. A second call with the same t writes nothing. A concurrent change
// reported by NSX is met by reading again and re-applying. The objects of
// LoadBalancer Services and NetworkPolicies of the cluster are left alone.
// WithSink reports its progress (OpApplyTopology).
func (c *Client) BuildTopology(ctx context.Context, t Topology, opts ...CallOption) (_ *Network, err error) {
	pr := newProgress(opts, OpApplyTopology, t.ClusterID)
	defer func() { pr.end(err) }()
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if err := c.checkInventory(ctx, t); err != nil {
		return nil, err
	}
	p, addr, writes, err := c.converge(ctx, t.desired(), pr)
	if err != nil {
		return nil, err
	}
	n := &Network{Plan: p, Writes: writes, Tier1Path: t.tier1Path(), NodeSegmentPath: "/infra/segments/" + t.prefix() + "_nodes",
		NodeSubnet: addr.subnets[t.nodeSubnetPath()], SNATAddress: addr.ips[t.snatID()],
		APIAddress: addr.ips[t.vipID()], APIPort: t.apiPort(), Namespaces: map[string]NamespaceNetwork{}}
	for _, ns := range t.namespaces() {
		n.Namespaces[ns] = NamespaceNetwork{SegmentPath: "/infra/segments/" + t.prefix() + "_ns_" + ns,
			Subnet: addr.subnets[t.nsSubnetPath(ns)], SNATAddress: addr.ips[t.nsSNATID(ns)]}
	}
	return n, nil
}

// EnsureNamespace gives one namespace of a built cluster its network (a
// segment with a subnet from a pod block, an SNAT address and rule unless
// t.PodRoutable, a group and a DFW policy), leaving every other namespace
// alone: what a namespace controller calls. It is BuildTopology for that namespace
// only, idempotent, two PATCHes the first time and none after; t.Namespaces
// is ignored. Pair it with Topology.NamespacesManagedElsewhere so that
// BuildTopology does not remove what it adds. WithSink reports its
// progress (OpEnsureNamespace).
func (c *Client) EnsureNamespace(ctx context.Context, t Topology, namespace string, opts ...CallOption) (_ *NamespaceNetwork, err error) {
	pr := newProgress(opts, OpEnsureNamespace, t.ClusterID+"/"+namespace)
	defer func() { pr.end(err) }()
	t.Namespaces = nil
	p := newProblems("Topology")
	t.validate(p)
	p.namespace("Namespace", namespace)
	if err := p.err(); err != nil {
		return nil, err
	}
	set := desiredSet{
		cluster:   t.ClusterID,
		namespace: namespace,
		reach:     reach{networks: true, own: true, pools: t.FloatingIPPoolPaths},
		member: func(m map[string]any) bool {
			return hasTag(m, TagNamespace, namespace) && !hasScope(m, TagService) && !hasScope(m, TagNetworkPolicy)
		},
		ipam:   t.nsIPAM(namespace),
		config: func(a addresses) []intent { return t.nsConfig(namespace, a) },
	}
	_, addr, _, err := c.converge(ctx, set, pr)
	if err != nil {
		return nil, err
	}
	return &NamespaceNetwork{SegmentPath: "/infra/segments/" + t.prefix() + "_ns_" + namespace,
		Subnet: addr.subnets[t.nsSubnetPath(namespace)], SNATAddress: addr.ips[t.nsSNATID(namespace)]}, nil
}

// converge applies a set, re-reading after a conflict. It returns the plan
// it applied, the addresses of the set and the write requests it made,
// which it records in pr too; pr hears of each wait for NSX's purge.
func (c *Client) converge(ctx context.Context, set desiredSet, pr *progress) (*Plan, addresses, int, error) {
	ctx, writes := countWrites(ctx)
	defer func() {
		if pr != nil {
			pr.writes = int(writes.Load())
		}
	}()
	// NSX's search index follows writes with a delay, so what a re-read
	// shows right after a conflict may still be stale: wait a little
	// longer each time.
	bo := retry.Backoff{Initial: 250 * time.Millisecond, Max: 4 * time.Second}
	// A path NSX has not purged yet is free at its next purge cycle
	// (every 5 minutes): wait for it, longer each time, up to two cycles.
	purge := retry.Backoff{Initial: c.opts.purgeFirst, Max: 30 * time.Second}
	var waitedSince time.Time
	var lastErr error
	// The sources that could not make an allocation stay tried when the
	// apply starts over: one released in ERROR awaits NSX's purge, and
	// making it there again would be refused (or fail again).
	tried := map[string]map[int]bool{}
	inUse := 0
	for attempt := 0; attempt < conflictRetries; {
		p, addr, err := c.apply(ctx, set, tried)
		if err == nil {
			return p, addr, int(writes.Load()), nil
		}
		switch {
		case errors.Is(err, ErrPendingDelete):
			if waitedSince.IsZero() {
				waitedSince = time.Now()
			}
			if time.Since(waitedSince) >= c.opts.purgeMax {
				return nil, addresses{}, 0, fmt.Errorf("nsxt: NSX has still not purged what was deleted at these paths after %s: %w",
					time.Since(waitedSince).Round(time.Second), err)
			}
			c.log.Info("nsx has not purged what was deleted at a path the apply writes; waiting for its purge cycle (every 5 minutes)",
				zap.String("cluster", set.cluster), zap.Duration("waited", time.Since(waitedSince).Round(time.Second)), zap.Error(err))
			pr.waiting(err, time.Since(waitedSince), c.opts.purgeMax)
			if !purge.Sleep(ctx) {
				cause := context.Cause(ctx)
				if cause == nil {
					cause = context.DeadlineExceeded // too near to wait again
				}
				return nil, addresses{}, 0, fmt.Errorf("nsxt: waiting for NSX to purge: %w: %w", cause, err)
			}
			continue
		case errors.Is(err, ErrConflict):
			c.log.Info("nsx reported a concurrent change; reading again", zap.String("cluster", set.cluster), zap.Error(err))
		case refusedInUse(err):
			// A delete NSX refused for what holds the object: what was
			// read is stale (a CNI added a port to a segment the apply
			// drops, another writer a reference) and reading again finds
			// it, to delete with it or to refuse as ErrInUse. A refusal
			// that stays comes from what kubefoundry cannot see.
			if inUse++; inUse > inUseRetries {
				return nil, addresses{}, 0, fmt.Errorf("nsxt: NSX still refuses a delete for what holds the object after reading again %d times: %w: %w",
					inUseRetries, ErrInUse, err)
			}
			c.log.Info("nsx refused a delete for what holds the object; reading again", zap.String("cluster", set.cluster), zap.Error(err))
		default:
			return nil, addresses{}, 0, err
		}
		lastErr = err
		attempt++
		if attempt < conflictRetries && !bo.Sleep(ctx) {
			break
		}
	}
	return nil, addresses{}, 0, lastErr
}

func (c *Client) apply(ctx context.Context, set desiredSet, tried map[string]map[int]bool) (*Plan, addresses, error) {
	all, err := c.owned(ctx, set.cluster, "")
	if err != nil {
		return nil, addresses{}, err
	}
	if set.admit != nil {
		if err := set.admit(ctx, c, all); err != nil {
			return nil, addresses{}, err
		}
	}
	cur, err := c.members(ctx, set, all)
	if err != nil {
		return nil, addresses{}, err
	}
	if err := c.holdings(ctx, set.ipam, cur); err != nil {
		return nil, addresses{}, err
	}
	ps, allocated, addr, err := c.allocate(ctx, set, cur, tried)
	if err != nil {
		return nil, addresses{}, err
	}
	p, err := c.plan(ctx, set, ps, cur, &addr)
	if err != nil {
		return nil, addresses{}, err
	}
	p.allocate, p.Allocate = allocated, nil
	for _, x := range allocated {
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
	conn, cause := c.connector(ctx)
	rc := realized_state.NewRealizedEntitiesClient(conn)
	bo := retry.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		res, err := rc.List(path, nil)
		if err != nil {
			return nil, apiError("realized state of "+path, err, cause.get())
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
