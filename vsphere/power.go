package vsphere

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/workpool"
)

// wait waits for a task on its own collector (for single operations) or on
// a shared watcher (for many).
func (c *Client) wait(ctx context.Context, w *watcher, op string, task types.ManagedObjectReference) (types.AnyType, error) {
	if w != nil {
		return w.waitTask(ctx, op, task)
	}
	info, err := object.NewTask(c.vim, task).WaitForResult(ctx)
	if err != nil {
		te := &TaskError{Op: op, Ref: task, Err: err}
		if info != nil && info.Error != nil {
			te.Fault = info.Error.Fault
		}
		return nil, te
	}
	return info.Result, nil
}

// PowerOn powers a VM on. A VM that is on already is not an error.
func (c *Client) PowerOn(ctx context.Context, vm types.ManagedObjectReference) error {
	return c.powerOn(ctx, nil, vm)
}

func (c *Client) powerOn(ctx context.Context, w *watcher, vm types.ManagedObjectReference) error {
	res, err := methods.PowerOnVM_Task(ctx, c.vim, &types.PowerOnVM_Task{This: vm})
	if err == nil {
		_, err = c.wait(ctx, w, "power on "+vm.Value, res.Returnval)
	}
	if err != nil && !fault.Is(err, &types.InvalidPowerState{}) {
		return fmt.Errorf("power on %s: %w", vm.Value, err)
	}
	return nil
}

// PowerOff powers a VM off at once (not a guest shutdown). A VM that is off
// already is not an error.
func (c *Client) PowerOff(ctx context.Context, vm types.ManagedObjectReference) error {
	return c.powerOff(ctx, nil, vm)
}

func (c *Client) powerOff(ctx context.Context, w *watcher, vm types.ManagedObjectReference) error {
	res, err := methods.PowerOffVM_Task(ctx, c.vim, &types.PowerOffVM_Task{This: vm})
	if err == nil {
		_, err = c.wait(ctx, w, "power off "+vm.Value, res.Returnval)
	}
	if err != nil && !fault.Is(err, &types.InvalidPowerState{}) {
		return fmt.Errorf("power off %s: %w", vm.Value, err)
	}
	return nil
}

// Reset resets a powered-on VM.
func (c *Client) Reset(ctx context.Context, vm types.ManagedObjectReference) error {
	res, err := methods.ResetVM_Task(ctx, c.vim, &types.ResetVM_Task{This: vm})
	if err == nil {
		_, err = c.wait(ctx, nil, "reset "+vm.Value, res.Returnval)
	}
	if err != nil {
		return fmt.Errorf("reset %s: %w", vm.Value, err)
	}
	return nil
}

// Resize is a vertical resize of an existing VM.
type Resize struct {
	CPUs     int32 // zero keeps the current count
	MemoryMB int64 // zero keeps the current size
	// DisksGB are the sizes wanted for the VM's disks, in the order vSphere
	// lists them (the template's own disk first, then VMSpec.Disks); zero
	// keeps a disk's size, and disks past the end of the list are kept.
	// Disks only grow, in place and while the VM runs. A size for a disk
	// the VM does not have, a smaller size, or a size for a delta disk
	// (the VM has snapshots, or the disk is a linked clone's, which vSphere
	// cannot extend) is an ErrInvalidSpec naming resize.disksGB[i].
	DisksGB []int64
	// AllowPowerCycle lets Resize power a running VM off, reconfigure it
	// and power it on again when vSphere refuses the change while it runs
	// (CPU or memory hot-add disabled, or a decrease).
	AllowPowerCycle bool
}

