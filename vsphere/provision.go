package vsphere

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubefoundry/kubefoundry"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
)

// Keys under which ownership is written into each VM's extraConfig, in the
// same reconfiguration that creates it, so that no VM ever exists without
// its owner recorded. The custom attribute OwnerAttribute repeats it where
// the vSphere Client shows it.
const (
	ownerKeyPrefix = "kubefoundry."
	keyCluster     = ownerKeyPrefix + "cluster"
	keyGroup       = ownerKeyPrefix + "group"
	keyIndex       = ownerKeyPrefix + "index"
	// keyReplicaOf marks a stemcell replica with its source's id.
	keyReplicaOf = ownerKeyPrefix + "replica-of"

	// OwnerAttribute is the custom attribute holding "cluster/group/index".
	OwnerAttribute = "kubefoundry.owner"
)

// ErrIPTimeout is wrapped when a VM did not report an IP address in time.
var ErrIPTimeout = errors.New("timed out waiting for an IP address")

// ProgressEvent reports one step of one VM. Events of one call are
// delivered one at a time, in order for each VM.
type ProgressEvent struct {
	VM    string
	Phase Phase
	Task  types.ManagedObjectReference // the task started, when Phase is PhaseCloneStarted
	IP    string
	Err   error
	Done  int // VMs finished (either way) so far
	Total int
}

// Phase names a step of provisioning.
type Phase string

const (
	PhaseCloneStarted Phase = "clone-started" // the clone task exists; Task names it
	PhaseCloned       Phase = "cloned"
	PhaseExisting     Phase = "existing" // the VM existed already, owned by the same owner
	PhasePoweredOn    Phase = "powered-on"
	PhaseReady        Phase = "ready" // done; IP is set when it was waited for
	PhaseFailed       Phase = "failed"
)

// ProvisionOption adjusts one ProvisionVMs call.
type ProvisionOption func(*provisionOptions)

type provisionOptions struct {
	sink     kubefoundry.Sink
	progress func(ProgressEvent)
	inFlight map[string]types.ManagedObjectReference
}

// WithInFlight resumes the clone tasks an earlier call started: tasks maps
// a VM's name to the Task of its PhaseCloneStarted event, as a caller that
// journals progress recorded it before a crash. A VM not in its folder yet
// whose task is still known to vCenter is waited for instead of being
// cloned a second time; a task that failed or that vCenter no longer
// knows, or whose VM is no longer the spec's (renamed or moved since), is
// cloned again as usual. The map is copied: the caller may go on writing
// to it, from a WithProgress function for instance.
func WithInFlight(tasks map[string]types.ManagedObjectReference) ProvisionOption {
	return func(o *provisionOptions) { o.inFlight = maps.Clone(tasks) }
}

// WithSink sends every step of every VM to s as the SDK's shared
// kubefoundry.Event: Op "provision", Object the VM's name, Phase one of the
// Phase values, Step of Steps the VMs finished so far, Handle the clone
// task's id when Phase is PhaseCloneStarted (journal it: WithInFlight hands
// it back), Message the IP when ready, Err when failed. Events of one call
// are delivered one at a time.
func WithSink(s kubefoundry.Sink) ProvisionOption {
	return func(o *provisionOptions) { o.sink = s }
}

// WithProgress calls fn for every step of every VM. Calls are serialised,
// so fn need not be safe for concurrent use, but it should return quickly.
func WithProgress(fn func(ProgressEvent)) ProvisionOption {
	return func(o *provisionOptions) { o.progress = fn }
}

// ProvisionVMs clones, configures, powers on and waits for the VMs of specs,
// at most the client's concurrency at a time. It is idempotent: a VM that
// already exists with the same owner is returned as it is (powered on if it
// should be) and nothing is created again.
//
// The result has one entry per spec, in order. One VM failing does not stop
// the others; its entry carries the error. The returned error is non-nil
// when specs are invalid (then nothing was done) or when any VM failed (an
// errors.Join of the failures).
func (c *Client) ProvisionVMs(ctx context.Context, specs []VMSpec, opts ...ProvisionOption) ([]VMResult, error) {
	if err := validateSpecs(specs); err != nil {
		return nil, err
	}
	var po provisionOptions
	for _, o := range opts {
		o(&po)
	}
	// Define the owner attribute before any clone runs: every VM needs it,
	// and vcsim's AddCustomFieldDef races with VMs being created.
	if _, err := c.ownerFieldKey(ctx); err != nil {
		return nil, err
	}

	// Every VM gets a goroutine, but only the client's concurrency of them
	// run vSphere tasks at a time; waiting for IPs holds no slot.
	w := c.newPoller(pollInterval)
	p := &provisioner{c: c, w: w, total: len(specs), progress: po.progress, sink: po.sink, inFlight: po.inFlight,
		slots: make(chan struct{}, c.opts.concurrency)}
	// While VMs queue for a slot, a finished task should free its slot
	// sooner: poll four times as often. With nothing queued (every VM's
	// task in flight) the slower pace saves calls.
	w.urgent = func() bool { return p.queued.Load() > 0 }
	wctx, stop := context.WithCancel(ctx)
	go w.run(wctx)
	defer func() { stop(); <-w.done }()
	results := make([]VMResult, len(specs))
	var wg sync.WaitGroup
	for i := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = p.provision(ctx, &specs[i])
		}()
	}
	wg.Wait()

	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("vm %s: %w", r.Name, r.Err))
		}
	}
	return results, errors.Join(errs...)
}

