package nsxt

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/internal/retry"
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
// WithSink reports its progress (OpTeardownTopology).
func (c *Client) TeardownTopology(ctx context.Context, clusterID string, opts ...CallOption) (_ *Teardown, err error) {
	pr := newProgress(opts, OpTeardownTopology, clusterID)
	defer func() { pr.end(err) }()
	p := newProblems("Topology")
	p.clusterID(clusterID)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c.teardown(ctx, clusterID, "", nil, reach{cluster: true, networks: true, services: true, policies: true}, pr)
}

// TeardownNamespace deletes the network of one namespace of a cluster:
// its segment, subnet, SNAT rule and address, group and DFW policy, and
// its LoadBalancer Services and NetworkPolicies, found as TeardownTopology
// finds them. The next BuildTopology must not list the namespace, or it
// comes back. WithSink reports its progress (OpTeardownNamespace).
func (c *Client) TeardownNamespace(ctx context.Context, clusterID, namespace string, opts ...CallOption) (_ *Teardown, err error) {
	pr := newProgress(opts, OpTeardownNamespace, clusterID+"/"+namespace)
	defer func() { pr.end(err) }()
	p := newProblems("Topology")
	p.clusterID(clusterID)
	p.namespace("Namespace", namespace)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c.teardown(ctx, clusterID, namespace, nil, reach{networks: true, services: true, policies: true}, pr)
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
// refusal is returned at once. pr is told the writes it made.
func (c *Client) teardown(ctx context.Context, clusterID, namespace string, member func(map[string]any) bool, where reach, pr *progress) (*Teardown, error) {
	ctx, writes := countWrites(ctx)
	defer func() {
		if pr != nil {
			pr.writes = int(writes.Load())
		}
	}()
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
