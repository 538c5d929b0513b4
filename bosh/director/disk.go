package director

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cloudconfig"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

// ensureDisk makes an instance's persistent disk what the deploy wants,
// on the VM whose agent is agentID, with the instance's jobs stopped:
//
//   - none wanted and one there: unmounted, detached and orphaned;
//   - one wanted and none there: made near the VM, attached and mounted;
//   - the same size and type: attached (when it is not) and mounted;
//   - another size or type: a new disk made, attached and mounted beside
//     the old one, the data migrated to it by the agent, the old one
//     unmounted, detached and orphaned.
//
// With p.attach (AttachDisk), that orphaned disk first takes the place
// of the instance's, which is orphaned.
//
// Each disk is recorded as soon as the CPI gives its cid, and a disk
// stays named by the instance's record until it is detached, when it is
// recorded orphaned in the same transaction that takes it off the
// record: a deploy cut short leaks none. The new disk of a migration cut
// short (NewDiskCID) is orphaned and the migration begun again; the old
// disk of one whose detach failed (OldDiskCID) is orphaned by the next.
func (d *Director) ensureDisk(ctx context.Context, p *planned, agentID string, mu *sync.Mutex) error {
	st := d.cfg.Store
	save := func(change func(r *InstanceRecord)) error {
		mu.Lock()
		defer mu.Unlock()
		change(&p.rec)
		return st.PutInstance(p.rec)
	}
	// exchange records the instance as change makes it, the disks it
	// lets go orphaned and those it adopts no longer, at once.
	exchange := func(orphans []OrphanedDisk, adopt []string, change func(r *InstanceRecord)) error {
		mu.Lock()
		defer mu.Unlock()
		next := p.rec
		change(&next)
		if err := st.ChangeDisks(DiskChange{Instance: next, Orphan: orphans, Adopt: adopt}); err != nil {
			return err
		}
		p.rec = next
		return nil
	}
	current := func() InstanceRecord {
		mu.Lock()
		defer mu.Unlock()
		return p.rec
	}
	rec := current()
	call := func(method string, args ...any) error {
		if _, err := d.cfg.Agents.Call(ctx, agentID, method, args...); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		return nil
	}
	vm := rec.VMCID
	// letGo unmounts a disk and takes it off the VM.
	letGo := func(cid string) error {
		if err := call("unmount_disk", cid); err != nil {
			return err
		}
		return d.detachDisk(ctx, vm, cid)
	}
	orphan := func(h heldDisk) error {
		if err := letGo(h.cid); err != nil {
			return err
		}
		return exchange([]OrphanedDisk{orphanOf(rec, h, time.Now())}, nil, h.drop)
	}
	if old := oldDisk(rec); old.cid != "" {
		// The data moved off it.
		if err := orphan(old); err != nil {
			return err
		}
	}
	if cut := newDisk(rec); cut.cid != "" {
		// A migration cut short: the data is on DiskCID still.
		if err := orphan(cut); err != nil {
			return err
		}
	}
	if a := p.attach; a != nil && rec.DiskCID != a.CID {
		var orphans []OrphanedDisk
		if rec.DiskCID != "" {
			if err := letGo(rec.DiskCID); err != nil {
				return err
			}
			orphans = append(orphans, orphanOf(rec, currentDisk(rec), time.Now()))
		}
		if err := exchange(orphans, []string{a.CID}, func(r *InstanceRecord) { r.DiskCID, r.DiskSize, r.DiskType = a.CID, a.Size, a.Type }); err != nil {
			return err
		}
		rec = current()
	}
	want, wantType := p.desired.DiskSize, p.desired.DiskType
	switch {
	case want == 0 && rec.DiskCID == "":
		return nil
	case want == 0:
		return orphan(currentDisk(rec))
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
	if err := save(func(r *InstanceRecord) { r.NewDiskCID, r.NewDiskSize, r.NewDiskType = cid, want, wantType }); err != nil {
		return err
	}
	if err := d.attachAndMount(ctx, vm, cid, call); err != nil {
		return err
	}
	if err := call("migrate_disk", old, cid); err != nil {
		return err
	}
	// The data is on the new disk: the old one is orphaned, recorded
	// until it is, so that a detach that fails is not a leak.
	if err := save(func(r *InstanceRecord) {
		r.OldDiskCID, r.OldDiskSize, r.OldDiskType = old, r.DiskSize, r.DiskType
		r.DiskCID, r.DiskSize, r.DiskType = cid, want, wantType
		r.NewDiskCID, r.NewDiskSize, r.NewDiskType = "", 0, ""
	}); err != nil {
		return err
	}
	return orphan(oldDisk(current()))
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

// detachDisk takes a disk off a VM; no VM, a VM or disk that is gone, or
// a disk not attached, is no error.
func (d *Director) detachDisk(ctx context.Context, vm, disk string) error {
	if vm == "" {
		return nil
	}
	if err := d.cfg.CPI.DetachDisk(ctx, vm, disk); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
		return fmt.Errorf("detach_disk %s from %s: %w", disk, vm, err)
	}
	return nil
}

// heldDisk is a disk an instance's record names, and how to take it off
// the record.
type heldDisk struct {
	cid  string
	size int
	typ  string
	drop func(r *InstanceRecord)
}

// currentDisk is the instance's persistent disk; newDisk and oldDisk the
// new and old disks of a migration; cid is "" for none.
func currentDisk(r InstanceRecord) heldDisk {
	return heldDisk{r.DiskCID, r.DiskSize, r.DiskType, func(r *InstanceRecord) { r.DiskCID, r.DiskSize, r.DiskType = "", 0, "" }}
}

func newDisk(r InstanceRecord) heldDisk {
	return heldDisk{r.NewDiskCID, r.NewDiskSize, r.NewDiskType, func(r *InstanceRecord) { r.NewDiskCID, r.NewDiskSize, r.NewDiskType = "", 0, "" }}
}

func oldDisk(r InstanceRecord) heldDisk {
	return heldDisk{r.OldDiskCID, r.OldDiskSize, r.OldDiskType, func(r *InstanceRecord) { r.OldDiskCID, r.OldDiskSize, r.OldDiskType = "", 0, "" }}
}

// heldDisks are the disks the record names.
func heldDisks(r InstanceRecord) []heldDisk {
	var out []heldDisk
	for _, h := range []heldDisk{currentDisk(r), newDisk(r), oldDisk(r)} {
		if h.cid != "" {
			out = append(out, h)
		}
	}
	return out
}

// orphanOf is the orphan record of a disk of r, orphaned at at.
func orphanOf(r InstanceRecord, h heldDisk, at time.Time) OrphanedDisk {
	o := OrphanedDisk{CID: h.cid, Size: h.size, Type: h.typ, Deployment: r.Deployment, Group: r.Group, InstanceID: r.ID,
		Index: r.Index, AZ: r.AZ, OrphanedAt: at.UTC()}
	if h.typ != "" {
		var dt cloudconfig.DiskType
		if err := json.Unmarshal([]byte(h.typ), &dt); err == nil && len(dt.CloudProperties) > 0 {
			o.CloudProperties = cpi.CloudProps(dt.CloudProperties)
		}
	}
	return o
}

// orphanedDisksLock is the lock of the orphaned disks, held by the tasks
// that delete or attach them.
const orphanedDisksLock = "orphaned-disks"

// OrphanedDiskRetention is how long BOSH keeps an orphaned disk before
// its scheduled clean-up deletes it (director.disks.max_orphaned_age_in_days:
// 5 days), for CleanUpOrphanedDisks.
const OrphanedDiskRetention = 5 * 24 * time.Hour

// OrphanedDiskOptions are the options of DeleteOrphanedDisk and
// CleanUpOrphanedDisks.
type OrphanedDiskOptions struct {
	Events EventSink
}

// OrphanedDisks lists the orphaned disks of every deployment, oldest
// first, as bosh disks --orphaned does.
func (d *Director) OrphanedDisks() ([]OrphanedDisk, error) {
	return d.cfg.Store.OrphanedDisks()
}

// DeleteOrphanedDisk deletes an orphaned disk (bosh delete-disk): the
// disk through the CPI, then its record. It is a task holding the
// orphaned disks' lock, and idempotent: a disk already gone from the
// cloud is no error, and a cid that is not an orphan's is nothing to do,
// unless an instance has it, which is refused (ErrConflict).
func (d *Director) DeleteOrphanedDisk(ctx context.Context, cid string, opts OrphanedDiskOptions) (Task, error) {
	return d.runTaskLocking(ctx, "delete_orphan_disks", "", []string{orphanedDisksLock}, "delete orphaned disk "+cid, opts.Events,
		func(ctx context.Context, sink EventSink) (string, error) {
			o, err := d.cfg.Store.OrphanedDisk(cid)
			if errors.Is(err, kubefoundry.ErrNotFound) {
				owner, err := d.diskOwner(cid)
				switch {
				case err != nil:
					return "", err
				case owner != "":
					return "", fmt.Errorf("disk %s is the persistent disk of %s, not an orphan: %w", cid, owner, kubefoundry.ErrConflict)
				}
				return fmt.Sprintf("disk %s is not an orphaned disk: nothing deleted", cid), nil
			}
			if err != nil {
				return "", err
			}
			end := newStage(sink, "Deleting orphaned disks", nil, 1).start(cid)
			err = d.deleteOrphan(ctx, o)
			end(err)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("orphaned disk %s deleted", cid), nil
		})
}

// CleanUpOrphanedDisks deletes the orphaned disks orphaned more than
// olderThan ago (every one when 0, as bosh clean-up --all does), at most
// 8 at once: what BOSH's director does on a schedule with
// OrphanedDiskRetention. Run it on a schedule of your own; a disk
// orphaned while it runs is left for the next run. It is a task holding
// the orphaned disks' lock. A disk that cannot be deleted keeps its
// record and is an error naming it; the others are still deleted.
func (d *Director) CleanUpOrphanedDisks(ctx context.Context, olderThan time.Duration, opts OrphanedDiskOptions) (Task, error) {
	cutoff := time.Now().Add(-olderThan)
	return d.runTaskLocking(ctx, "scheduled_orphaned_disk_cleanup", "", []string{orphanedDisksLock},
		"clean up orphaned disks older than "+olderThan.String(), opts.Events,
		func(ctx context.Context, sink EventSink) (string, error) {
			all, err := d.cfg.Store.OrphanedDisks()
			if err != nil {
				return "", err
			}
			old := slices.DeleteFunc(all, func(o OrphanedDisk) bool { return o.OrphanedAt.After(cutoff) })
			stg := newStage(sink, "Deleting orphaned disks", nil, len(old))
			var (
				mu   sync.Mutex
				errs []error
				wg   sync.WaitGroup
			)
			sem := make(chan struct{}, 8)
			for _, o := range old {
				if ctx.Err() != nil {
					break
				}
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					end := stg.start(o.CID)
					err := d.deleteOrphan(ctx, o)
					end(err)
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if err := ctx.Err(); err != nil {
				errs = append(errs, err)
			}
			at := cutoff.UTC().Format(time.RFC3339)
			if len(errs) > 0 {
				return "", fmt.Errorf("of %d orphaned disk(s) orphaned before %s, %d not deleted: %w", len(old), at, len(errs), errors.Join(errs...))
			}
			return fmt.Sprintf("deleted %d orphaned disk(s) orphaned before %s", len(old), at), nil
		})
}

// deleteOrphan deletes an orphaned disk, then its record: a deletion cut
// short is finished by the next (the disk gone from the cloud is no
// error).
func (d *Director) deleteOrphan(ctx context.Context, o OrphanedDisk) error {
	if err := d.cfg.CPI.DeleteDisk(ctx, o.CID); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
		return fmt.Errorf("orphaned disk %s: delete_disk: %w", o.CID, err)
	}
	if err := d.cfg.Store.DeleteOrphanedDisk(o.CID); err != nil {
		return fmt.Errorf("orphaned disk %s: %w", o.CID, err)
	}
	return nil
}

// diskOwner names the instance whose record names the disk, "" for none.
func (d *Director) diskOwner(cid string) (string, error) {
	deps, err := d.cfg.Store.Deployments()
	if err != nil {
		return "", err
	}
	for _, dep := range deps {
		recs, err := d.cfg.Store.Instances(dep.Name)
		if err != nil {
			return "", err
		}
		for _, r := range recs {
			for _, h := range heldDisks(r) {
				if h.cid == cid {
					return fmt.Sprintf("%s/%s/%s (%d)", r.Deployment, r.Group, r.ID, r.Index), nil
				}
			}
		}
	}
	return "", nil
}

// AttachDiskOptions are AttachDisk's options.
type AttachDiskOptions struct {
	Events EventSink
}

// AttachDisk gives an instance an orphaned disk as its persistent disk,
// as bosh attach-disk does: the instance's disk, if it has one, is
// orphaned in its place. Only an orphan is taken (BOSH also takes a disk
// of the IaaS it does not know, which is ErrNotFound here). instance is "group/id" or "group/index", and
// its group must have a persistent disk. A started instance is stopped
// (pre-stop, drain, stop, post-stop), its disk unmounted and detached,
// the orphan attached and mounted, its spec applied (with what the
// deployment was last deployed with) and it is started and watched, as
// an update is; a soft-stopped one gets the disk and stays stopped; a
// detached one (hard-stopped) gets it in its record, and Start attaches
// it to its new VM. The disk keeps its size and type; the next deploy
// (or the Start of a detached instance), when the deployment wants
// another, migrates it, as for any change of the disk. The orphan's AZ
// is not checked: the CPI attaches it where it can. It is a task holding
// the deployment's lock and the orphaned disks'. Attaching the disk an
// instance has already finishes what an attach cut short began (the
// instance is stopped and started again).
func (d *Director) AttachDisk(ctx context.Context, deployment, instance, cid string, opts AttachDiskOptions) (Task, error) {
	m, cc, err := d.recorded(deployment)
	if err != nil {
		return Task{}, err
	}
	return d.runTaskLocking(ctx, "attach_disk", deployment, []string{deployment, orphanedDisksLock},
		fmt.Sprintf("attach disk %s to %s", cid, instance), opts.Events,
		func(ctx context.Context, sink EventSink) (string, error) {
			b, err := d.build(ctx, m, cc, buildOptions{reserve: true})
			if err != nil {
				return "", err
			}
			chosen, err := selectInstances(b, []string{instance})
			if err != nil {
				return "", err
			}
			if len(chosen) != 1 || !strings.Contains(instance, "/") {
				return "", &kubefoundry.FieldError{Field: "instance", Value: instance, Reason: "names more than one instance: use group/id or group/index"}
			}
			p := chosen[0]
			name := fmt.Sprintf("%s/%s (%d)", p.group.Name, p.rec.ID, p.rec.Index)
			if p.desired.DiskSize == 0 {
				return "", fmt.Errorf("instance group %s has no persistent disk: %w", p.group.Name, kubefoundry.ErrInvalid)
			}
			if p.rec.NewDiskCID != "" || p.rec.OldDiskCID != "" {
				return "", fmt.Errorf("%s: a migration of its disk did not finish: deploy first: %w", name, kubefoundry.ErrConflict)
			}
			if p.rec.DiskCID != cid {
				o, err := d.cfg.Store.OrphanedDisk(cid)
				if err != nil {
					return "", err
				}
				p.attach = &o
			}
			// What the instance is to have is the disk as it is.
			p.desired.DiskSize, p.desired.DiskType = p.rec.DiskSize, p.rec.DiskType
			if p.attach != nil {
				p.desired.DiskSize, p.desired.DiskType = p.attach.Size, p.attach.Type
			}
			if p.rec.VMCID == "" {
				if p.attach == nil {
					return fmt.Sprintf("%s has disk %s", name, cid), nil
				}
				// No VM: the records change; Start attaches it.
				next := p.rec
				var orphans []OrphanedDisk
				if next.DiskCID != "" {
					orphans = append(orphans, orphanOf(next, currentDisk(next), time.Now()))
				}
				next.DiskCID, next.DiskSize, next.DiskType = cid, p.attach.Size, p.attach.Type
				if err := d.cfg.Store.ChangeDisks(DiskChange{Instance: next, Orphan: orphans, Adopt: []string{cid}}); err != nil {
					return "", err
				}
				return fmt.Sprintf("%s has disk %s; it is attached when the instance starts", name, cid), nil
			}
			r := roll{p: p, running: p.rec.Applied != nil && p.rec.State == StateStarted, noStart: p.rec.State == StateStopped}
			if err := d.rollGroup(ctx, m, p.group, []roll{r}, sink, hooks{}); err != nil {
				return "", err
			}
			return fmt.Sprintf("attached disk %s to %s", cid, name), nil
		})
}
