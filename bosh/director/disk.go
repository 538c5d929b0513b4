package director

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/kubefoundry/kubefoundry"
)

// ensureDisk makes an instance's persistent disk what the deploy wants,
// on the VM whose agent is agentID, with the instance's jobs stopped:
//
//   - none wanted and one there: unmounted, detached and deleted;
//   - one wanted and none there: made near the VM, attached and mounted;
//   - the same size and type: attached (when it is not) and mounted;
//   - another size or type: a new disk made, attached and mounted beside
//     the old one, the data migrated to it by the agent, the old one
//     detached and deleted.
//
// Each disk is recorded as soon as the CPI gives its cid, so a deploy cut
// short leaks none: a new disk of a migration cut short (NewDiskCID) is
// deleted and the migration begun again.
func (d *Director) ensureDisk(ctx context.Context, p *planned, agentID string, mu *sync.Mutex) error {
	st := d.cfg.Store
	save := func(change func(r *InstanceRecord)) error {
		mu.Lock()
		defer mu.Unlock()
		change(&p.rec)
		return st.PutInstance(p.rec)
	}
	mu.Lock()
	rec := p.rec
	mu.Unlock()
	call := func(method string, args ...any) error {
		if _, err := d.cfg.Agents.Call(ctx, agentID, method, args...); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		return nil
	}
	vm := rec.VMCID
	if rec.OldDiskCID != "" {
		// The data moved off it: it goes.
		if err := d.dropDisk(ctx, vm, rec.OldDiskCID, call); err != nil {
			return err
		}
		if err := save(func(r *InstanceRecord) { r.OldDiskCID = "" }); err != nil {
			return err
		}
	}
	if rec.NewDiskCID != "" {
		if err := d.dropDisk(ctx, vm, rec.NewDiskCID, call); err != nil {
			return err
		}
		if err := save(func(r *InstanceRecord) { r.NewDiskCID = "" }); err != nil {
			return err
		}
	}
	want, wantType := p.desired.DiskSize, p.desired.DiskType
	switch {
	case want == 0 && rec.DiskCID == "":
		return nil
	case want == 0:
		if err := d.dropDisk(ctx, vm, rec.DiskCID, call); err != nil {
			return err
		}
		return save(func(r *InstanceRecord) { r.DiskCID, r.DiskSize, r.DiskType = "", 0, "" })
	case rec.DiskCID == "":
		cid, err := d.cfg.CPI.CreateDisk(ctx, want, p.diskProps, vm)
		if err != nil {
			return fmt.Errorf("create_disk: %w", err)
		}
		if err := save(func(r *InstanceRecord) { r.DiskCID, r.DiskSize, r.DiskType = cid, want, wantType }); err != nil {
			return err
		}
		return d.attachAndMount(ctx, vm, cid, call)
	case rec.DiskSize == want && rec.DiskType == wantType:
		return d.attachAndMount(ctx, vm, rec.DiskCID, call)
	}
	// Another size or type: migrate the data to a new disk.
	old := rec.DiskCID
	if err := d.attachAndMount(ctx, vm, old, call); err != nil {
		return err
	}
	cid, err := d.cfg.CPI.CreateDisk(ctx, want, p.diskProps, vm)
	if err != nil {
		return fmt.Errorf("create_disk: %w", err)
	}
	if err := save(func(r *InstanceRecord) { r.NewDiskCID = cid }); err != nil {
		return err
	}
	if err := d.attachAndMount(ctx, vm, cid, call); err != nil {
		return err
	}
	if err := call("migrate_disk", old, cid); err != nil {
		return err
	}
	// The data is on the new disk: the old one goes, recorded until it
	// has, so that a deletion that fails is not a leak.
	if err := save(func(r *InstanceRecord) {
		r.DiskCID, r.DiskSize, r.DiskType, r.NewDiskCID, r.OldDiskCID = cid, want, wantType, "", old
	}); err != nil {
		return err
	}
	if err := d.dropDisk(ctx, vm, old, call); err != nil {
		return err
	}
	return save(func(r *InstanceRecord) { r.OldDiskCID = "" })
}

// attachAndMount attaches the disk to the VM, unless it is, and has the
// agent mount it.
func (d *Director) attachAndMount(ctx context.Context, vm, disk string, call func(string, ...any) error) error {
	attached, err := d.cfg.CPI.GetDisks(ctx, vm)
	if err != nil {
		return fmt.Errorf("get_disks %s: %w", vm, err)
	}
	if !slices.Contains(attached, disk) {
		if _, err := d.cfg.CPI.AttachDisk(ctx, vm, disk); err != nil {
			return fmt.Errorf("attach_disk %s to %s: %w", disk, vm, err)
		}
	}
	return call("mount_disk", disk)
}

// dropDisk unmounts, detaches and deletes a disk; what is already gone is
// no error.
func (d *Director) dropDisk(ctx context.Context, vm, disk string, call func(string, ...any) error) error {
	if err := call("unmount_disk", disk); err != nil {
		return err
	}
	if err := d.cfg.CPI.DetachDisk(ctx, vm, disk); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
		return fmt.Errorf("detach_disk %s from %s: %w", disk, vm, err)
	}
	if err := d.cfg.CPI.DeleteDisk(ctx, disk); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
		return fmt.Errorf("delete_disk %s: %w", disk, err)
	}
	return nil
}
