package nsxt

import (
	"context"
	"sort"
)

// OwnedObject is an NSX object tagged with a cluster (TagCluster), as
// ListOwned reports it.
type OwnedObject struct {
	// Type is NSX's resource_type: Tier1, Segment, PolicyNatRule,
	// LBVirtualServer, SecurityPolicy, IpAddressAllocation...
	Type string `json:"type"`
	// Path is the object's policy path.
	Path string `json:"path"`
	// Name is its display_name; NSX's default, the id, when it has none.
	Name string `json:"name"`
	// Namespace, Service and NetworkPolicy are its TagNamespace,
	// TagService and TagNetworkPolicy tags, when it has them: the
	// namespace, and the "<namespace>/<name>" of the LoadBalancer Service
	// or NetworkPolicy it serves.
	Namespace     string `json:"namespace,omitempty"`
	Service       string `json:"service,omitempty"`
	NetworkPolicy string `json:"networkPolicy,omitempty"`
}

// ListOwned returns every NSX object tagged with the cluster, sorted by
// path: the orphan scan, what TeardownTopology would delete (but the
// untagged ports on the cluster's segments that it takes with them). It
// finds them as a teardown does, through the search API and in NSX's
// store, so it lists an object made a moment ago, which the search index
// does not show yet, and leaves out one deleted a moment ago, which NSX
// has not purged yet. A cluster with nothing in NSX lists nothing, with
// no error.
func (c *Client) ListOwned(ctx context.Context, clusterID string) ([]OwnedObject, error) {
	p := newProblems("Topology")
	p.clusterID(clusterID)
	if err := p.err(); err != nil {
		return nil, err
	}
	hits, err := c.owned(ctx, clusterID, "")
	if err != nil {
		return nil, err
	}
	owns := func(m map[string]any) bool { return hasTag(m, TagCluster, clusterID) }
	st, err := c.stored(ctx, clusterID, "", reach{cluster: true, networks: true, services: true, policies: true}, owns, hits)
	if err != nil {
		return nil, err
	}
	cur := st.join(hits, nil)
	out := make([]OwnedObject, 0, len(cur))
	for path, m := range cur {
		rt, _ := m["resource_type"].(string)
		name, _ := m["display_name"].(string)
		if name == "" {
			_, _, name = splitPath(path)
		}
		out = append(out, OwnedObject{Type: rt, Path: path, Name: name, Namespace: tagValue(m, TagNamespace),
			Service: tagValue(m, TagService), NetworkPolicy: tagValue(m, TagNetworkPolicy)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Clusters returns, sorted, every cluster ID that owns something in NSX
// (an object tagged TagCluster): where an orphan scan begins, with
// ListOwned for each cluster no one knows. It reads NSX's search index,
// so a cluster whose only objects were made a moment ago, which the index
// does not show yet, may be missing; what a teardown deleted and NSX has
// not purged yet is left out.
func (c *Client) Clusters(ctx context.Context) ([]string, error) {
	res, err := searchAll(ctx, c, "tags.scope:"+escape(TagCluster))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range res {
		for _, id := range tagValues(m, TagCluster) {
			seen[id] = true
		}
	}
	out := []string{}
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}