type provisioner struct {
	c      *Client
	w      *watcher
	slots  chan struct{} // bounds the VMs whose tasks run at once
	queued atomic.Int32  // VMs waiting for a slot

	sources   memo[string, *mo.VirtualMachine]                       // clone sources by VMSpec.Template
	replicas  memo[types.ManagedObjectReference, *mo.VirtualMachine] // by datastore
	snapshots memo[types.ManagedObjectReference, types.ManagedObjectReference]
	folders   memo[string, *object.Folder]
	existed   memo[string, bool] // whether a folder was there when the call began
	pools     memo[string, *object.ResourcePool]
	clusters  memo[string, *object.ClusterComputeResource]
	stores    memo[string, *object.Datastore]
	networks  memo[string, types.BaseVirtualDeviceBackingInfo]
	policies  memo[string, string]
	existing  memo[string, map[string]existingVM] // by folder path

	inFlight map[string]types.ManagedObjectReference // clone tasks of an earlier call, by VM name

	mu       sync.Mutex
	done     int
	total    int
	progress func(ProgressEvent)
	sink     kubefoundry.Sink
}

func (p *provisioner) emit(ev ProgressEvent) {
	if p.progress == nil && p.sink == nil && ev.Phase != PhaseReady && ev.Phase != PhaseFailed {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Phase == PhaseReady || ev.Phase == PhaseFailed {
		p.done++
	}
	ev.Done, ev.Total = p.done, p.total
	if p.progress != nil {
		p.progress(ev)
	}
	if p.sink != nil {
		kubefoundry.Emit(p.sink, kubefoundry.Event{Op: "provision", Object: ev.VM, Phase: string(ev.Phase),
			Step: ev.Done, Steps: ev.Total, Handle: ev.Task.Value, Message: ev.IP, Err: ev.Err})
	}
}

func (p *provisioner) provision(ctx context.Context, s *VMSpec) VMResult {
	res := VMResult{Name: s.Name}
	log := p.c.log.With(zap.String("vm", s.Name))
	res.Ref, res.IP, res.Created, res.Err = p.provisionVM(ctx, s, log)
	if res.Err != nil {
		log.Warn("provision failed", zap.Error(res.Err))
		p.emit(ProgressEvent{VM: s.Name, Phase: PhaseFailed, Err: res.Err})
	} else {
		log.Info("provisioned", zap.String("ref", res.Ref.Value), zap.String("ip", res.IP), zap.Bool("created", res.Created))
		p.emit(ProgressEvent{VM: s.Name, Phase: PhaseReady, IP: res.IP})
	}
	return res
}

func (p *provisioner) provisionVM(ctx context.Context, s *VMSpec, log *zap.Logger) (ref types.ManagedObjectReference, ip string, created bool, err error) {
	p.queued.Add(1)
	select {
	case p.slots <- struct{}{}:
		p.queued.Add(-1)
	case <-ctx.Done():
		p.queued.Add(-1)
		return ref, "", false, ctx.Err()
	}
	ref, created, err = p.place(ctx, s, log)
	<-p.slots
	if err != nil {
		return ref, "", created, err
	}

	if err := p.c.setOwnerAttribute(ctx, ref, s.Owner); err != nil {
		return ref, "", created, err
	}
	if s.IPTimeout > 0 {
		ip, err = p.waitIP(ctx, ref, s.IPTimeout)
	}
	return ref, ip, created, err
}

// place returns the spec's VM: the existing one, checked and powered on,
// or a new clone.
func (p *provisioner) place(ctx context.Context, s *VMSpec, log *zap.Logger) (ref types.ManagedObjectReference, created bool, err error) {
	folder, err := p.folder(ctx, s)
	if err != nil {
		return ref, false, err
	}
	existing, err := p.existing.get(folder.InventoryPath, func() (map[string]existingVM, error) {
		return p.c.vmsInFolder(ctx, folder.Reference())
	})
	if err != nil {
		return ref, false, err
	}

	if vm, ok := existing[s.Name]; ok {
		ref, err = p.adopt(ctx, s, vm)
	} else if vm, ok := p.resume(ctx, s, folder, log); ok {
		ref, err = p.take(ctx, s, vm)
		created = err == nil
	} else {
		ref, err = p.clone(ctx, s, folder)
		created = err == nil
		var dup *types.DuplicateName
		if _, isDup := fault.As(err, &dup); isDup {
			// Another run (or a run before a crash) created it meanwhile.
			log.Info("name taken while cloning, adopting the existing VM")
			var vms map[string]existingVM
			if vms, err = p.c.vmsInFolder(ctx, folder.Reference()); err == nil {
				vm, found := vms[s.Name]
				if !found {
					return ref, false, fmt.Errorf("clone reported %q as a duplicate name, but it is not in %s", s.Name, folder.InventoryPath)
				}
				ref, err = p.adopt(ctx, s, vm)
				created = false
			}
		}
	}
	return ref, created, err
}

// resume waits for the clone task an earlier call started for the spec's
// VM, if there is one, and returns the VM it made. ok is false when there
// is none to wait for, or it did not make the VM: then it is cloned.
func (p *provisioner) resume(ctx context.Context, s *VMSpec, folder *object.Folder, log *zap.Logger) (vm existingVM, ok bool) {
	task, found := p.inFlight[s.Name]
	if !found || task.Value == "" {
		return vm, false
	}
	p.emit(ProgressEvent{VM: s.Name, Phase: PhaseCloneStarted, Task: task})
	result, err := p.w.waitTask(ctx, "clone "+s.Name, task)
	if err != nil {
		log.Info("the earlier clone task did not make the VM; cloning it again", zap.String("task", task.Value), zap.Error(err))
		return vm, false
	}
	ref, _ := result.(types.ManagedObjectReference)
	vms, err := p.c.vmsInFolder(ctx, folder.Reference())
	if err != nil {
		return vm, false
	}
	vm, ok = vms[s.Name]
	if !ok || vm.ref != ref {
		log.Warn("the earlier clone task made a VM that is no longer the spec's (renamed or moved since); cloning it again",
			zap.String("task", task.Value), zap.String("ref", ref.Value))
		return vm, false
	}
	log.Info("resumed the earlier clone task", zap.String("task", task.Value))
	p.emit(ProgressEvent{VM: s.Name, Phase: PhaseCloned})
	return vm, true
}

// adopt checks that an existing VM belongs to the spec's owner, and powers
// it on when it should be on.
func (p *provisioner) adopt(ctx context.Context, s *VMSpec, vm existingVM) (types.ManagedObjectReference, error) {
	if err := checkOwner(s, vm); err != nil {
		return vm.ref, err
	}
	p.emit(ProgressEvent{VM: s.Name, Phase: PhaseExisting})
	return vm.ref, p.powerOnIfOff(ctx, s, vm)
}

// take is adopt for the VM of a resumed clone task: made for the spec,
// not found existing.
func (p *provisioner) take(ctx context.Context, s *VMSpec, vm existingVM) (types.ManagedObjectReference, error) {
	if err := checkOwner(s, vm); err != nil {
		return vm.ref, err
	}
	if vm.power == types.VirtualMachinePowerStatePoweredOn {
		p.emit(ProgressEvent{VM: s.Name, Phase: PhasePoweredOn})
	}
	return vm.ref, p.powerOnIfOff(ctx, s, vm)
}

func checkOwner(s *VMSpec, vm existingVM) error {
	if !vm.hasOwner || vm.owner != s.Owner {
		holder := "no recorded owner"
		if vm.hasOwner {
			holder = "owner " + vm.owner.String()
		}
		return fmt.Errorf("%q in %s has %s, not %s: %w", s.Name, s.Folder, holder, s.Owner, ErrAlreadyExists)
	}
	return nil
}

// powerOnIfOff powers a VM on when the spec wants it on and it is not.
func (p *provisioner) powerOnIfOff(ctx context.Context, s *VMSpec, vm existingVM) error {
	if s.PoweredOff || vm.power == types.VirtualMachinePowerStatePoweredOn {
		return nil
	}
	if err := p.c.powerOn(ctx, p.w, vm.ref); err != nil {
		return err
	}
	p.emit(ProgressEvent{VM: s.Name, Phase: PhasePoweredOn})
	return nil
}

// clone starts the clone task, reports it, and waits for it.
func (p *provisioner) clone(ctx context.Context, s *VMSpec, folder *object.Folder) (types.ManagedObjectReference, error) {
	var ref types.ManagedObjectReference
	tpl, spec, err := p.cloneSpec(ctx, s)
	if err != nil {
		return ref, err
	}
	res, err := methods.CloneVM_Task(ctx, p.c.vim, &types.CloneVM_Task{
		This:   tpl.ref,
		Folder: folder.Reference(),
		Name:   s.Name,
		Spec:   *spec,
	})
	if err != nil {
		return ref, &TaskError{Op: "clone " + s.Name, Err: err}
	}
	p.emit(ProgressEvent{VM: s.Name, Phase: PhaseCloneStarted, Task: res.Returnval})
	result, err := p.w.waitTask(ctx, "clone "+s.Name, res.Returnval)
	if err != nil {
		return ref, err
	}
	ref, ok := result.(types.ManagedObjectReference)
	if !ok {
		return ref, &TaskError{Op: "clone " + s.Name, Ref: res.Returnval, Err: fmt.Errorf("unexpected task result %T", result)}
	}
	p.emit(ProgressEvent{VM: s.Name, Phase: PhaseCloned})
	if spec.PowerOn {
		p.emit(ProgressEvent{VM: s.Name, Phase: PhasePoweredOn})
	}
	return ref, nil
}

// cloneSpec folds placement, hardware, guestinfo, ownership and power-on
// into the clone itself, so that a VM costs one task and no reconfigure.
func (p *provisioner) cloneSpec(ctx context.Context, s *VMSpec) (*template, *types.VirtualMachineCloneSpec, error) {
	tpl, err := p.template(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	pool, err := p.pool(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	poolRef := pool.Reference()
	spec := &types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{Pool: &poolRef},
		PowerOn:  !s.PoweredOff,
		Config: &types.VirtualMachineConfigSpec{
			NumCPUs:  s.CPUs,
			MemoryMB: s.MemoryMB,
		},
	}
	var dsRef types.ManagedObjectReference
	if s.Datastore != "" {
		ds, err := p.stores.get(s.Datastore, func() (*object.Datastore, error) { return p.c.FindDatastore(ctx, s.Datastore) })
		if err != nil {
			return nil, nil, err
		}
		dsRef = ds.Reference()
		spec.Location.Datastore = &dsRef
	}
	var profile []types.BaseVirtualMachineProfileSpec
	if s.StoragePolicy != "" {
		id, err := p.policies.get(s.StoragePolicy, func() (string, error) { return p.c.FindStoragePolicy(ctx, s.StoragePolicy) })
		if err != nil {
			return nil, nil, err
		}
		profile = []types.BaseVirtualMachineProfileSpec{&types.VirtualMachineDefinedProfileSpec{ProfileId: id}}
		spec.Location.Profile = profile
	}
	if s.LinkedClone {
		snap := tpl.snapshot
		spec.Snapshot = &snap
		spec.Location.DiskMoveType = string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)
	}

	devices, err := p.deviceChanges(ctx, s, tpl, dsRef, profile)
	if err != nil {
		return nil, nil, err
	}
	spec.Config.DeviceChange = devices
	spec.Config.ExtraConfig, err = extraConfig(s)
	if err != nil {
		return nil, nil, err
	}
	return tpl, spec, nil
}

// extraConfig builds the guestinfo the cloud-init VMware datasource reads,
// the ownership keys, and the caller's own entries, in a stable order.
func extraConfig(s *VMSpec) ([]types.BaseOptionValue, error) {
	meta, err := json.Marshal(metadata(s))
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", s.Name, err)
	}
	kv := map[string]string{
		// vCenter starts a clone's extraConfig from its source's: a VM
		// cloned from a replica must not carry the replica's mark (an
		// empty value removes a key).
		keyReplicaOf:                  "",
		"guestinfo.metadata":          base64.StdEncoding.EncodeToString(meta),
		"guestinfo.metadata.encoding": "base64",
		keyCluster:                    s.Owner.Cluster,
		keyGroup:                      s.Owner.Group,
		keyIndex:                      strconv.Itoa(s.Owner.Index),
	}
	if len(s.UserData) > 0 {
		kv["guestinfo.userdata"] = base64.StdEncoding.EncodeToString(s.UserData)
		kv["guestinfo.userdata.encoding"] = "base64"
	}
	for k, v := range s.ExtraConfig {
		kv[k] = v
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]types.BaseOptionValue, len(keys))
	for i, k := range keys {
		out[i] = &types.OptionValue{Key: k, Value: kv[k]}
	}
	return out, nil
}

