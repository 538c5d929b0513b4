package nsxt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/workpool"
)

// allocation is one object of the allocation stage: a subnet carved from
// an IP block, an address from an IP pool, or the cluster's own pool that
// holds its subnets. It may come from any of several sources (the pod IP
// blocks, the floating pools), tried in order; sources[i] is the object
// as made from from[i]. A namespace's subnet has a path of its own in
// each pod block (its id ends with the block's), and an address lives
// under its pool: a copy released from one source, which NSX keeps until
// it purges it, never stands in the way of making it from the next. key
// stays the same whichever source it comes from.
type allocation struct {
	key     string // names it in addresses: a subnet's path, an address's id
	object  string // the spec that lists the sources, for errors: Topology
	field   string // its field: PodIPBlockPaths
	from    []string
	sources []intent
}

// blockSubnet is a subnet of size addresses, key, carved from one of
// blocks: at key itself, or with perBlock at key_<block id> for each
// block (see blockSuffix).
func blockSubnet(object, field, key string, blocks []string, perBlock bool, size int, tags []model.Tag) allocation {
	a := allocation{key: key, object: object, field: field}
	for _, b := range blocks {
		path := key
		if perBlock {
			path += blockSuffix(b)
		}
		_, _, id := splitPath(path)
		a.from = append(a.from, b)
		a.sources = append(a.sources, intent{path, "IpAddressPoolBlockSubnet", model.IpAddressPoolBlockSubnet{
			Id: ptr(id), ResourceType: "IpAddressPoolBlockSubnet", IpBlockPath: ptr(b),
			SubnetSize: ptr(strconv.Itoa(size)), AutoAssignGateway: ptr(true), Tags: tags}, true})
	}
	return a
}

// blockSuffix ends the id of a subnet carved from block: _ and the
// block's id.
func blockSuffix(block string) string {
	_, _, id := splitPath(block)
	return "_" + id
}

// poolAddress is an address allocated as id from one of pools; ip asks for
// a particular address, "" for any.
func poolAddress(object, field, id string, pools []string, ip string, tags []model.Tag) allocation {
	a := allocation{key: id, object: object, field: field}
	for _, p := range pools {
		alloc := model.IpAddressAllocation{Id: ptr(id), Tags: tags}
		if ip != "" {
			alloc.AllocationIp = ptr(ip)
		}
		a.from = append(a.from, p)
		a.sources = append(a.sources, intent{p + "/ip-allocations/" + id, "IpAddressAllocation", alloc, true})
	}
	return a
}

// allocKey is the key of the allocation an object NSX holds is a copy of,
// or "" when it is not an allocation.
func allocKey(m map[string]any) string {
	path, _ := m["path"].(string)
	switch m["resource_type"] {
	case "IpAddressPool":
		return path
	case "IpAddressPoolBlockSubnet":
		block, _ := m["ip_block_path"].(string)
		return strings.TrimSuffix(path, blockSuffix(block))
	case "IpAddressAllocation":
		_, _, id := splitPath(path)
		return id
	}
	return ""
}

// sourceOf is the block or pool an allocation NSX holds came from.
func sourceOf(m map[string]any) string {
	switch m["resource_type"] {
	case "IpAddressPoolBlockSubnet":
		s, _ := m["ip_block_path"].(string)
		return s
	case "IpAddressAllocation":
		path, _ := m["path"].(string)
		return parentPath(path)
	}
	return ""
}

// placed is an allocation with its source chosen, and the path of the
// copy NSX holds, when it holds one.
type placed struct {
	*allocation
	source int
	held   string
}

// intent is the allocation as made from its source, at the path of the
// copy NSX holds: a subnet made before its id named its block (ns_<ns>)
// stays where it is rather than being made again with another CIDR.
func (p placed) intent() intent {
	in := p.sources[p.source]
	if p.held == "" || p.held == in.path {
		return in
	}
	if o, ok := in.obj.(model.IpAddressPoolBlockSubnet); ok {
		_, _, id := splitPath(p.held)
		o.Id = &id
		in.obj, in.path = o, p.held
	}
	return in
}

