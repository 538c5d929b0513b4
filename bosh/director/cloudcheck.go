package director

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// The problems cloud-check finds, as BOSH names them.
const (
	// ProblemMissingVM: the instance's VM is not in the cloud.
	ProblemMissingVM = "missing_vm"
	// ProblemUnresponsiveAgent: the VM is there, its agent does not
	// answer.
	ProblemUnresponsiveAgent = "unresponsive_agent"
	// ProblemMissingDisk: the instance's persistent disk is not in the
	// cloud.
	ProblemMissingDisk = "missing_disk"
	// ProblemMountInfoMismatch: the disk is there but not attached to the
	// instance's VM.
	ProblemMountInfoMismatch = "mount_info_mismatch"
)

// The resolutions of problems, as BOSH names them.
const (
	ResolutionIgnore              = "ignore"
	ResolutionDeleteVMReference   = "delete_vm_reference"
	ResolutionRebootVM            = "reboot_vm"
	ResolutionDeleteVM            = "delete_vm"
	ResolutionDeleteDiskReference = "delete_disk_reference"
	ResolutionReattachDisk        = "reattach_disk"
	ResolutionRecreateVM          = "recreate_vm"
)

// Problem is one thing cloud-check found wrong with an instance, and the
// resolutions that can be applied to it.
type Problem struct {
	Type        string
	Instance    InstanceRecord
	Description string
	Resolutions []string
}

// CloudCheck finds what disagrees between the director's records of a
// deployment, the cloud (through the CPI) and the agents (through the
// bus), as `bosh cloud-check` does, and applies the resolutions chosen.
type CloudCheck struct {
	Store Store
	CPI   cpi.CPI
	Bus   *mbus.Client
	// PingTimeout bounds the wait for an agent's ping; 10s when 0.
	PingTimeout time.Duration
	// Director, when set, offers recreate_vm for a missing VM and an
	// unresponsive agent, and every resolution runs as a task holding
	// the deployment's lock. Director.CloudCheck sets it.
	Director *Director
}

// CloudCheck returns a CloudCheck on the director's store, CPI and bus.
func (d *Director) CloudCheck() *CloudCheck {
	return &CloudCheck{Store: d.cfg.Store, CPI: d.cfg.CPI, Bus: d.cfg.Agents, Director: d}
}

// recreate adds recreate_vm to a resolution list when a director can do it.
func (cc *CloudCheck) recreate(rs ...string) []string {
	if cc.Director != nil {
		rs = append(rs[:1:1], append([]string{ResolutionRecreateVM}, rs[1:]...)...)
	}
	return rs
}

// Scan checks every instance of the deployment with a VM, at most 8 at
// once: the VM is there (has_vm), its agent answers a ping, its disk is
// there (has_disk) and attached to it (get_disks). Problems are listed by
// instance; a check that could not be made (the CPI failing) is an error
// for that instance, joined with the others', and the rest are still
// checked.
func (cc *CloudCheck) Scan(ctx context.Context, deployment string) ([]Problem, error) {
	if _, err := cc.Store.Deployment(deployment); err != nil {
		return nil, err
	}
	insts, err := cc.Store.Instances(deployment)
	if err != nil {
		return nil, err
	}
	timeout := cc.PingTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var (
		mu       sync.Mutex
		problems = make([][]Problem, len(insts))
		errs     []error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 8)
	)
	for i, inst := range insts {
		if inst.VMCID == "" {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ps, err := cc.check(ctx, inst, timeout)
			mu.Lock()
			defer mu.Unlock()
			problems[i] = ps
			if err != nil {
				errs = append(errs, fmt.Errorf("instance %s/%s (%d): %w", inst.Group, inst.ID, inst.Index, err))
			}
		})
	}
	wg.Wait()
	return slices.Concat(problems...), errors.Join(errs...)
}

func (cc *CloudCheck) check(ctx context.Context, inst InstanceRecord, timeout time.Duration) ([]Problem, error) {
	name := fmt.Sprintf("%s/%s (%d)", inst.Group, inst.ID, inst.Index)
	has, err := cc.CPI.HasVM(ctx, inst.VMCID)
	if err != nil {
		return nil, fmt.Errorf("has_vm %s: %w", inst.VMCID, err)
	}
	var out []Problem
	if !has {
		out = append(out, Problem{Type: ProblemMissingVM, Instance: inst,
			Description: fmt.Sprintf("VM for %s with cloud ID %s missing", name, inst.VMCID),
			Resolutions: cc.recreate(ResolutionIgnore, ResolutionDeleteVMReference)})
	} else {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := cc.Bus.Call(pctx, inst.AgentID, "ping")
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			out = append(out, Problem{Type: ProblemUnresponsiveAgent, Instance: inst,
				Description: fmt.Sprintf("VM for %s with cloud ID %s is not responding: %v", name, inst.VMCID, err),
				Resolutions: cc.recreate(ResolutionIgnore, ResolutionRebootVM, ResolutionDeleteVM, ResolutionDeleteVMReference)})
		}
	}
	if inst.DiskCID == "" {
		return out, nil
	}
	hasDisk, err := cc.CPI.HasDisk(ctx, inst.DiskCID)
	if err != nil {
		return out, fmt.Errorf("has_disk %s: %w", inst.DiskCID, err)
	}
	if !hasDisk {
		return append(out, Problem{Type: ProblemMissingDisk, Instance: inst,
			Description: fmt.Sprintf("Disk %s (%s) is missing", inst.DiskCID, name),
			Resolutions: []string{ResolutionIgnore, ResolutionDeleteDiskReference}}), nil
	}
	if !has {
		return out, nil
	}
	attached, err := cc.CPI.GetDisks(ctx, inst.VMCID)
	if err != nil {
		return out, fmt.Errorf("get_disks %s: %w", inst.VMCID, err)
	}
	if !slices.Contains(attached, inst.DiskCID) {
		out = append(out, Problem{Type: ProblemMountInfoMismatch, Instance: inst,
			Description: fmt.Sprintf("Inconsistent mount information: disk %s of %s is not attached to its VM %s", inst.DiskCID, name, inst.VMCID),
			Resolutions: []string{ResolutionIgnore, ResolutionReattachDisk}})
	}
	return out, nil
}

