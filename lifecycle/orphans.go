package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kubefoundry/kubefoundry"
)

// Orphan is something on the foundation made for a cluster the Store
// does not know: left by a cluster whose record was lost, or by a
// deletion that never finished.
type Orphan struct {
	// Cluster is the name of the cluster it was made for.
	Cluster string
	// System is where it is: "bosh" or "nsx".
	System string
	// Kind is what it is: "deployment" or "cloud config" on BOSH, NSX's
	// resource type (Tier1, Segment, LBVirtualServer...) on NSX.
	Kind string
	// Name is the deployment's or config's name, or the NSX object's
	// path.
	Name string
}

// Orphans lists what on the foundation belongs to no cluster of the
// Store, cluster by cluster: the director's deployments and cloud configs
// named for a cluster (kubefoundry-<name>), and the NSX objects tagged
// with a cluster's ID (nsxt.Client.Clusters, then ListOwned). It changes
// nothing; DeleteOrphans removes what it lists. A cluster being created
// has its record from the start, so nothing of it is listed.
//
// Not scanned yet: VMs on vSphere the CPI made that the director does
// not know, CNS volumes and Harbor projects (lifecycle makes none yet).
func (m *Manager) Orphans(ctx context.Context) ([]Orphan, error) {
	known := map[string]bool{}
	recs, err := m.cfg.Store.Clusters()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		known[string(r.Spec.Name)] = true
	}
	// name is the cluster a BOSH name is for, when it is one of ours.
	name := func(s string) (string, bool) {
		c, ok := strings.CutPrefix(s, "kubefoundry-")
		return c, ok && kubefoundry.ClusterID(c).Validate() == nil && !known[c]
	}
	var out []Orphan
	deps, err := m.cfg.Director.Deployments()
	if err != nil {
		return nil, fmt.Errorf("orphans: BOSH deployments: %w", err)
	}
	for _, d := range deps {
		if c, ok := name(d.Name); ok {
			out = append(out, Orphan{Cluster: c, System: "bosh", Kind: "deployment", Name: d.Name})
		}
	}
	cfgs, err := m.cfg.Director.Configs("cloud")
	if err != nil {
		return nil, fmt.Errorf("orphans: BOSH cloud configs: %w", err)
	}
	for _, c := range cfgs {
		if cl, ok := name(c.Name); ok {
			out = append(out, Orphan{Cluster: cl, System: "bosh", Kind: "cloud config", Name: c.Name})
		}
	}
	ids, err := m.cfg.NSX.Clusters(ctx)
	if err != nil {
		return nil, fmt.Errorf("orphans: NSX: %w", err)
	}
	for _, id := range ids {
		if known[id] || kubefoundry.ClusterID(id).Validate() != nil {
			// A tag that names no cluster of ours is not ours to delete.
			continue
		}
		objs, err := m.cfg.NSX.ListOwned(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("orphans: NSX objects of %s: %w", id, err)
		}
		for _, o := range objs {
			out = append(out, Orphan{Cluster: id, System: "nsx", Kind: o.Type, Name: o.Path})
		}
	}
	slices.SortStableFunc(out, func(a, b Orphan) int { return strings.Compare(a.Cluster, b.Cluster) })
	return out, nil
}

// DeleteOrphans removes what Orphans lists, a cluster's leftovers at a
// time, as Delete removes a cluster: its deployment (VMs and disks), then
// its network, then its cloud config. One cluster's failure does not keep
// the others: the error names each that failed. It returns what it
// found.
func (m *Manager) DeleteOrphans(ctx context.Context) ([]Orphan, error) {
	found, err := m.Orphans(ctx)
	if err != nil {
		return nil, err
	}
	var clusters []string
	for _, o := range found {
		if !slices.Contains(clusters, o.Cluster) {
			clusters = append(clusters, o.Cluster)
		}
	}
	var errs []error
	for _, c := range clusters {
		// Between the scan and now a cluster of that name may have been
		// created: it is not an orphan's to delete.
		switch _, err := m.cfg.Store.Cluster(c); {
		case err == nil:
			continue
		case !errors.Is(err, kubefoundry.ErrNotFound):
			errs = append(errs, fmt.Errorf("orphans of %s: %w", c, err))
			continue
		}
		if err := m.Delete(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("orphans of %s: %w", c, err))
		}
	}
	return found, errors.Join(errs...)
}
