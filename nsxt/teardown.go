package nsxt

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/internal/retry"
)

// Teardown reports what TeardownTopology or TeardownNamespace deleted.
type Teardown struct {
	Deleted []string // policy paths
	Writes  int
}

// TeardownTopology deletes every object tagged with the cluster, found by
// tag, so it works after the caller has lost every id. The allocated
// subnets and addresses go back to their block and pool. Calling it again
// finds nothing and writes nothing.
func (c *Client) TeardownTopology(ctx context.Context, clusterID string) (*Teardown, error) {
	if err := checkClusterID("Topology", clusterID); err != nil {
		return nil, err
	}
	return c.teardown(ctx, clusterID, "", nil)
}

// TeardownNamespace deletes the network of one namespace of a cluster:
// its segment, subnet, SNAT rule and address, group and DFW policy. The
// next BuildTopology must not list the namespace, or it comes back.
func (c *Client) TeardownNamespace(ctx context.Context, clusterID, namespace string) (*Teardown, error) {
	if err := checkClusterID("Topology", clusterID); err != nil {
		return nil, err
	}
	if !dnsLabelRe.MatchString(namespace) {
		return nil, &FieldError{"Topology", "Namespace", namespace, "is not a Kubernetes namespace name"}
	}
	return c.teardown(ctx, clusterID, namespace, nil)
}

// teardown deletes the objects tagged with the cluster (and namespace),
// those member accepts when it is not nil.
func (c *Client) teardown(ctx context.Context, clusterID, namespace string, member func(map[string]any) bool) (*Teardown, error) {
	ctx, writes := countWrites(ctx)
	out := &Teardown{}
	seen := map[string]bool{}
	// NSX's search index follows writes with a delay: objects made just
	// before may show up only on a later read, and objects just deleted
	// may still show. Search again after deleting, until a search finds
	// nothing new (a few rounds at most).
	bo := retry.Backoff{Initial: 250 * time.Millisecond, Max: 4 * time.Second}
	for round := 0; round < conflictRetries; round++ {
		cur, err := c.owned(ctx, clusterID, namespace)
		if err != nil {
			return nil, err
		}
		for p, m := range cur {
			if (member != nil && !member(m)) || seen[p] {
				delete(cur, p)
			}
		}
		if len(cur) == 0 {
			break
		}
		dels := deletions(nil, cur)
		c.log.Info("nsx teardown", zap.String("cluster", clusterID), zap.String("namespace", namespace), zap.Int("objects", len(dels)))
		err = c.patch(ctx, dels)
		switch {
		case err == nil:
			for _, d := range dels {
				seen[d.Path] = true
				out.Deleted = append(out.Deleted, d.Path)
			}
		case errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid):
			// A stale read (an object changed, or a child the index did
			// not show yet): read again.
			c.log.Info("nsx teardown refused; reading again", zap.Error(err))
			if round+1 == conflictRetries {
				return nil, err
			}
		default:
			return nil, err
		}
		if !bo.Sleep(ctx) {
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("nsxt: teardown of %s: %w", clusterID, cause)
		}
	}
	sort.Strings(out.Deleted)
	out.Writes = int(writes.Load())
	return out, nil
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
