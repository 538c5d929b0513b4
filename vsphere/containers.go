package vsphere

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
)

// ContainerAttribute is the custom attribute ProvisionVMs sets on each VM
// folder and resource pool it creates: the id of the cluster whose VMs it
// was created for. ListContainers and RemoveContainers find them by it, so
// what a cluster's runs created can be removed with the cluster, failed
// runs included. Folders and pools that existed before carry none and are
// never removed.
const ContainerAttribute = "kubefoundry.cluster"

// Container is a VM folder or resource pool that provisioning created for
// a cluster.
type Container struct {
	Kind string                       `json:"kind"` // "folder" or "resource pool"
	Path string                       `json:"path"` // inventory path
	Ref  types.ManagedObjectReference `json:"ref"`
	// VMs and Children count what it holds: VMs directly in it, and child
	// folders or pools.
	VMs      int `json:"vms"`
	Children int `json:"children"`
}

// Empty reports whether the container holds nothing.
func (c Container) Empty() bool { return c.VMs == 0 && c.Children == 0 }

// ListContainers returns the folders and resource pools created for the
// cluster, deepest first: the orphan scan's counterpart of ListVMs for
// what holds VMs.
func (c *Client) ListContainers(ctx context.Context, cluster string) ([]Container, error) {
	key, err := c.fieldKey(ctx, ContainerAttribute, "", false)
	if err != nil || key < 0 {
		return nil, err
	}
	m := view.NewManager(c.vim)
	v, err := m.CreateContainerView(ctx, c.vim.ServiceContent.RootFolder,
		[]string{"Folder", "ResourcePool", "ClusterComputeResource", "ComputeResource", "Datacenter"}, true)
	if err != nil {
		return nil, fmt.Errorf("container view: %w", err)
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var ents []mo.ManagedEntity
	if err := v.Retrieve(ctx, []string{"ManagedEntity"}, []string{"name", "parent", "customValue"}, &ents); err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	byRef := make(map[types.ManagedObjectReference]*mo.ManagedEntity, len(ents))
	children := map[types.ManagedObjectReference]int{}
	for i := range ents {
		byRef[ents[i].Self] = &ents[i]
		if p := ents[i].Parent; p != nil {
			children[*p]++
		}
	}
	var out []Container
	var refs []types.ManagedObjectReference
	for _, e := range ents {
		if e.Self.Type != "Folder" && e.Self.Type != "ResourcePool" {
			continue
		}
		if valueOf(e.CustomValue, key) != cluster {
			continue
		}
		kind := "folder"
		if e.Self.Type == "ResourcePool" {
			kind = "resource pool"
		}
		out = append(out, Container{Kind: kind, Path: inventoryPath(byRef, e.Self), Ref: e.Self, Children: children[e.Self]})
		refs = append(refs, e.Self)
	}
	if len(out) == 0 {
		return nil, nil
	}
	// VMs are not in the view: count them from the containers' own lists.
	var folders []mo.Folder
	var pools []mo.ResourcePool
	var frefs, prefs []types.ManagedObjectReference
	for _, r := range refs {
		if r.Type == "Folder" {
			frefs = append(frefs, r)
		} else {
			prefs = append(prefs, r)
		}
	}
	vms := map[types.ManagedObjectReference]int{}
	if len(frefs) > 0 {
		if err := c.collector().Retrieve(ctx, frefs, []string{"childEntity"}, &folders); err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		for _, f := range folders {
			for _, ch := range f.ChildEntity {
				if ch.Type == "VirtualMachine" || ch.Type == "VirtualApp" {
					vms[f.Self]++
				}
			}
		}
	}
	if len(prefs) > 0 {
		if err := c.collector().Retrieve(ctx, prefs, []string{"vm"}, &pools); err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		for _, p := range pools {
			vms[p.Self] = len(p.Vm)
		}
	}
	for i := range out {
		out[i].VMs = vms[out[i].Ref]
	}
	slices.SortFunc(out, func(a, b Container) int {
		return cmp.Or(cmp.Compare(strings.Count(b.Path, "/"), strings.Count(a.Path, "/")), cmp.Compare(a.Path, b.Path))
	})
	return out, nil
}

// RemoveContainers removes the folders and resource pools created for the
// cluster that hold nothing, deepest first, so a folder whose only content
// was the cluster's own folder goes too. It is idempotent and returns what
// it removed. One that still holds VMs is kept, and the error, wrapping
// ErrInUse, names it; one that holds only other clusters' folders or pools
// is kept without error.
func (c *Client) RemoveContainers(ctx context.Context, cluster string) ([]Container, error) {
	var removed []Container
	for {
		list, err := c.ListContainers(ctx, cluster)
		if err != nil {
			return removed, err
		}
		var errs []error
		progress := false
		for _, ct := range list {
			if !ct.Empty() {
				if ct.VMs > 0 {
					errs = append(errs, fmt.Errorf("%s %s holds %d VMs: %w", ct.Kind, ct.Path, ct.VMs, ErrInUse))
				}
				continue
			}
			task, err := object.NewCommon(c.vim, ct.Ref).Destroy(ctx)
			if err == nil {
				err = task.Wait(ctx)
			}
			if err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("remove %s %s: %w", ct.Kind, ct.Path, err))
				continue
			}
			c.log.Info("removed", zap.String("kind", ct.Kind), zap.String("path", ct.Path), zap.String("cluster", cluster))
			removed = append(removed, ct)
			progress = true
		}
		if !progress {
			return removed, errors.Join(errs...)
		}
	}
}

