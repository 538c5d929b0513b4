package vsphere

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/pbm"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry/internal/vimsession"
)

// maxListed bounds the names a NotFoundError lists.
const maxListed = 20

func (c *Client) selectDatacenter(ctx context.Context, name string) error {
	dc, err := c.FindDatacenter(ctx, name)
	if err != nil {
		return err
	}
	c.dc = dc
	c.finder.SetDatacenter(dc)
	// The Finder caches the datacenter's folders on first use, unguarded:
	// fill the cache now, so that concurrent lookups only read it.
	if _, err := c.finder.DefaultFolder(ctx); err != nil {
		return fmt.Errorf("vsphere: folders of datacenter %s: %w", dc.InventoryPath, err)
	}
	return nil
}

// FindDatacenter resolves a datacenter by name or inventory path. An empty
// name means the only datacenter there is.
func (c *Client) FindDatacenter(ctx context.Context, name string) (*object.Datacenter, error) {
	f := find.NewFinder(c.vim, false)
	if name == "" {
		dc, err := f.DefaultDatacenter(ctx)
		if err == nil {
			return dc, nil
		}
		var multi *find.DefaultMultipleFoundError
		if errors.As(err, &multi) {
			return nil, fmt.Errorf("datacenter: more than one exists (%s), name one: %w",
				joinNames(names(f.DatacenterList, "*")(ctx)), ErrInvalidSpec)
		}
		return nil, notFound(ctx, "datacenter", "", "/", names(f.DatacenterList, "*"), err)
	}
	dc, err := f.Datacenter(ctx, name)
	if err != nil {
		return nil, notFound(ctx, "datacenter", name, "/", names(f.DatacenterList, "*"), err)
	}
	return dc, nil
}

// FindCluster resolves a compute cluster by name or inventory path.
func (c *Client) FindCluster(ctx context.Context, name string) (*object.ClusterComputeResource, error) {
	cl, err := c.finder.ClusterComputeResource(ctx, name)
	if err != nil {
		return nil, notFound(ctx, "cluster", name, c.dc.InventoryPath+"/host", names(c.finder.ClusterComputeResourceList, "*"), err)
	}
	return cl, nil
}

// FindResourcePool resolves a resource pool by name or inventory path, such
// as "DC0_C0/Resources/team-a".
func (c *Client) FindResourcePool(ctx context.Context, name string) (*object.ResourcePool, error) {
	rp, err := c.finder.ResourcePool(ctx, name)
	if err != nil {
		return nil, notFound(ctx, "resource pool", name, c.dc.InventoryPath+"/host", names(c.finder.ResourcePoolList, "*/*"), err)
	}
	return rp, nil
}

// FindDatastore resolves a datastore by name or inventory path.
func (c *Client) FindDatastore(ctx context.Context, name string) (*object.Datastore, error) {
	ds, err := c.finder.Datastore(ctx, name)
	if err != nil {
		return nil, notFound(ctx, "datastore", name, c.dc.InventoryPath+"/datastore", names(c.finder.DatastoreList, "*"), err)
	}
	return ds, nil
}

// FindNetwork resolves a network by name or inventory path: a standard
// portgroup, a distributed portgroup or an NSX segment (opaque network or
// NSX distributed portgroup).
func (c *Client) FindNetwork(ctx context.Context, name string) (object.NetworkReference, error) {
	n, err := c.finder.Network(ctx, name)
	if err != nil {
		return nil, notFound(ctx, "network", name, c.dc.InventoryPath+"/network", c.networkNames, err)
	}
	return n, nil
}

// FindFolder resolves a VM folder by name or inventory path. Relative paths
// are taken under the datacenter's vm folder.
func (c *Client) FindFolder(ctx context.Context, name string) (*object.Folder, error) {
	p := name
	if !path.IsAbs(p) {
		p = path.Join(c.dc.InventoryPath, "vm", name)
	}
	f, err := c.finder.Folder(ctx, p)
	if err != nil {
		return nil, notFound(ctx, "folder", name, c.dc.InventoryPath+"/vm", names(c.finder.FolderList, path.Join(c.dc.InventoryPath, "vm", "*")), err)
	}
	return f, nil
}

// FindVM resolves a VM or template by name or inventory path.
func (c *Client) FindVM(ctx context.Context, name string) (*object.VirtualMachine, error) {
	vm, err := c.finder.VirtualMachine(ctx, name)
	if err != nil {
		return nil, notFound(ctx, "virtual machine", name, c.dc.InventoryPath+"/vm", c.vmNames, err)
	}
	return vm, nil
}

// notFound turns a finder error into a NotFoundError that lists what does
// exist, or passes any other error through with context.
func notFound(ctx context.Context, kind, name, where string, list func(context.Context) []string, err error) error {
	if !isFinderNotFound(err) {
		return fmt.Errorf("find %s %q: %w", kind, name, err)
	}
	return &NotFoundError{Kind: kind, Name: name, Where: where, Available: list(ctx)}
}

// names lists the names a finder method matches for pattern.
func names[T interface{ Name() string }](lister func(context.Context, string) ([]T, error), pattern string) func(context.Context) []string {
	return func(ctx context.Context) []string {
		objs, err := lister(ctx, pattern)
		if err != nil {
			return nil
		}
		out := make([]string, 0, len(objs))
		for _, o := range objs {
			out = append(out, o.Name())
		}
		return trimNames(out)
	}
}