// ResizeVM changes the CPU count, the memory and the disk sizes of a VM.
// Only what differs from the VM's current configuration is sent; a
// Resize the VM already has makes no change and starts no task.
func (c *Client) ResizeVM(ctx context.Context, vm types.ManagedObjectReference, r Resize) error {
	verr := &ValidationError{Object: "spec"}
	if r.CPUs < 0 {
		verr.Add("resize.cpus", "", "%d: must not be negative", r.CPUs)
	}
	if r.MemoryMB < 0 || r.MemoryMB%4 != 0 {
		verr.Add("resize.memoryMB", "", "%d: must be a non-negative multiple of 4", r.MemoryMB)
	}
	for i, gb := range r.DisksGB {
		if gb < 0 {
			verr.Add(fmt.Sprintf("resize.disksGB[%d]", i), "", "%d: must not be negative", gb)
		}
	}
	if err := verr.Err(); err != nil {
		return err
	}
	var m mo.VirtualMachine
	if err := c.collector().RetrieveOne(ctx, vm, []string{"config.hardware", "runtime.powerState"}, &m); err != nil {
		if isGone(err) {
			return fmt.Errorf("resize %s: %w: %w", vm.Value, ErrNotFound, err)
		}
		return fmt.Errorf("resize %s: %w", vm.Value, err)
	}
	if m.Config == nil {
		return fmt.Errorf("resize %s: the VM has no configuration yet", vm.Value)
	}
	hw := m.Config.Hardware
	var spec types.VirtualMachineConfigSpec
	if r.CPUs != 0 && r.CPUs != hw.NumCPU {
		spec.NumCPUs = r.CPUs
	}
	if r.MemoryMB != 0 && r.MemoryMB != int64(hw.MemoryMB) {
		spec.MemoryMB = r.MemoryMB
	}
	disks := object.VirtualDeviceList(hw.Device).SelectByType((*types.VirtualDisk)(nil))
	for i, gb := range r.DisksGB {
		if gb == 0 {
			continue
		}
		field := fmt.Sprintf("resize.disksGB[%d]", i)
		if i >= len(disks) {
			verr.Add(field, "", "the VM has %d disks", len(disks))
			continue
		}
		disk := *disks[i].(*types.VirtualDisk) // a copy: the retrieved list stays as read
		have := disk.CapacityInKB
		if disk.CapacityInBytes > 0 {
			have = disk.CapacityInBytes / 1024
		}
		want := gb * 1024 * 1024
		switch {
		case want != have && len(backingChain(disk.Backing)) > 1:
			verr.Add(field, "", "a delta disk (the VM has snapshots or is a linked clone) cannot be extended")
		case want < have:
			verr.Add(field, "", "%d GiB is smaller than the disk's %.1f GiB; disks only grow", gb, float64(have)/(1024*1024))
		case want > have:
			disk.CapacityInKB, disk.CapacityInBytes = want, want*1024
			spec.DeviceChange = append(spec.DeviceChange, &types.VirtualDeviceConfigSpec{
				Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: &disk})
		}
	}
	if err := verr.Err(); err != nil {
		return err
	}
	if spec.NumCPUs == 0 && spec.MemoryMB == 0 && len(spec.DeviceChange) == 0 {
		return nil
	}
	reconfigure := func() error {
		res, err := methods.ReconfigVM_Task(ctx, c.vim, &types.ReconfigVM_Task{This: vm, Spec: spec})
		if err == nil {
			_, err = c.wait(ctx, nil, "reconfigure "+vm.Value, res.Returnval)
		}
		return err
	}
	err := reconfigure()
	if err == nil {
		return nil
	}
	running := m.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	if !r.AllowPowerCycle || !running || !(fault.Is(err, &types.InvalidPowerState{}) || fault.Is(err, &types.InvalidState{}) || fault.Is(err, &types.NotSupported{})) {
		return fmt.Errorf("resize %s: %w", vm.Value, err)
	}
	c.log.Info("resize needs a power cycle", zap.String("vm", vm.Value), zap.Error(err))
	if err := c.PowerOff(ctx, vm); err != nil {
		return err
	}
	if err := reconfigure(); err != nil {
		// Leave the VM as it was found: running, at its old size.
		if perr := c.PowerOn(ctx, vm); perr != nil {
			return fmt.Errorf("resize %s while off: %w (and powering it on again: %w)", vm.Value, err, perr)
		}
		return fmt.Errorf("resize %s while off: %w", vm.Value, err)
	}
	return c.PowerOn(ctx, vm)
}