// markContainer records on a folder or pool it created the cluster it was
// created for.
func (c *Client) markContainer(ctx context.Context, ref types.ManagedObjectReference, cluster string) error {
	key, err := c.fieldKey(ctx, ContainerAttribute, "", true)
	if err != nil {
		return err
	}
	m, err := object.GetCustomFieldsManager(c.vim)
	if err != nil {
		return err
	}
	if err := m.Set(ctx, ref, key, cluster); err != nil {
		return fmt.Errorf("set %s on %s: %w", ContainerAttribute, ref.Value, err)
	}
	return nil
}

func valueOf(values []types.BaseCustomFieldValue, key int32) string {
	for _, v := range values {
		if sv, ok := v.(*types.CustomFieldStringValue); ok && sv.Key == key {
			return sv.Value
		}
	}
	return ""
}

// inventoryPath walks the parents of ref up to the root.
func inventoryPath(by map[types.ManagedObjectReference]*mo.ManagedEntity, ref types.ManagedObjectReference) string {
	var parts []string
	for i := 0; i < 64; i++ { // bounded: a cycle cannot hang it
		e, ok := by[ref]
		if !ok || e.Parent == nil {
			break
		}
		parts = append(parts, e.Name)
		ref = *e.Parent
	}
	slices.Reverse(parts)
	return "/" + path.Join(parts...)
}

// lookupFolder finds the VM folder at folderPath without creating it.
func (c *Client) lookupFolder(ctx context.Context, folderPath string) (*object.Folder, error) {
	root := path.Join(c.dc.InventoryPath, "vm")
	p := folderPath
	if !path.IsAbs(p) {
		p = path.Join(root, p)
	}
	return c.finder.Folder(ctx, p)
}

// EnsureFolder returns the VM folder at path (relative to the datacenter's
// vm folder, or absolute), creating each missing level. Levels it creates
// carry no cluster (ContainerAttribute): RemoveContainers leaves them.
func (c *Client) EnsureFolder(ctx context.Context, folderPath string) (*object.Folder, error) {
	return c.ensureFolder(ctx, folderPath, "")
}

// ensureFolder is EnsureFolder marking each level it creates as the
// cluster's, when cluster is set.
func (c *Client) ensureFolder(ctx context.Context, folderPath, cluster string) (*object.Folder, error) {
	root := path.Join(c.dc.InventoryPath, "vm")
	rel := folderPath
	if path.IsAbs(folderPath) {
		var ok bool
		if rel, ok = strings.CutPrefix(path.Clean(folderPath), root); !ok {
			return nil, fmt.Errorf("folder %q is not under %s: %w", folderPath, root, ErrInvalidSpec)
		}
	}
	f, err := c.finder.Folder(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("vm folder of %s: %w", c.dc.InventoryPath, err)
	}
	cur := root
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		next, err := c.finder.Folder(ctx, cur)
		if err == nil {
			f = next
			continue
		}
		if !isFinderNotFound(err) {
			return nil, fmt.Errorf("folder %s: %w", cur, err)
		}
		created, err := f.CreateFolder(ctx, part)
		ours := err == nil
		if err != nil {
			if !fault.Is(err, &types.DuplicateName{}) {
				return nil, fmt.Errorf("create folder %s: %w", cur, err)
			}
			if created, err = c.finder.Folder(ctx, cur); err != nil {
				return nil, fmt.Errorf("folder %s: %w", cur, err)
			}
		}
		created.InventoryPath = cur
		if ours {
			c.log.Info("folder created", zap.String("folder", cur))
		}
		if cluster != "" && ours {
			if err := c.markContainer(ctx, created.Reference(), cluster); err != nil {
				return nil, err
			}
		}
		f = created
	}
	return f, nil
}

// EnsureResourcePool returns the child pool name of cluster's root pool,
// creating it with default shares and no limits when missing. An empty name
// returns the root pool; an absolute path names an existing pool.
//
// A pool it creates carries no cluster (ContainerAttribute):
// RemoveContainers leaves it.
func (c *Client) EnsureResourcePool(ctx context.Context, cluster, name string) (*object.ResourcePool, error) {
	return c.ensureResourcePool(ctx, cluster, name, "")
}

// ensureResourcePool is EnsureResourcePool marking a pool it creates as
// owner's, when owner is set.
func (c *Client) ensureResourcePool(ctx context.Context, cluster, name, owner string) (*object.ResourcePool, error) {
	if path.IsAbs(name) {
		return c.FindResourcePool(ctx, name)
	}
	cl, err := c.FindCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	root, err := cl.ResourcePool(ctx)
	if err != nil {
		return nil, fmt.Errorf("root pool of %s: %w", cluster, err)
	}
	if name == "" {
		return root, nil
	}
	p := path.Join(cl.InventoryPath, "Resources", name)
	if rp, err := c.finder.ResourcePool(ctx, p); err == nil {
		return rp, nil
	}
	rp, err := root.Create(ctx, name, types.DefaultResourceConfigSpec())
	if err != nil {
		if !fault.Is(err, &types.DuplicateName{}) {
			return nil, fmt.Errorf("create resource pool %s: %w", p, err)
		}
		return c.finder.ResourcePool(ctx, p)
	}
	rp.InventoryPath = p
	c.log.Info("resource pool created", zap.String("pool", p))
	if owner != "" {
		if err := c.markContainer(ctx, rp.Reference(), owner); err != nil {
			return nil, err
		}
	}
	return rp, nil
}
