package vsphere

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
)

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