// DestroyVMs powers off and deletes VMs, at most the client's concurrency
// at a time. A VM that is already gone counts as destroyed. The result has
// one entry per ref, in order; the error joins the failures.
//
// Disks that are not the VM's own are detached first and kept: vSphere
// deletes every disk attached to a VM it destroys, and a Kubernetes node
// destroyed with a persistent volume still attached (its pods never
// drained, or the node already dead) would lose the volume's data. A disk
// is the VM's own when its file is in the VM's directory (those it was
// cloned with, its extra disks, a linked clone's delta disk); a First Class
// Disk (a CNS volume) or a file elsewhere, on another datastore or in
// another directory (a BOSH persistent disk, an in-tree vSphere volume),
// is not. A VM with snapshots has them removed first (consolidated), so
// that a persistent disk does not hide behind a snapshot's delta file.
// The result's KeptDisks lists what was detached.
func (c *Client) DestroyVMs(ctx context.Context, vms []types.ManagedObjectReference, opts ...DestroyOption) ([]VMResult, error) {
	var o destroyOptions
	for _, opt := range opts {
		opt.applyDestroy(&o)
	}
	wctx, stop := context.WithCancel(ctx)
	w := c.newPoller(pollInterval)
	go w.run(wctx)
	defer func() { stop(); <-w.done }()

	d := &destroyer{c: c, w: w, o: &o, total: len(vms)}
	results := make([]VMResult, len(vms))
	for i, ref := range vms {
		results[i].Ref = ref
	}
	workpool.Run(ctx, c.opts.concurrency, len(vms),
		func(i int) {
			results[i].Name, results[i].KeptDisks, results[i].Err = d.destroy(ctx, vms[i])
			phase := PhaseDestroyed
			if results[i].Err != nil {
				phase = PhaseFailed
			}
			d.emit(kubefoundry.Event{Object: cmp.Or(results[i].Name, vms[i].Value), Phase: string(phase), Err: results[i].Err}, true)
		},
		func(i int, err error) { results[i].Err = err })
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("destroy %s (%s): %w", r.Name, r.Ref.Value, r.Err))
		}
	}
	return results, errors.Join(errs...)
}

// destroyer is one DestroyVMs call.
type destroyer struct {
	c     *Client
	w     *watcher
	o     *destroyOptions
	mu    sync.Mutex
	done  int
	total int
}

func (d *destroyer) emit(e kubefoundry.Event, final bool) {
	if d.o.sink == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if final {
		d.done++
	}
	e.Op, e.Step, e.Steps = "destroy", d.done, d.total
	kubefoundry.Emit(d.o.sink, e)
}

func (d *destroyer) destroy(ctx context.Context, ref types.ManagedObjectReference) (string, []string, error) {
	c, w := d.c, d.w
	var m mo.VirtualMachine
	err := c.collector().RetrieveOne(ctx, ref, []string{"name", "runtime.powerState", "config.files.vmPathName", "config.hardware.device", "snapshot"}, &m)
	if isGone(err) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if task, ok := d.o.inFlight[m.Name]; ok && task.Value != "" {
		// A destroy an earlier call started: wait for it rather than
		// start the work again on a VM vCenter is deleting.
		d.emit(kubefoundry.Event{Object: m.Name, Phase: string(PhaseDestroyStarted), Handle: task.Value, Message: "resumed"}, false)
		_, werr := w.waitTask(ctx, "destroy "+m.Name, task)
		if werr == nil || isGone(werr) {
			if err := c.collector().RetrieveOne(ctx, ref, []string{"name"}, &mo.VirtualMachine{}); isGone(err) {
				c.log.Info("destroyed by the earlier task", zap.String("vm", m.Name), zap.String("task", task.Value))
				return m.Name, nil, nil
			}
		}
		c.log.Info("the earlier destroy task did not delete the VM; destroying it", zap.String("vm", m.Name), zap.String("task", task.Value), zap.Error(werr))
	}
	if m.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		if err := c.powerOff(ctx, w, ref); err != nil && !isGone(err) {
			return m.Name, nil, err
		}
		d.emit(kubefoundry.Event{Object: m.Name, Phase: string(PhasePoweredOff)}, false)
	}
	kept, err := c.detachForeignDisks(ctx, w, &m)
	if err != nil && !isGone(err) {
		return m.Name, kept, err
	}
	if len(kept) > 0 {
		d.emit(kubefoundry.Event{Object: m.Name, Phase: string(PhaseDisksKept), Message: strings.Join(kept, ", ")}, false)
	}
	res, err := methods.Destroy_Task(ctx, c.vim, &types.Destroy_Task{This: ref})
	if err == nil {
		d.emit(kubefoundry.Event{Object: m.Name, Phase: string(PhaseDestroyStarted), Handle: res.Returnval.Value}, false)
		_, err = c.wait(ctx, w, "destroy "+m.Name, res.Returnval)
	}
	if err != nil && !isGone(err) {
		return m.Name, kept, err
	}
	c.log.Info("destroyed", zap.String("vm", m.Name), zap.String("ref", ref.Value), zap.Strings("keptDisks", kept))
	return m.Name, kept, nil
}

