package vsphere

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vslm"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// The calls a BOSH CPI makes of vCenter, one object at a time: CreateVM and
// DeleteVM (ProvisionVMs and DestroyVMs of one), and persistent disks as
// First Class Disks (FCDs): CreateDisk, AttachDisk, DetachDisk, DeleteDisk,
// ListDisks. An FCD outlives the VMs it is attached to, as a BOSH
// persistent disk must; DestroyVMs detaches it and keeps it.

// CreateVM provisions the one VM of s (ProvisionVMs of one spec).
func (c *Client) CreateVM(ctx context.Context, s VMSpec, opts ...ProvisionOption) (VMResult, error) {
	res, err := c.ProvisionVMs(ctx, []VMSpec{s}, opts...)
	if len(res) == 1 {
		return res[0], res[0].Err
	}
	return VMResult{Name: s.Name}, err
}

// DeleteVM destroys one VM (DestroyVMs of one): its persistent disks are
// detached and kept. A VM that is gone already is not an error.
func (c *Client) DeleteVM(ctx context.Context, vm types.ManagedObjectReference, opts ...DestroyOption) (VMResult, error) {
	res, err := c.DestroyVMs(ctx, []types.ManagedObjectReference{vm}, opts...)
	if len(res) == 1 {
		return res[0], res[0].Err
	}
	return VMResult{Ref: vm}, err
}

// PersistentDiskSpec describes a persistent disk.
type PersistentDiskSpec struct {
	// Name is the disk's name within its cluster; the First Class Disk is
	// named "<cluster>.<name>", which ListDisks reads ownership from.
	Name string `json:"name"`
	// Cluster is the owning cluster (kubefoundry.ClusterID's rule).
	Cluster   string `json:"cluster"`
	SizeMB    int64  `json:"sizeMB"`
	Datastore string `json:"datastore"` // name or inventory path
}

// PersistentDisk is a persistent disk: a First Class Disk on a datastore. ID and
// Datastore together name it; keep both (BOSH keeps them as the disk CID).
type PersistentDisk struct {
	ID        string                       `json:"id"`
	Name      string                       `json:"name"` // the spec's name
	Cluster   string                       `json:"cluster"`
	SizeMB    int64                        `json:"sizeMB"`
	Datastore types.ManagedObjectReference `json:"datastore"`
	Path      string                       `json:"path"` // "[ds] fcd/<id>.vmdk"
	// AttachedTo are the VMs the disk is attached to, as vCenter records
	// the disk's consumers.
	AttachedTo []types.ManagedObjectReference `json:"attachedTo,omitempty"`
	consumers  []string
}

func (s PersistentDiskSpec) validate() error {
	verr := &ValidationError{Object: "disk"}
	if s.Name == "" || strings.ContainsAny(s.Name, "/.") {
		verr.Add("name", s.Name, "required, without '/' or '.'")
	}
	verr.Merge("", kubefoundry.ClusterID(s.Cluster).Validate())
	if s.SizeMB <= 0 {
		verr.Add("sizeMB", fmt.Sprint(s.SizeMB), "must be positive")
	}
	if s.Datastore == "" {
		verr.Add("datastore", "", "required")
	}
	return verr.Err()
}

func diskName(cluster, name string) string { return cluster + "." + name }