// metadata is cloud-init's instance metadata with a netplan v2 network.
func metadata(s *VMSpec) map[string]any {
	md := map[string]any{
		"instance-id":    s.Name,
		"local-hostname": s.Name,
	}
	if len(s.NICs) == 0 {
		return md
	}
	eths := map[string]any{}
	for i, n := range s.NICs {
		e := map[string]any{}
		if n.MAC != "" {
			e["match"] = map[string]string{"macaddress": strings.ToLower(n.MAC)}
			e["set-name"] = fmt.Sprintf("eth%d", i)
		} else {
			e["match"] = map[string]string{"name": "e*"} // validation allows this only for one NIC or all-DHCP
		}
		if n.IP == "" {
			e["dhcp4"] = true
		} else {
			e["dhcp4"] = false
			e["addresses"] = []string{n.IP}
			if n.Gateway != "" {
				e["routes"] = []map[string]string{{"to": "default", "via": n.Gateway}}
			}
			if len(n.DNS) > 0 {
				e["nameservers"] = map[string]any{"addresses": n.DNS}
			}
		}
		eths[fmt.Sprintf("nic%d", i)] = e
	}
	md["network"] = map[string]any{"version": 2, "ethernets": eths}
	return md
}

// deviceChanges points the template's NICs at the spec's networks, adds or
// removes NICs to match, and adds the extra disks.
func (p *provisioner) deviceChanges(ctx context.Context, s *VMSpec, tpl *template, ds types.ManagedObjectReference, profile []types.BaseVirtualMachineProfileSpec) ([]types.BaseVirtualDeviceConfigSpec, error) {
	var changes []types.BaseVirtualDeviceConfigSpec
	if len(s.NICs) > 0 {
		nics := tpl.devices.SelectByType((*types.VirtualEthernetCard)(nil))
		for i, n := range s.NICs {
			backing, err := p.network(ctx, n.Network)
			if err != nil {
				return nil, err
			}
			var card types.BaseVirtualDevice
			op := types.VirtualDeviceConfigSpecOperationEdit
			if i < len(nics) {
				card = copyEthernetCard(nics[i])
			} else {
				op = types.VirtualDeviceConfigSpecOperationAdd
				card, err = tpl.devices.CreateEthernetCard("vmxnet3", backing)
				if err != nil {
					return nil, err
				}
				card.GetVirtualDevice().Key = tpl.devices.NewKey() - int32(i)
			}
			eth := card.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard()
			eth.Backing = backing
			if n.MAC != "" {
				eth.AddressType = string(types.VirtualEthernetCardMacTypeManual)
				eth.MacAddress = strings.ToLower(n.MAC)
			}
			changes = append(changes, &types.VirtualDeviceConfigSpec{Operation: op, Device: card})
		}
		for _, extra := range nics[min(len(s.NICs), len(nics)):] {
			changes = append(changes, &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationRemove, Device: extra})
		}
	}
	if len(s.Disks) > 0 {
		ctrl, err := tpl.devices.FindDiskController("scsi")
		if err != nil {
			return nil, fmt.Errorf("template %s: extra disks need a SCSI controller: %w", s.Template, err)
		}
		ckey := ctrl.GetVirtualController().Key
		used := map[int32]bool{7: true} // the controller's own unit
		for _, d := range tpl.devices {
			if vd := d.GetVirtualDevice(); vd.ControllerKey == ckey && vd.UnitNumber != nil {
				used[*vd.UnitNumber] = true
			}
		}
		unit := int32(0)
		for i, d := range s.Disks {
			for used[unit] {
				unit++
			}
			if unit > 15 {
				return nil, fmt.Errorf("specs %s: disks[%d]: no free unit on the SCSI controller: %w", s.Name, i, ErrInvalidSpec)
			}
			used[unit] = true
			backing := &types.VirtualDiskFlatVer2BackingInfo{
				DiskMode:        string(types.VirtualDiskModePersistent),
				ThinProvisioned: types.NewBool(true),
			}
			if ds.Value != "" {
				backing.Datastore = &ds
			}
			disk := &types.VirtualDisk{
				VirtualDevice: types.VirtualDevice{
					Key:           tpl.devices.NewKey() - 100 - int32(i),
					ControllerKey: ckey,
					UnitNumber:    types.NewInt32(unit),
					Backing:       backing,
				},
				CapacityInKB: d.SizeGB * 1024 * 1024,
			}
			changes = append(changes, &types.VirtualDeviceConfigSpec{
				Operation:     types.VirtualDeviceConfigSpecOperationAdd,
				FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate,
				Device:        disk,
				Profile:       profile,
			})
		}
	}
	return changes, nil
}

