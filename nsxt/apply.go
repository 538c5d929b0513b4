package nsxt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
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
// BuildTopology does not remove what it adds.
func (c *Client) EnsureNamespace(ctx context.Context, t Topology, namespace string) (*NamespaceNetwork, error) {
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
	_, addr, _, err := c.converge(ctx, set)
	if err != nil {
		return nil, err
	}
	return &NamespaceNetwork{SegmentPath: "/infra/segments/" + t.prefix() + "_ns_" + namespace,
		Subnet: addr.subnets[t.nsSubnetPath(namespace)], SNATAddress: addr.ips[t.nsSNATID(namespace)]}, nil
}

// converge applies a set, re-reading after a conflict. It returns the plan
// it applied, the addresses of the set and the write requests it made.
func (c *Client) converge(ctx context.Context, set desiredSet) (*Plan, addresses, int, error) {
	ctx, writes := countWrites(ctx)
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

// allocate is the allocation stage: it creates what is missing (one
// PATCH) and waits for NSX to realize every allocation, not only the new
// ones (one created by an earlier, interrupted run may not be realized
// yet). One NSX cannot allocate (realized in ERROR: its block or pool is
// exhausted) is released and made again from the next block or pool
// listed, one PATCH each way per round, until each is allocated or one
// has no block or pool left; then, once, the allocations the set no longer
// wants are released too and every source is tried again. A subnet NSX
// refuses at once for want of room in its block (see refusedSubnets)
// moves on the same way, with nothing to release. tried holds, by key,
// the sources that could not make an allocation, kept by converge when the
// apply starts over: NSX keeps what was released until it purges it, and
// refuses to make it again at its path meanwhile. It returns where the
// allocations are, the changes it made and what NSX allocated; cur then
// holds what it created.
func (c *Client) allocate(ctx context.Context, set desiredSet, cur current, tried map[string]map[int]bool) ([]placed, []pending, addresses, error) {
	addr := newAddresses()
	var changes []pending
	var only map[int]bool        // after the first round, the allocations made again
	freed := false               // what the set no longer wants was released early
	refusals := map[string]int{} // by IP block, the PATCHes it refused
	created := map[string]bool{} // what this apply created
	for {
		ps, err := place(set.ipam, cur, tried)
		if err != nil {
			return nil, nil, addresses{}, err
		}
		ipam := make([]intent, len(ps))
		for i, p := range ps {
			ipam[i] = p.intent()
		}
		alloc, err := diff(ipam, cur)
		if err != nil {
			return nil, nil, addresses{}, err
		}
		c.log.Info("nsx allocate", zap.String("cluster", set.cluster), zap.Int("changes", len(alloc)))
		// failed are the allocations NSX could not make, by index in ps,
		// with its reason; made says whether they exist (realized in
		// ERROR) or NSX refused the PATCH, which then made nothing.
		failed, made := map[int]error{}, true
		again := map[int]bool{} // the allocations to read after the next PATCH
		if err := c.patch(ctx, alloc); err != nil {
			if failed = refusedSubnets(err, ps, alloc, refusals); len(failed) == 0 {
				return nil, nil, addresses{}, err
			}
			made = false
		} else {
			changes = append(changes, alloc...)
			// What this round created counts as present.
			for _, in := range ipam {
				if _, ok := cur[in.path]; !ok {
					m, err := intentMap(in)
					if err != nil {
						return nil, nil, addresses{}, err
					}
					cur[in.path] = m
					created[in.path] = true
				}
			}
			errored, gone, err := c.addresses(ctx, addr, ps, cur, true, only)
			if err != nil {
				return nil, nil, addresses{}, err
			}
			// One the search showed (an update does not read a kept
			// address by path) that NSX no longer holds, as right after a
			// teardown, is absent: made in the next round. One this apply
			// made and NSX no longer holds, another writer deleted.
			var lost []error
			for _, i := range slices.Sorted(maps.Keys(gone)) {
				path := ps[i].intent().path
				if created[path] {
					lost = append(lost, fmt.Errorf("nsxt: %s is gone since it was created: %w", path, ErrConflict))
					continue
				}
				c.log.Info("nsx does not hold what the search index shows; making it again", zap.String("cluster", set.cluster), zap.String("path", path))
				delete(cur, path)
			}
			if len(lost) > 0 {
				return nil, nil, addresses{}, errors.Join(lost...)
			}
			if len(errored) == 0 && len(gone) == 0 {
				return ps, changes, addr, nil
			}
			if len(errored) == 0 {
				only = gone
				continue
			}
			for i, re := range errored {
				failed[i] = re
			}
			for i := range gone {
				again[i] = true
			}
		}

		// An allocation in ERROR holds nothing: release it, and try the
		// next source. One NSX refused does not exist: try the next.
		idx := make([]int, 0, len(failed))
		for i := range failed {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		var release []pending
		var exhausted []error
		for _, i := range idx {
			p, why := ps[i], failed[i]
			if tried[p.key] == nil {
				tried[p.key] = map[int]bool{}
			}
			tried[p.key][p.source] = true
			in := p.intent()
			if made {
				release = append(release, pending{Change: Change{Action: Delete, Path: in.path, Type: in.rtype}})
				delete(cur, in.path)
			}
			again[i] = true
			left := p.next(tried[p.key]) >= 0
			c.log.Info("nsx could not allocate; trying the next source", zap.String("cluster", set.cluster), zap.String("path", in.path),
				zap.String("from", p.from[p.source]), zap.String("reason", reason(why)), zap.Bool("refused", !made), zap.Bool("next", left))
			if !left {
				exhausted = append(exhausted, p.exhausted(why))
			}
		}
		switch {
		case made:
			only = again
		case only != nil:
			// Nothing was made or read: those still to read stay so.
			for i := range again {
				only[i] = true
			}
		}
		if len(exhausted) > 0 && !freed {
			// Allocations the set no longer wants (of a namespace it
			// drops) go only after the allocation stage; when room is
			// short, release them now and try every source once more.
			keep := map[string]bool{}
			for _, p := range ps {
				keep[p.intent().path] = true
			}
			for path, m := range cur {
				if rt, _ := m["resource_type"].(string); !keep[path] && (rt == "IpAddressPoolBlockSubnet" || rt == "IpAddressAllocation") {
					release = append(release, pending{Change: Change{Action: Delete, Path: path, Type: rt}})
					delete(cur, path)
					freed = true
				}
			}
			if freed {
				c.log.Info("nsx releasing what the set no longer wants, to make room", zap.String("cluster", set.cluster))
				for _, i := range idx {
					delete(tried, ps[i].key)
				}
				clear(refusals)
				exhausted = nil
			}
		}
		sort.Slice(release, func(i, j int) bool { return release[i].Path < release[j].Path })
		if err := c.patch(ctx, release); err != nil {
			return nil, nil, addresses{}, err
		}
		changes = append(changes, release...)
		if len(exhausted) > 0 {
			return nil, nil, addresses{}, errors.Join(exhausted...)
		}
	}
}

// refusedSubnets are the new subnets of a refused allocation PATCH that
// err says their IP block has no room for, by index in ps: some NSX
// versions refuse such a subnet at once (error code 520012), failing the
// whole PATCH, instead of realizing it in state ERROR. NSX names the full
// blocks but not which of their new subnets did not fit (it carves them
// in order, so the last ones): the last new subnet of a block moves on
// after each of its first two refusals, then the last two, four, eight...
// after the next ones. A block with room for all but one keeps the
// others, as it would with ERROR, and one with no room at all costs a few
// refused PATCHes, not one per subnet. When NSX names no block, every
// block of a new subnet counts as named. refusals counts, by block, the
// refusals so far.
func refusedSubnets(err error, ps []placed, alloc []pending, refusals map[string]int) map[int]error {
	full, ok := fullBlocks(err)
	if !ok {
		return nil
	}
	creating := map[string]bool{}
	for _, a := range alloc {
		if a.Action == Create {
			creating[a.Path] = true
		}
	}
	byBlock := map[string][]int{} // new subnets by block, in order
	for i, p := range ps {
		if in := p.intent(); in.rtype == "IpAddressPoolBlockSubnet" && creating[in.path] {
			b := p.from[p.source]
			if len(full) == 0 || full[b] {
				byBlock[b] = append(byBlock[b], i)
			}
		}
	}
	out := map[int]error{}
	for b, idx := range byBlock {
		refusals[b]++
		n := min(1<<min(max(refusals[b]-2, 0), 30), len(idx))
		for _, i := range idx[len(idx)-n:] {
			out[i] = err
		}
	}
	return out
}

// reason is NSX's reason for not allocating, for the log.
func reason(err error) string {
	var re *RealizationError
	var ae *APIError
	switch {
	case errors.As(err, &re):
		return re.Message
	case errors.As(err, &ae):
		return ae.Message
	}
	return err.Error()
}

// exhausted is the error of an allocation none of its sources could make,
// naming the spec field that lists them (Topology.NodeIPBlockPath,
// Topology.PodIPBlockPaths...); why is NSX's reason for the last, which
// it wraps: a *RealizationError, or the *APIError of a refused subnet.
func (a *allocation) exhausted(why error) error {
	switch {
	case a.field == "":
		return why
	case len(a.sources) < 2:
		return fmt.Errorf("nsxt: NSX could not allocate %s from %s.%s (%s): %w",
			a.key, a.object, a.field, strings.Join(a.from, ", "), why)
	}
	return fmt.Errorf("nsxt: NSX could allocate %s from none of %s.%s (%s): %w",
		a.key, a.object, a.field, strings.Join(a.from, ", "), why)
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