// CreateDisk creates a persistent disk, or returns the cluster's disk of
// that name on that datastore when there is one: it is idempotent by name,
// so a create repeated after a crash does not make a second disk.
func (c *Client) CreateDisk(ctx context.Context, s PersistentDiskSpec) (*PersistentDisk, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	ds, err := c.FindDatastore(ctx, s.Datastore)
	if err != nil {
		return nil, err
	}
	existing, err := c.ListDisks(ctx, s.Datastore, s.Cluster)
	if err != nil {
		return nil, err
	}
	for i := range existing {
		if existing[i].Name == s.Name {
			return &existing[i], nil
		}
	}
	m := vslm.NewObjectManager(c.vim)
	task, err := m.CreateDisk(ctx, types.VslmCreateSpec{
		Name:              diskName(s.Cluster, s.Name),
		CapacityInMB:      s.SizeMB,
		KeepAfterDeleteVm: types.NewBool(true),
		BackingSpec: &types.VslmCreateSpecDiskFileBackingSpec{
			VslmCreateSpecBackingSpec: types.VslmCreateSpecBackingSpec{Datastore: ds.Reference()},
			ProvisioningType:          string(types.BaseConfigInfoDiskFileBackingInfoProvisioningTypeThin),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create disk %s: %w", s.Name, err)
	}
	res, err := c.wait(ctx, nil, "create disk "+s.Name, task.Reference())
	if err != nil {
		return nil, err
	}
	obj, ok := res.(types.VStorageObject)
	if !ok {
		return nil, fmt.Errorf("create disk %s: unexpected task result %T", s.Name, res)
	}
	d := diskOf(&obj, ds.Reference())
	c.log.Info("disk created", zap.String("disk", s.Name), zap.String("id", d.ID), zap.String("cluster", s.Cluster))
	return d, nil
}

func diskOf(obj *types.VStorageObject, ds types.ManagedObjectReference) *PersistentDisk {
	d := &PersistentDisk{ID: obj.Config.Id.Id, SizeMB: obj.Config.CapacityInMB, Datastore: ds}
	d.Cluster, d.Name, _ = strings.Cut(obj.Config.Name, ".")
	if b, ok := obj.Config.Backing.(*types.BaseConfigInfoDiskFileBackingInfo); ok {
		d.Path = b.FilePath
	}
	for _, id := range obj.Config.ConsumerId {
		d.consumers = append(d.consumers, id.Id)
	}
	return d
}

// resolve fills AttachedTo from the consumers vCenter records (VM UUIDs).
func (c *Client) resolve(ctx context.Context, d *PersistentDisk) error {
	d.AttachedTo = nil
	si := object.NewSearchIndex(c.vim)
	for _, uuid := range d.consumers {
		for _, instance := range []bool{true, false} {
			ref, err := si.FindByUuid(ctx, c.dc, uuid, true, &instance)
			if err != nil {
				return fmt.Errorf("consumer %s of disk %s: %w", uuid, d.ID, err)
			}
			if ref != nil {
				d.AttachedTo = append(d.AttachedTo, ref.Reference())
				break
			}
		}
	}
	return nil
}

// GetDisk reads a persistent disk as vCenter has it now, with the VMs it
// is attached to. A disk that is gone is an ErrNotFound.
func (c *Client) GetDisk(ctx context.Context, d PersistentDisk) (*PersistentDisk, error) {
	obj, err := vslm.NewObjectManager(c.vim).Retrieve(ctx, object.NewDatastore(c.vim, d.Datastore), d.ID)
	if err != nil {
		if fault.Is(err, &types.NotFound{}) {
			return nil, fmt.Errorf("disk %s: %w", d.ID, ErrNotFound)
		}
		return nil, fmt.Errorf("disk %s: %w", d.ID, err)
	}
	got := diskOf(obj, d.Datastore)
	return got, c.resolve(ctx, got)
}

// ListDisks returns the cluster's persistent disks on a datastore (the
// orphan scan's count of disks). An empty cluster lists every disk made
// by CreateDisk there.
func (c *Client) ListDisks(ctx context.Context, datastore, cluster string) ([]PersistentDisk, error) {
	ds, err := c.FindDatastore(ctx, datastore)
	if err != nil {
		return nil, err
	}
	m := vslm.NewObjectManager(c.vim)
	ids, err := m.List(ctx, ds)
	if err != nil {
		return nil, fmt.Errorf("list disks on %s: %w", datastore, err)
	}
	var out []PersistentDisk
	for _, id := range ids {
		obj, err := m.Retrieve(ctx, ds, id.Id)
		if err != nil {
			if fault.Is(err, &types.NotFound{}) {
				continue // deleted meanwhile
			}
			return nil, fmt.Errorf("disk %s: %w", id.Id, err)
		}
		d := diskOf(obj, ds.Reference())
		if d.Name == "" || kubefoundry.ClusterID(d.Cluster).Validate() != nil {
			continue // not one of CreateDisk's
		}
		if cluster == "" || d.Cluster == cluster {
			if err := c.resolve(ctx, d); err != nil {
				return nil, err
			}
			out = append(out, *d)
		}
	}
	return out, nil
}

// AttachDisk attaches a persistent disk to a VM. Attached to that VM
// already is success; attached to another is an error wrapping ErrInUse
// that names it.
func (c *Client) AttachDisk(ctx context.Context, vm types.ManagedObjectReference, d PersistentDisk) error {
	now, err := c.GetDisk(ctx, d)
	if err != nil {
		return err
	}
	if slices.Contains(now.AttachedTo, vm) {
		return nil
	}
	if len(now.AttachedTo) > 0 {
		return fmt.Errorf("disk %s is attached to %s: %w", d.ID, now.AttachedTo[0].Value, ErrInUse)
	}
	v := object.NewVirtualMachine(c.vim, vm)
	if err := v.AttachDisk(ctx, d.ID, object.NewDatastore(c.vim, d.Datastore), 0, nil); err != nil {
		return fmt.Errorf("attach disk %s to %s: %w", d.ID, vm.Value, err)
	}
	c.log.Info("disk attached", zap.String("disk", d.ID), zap.String("vm", vm.Value))
	return nil
}

// DetachDisk detaches a persistent disk from a VM, keeping it. Not
// attached there is success.
func (c *Client) DetachDisk(ctx context.Context, vm types.ManagedObjectReference, d PersistentDisk) error {
	now, err := c.GetDisk(ctx, d)
	if err != nil {
		return err
	}
	if !slices.Contains(now.AttachedTo, vm) {
		return nil
	}
	if err := object.NewVirtualMachine(c.vim, vm).DetachDisk(ctx, d.ID); err != nil {
		return fmt.Errorf("detach disk %s from %s: %w", d.ID, vm.Value, err)
	}
	c.log.Info("disk detached", zap.String("disk", d.ID), zap.String("vm", vm.Value))
	return nil
}

// DeleteDisk deletes a persistent disk and its data. Gone already is
// success; attached is an error wrapping ErrInUse.
func (c *Client) DeleteDisk(ctx context.Context, d PersistentDisk) error {
	now, err := c.GetDisk(ctx, d)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(now.AttachedTo) > 0 {
		return fmt.Errorf("disk %s is attached to %s: %w", d.ID, now.AttachedTo[0].Value, ErrInUse)
	}
	task, err := vslm.NewObjectManager(c.vim).Delete(ctx, object.NewDatastore(c.vim, d.Datastore), d.ID)
	if err == nil {
		_, err = c.wait(ctx, nil, "delete disk "+d.ID, task.Reference())
	}
	if err != nil && !fault.Is(err, &types.NotFound{}) {
		return fmt.Errorf("delete disk %s: %w", d.ID, err)
	}
	return nil
}
