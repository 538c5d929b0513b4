package vspherecpi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// diskHeadroomMB is the room the vSphere CPI keeps free on a datastore
// beyond the disks it places there.
const diskHeadroomMB = 1024

// placement is where a VM goes: a cluster (one of those the
// cloud_properties list, or the CPI's), its resource pool, and the
// datastore of its files and ephemeral disk.
type placement struct {
	cluster      clusterProps
	ref          types.ManagedObjectReference
	resourcePool string
	datastore    string
	freeMB       int64
}

// candidate is a cluster the VM may go to, resolved.
type candidate struct {
	props        clusterProps
	ref          types.ManagedObjectReference
	resourcePool string
	datastores   []types.ManagedObjectReference
}

// place chooses the VM's cluster and datastore, as the vSphere CPI does:
// among the clusters of datacenters[0].clusters (or the CPI's own), the
// datastores accessible from each that match datastores (or the CPI's
// own) and have room for the ephemeral disk plus 1 GB; of those, the one
// with the most free space (the vSphere CPI draws at random, weighted by
// free space; this CPI takes the heaviest, so a placement can be
// foreseen). A cluster, resource pool, host group or datastore that is
// not there is recorded in v, by its field, with what there is.
func (c *CPI) place(ctx context.Context, vp vmProps, v *kubefoundry.ValidationError) (placement, error) {
	if dc := c.vs.Datacenter().Name(); vp.Datacenter != "" && vp.Datacenter != dc {
		v.Add("datacenters[0].name", vp.Datacenter, "the CPI's datacenter is %q", dc)
	}
	clusters := vp.Clusters
	fromProps := len(clusters) > 0
	if !fromProps {
		clusters = []clusterProps{{Name: c.cfg.Cluster, Entry: "Config.cluster", Field: "Config.cluster"}}
	}
	before := len(v.Problems)
	var cands []candidate
	for _, cl := range clusters {
		obj, err := c.vs.FindCluster(ctx, cl.Name)
		if vsphere.IsNotFound(err) {
			v.Add(cl.Entry, cl.Name, "%s", notFoundReason(err))
			continue
		}
		if err != nil {
			return placement{}, err
		}
		cand := candidate{props: cl, ref: obj.Reference(), resourcePool: c.cfg.ResourcePool}
		if fromProps {
			cand.resourcePool = ""
		}
		if cl.ResourcePool != "" {
			rp, err := c.vs.FindResourcePool(ctx, path.Join(obj.InventoryPath, "Resources", cl.ResourcePool))
			if vsphere.IsNotFound(err) {
				v.Add(cl.Field+".resource_pool", cl.ResourcePool, "%s", notFoundReason(err))
				continue
			}
			if err != nil {
				return placement{}, err
			}
			cand.resourcePool = rp.InventoryPath
		}
		var m mo.ClusterComputeResource
		if err := property.DefaultCollector(c.vs.Vim25()).RetrieveOne(ctx, cand.ref, []string{"datastore", "configurationEx"}, &m); err != nil {
			return placement{}, fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		cand.datastores = m.Datastore
		if cl.HostGroup != "" {
			var hostGroups []string
			found := false
			if cfg, ok := m.ConfigurationEx.(*types.ClusterConfigInfoEx); ok {
				for _, g := range cfg.Group {
					if hg, ok := g.(*types.ClusterHostGroup); ok {
						hostGroups = append(hostGroups, hg.Name)
						found = found || hg.Name == cl.HostGroup
					}
				}
			}
			if !found {
				v.Add(cl.Field+".host_group", cl.HostGroup, "no such host group in cluster %s; there are: %s", cl.Name, listed(hostGroups))
				continue
			}
		}
		cands = append(cands, cand)
	}
	if len(v.Problems) > before || len(cands) == 0 {
		return placement{}, nil // the clusters are at fault; their datastores are not
	}

	patterns, field := vp.Datastores, "datastores"
	if len(patterns) == 0 {
		patterns, field = []datastorePattern{{name: c.cfg.Datastore}}, "Config.datastore"
	}
	summaries, err := c.datastoreSummaries(ctx, cands)
	if err != nil {
		return placement{}, err
	}
	needMB := vp.Disk + diskHeadroomMB
	var best *placement
	var matched, accessible []string
	for _, cand := range cands {
		for _, ref := range cand.datastores {
			s, ok := summaries[ref]
			if !ok || !s.Accessible {
				continue
			}
			accessible = append(accessible, s.Name)
			if !slices.ContainsFunc(patterns, func(p datastorePattern) bool { return p.match(s.Name) }) {
				continue
			}
			freeMB := s.FreeSpace >> 20
			matched = append(matched, fmt.Sprintf("%s (%d MB free)", s.Name, freeMB))
			if freeMB < needMB {
				continue
			}
			// The most free space wins; on a tie, the first cluster listed,
			// then the datastore first by name.
			if best == nil || freeMB > best.freeMB || (freeMB == best.freeMB && best.cluster.Name == cand.props.Name && s.Name < best.datastore) {
				best = &placement{cluster: cand.props, ref: cand.ref, resourcePool: cand.resourcePool, datastore: s.Name, freeMB: freeMB}
			}
		}
	}
	switch {
	case best != nil:
		return *best, nil
	case len(matched) == 0:
		v.Add(field, joinPatterns(patterns), "no datastore of that name is accessible from cluster %s; there are: %s",
			strings.Join(clusterNames(cands), ", "), listed(accessible))
		return placement{}, nil
	}
	slices.Sort(matched)
	return placement{}, cpi.Errorf(cpi.VMCreationFailed, false, "no datastore matching %s has room for the %d MB ephemeral disk and %d MB headroom: %s",
		joinPatterns(patterns), vp.Disk, diskHeadroomMB, strings.Join(slices.Compact(matched), ", "))
}

// datastoreSummaries reads the summaries of the candidates' datastores in
// one call.
func (c *CPI) datastoreSummaries(ctx context.Context, cands []candidate) (map[types.ManagedObjectReference]types.DatastoreSummary, error) {
	var refs []types.ManagedObjectReference
	for _, cand := range cands {
		for _, r := range cand.datastores {
			if !slices.Contains(refs, r) {
				refs = append(refs, r)
			}
		}
	}
	out := map[types.ManagedObjectReference]types.DatastoreSummary{}
	if len(refs) == 0 {
		return out, nil
	}
	var dss []mo.Datastore
	if err := property.DefaultCollector(c.vs.Vim25()).Retrieve(ctx, refs, []string{"summary"}, &dss); err != nil {
		return nil, fmt.Errorf("datastores: %w", err)
	}
	for _, ds := range dss {
		out[ds.Self] = ds.Summary
	}
	return out, nil
}

func notFoundReason(err error) string {
	var nf *vsphere.NotFoundError
	if errors.As(err, &nf) {
		return fmt.Sprintf("no such %s; there are: %s", nf.Kind, listed(nf.Available))
	}
	return err.Error()
}

func listed(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	s := slices.Clone(names)
	slices.SortFunc(s, cmp.Compare)
	return strings.Join(slices.Compact(s), ", ")
}

func joinPatterns(ps []datastorePattern) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func clusterNames(cands []candidate) []string {
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.props.Name
	}
	return out
}