// place chooses the source of each allocation: the one NSX already holds
// it from, since an allocation never moves, or else the first not tried
// yet (tried holds, by key, the sources that could not allocate it in this
// apply). A copy held from a block or pool the spec no longer lists is a
// problem of a *kubefoundry.ValidationError naming every such field: it
// cannot move, and it cannot stay unlisted. Of two copies
// (another writer raced this one), the one from the first listed source
// is kept (of two from the same one, see keptFirst) and the other
// deleted.
func place(allocs []allocation, cur current, tried map[string]map[int]bool) ([]placed, error) {
	copies := map[string][]map[string]any{}
	for _, m := range cur {
		if k := allocKey(m); k != "" {
			copies[k] = append(copies[k], m)
		}
	}
	out := make([]placed, len(allocs))
	var bad kubefoundry.ValidationError // every stray copy
	for i := range allocs {
		a := &allocs[i]
		held, stray, heldPath := -1, map[string]any(nil), ""
		for _, m := range copies[a.key] {
			j := slices.Index(a.from, sourceOf(m))
			p, _ := m["path"].(string)
			switch {
			case j < 0:
				stray = m
			case held < 0 || j < held || (j == held && keptFirst(p, heldPath, a.key)):
				held, heldPath = j, p
			}
		}
		if held < 0 && stray != nil {
			if bad.Object == "" {
				bad.Object = "nsxt." + a.object
			}
			bad.Add(a.object+"."+a.field, sourceOf(stray),
				"is not listed but holds %s, and an allocation never moves: list it again, or delete the network that uses it first", stray["path"])
			continue
		}
		if held < 0 {
			held = a.next(tried[a.key])
		}
		if held < 0 {
			return nil, fmt.Errorf("nsxt: %s has no source left to try", a.key)
		}
		out[i] = placed{allocation: a, source: held, held: heldPath}
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// keptFirst reports whether, of two copies of the allocation key from
// the same source, the one at path p is kept rather than the one at q:
// the one at key itself (a subnet made before its id named its block, which
// an existing cluster's segment uses), else the first by path, so that
// every apply and dry run keeps the same one.
func keptFirst(p, q, key string) bool {
	if (p == key) != (q == key) {
		return p == key
	}
	return p < q
}

// next is the first source not in tried, or -1.
func (a *allocation) next(tried map[int]bool) int {
	for i := range a.sources {
		if !tried[i] {
			return i
		}
	}
	return -1
}

// holdings makes cur hold what NSX's store holds, rather than what the
// search index shows, of the allocations that may come from several
// sources, and of any the search shows where the spec does not list it.
// The index trails writes: guessing from it that such an allocation is
// missing would make a second copy of an address in another pool (which
// would then move), or of a subnet from another block; trusting a hit for one deleted a moment ago would take it
// as held, or refuse the spec for a block or pool it no longer is in. So
// it GETs, at bounded concurrency, each copy the search shows, and when
// the search shows none, each path the allocation may have (one per
// source): a 404 is an absent copy.
// A copy the search shows that NSX no longer holds (the index showing the
// past, as right after a teardown) is absent too: it leaves cur, and is
// made again, unless the allocation may come from several sources and
// NSX holds it at another of its paths, which are then read as well.
func (c *Client) holdings(ctx context.Context, allocs []allocation, cur current) error {
	shown := map[string][]string{} // by key, the paths of the copies the search shows
	for p, m := range cur {
		if k := allocKey(m); k != "" {
			shown[k] = append(shown[k], p)
		}
	}
	want := map[string]bool{}
	for _, a := range allocs {
		own := map[string]bool{}
		for _, s := range a.sources {
			own[s.path] = true
		}
		several := len(a.sources) > 1
		for _, p := range shown[a.key] {
			if several || !own[p] {
				want[p] = true
			}
		}
		if several && len(shown[a.key]) == 0 {
			for p := range own {
				want[p] = true
			}
		}
	}
	fetched := map[string]map[string]any{} // by path: what NSX holds there, nil for a 404
	fetch := func(want map[string]bool) error {
		paths := make([]string, 0, len(want))
		for p := range want {
			if _, done := fetched[p]; !done {
				paths = append(paths, p)
			}
		}
		sort.Strings(paths)
		held := make([]map[string]any, len(paths))
		errs := make([]error, len(paths))
		workpool.Run(ctx, 8, len(paths), func(i int) {
			m, err := c.getObject(ctx, paths[i])
			switch {
			case err == nil:
				held[i] = m
			case !errors.Is(err, ErrNotFound):
				errs[i] = err
			}
		}, func(i int, err error) { errs[i] = err })
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for i, p := range paths {
			fetched[p] = held[i]
		}
		return nil
	}
	if err := fetch(want); err != nil {
		return err
	}
	// An allocation with several sources whose every copy the search shows
	// is gone may be held at another of its paths, made since the index
	// was written (by another client, or a run that crashed): read those
	// too, or a second copy would be made.
	more := map[string]bool{}
	for _, a := range allocs {
		if len(a.sources) < 2 || len(shown[a.key]) == 0 {
			continue
		}
		held := false
		for _, p := range shown[a.key] {
			held = held || fetched[p] != nil
		}
		if !held {
			for _, src := range a.sources {
				more[src.path] = true
			}
		}
	}
	if err := fetch(more); err != nil {
		return err
	}
	for p, m := range fetched {
		if m != nil {
			cur[p] = m
		} else {
			delete(cur, p)
		}
	}
	return nil
}

// addresses are what the allocation stage got from NSX, by allocation key.
type addresses struct {
	subnets map[string]netip.Prefix // subnet path -> cidr
	ips     map[string]string       // allocation id -> address
}

// addresses reads the subnets and addresses NSX allocated for ps, those in
// only when it is not nil, into a. With wait (an apply) each is awaited,
// and those NSX could not allocate (realized in state ERROR: an exhausted
// block or pool) are returned by index rather than as errors; without (a
// dry run) one that does not exist yet is simply not known. Those NSX
// does not hold (the search index showed one deleted a moment ago, which
// an update does not read again by path) are returned by index as gone:
// the caller takes them out of cur and makes them again.
func (c *Client) addresses(ctx context.Context, a addresses, ps []placed, cur current, wait bool, only map[int]bool) (failed map[int]*RealizationError, gone map[int]bool, err error) {
	var idx []int
	for i, p := range ps {
		in := p.intent()
		if in.rtype == "IpAddressPool" || (only != nil && !only[i]) {
			continue
		}
		if _, ok := cur[in.path]; ok || wait {
			idx = append(idx, i)
		}
	}
	var mu sync.Mutex
	failed, gone = map[int]*RealizationError{}, map[int]bool{}
	errs := make([]error, len(idx))
	workpool.Run(ctx, 8, len(idx), func(j int) {
		p := ps[idx[j]]
		path := p.intent().path
		attrs, err := c.realized(ctx, path, wait)
		mu.Lock()
		defer mu.Unlock()
		var re *RealizationError
		switch {
		case wait && errors.As(err, &re) && re.State == "ERROR":
			failed[idx[j]] = re
		case errors.Is(err, ErrNotFound):
			// The search showed it and NSX no longer holds it: the index
			// showing the past.
			gone[idx[j]] = true
		case err != nil:
			errs[j] = err
		default:
			if v := attrs["cidr"]; v != "" {
				if pfx, err := netip.ParsePrefix(v); err == nil {
					a.subnets[p.key] = pfx
				}
			}
			if v := attrs["allocation_ip"]; v != "" {
				a.ips[p.key] = v
			}
		}
	}, func(j int, err error) { errs[j] = err })
	return failed, gone, errors.Join(errs...)
}

func newAddresses() addresses {
	return addresses{subnets: map[string]netip.Prefix{}, ips: map[string]string{}}
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