// copyEthernetCard copies the card's own struct so that the template's
// cached device list is never changed by one VM's spec.
func copyEthernetCard(d types.BaseVirtualDevice) types.BaseVirtualDevice {
	switch c := d.(type) {
	case *types.VirtualVmxnet3:
		cp := *c
		return &cp
	case *types.VirtualE1000:
		cp := *c
		return &cp
	case *types.VirtualE1000e:
		cp := *c
		return &cp
	case *types.VirtualVmxnet2:
		cp := *c
		return &cp
	case *types.VirtualPCNet32:
		cp := *c
		return &cp
	case *types.VirtualVmxnet3Vrdma:
		cp := *c
		return &cp
	case *types.VirtualSriovEthernetCard:
		cp := *c
		return &cp
	}
	return d
}

// template is what ProvisionVMs needs to know of a clone source.
type template struct {
	ref      types.ManagedObjectReference
	devices  object.VirtualDeviceList
	snapshot types.ManagedObjectReference // current snapshot, for linked clones
}

func (p *provisioner) template(ctx context.Context, s *VMSpec) (*template, error) {
	src, err := p.sources.get(s.Template, func() (*mo.VirtualMachine, error) {
		vm, err := p.c.FindVM(ctx, s.Template)
		if err != nil {
			return nil, fmt.Errorf("template: %w", err)
		}
		var m mo.VirtualMachine
		if err := p.c.collector().RetrieveOne(ctx, vm.Reference(), templateProps, &m); err != nil {
			return nil, fmt.Errorf("template %s: %w", s.Template, err)
		}
		return &m, nil
	})
	if err != nil {
		return nil, err
	}
	if !s.LinkedClone {
		return newTemplate(src), nil
	}
	base := src
	var ds *object.Datastore
	if s.Datastore != "" {
		if ds, err = p.stores.get(s.Datastore, func() (*object.Datastore, error) { return p.c.FindDatastore(ctx, s.Datastore) }); err != nil {
			return nil, err
		}
	}
	// Linked clones hang off a snapshot. The SDK snapshots only what is
	// its own: a stemcell ImportStemcell made, or a replica. The user's
	// own VM or template is never changed: its clones link to a replica
	// of it on the same datastore.
	own := isImportedStemcell(src)
	if ds == nil && !own {
		if len(src.Datastore) == 0 {
			return nil, fmt.Errorf("template %s: on no datastore", s.Template)
		}
		ds = object.NewDatastore(p.c.vim, src.Datastore[0])
		if ds.InventoryPath, err = ds.ObjectName(ctx); err != nil {
			return nil, fmt.Errorf("datastore of template %s: %w", s.Template, err)
		}
	}
	// Keyed by the datastore itself, so that its name and its path share
	// one replica, and a stemcell's own datastore needs none.
	if ds != nil && (!own || !slices.Contains(src.Datastore, ds.Reference())) {
		if base, err = p.replicas.get(ds.Reference(), func() (*mo.VirtualMachine, error) { return p.replica(ctx, s, src, ds) }); err != nil {
			return nil, err
		}
	}
	snap, err := p.snapshots.get(base.Self, func() (types.ManagedObjectReference, error) { return p.snapshot(ctx, s, base) })
	if err != nil {
		return nil, err
	}
	t := newTemplate(base)
	t.snapshot = snap
	return t, nil
}