// networkNames lists what a NIC can be put on: standard and distributed
// portgroups and NSX segments, not the distributed switches themselves
// nor their uplink portgroups (which the finder also lists, and a clone
// then refuses).
func (c *Client) networkNames(ctx context.Context) []string {
	objs, err := c.finder.NetworkList(ctx, "*")
	if err != nil {
		return nil
	}
	var out []string
	var pgs []types.ManagedObjectReference
	byRef := map[types.ManagedObjectReference]string{}
	for _, o := range objs {
		ref := o.Reference()
		name := path.Base(o.GetInventoryPath())
		switch ref.Type {
		case "Network", "OpaqueNetwork":
			out = append(out, name)
		case "DistributedVirtualPortgroup":
			pgs = append(pgs, ref)
			byRef[ref] = name
		}
	}
	if len(pgs) > 0 {
		// vCenter marks an uplink portgroup three ways; read them all
		// (config.uplink is newer than the switch's list and the tag).
		var ms []mo.DistributedVirtualPortgroup
		if err := c.collector().Retrieve(ctx, pgs, []string{"config.uplink", "config.distributedVirtualSwitch", "tag"}, &ms); err != nil {
			return nil
		}
		uplinks := map[types.ManagedObjectReference]bool{}
		var switches []types.ManagedObjectReference
		for _, m := range ms {
			if sw := m.Config.DistributedVirtualSwitch; sw != nil && !slices.Contains(switches, *sw) {
				switches = append(switches, *sw)
			}
			if m.Config.Uplink != nil && *m.Config.Uplink {
				uplinks[m.Self] = true
			}
			for _, tag := range m.Tag {
				if tag.Key == "SYSTEM/DVS.UPLINKPG" {
					uplinks[m.Self] = true
				}
			}
		}
		if len(switches) > 0 {
			var dvs []mo.DistributedVirtualSwitch
			if err := c.collector().Retrieve(ctx, switches, []string{"config.uplinkPortgroup"}, &dvs); err == nil {
				for _, d := range dvs {
					if d.Config != nil {
						for _, u := range d.Config.GetDVSConfigInfo().UplinkPortgroup {
							uplinks[u] = true
						}
					}
				}
			}
		}
		for _, m := range ms {
			if !uplinks[m.Self] {
				out = append(out, byRef[m.Self])
			}
		}
	}
	return trimNames(out)
}

// vmNames lists the VMs and templates directly in the datacenter's vm
// folder, leaving out the SDK's own replicas: what a template is usually
// named by.
func (c *Client) vmNames(ctx context.Context) []string {
	objs, err := c.finder.VirtualMachineList(ctx, path.Join(c.dc.InventoryPath, "vm", "*"))
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range objs {
		if strings.Contains(o.Name(), replicaInfix) {
			continue
		}
		out = append(out, o.Name())
	}
	return trimNames(out)
}

func trimNames(names []string) []string {
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > maxListed {
		names = append(names[:maxListed], fmt.Sprintf("and %d more", len(names)-maxListed))
	}
	return names
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprint(names)
}

func isFinderNotFound(err error) bool {
	var nf *find.NotFoundError
	var dnf *find.DefaultNotFoundError
	return errors.As(err, &nf) || errors.As(err, &dnf)
}

// FindStoragePolicy resolves an SPBM storage policy by name to its ID.
func (c *Client) FindStoragePolicy(ctx context.Context, name string) (string, error) {
	pc, err := c.pbmClient(ctx)
	if err != nil {
		return "", err
	}
	names, ids, err := storagePolicies(ctx, pc)
	if err != nil {
		return "", fmt.Errorf("storage policies: %w", err)
	}
	for i, n := range names {
		if n == name {
			return ids[i], nil
		}
	}
	return "", &NotFoundError{Kind: "storage policy", Name: name, Where: "SPBM", Available: trimNames(names)}
}

func (c *Client) pbmClient(ctx context.Context) (*pbm.Client, error) {
	c.pbmMu.Lock()
	defer c.pbmMu.Unlock()
	if c.pbm != nil {
		return c.pbm, nil
	}
	pc, err := vimsession.PBM(ctx, c.vim)
	if err != nil {
		return nil, fmt.Errorf("storage policy service: %w", err)
	}
	c.pbm = pc
	return pc, nil
}

// storagePolicies lists the storage requirement policies, names and IDs.
func storagePolicies(ctx context.Context, pc *pbm.Client) (names, ids []string, err error) {
	rtype := pbmtypes.PbmProfileResourceType{ResourceType: string(pbmtypes.PbmProfileResourceTypeEnumSTORAGE)}
	pids, err := pc.QueryProfile(ctx, rtype, string(pbmtypes.PbmProfileCategoryEnumREQUIREMENT))
	if err != nil {
		return nil, nil, err
	}
	profiles, err := pc.RetrieveContent(ctx, pids)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range profiles {
		base := p.GetPbmProfile()
		names = append(names, base.Name)
		ids = append(ids, base.ProfileId.UniqueId)
	}
	return names, ids, nil
}