// detachForeignDisks removes from a VM, keeping their files, the disks
// that are not its own (see DestroyVMs), and returns their files.
//
// A VM with snapshots has its snapshots removed first: a disk attached
// before a snapshot shows the snapshot's delta file, in the VM's
// directory, on top of its own, and destroying the VM would delete the
// delta with the data written since. Removing the snapshots consolidates
// every delta into the disk beneath it, so that each disk then shows its
// own file.
func (c *Client) detachForeignDisks(ctx context.Context, w *watcher, m *mo.VirtualMachine) ([]string, error) {
	if m.Config == nil {
		return nil, nil // an inaccessible VM: vSphere knows nothing of its disks
	}
	var own object.DatastorePath
	if !own.FromString(m.Config.Files.VmPathName) {
		return nil, nil
	}
	if m.Snapshot != nil {
		c.log.Info("removing the snapshots of a VM before destroying it, to find the disks that are not its own", zap.String("vm", m.Name))
		res, err := methods.RemoveAllSnapshots_Task(ctx, c.vim, &types.RemoveAllSnapshots_Task{This: m.Self})
		if err == nil {
			_, err = c.wait(ctx, w, "remove snapshots of "+m.Name, res.Returnval)
		}
		if err != nil {
			return nil, fmt.Errorf("remove the snapshots of %s before destroying it: %w", m.Name, err)
		}
		var after mo.VirtualMachine
		if err := c.collector().RetrieveOne(ctx, m.Self, []string{"config.hardware.device"}, &after); err != nil {
			return nil, err
		}
		m.Config.Hardware.Device = after.Config.Hardware.Device
	}
	ownDir := path.Dir(own.Path)
	var kept []string
	var change []types.BaseVirtualDeviceConfigSpec
	for _, dev := range m.Config.Hardware.Device {
		disk, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		file := diskFile(disk)
		var p object.DatastorePath
		foreign := disk.VDiskId != nil // a First Class Disk lives on its own
		if !foreign && file != "" && p.FromString(file) {
			foreign = p.Datastore != own.Datastore || path.Dir(p.Path) != ownDir
		}
		if !foreign {
			continue
		}
		kept = append(kept, file)
		// No FileOperation: the disk leaves the VM, its file stays.
		change = append(change, &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationRemove, Device: disk})
	}
	if len(change) == 0 {
		return nil, nil
	}
	c.log.Info("detaching disks that are not the VM's own before destroying it", zap.String("vm", m.Name), zap.Strings("disks", kept))
	res, err := methods.ReconfigVM_Task(ctx, c.vim, &types.ReconfigVM_Task{This: m.Self, Spec: types.VirtualMachineConfigSpec{DeviceChange: change}})
	if err == nil {
		_, err = c.wait(ctx, w, "detach disks of "+m.Name, res.Returnval)
	}
	if err != nil {
		return nil, fmt.Errorf("detach %s from %s before destroying it: %w", strings.Join(kept, ", "), m.Name, err)
	}
	return kept, nil
}

// diskFile is the datastore path of a disk's top backing file, or "".
func diskFile(d *types.VirtualDisk) string {
	if b, ok := d.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
		return b.GetVirtualDeviceFileBackingInfo().FileName
	}
	return ""
}

func isGone(err error) bool {
	return err != nil && fault.Is(err, &types.ManagedObjectNotFound{})
}