func newTemplate(m *mo.VirtualMachine) *template {
	t := &template{ref: m.Self}
	if m.Config != nil {
		t.devices = object.VirtualDeviceList(m.Config.Hardware.Device)
	}
	return t
}

// snapshot returns the current snapshot of a linked clones' base, taking
// one when it has none.
func (p *provisioner) snapshot(ctx context.Context, s *VMSpec, m *mo.VirtualMachine) (types.ManagedObjectReference, error) {
	if m.Snapshot != nil && m.Snapshot.CurrentSnapshot != nil {
		return *m.Snapshot.CurrentSnapshot, nil
	}
	var none types.ManagedObjectReference
	if m.Config != nil && m.Config.Template {
		return none, fmt.Errorf("template %s has no snapshot to link clones to; import the stemcell as a VM or snapshot it: %w", s.Template, ErrInvalidSpec)
	}
	req := types.CreateSnapshot_Task{This: m.Self, Name: "kubefoundry-base", Description: "base of linked clones"}
	task, err := methods.CreateSnapshot_Task(ctx, p.c.vim, &req)
	if err != nil {
		return none, fmt.Errorf("snapshot %s: %w", m.Name, err)
	}
	res, err := p.w.waitTask(ctx, "snapshot "+m.Name, task.Returnval)
	if err != nil {
		return none, err
	}
	snap, ok := res.(types.ManagedObjectReference)
	if !ok {
		return none, fmt.Errorf("snapshot %s: unexpected result %T", m.Name, res)
	}
	return snap, nil
}

