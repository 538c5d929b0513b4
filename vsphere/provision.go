package vsphere

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path"
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

	// DestroyVMs' phases (PhaseFailed too).
	PhasePoweredOff     Phase = "powered-off"
	PhaseDisksKept      Phase = "disks-kept"      // persistent disks detached and kept
	PhaseDestroyStarted Phase = "destroy-started" // the destroy task exists; Handle names it
	PhaseDestroyed      Phase = "destroyed"
)

// ProvisionOption adjusts one ProvisionVMs call.
type ProvisionOption interface {
	applyProvision(*provisionOptions)
}

// DestroyOption adjusts one DestroyVMs call.
type DestroyOption interface {
	applyDestroy(*destroyOptions)
}

type provisionOptions struct {
	sink     kubefoundry.Sink
	progress func(ProgressEvent)
	inFlight map[string]types.ManagedObjectReference
}

type destroyOptions struct {
	sink     kubefoundry.Sink
	inFlight map[string]types.ManagedObjectReference
}

type provisionOptionFunc func(*provisionOptions)

func (f provisionOptionFunc) applyProvision(o *provisionOptions) { f(o) }

// StemcellOption adjusts one ImportStemcell call.
type StemcellOption interface {
	applyStemcell(*stemcellOptions)
}

type stemcellOptions struct {
	sink kubefoundry.Sink
}

// CallOption is an option of the long calls (ProvisionVMs, DestroyVMs,
// ImportStemcell); each takes what applies to it.
type CallOption struct {
	provision func(*provisionOptions)
	destroy   func(*destroyOptions)
	stemcell  func(*stemcellOptions)
}

func (c CallOption) applyProvision(o *provisionOptions) {
	if c.provision != nil {
		c.provision(o)
	}
}

func (c CallOption) applyDestroy(o *destroyOptions) {
	if c.destroy != nil {
		c.destroy(o)
	}
}

func (c CallOption) applyStemcell(o *stemcellOptions) {
	if c.stemcell != nil {
		c.stemcell(o)
	}
}

// WithInFlight resumes the tasks an earlier call started: tasks maps a
// VM's name to the Handle of its PhaseCloneStarted (ProvisionVMs) or
// PhaseDestroyStarted (DestroyVMs) event, as a caller that journals
// progress recorded it before a crash.
//
// ProvisionVMs: a VM not in its folder yet whose clone task is still known
// to vCenter is waited for instead of being cloned a second time; a task
// that failed or that vCenter no longer knows, or whose VM is no longer
// the spec's (renamed or moved since), is cloned again as usual.
// DestroyVMs: a VM still there whose destroy task is known is waited for
// before anything else is done to it.
//
// The map is copied: the caller may go on writing to it, from a sink for
// instance.
func WithInFlight(tasks map[string]types.ManagedObjectReference) CallOption {
	return CallOption{
		provision: func(o *provisionOptions) { o.inFlight = maps.Clone(tasks) },
		destroy:   func(o *destroyOptions) { o.inFlight = maps.Clone(tasks) },
	}
}

// WithSink sends every step of every VM to s as the SDK's shared
// kubefoundry.Event, one at a time: Object the VM's name, Step of Steps the
// VMs finished so far, Err when failed.
//
// ProvisionVMs: Op "provision", Phase one of PhaseCloneStarted (Handle the
// clone task's id: journal it, WithInFlight hands it back), PhaseCloned,
// PhaseExisting, PhasePoweredOn, PhaseReady (Message the IP), PhaseFailed.
// DestroyVMs: Op "destroy", Phase one of PhasePoweredOff, PhaseDisksKept
// (Message the disks detached and kept), PhaseDestroyStarted (Handle the
// task's id), PhaseDestroyed, PhaseFailed.
// ImportStemcell: Op "import stemcell", Object the stemcell's name, Phase
// "started", "uploading" (Message the upload's progress as govmomi's
// importer reports it), "imported", "existing" or PhaseFailed.
func WithSink(s kubefoundry.Sink) CallOption {
	return CallOption{
		provision: func(o *provisionOptions) { o.sink = s },
		destroy:   func(o *destroyOptions) { o.sink = s },
		stemcell:  func(o *stemcellOptions) { o.sink = s },
	}
}

// WithProgress calls fn for every step of every VM. Calls are serialised,
// so fn need not be safe for concurrent use, but it should return quickly.
func WithProgress(fn func(ProgressEvent)) ProvisionOption {
	return provisionOptionFunc(func(o *provisionOptions) { o.progress = fn })
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
		o.applyProvision(&po)
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

// pool resolves the spec's resource pool, creating a missing child pool.
func (p *provisioner) pool(ctx context.Context, s *VMSpec) (*object.ResourcePool, error) {
	return p.pools.get(s.Cluster+"\x00"+s.ResourcePool, func() (*object.ResourcePool, error) {
		return p.c.ensureResourcePool(ctx, s.Cluster, s.ResourcePool, s.Owner.Cluster)
	})
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