// Resolve applies a resolution to a problem Scan found, checking first
// that the instance's record still names the VM and disk Scan saw
// (another task may have changed it: an error wrapping ErrConflict). A
// resolution the problem does not offer is a *kubefoundry.FieldError
// (ErrInvalid). With a Director, recreate_vm is Director.Recreate of the
// instance without drain, and every other resolution is a task that
// holds the deployment's lock (a *LockedError while another task runs).
func (cc *CloudCheck) Resolve(ctx context.Context, p Problem, resolution string) error {
	if !slices.Contains(p.Resolutions, resolution) {
		return &kubefoundry.FieldError{Field: "resolution", Value: resolution,
			Reason: fmt.Sprintf("%s offers %v", p.Type, p.Resolutions)}
	}
	if resolution == ResolutionIgnore {
		return nil
	}
	if cc.Director == nil {
		return cc.resolve(ctx, p, resolution)
	}
	if resolution == ResolutionRecreateVM {
		// Recreate is a task of its own, holding the lock.
		if _, err := cc.current(p); err != nil {
			return err
		}
		_, err := cc.Director.Recreate(ctx, p.Instance.Deployment, RecreateOptions{
			Instances: []string{p.Instance.Group + "/" + p.Instance.ID}, SkipDrain: true})
		return err
	}
	_, err := cc.Director.runTask(ctx, "cloud_check", p.Instance.Deployment, fmt.Sprintf("resolve %s of %s/%s with %s", p.Type,
		p.Instance.Group, p.Instance.ID, resolution), nil, func(ctx context.Context, _ EventSink) (string, error) {
		return resolution, cc.resolve(ctx, p, resolution)
	})
	return err
}

// current is the instance's record, if it still names the VM and disk the
// scan saw.
func (cc *CloudCheck) current(p Problem) (InstanceRecord, error) {
	cur, err := cc.record(p.Instance)
	if err != nil {
		return InstanceRecord{}, err
	}
	if cur.VMCID != p.Instance.VMCID || cur.DiskCID != p.Instance.DiskCID {
		return InstanceRecord{}, fmt.Errorf("director: instance %s/%s changed since the scan (VM %s, disk %s): scan again: %w",
			cur.Group, cur.ID, cur.VMCID, cur.DiskCID, kubefoundry.ErrConflict)
	}
	return cur, nil
}

func (cc *CloudCheck) resolve(ctx context.Context, p Problem, resolution string) error {
	cur, err := cc.current(p)
	if err != nil {
		return err
	}
	switch resolution {
	case ResolutionDeleteVMReference:
		cur.VMCID, cur.AgentID = "", ""
		return cc.Store.PutInstance(cur)
	case ResolutionRebootVM:
		return cc.CPI.RebootVM(ctx, cur.VMCID)
	case ResolutionDeleteVM:
		if err := cc.CPI.DeleteVM(ctx, cur.VMCID); err != nil {
			return err
		}
		cur.VMCID, cur.AgentID = "", ""
		return cc.Store.PutInstance(cur)
	case ResolutionDeleteDiskReference:
		cur.DiskCID = ""
		return cc.Store.PutInstance(cur)
	case ResolutionReattachDisk:
		_, err := cc.CPI.AttachDisk(ctx, cur.VMCID, cur.DiskCID)
		return err
	}
	return fmt.Errorf("director: resolution %s: %w", resolution, kubefoundry.ErrInvalid)
}

func (cc *CloudCheck) record(i InstanceRecord) (InstanceRecord, error) {
	return findInstance(cc.Store, i.Deployment, i.ID)
}

// findInstance is the record of a deployment's instance by id
// (ErrNotFound when there is none).
func findInstance(st Store, deployment, id string) (InstanceRecord, error) {
	all, err := st.Instances(deployment)
	if err != nil {
		return InstanceRecord{}, err
	}
	for _, r := range all {
		if r.ID == id {
			return r, nil
		}
	}
	return InstanceRecord{}, fmt.Errorf("director: instance %s of %s: %w", id, deployment, kubefoundry.ErrNotFound)
}