// templateProps are what ProvisionVMs reads of a clone source.
var templateProps = []string{"name", "parent", "datastore", "config.hardware.device", "config.template", "config.annotation", "snapshot"}

// isImportedStemcell reports whether ImportStemcell made m.
func isImportedStemcell(m *mo.VirtualMachine) bool {
	return m.Config != nil && strings.HasPrefix(m.Config.Annotation, stemcellAnnotationPrefix)
}

// replica returns the copy of the clone source src on datastore ds,
// cloning it there when it is missing, as the BOSH vSphere CPI replicates
// a stemcell to each datastore: a linked clone's delta disk then sits on
// the same datastore as its base disk, so clones on a datastore the
// stemcell is not on stay linked clones, and hosts that cannot see the
// stemcell's datastore can run them.
//
// The replica is an ordinary powered-off VM beside the source, named
// "<source>.replica.<datastore id>", with the source's hardware, an
// annotation saying what it is and the source's id in extraConfig
// (kubefoundry.replica-of); template() snapshots it. It carries no
// owner, so ListVMs never counts it as a cluster's VM. Found by name, it
// is made once however many callers ask at once: a clone that loses the
// race to another process (DuplicateName) takes the winner's.
func (p *provisioner) replica(ctx context.Context, s *VMSpec, src *mo.VirtualMachine, ds *object.Datastore) (*mo.VirtualMachine, error) {
	if src.Parent == nil {
		return nil, fmt.Errorf("template %s: no parent folder to put a replica in", src.Name)
	}
	name := replicaName(src.Name, ds.Reference())
	find := func() (*mo.VirtualMachine, error) {
		vms, err := p.c.vmsInFolder(ctx, *src.Parent)
		if err != nil {
			return nil, err
		}
		vm, ok := vms[name]
		if !ok {
			return nil, nil
		}
		var m mo.VirtualMachine
		if err := p.c.collector().RetrieveOne(ctx, vm.ref, replicaProps, &m); err != nil {
			return nil, fmt.Errorf("replica %s: %w", name, err)
		}
		// A replica of an older stemcell of the same name (deleted
		// without DeleteStemcell) must not become the base of new VMs.
		if of := replicaOf(&m); of != src.Self.Value {
			return nil, fmt.Errorf("%s is not a replica of %s (%s) but of %q; delete it: %w", name, src.Name, src.Self.Value, of, ErrAlreadyExists)
		}
		if !slices.Contains(m.Datastore, ds.Reference()) {
			return nil, fmt.Errorf("replica %s of %s is not on datastore %s: %w", name, src.Name, ds.Name(), ErrAlreadyExists)
		}
		return &m, nil
	}
	if m, err := find(); m != nil || err != nil {
		return m, err
	}

	pool, err := p.pool(ctx, s)
	if err != nil {
		return nil, err
	}
	poolRef, dsRef := pool.Reference(), ds.Reference()
	p.c.log.Info("replicating stemcell", zap.String("template", src.Name), zap.String("replica", name), zap.String("datastore", ds.Name()))
	res, err := methods.CloneVM_Task(ctx, p.c.vim, &types.CloneVM_Task{
		This:   src.Self,
		Folder: *src.Parent,
		Name:   name,
		Spec: types.VirtualMachineCloneSpec{
			Location: types.VirtualMachineRelocateSpec{Pool: &poolRef, Datastore: &dsRef},
			Config: &types.VirtualMachineConfigSpec{
				Annotation:  fmt.Sprintf("kubefoundry: replica of stemcell %s (%s) on datastore %s, the base of linked clones there", src.Name, src.Self.Value, ds.Name()),
				ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: keyReplicaOf, Value: src.Self.Value}},
			},
		},
	})
	if err == nil {
		_, err = p.w.waitTask(ctx, "replicate "+src.Name, res.Returnval)
	}
	if err != nil && !fault.Is(err, &types.DuplicateName{}) {
		return nil, fmt.Errorf("replicate %s to %s: %w", src.Name, ds.Name(), err)
	}
	m, err := find()
	if err == nil && m == nil {
		err = fmt.Errorf("replica %s of %s not found after cloning it", name, src.Name)
	}
	return m, err
}

// replicaProps are templateProps and the extraConfig naming the source.
var replicaProps = append(slices.Clone(templateProps), "config.extraConfig")

// replicaName names the replica of stemcell on datastore ds.
func replicaName(stemcell string, ds types.ManagedObjectReference) string {
	return stemcell + replicaInfix + ds.Value
}

// replicaInfix joins a stemcell's name and a datastore's id in a replica's.
const replicaInfix = ".replica."

// replicaOf returns the source id a replica records, or "".
func replicaOf(m *mo.VirtualMachine) string {
	if m.Config == nil {
		return ""
	}
	for _, bov := range m.Config.ExtraConfig {
		if ov := bov.GetOptionValue(); ov.Key == keyReplicaOf {
			v, _ := ov.Value.(string)
			return v
		}
	}
	return ""
}

// folder resolves the spec's folder path, creating each missing level for
// the spec's cluster, once the spec's inventory is known to exist.
func (p *provisioner) folder(ctx context.Context, s *VMSpec) (*object.Folder, error) {
	exists, err := p.existed.get(s.Folder, func() (bool, error) {
		_, err := p.c.lookupFolder(ctx, s.Folder)
		if isFinderNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("folder %s: %w", s.Folder, err)
	}
	if !exists {
		// Nothing of this spec can exist yet: check what it names before
		// creating anything, so a bad template or network leaves no empty
		// folder or pool behind. Each spec is checked on its own: one
		// spec's bad template fails that VM only.
		if err := p.preflight(ctx, s); err != nil {
			return nil, err
		}
	}
	return p.folders.get(s.Folder, func() (*object.Folder, error) {
		return p.c.ensureFolder(ctx, s.Folder, s.Owner.Cluster)
	})
}

// preflight resolves what a clone of s needs and that provisioning does
// not create: template, compute cluster, datastore, storage policy and
// networks. Every lookup is memoized for the call.
func (p *provisioner) preflight(ctx context.Context, s *VMSpec) error {
	if _, err := p.template(ctx, s); err != nil {
		return err
	}
	if !path.IsAbs(s.ResourcePool) {
		if _, err := p.clusters.get(s.Cluster, func() (*object.ClusterComputeResource, error) { return p.c.FindCluster(ctx, s.Cluster) }); err != nil {
			return err
		}
	}
	if s.Datastore != "" {
		if _, err := p.stores.get(s.Datastore, func() (*object.Datastore, error) { return p.c.FindDatastore(ctx, s.Datastore) }); err != nil {
			return err
		}
	}
	if s.StoragePolicy != "" {
		if _, err := p.policies.get(s.StoragePolicy, func() (string, error) { return p.c.FindStoragePolicy(ctx, s.StoragePolicy) }); err != nil {
			return err
		}
	}
	for i, n := range s.NICs {
		if _, err := p.network(ctx, n.Network); err != nil {
			return fmt.Errorf("nics[%d]: %w", i, err)
		}
	}
	return nil
}

// network resolves a network's backing for a NIC, once per call.
func (p *provisioner) network(ctx context.Context, name string) (types.BaseVirtualDeviceBackingInfo, error) {
	return p.networks.get(name, func() (types.BaseVirtualDeviceBackingInfo, error) {
		net, err := p.c.FindNetwork(ctx, name)
		if err != nil {
			return nil, err
		}
		return net.EthernetCardBackingInfo(ctx)
	})
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

// pool resolves the spec's resource pool, creating a missing child pool.
func (p *provisioner) pool(ctx context.Context, s *VMSpec) (*object.ResourcePool, error) {
	return p.pools.get(s.Cluster+"\x00"+s.ResourcePool, func() (*object.ResourcePool, error) {
		return p.c.ensureResourcePool(ctx, s.Cluster, s.ResourcePool, s.Owner.Cluster)
	})
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

// waitIP waits for the guest to report an IP address.
func (p *provisioner) waitIP(ctx context.Context, ref types.ManagedObjectReference, timeout time.Duration) (string, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := p.w.waitFor(tctx, ref, func(st objectState) bool {
		ip, _ := st["guest.ipAddress"].(string)
		return ip != ""
	})
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("%s after %s: %w", ref.Value, timeout, ErrIPTimeout)
		}
		return "", err
	}
	ip, _ := st["guest.ipAddress"].(string)
	if _, err := netip.ParseAddr(ip); err != nil {
		return "", fmt.Errorf("guest reported %q, not an IP address", ip)
	}
	return ip, nil
}

// memo computes each key's value once, for every caller that asks.
type memo[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*memoEntry[V]
}

type memoEntry[V any] struct {
	once sync.Once
	v    V
	err  error
}

func (m *memo[K, V]) get(k K, f func() (V, error)) (V, error) {
	m.mu.Lock()
	if m.m == nil {
		m.m = map[K]*memoEntry[V]{}
	}
	e, ok := m.m[k]
	if !ok {
		e = &memoEntry[V]{}
		m.m[k] = e
	}
	m.mu.Unlock()
	e.once.Do(func() { e.v, e.err = f() })
	return e.v, e.err
}

// pollInterval is how often ProvisionVMs and DestroyVMs read the state of
// all their pending tasks and VMs, in one call.
const pollInterval = 100 * time.Millisecond
