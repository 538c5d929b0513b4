package vspherecpi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The locks DRS changes are made under, named as the vSphere CPI names
// them, so that this CPI and a vSphere CPI on the same vCenter keep out
// of each other's way: a cluster's groups and rules are one array each in
// its configuration, which vCenter rewrites whole, without a revision to
// refuse a stale write, so two writers that each read it and write it
// back lose one's change.
const (
	// RuleLock is held while an anti-affinity rule (drs_rules) changes.
	RuleLock = "drs_lock"
	// VMGroupLock is held while a VM group (vm_group, host_group)
	// changes.
	VMGroupLock = "drs_lock_vm_group"
)

// lockTimeout bounds the wait for a DRS lock, as the vSphere CPI's.
const lockTimeout = 10 * time.Minute

// lockPoll is how often a held lock is tried again.
const lockPoll = 500 * time.Millisecond

// drsLocks serialise DRS changes: within the process, a mutex per lock;
// across processes (a CPI executable runs one process per call), a
// custom attribute definition of the lock's name (for VirtualMachine) on
// vCenter, which exactly one caller can add (the others get
// DuplicateName) and which is removed to release it, as the vSphere CPI
// does.
type drsLocks struct {
	mu map[string]*sync.Mutex
}

func newDRSLocks() *drsLocks {
	return &drsLocks{mu: map[string]*sync.Mutex{RuleLock: {}, VMGroupLock: {}}}
}

// withLock runs f holding the lock name. A lock still held by another
// after lockTimeout (or ctx's end) is an error naming it: one left
// behind by a CPI that was killed holding it is the custom attribute of
// that name, to be removed by hand.
func (c *CPI) withLock(ctx context.Context, name string, f func() error) error {
	mu := c.locks.mu[name]
	mu.Lock()
	defer mu.Unlock()
	m := object.NewCustomFieldsManager(c.vs.Vim25())
	var key int32
	start := time.Now()
	err := wait.PollUntilContextTimeout(ctx, lockPoll, lockTimeout, true, func(ctx context.Context) (bool, error) {
		def, err := m.Add(ctx, name, "VirtualMachine", nil, nil)
		if err == nil {
			key = def.Key
			return true, nil
		}
		if fault.Is(err, &types.DuplicateName{}) {
			return false, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("DRS lock %q (a custom attribute on vCenter; one left by a killed CPI is removed by hand): %w", name, err)
	}
	if d := time.Since(start); d > time.Second {
		c.log.Info("DRS lock acquired", zap.String("lock", name), zap.Duration("waited", d))
	}
	defer func() {
		if err := m.Remove(context.WithoutCancel(ctx), key); err != nil {
			c.log.Warn("DRS lock not released", zap.String("lock", name), zap.Error(err))
		}
	}()
	return f()
}

func (c *CPI) clusterConfig(ctx context.Context, cl types.ManagedObjectReference) (*types.ClusterConfigInfoEx, error) {
	var m mo.ClusterComputeResource
	if err := property.DefaultCollector(c.vs.Vim25()).RetrieveOne(ctx, cl, []string{"configurationEx"}, &m); err != nil {
		return nil, fmt.Errorf("configuration of cluster %s: %w", cl.Value, err)
	}
	cfg, ok := m.ConfigurationEx.(*types.ClusterConfigInfoEx)
	if !ok {
		return nil, fmt.Errorf("configuration of cluster %s: unexpected %T", cl.Value, m.ConfigurationEx)
	}
	return cfg, nil
}

func (c *CPI) reconfigureCluster(ctx context.Context, cl types.ManagedObjectReference, spec *types.ClusterConfigSpecEx) error {
	task, err := object.NewClusterComputeResource(c.vs.Vim25(), cl).Reconfigure(ctx, spec, true)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("reconfigure cluster %s: %w", cl.Value, err)
	}
	return nil
}

// joinVMGroup adds vm to the VM group of cluster cl named group, making
// the group when it is not there; with hostGroup, it also makes the
// VM/host rule "<group>_rule" binding the group to that host group (MUST
// run there when mandatory, SHOULD otherwise) when it is not there.
// Members are added, never replaced.
func (c *CPI) joinVMGroup(ctx context.Context, cl types.ManagedObjectReference, group string, vm types.ManagedObjectReference, hostGroup string, mandatory bool) error {
	return c.withLock(ctx, VMGroupLock, func() error {
		cfg, err := c.clusterConfig(ctx, cl)
		if err != nil {
			return err
		}
		spec := &types.ClusterConfigSpecEx{}
		info := &types.ClusterVmGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: group}, Vm: []types.ManagedObjectReference{vm}}
		op := types.ArrayUpdateOperationAdd
		for _, g := range cfg.Group {
			if g.GetClusterGroupInfo().Name != group {
				continue
			}
			existing, ok := g.(*types.ClusterVmGroup)
			if !ok {
				return fmt.Errorf("group %q of the cluster is a %T, not a VM group", group, g)
			}
			if slices.Contains(existing.Vm, vm) {
				op = ""
				break
			}
			op = types.ArrayUpdateOperationEdit
			info.Vm = append(slices.Clone(existing.Vm), vm)
		}
		if op != "" {
			spec.GroupSpec = []types.ClusterGroupSpec{{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: op}, Info: info}}
		}
		if hostGroup != "" {
			rule := group + "_rule"
			if !slices.ContainsFunc(cfg.Rule, func(r types.BaseClusterRuleInfo) bool { return r.GetClusterRuleInfo().Name == rule }) {
				spec.RulesSpec = []types.ClusterRuleSpec{{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd},
					Info: &types.ClusterVmHostRuleInfo{
						ClusterRuleInfo:     types.ClusterRuleInfo{Name: rule, Enabled: types.NewBool(true), Mandatory: types.NewBool(mandatory)},
						VmGroupName:         group,
						AffineHostGroupName: hostGroup,
					}}}
			}
		}
		if len(spec.GroupSpec) == 0 && len(spec.RulesSpec) == 0 {
			return nil
		}
		if err := c.reconfigureCluster(ctx, cl, spec); err != nil {
			return fmt.Errorf("VM group %q: %w", group, err)
		}
		c.log.Info("VM joined VM group", zap.String("vm", vm.Value), zap.String("group", group))
		return nil
	})
}

// joinRule adds vm to the anti-affinity rule of cluster cl named rule
// (drs_rules type separate_vms), making the rule when it is not there.
func (c *CPI) joinRule(ctx context.Context, cl types.ManagedObjectReference, rule string, vm types.ManagedObjectReference) error {
	return c.withLock(ctx, RuleLock, func() error {
		cfg, err := c.clusterConfig(ctx, cl)
		if err != nil {
			return err
		}
		info := &types.ClusterAntiAffinityRuleSpec{
			ClusterRuleInfo: types.ClusterRuleInfo{Name: rule, Enabled: types.NewBool(true)},
			Vm:              []types.ManagedObjectReference{vm},
		}
		op := types.ArrayUpdateOperationAdd
		for _, r := range cfg.Rule {
			if r.GetClusterRuleInfo().Name != rule {
				continue
			}
			existing, ok := r.(*types.ClusterAntiAffinityRuleSpec)
			if !ok {
				return fmt.Errorf("DRS rule %q of the cluster is a %T, not a separate_vms (anti-affinity) rule", rule, r)
			}
			if slices.Contains(existing.Vm, vm) {
				return nil
			}
			op = types.ArrayUpdateOperationEdit
			info.ClusterRuleInfo = existing.ClusterRuleInfo
			info.Vm = append(slices.Clone(existing.Vm), vm)
		}
		spec := &types.ClusterConfigSpecEx{RulesSpec: []types.ClusterRuleSpec{{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: op}, Info: info}}}
		if err := c.reconfigureCluster(ctx, cl, spec); err != nil {
			return fmt.Errorf("DRS rule %q: %w", rule, err)
		}
		c.log.Info("VM joined DRS rule", zap.String("vm", vm.Value), zap.String("rule", rule), zap.Int("vms", len(info.Vm)))
		return nil
	})
}

// leaveCluster takes vm out of the DRS rules (affinity and anti-affinity)
// and VM groups of its cluster before it is destroyed, as vCenter does
// when it destroys a VM: a rule left without VMs goes; a VM group left
// empty goes with the VM/host rules that name it, as the vSphere CPI
// deletes them.
func (c *CPI) leaveCluster(ctx context.Context, vm types.ManagedObjectReference) error {
	var m mo.VirtualMachine
	if err := property.DefaultCollector(c.vs.Vim25()).RetrieveOne(ctx, vm, []string{"resourcePool"}, &m); err != nil {
		return fmt.Errorf("resource pool of %s: %w", vm.Value, err)
	}
	if m.ResourcePool == nil {
		return nil
	}
	var rp mo.ResourcePool
	if err := property.DefaultCollector(c.vs.Vim25()).RetrieveOne(ctx, *m.ResourcePool, []string{"owner"}, &rp); err != nil {
		return fmt.Errorf("cluster of %s: %w", vm.Value, err)
	}
	if rp.Owner.Type != "ClusterComputeResource" {
		return nil
	}
	cl := rp.Owner
	cfg, err := c.clusterConfig(ctx, cl)
	if err != nil {
		return err
	}
	inRule, inGroup := false, false
	for _, r := range cfg.Rule {
		inRule = inRule || slices.Contains(ruleVMs(r), vm)
	}
	for _, g := range cfg.Group {
		if vg, ok := g.(*types.ClusterVmGroup); ok {
			inGroup = inGroup || slices.Contains(vg.Vm, vm)
		}
	}
	var errs []error
	if inRule {
		errs = append(errs, c.withLock(ctx, RuleLock, func() error { return c.leaveRules(ctx, cl, vm) }))
	}
	if inGroup {
		errs = append(errs, c.withLock(ctx, VMGroupLock, func() error { return c.leaveGroups(ctx, cl, vm) }))
	}
	return errors.Join(errs...)
}

func ruleVMs(r types.BaseClusterRuleInfo) []types.ManagedObjectReference {
	switch r := r.(type) {
	case *types.ClusterAntiAffinityRuleSpec:
		return r.Vm
	case *types.ClusterAffinityRuleSpec:
		return r.Vm
	}
	return nil
}

func without(refs []types.ManagedObjectReference, vm types.ManagedObjectReference) []types.ManagedObjectReference {
	return slices.DeleteFunc(slices.Clone(refs), func(r types.ManagedObjectReference) bool { return r == vm })
}

func (c *CPI) leaveRules(ctx context.Context, cl, vm types.ManagedObjectReference) error {
	cfg, err := c.clusterConfig(ctx, cl)
	if err != nil {
		return err
	}
	spec := &types.ClusterConfigSpecEx{}
	for _, r := range cfg.Rule {
		vms := ruleVMs(r)
		if !slices.Contains(vms, vm) {
			continue
		}
		info := r.GetClusterRuleInfo()
		rest := without(vms, vm)
		if len(rest) == 0 {
			spec.RulesSpec = append(spec.RulesSpec, types.ClusterRuleSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationRemove, RemoveKey: info.Key}})
			continue
		}
		var edited types.BaseClusterRuleInfo
		switch r := r.(type) {
		case *types.ClusterAntiAffinityRuleSpec:
			e := *r
			e.Vm = rest
			edited = &e
		case *types.ClusterAffinityRuleSpec:
			e := *r
			e.Vm = rest
			edited = &e
		}
		spec.RulesSpec = append(spec.RulesSpec, types.ClusterRuleSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationEdit}, Info: edited})
	}
	if len(spec.RulesSpec) == 0 {
		return nil
	}
	if err := c.reconfigureCluster(ctx, cl, spec); err != nil {
		return fmt.Errorf("DRS rules of %s: %w", vm.Value, err)
	}
	c.log.Info("VM left DRS rules", zap.String("vm", vm.Value), zap.Int("rules", len(spec.RulesSpec)))
	return nil
}

func (c *CPI) leaveGroups(ctx context.Context, cl, vm types.ManagedObjectReference) error {
	cfg, err := c.clusterConfig(ctx, cl)
	if err != nil {
		return err
	}
	spec := &types.ClusterConfigSpecEx{}
	for _, g := range cfg.Group {
		vg, ok := g.(*types.ClusterVmGroup)
		if !ok || !slices.Contains(vg.Vm, vm) {
			continue
		}
		rest := without(vg.Vm, vm)
		if len(rest) > 0 {
			e := *vg
			e.Vm = rest
			spec.GroupSpec = append(spec.GroupSpec, types.ClusterGroupSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationEdit}, Info: &e})
			continue
		}
		spec.GroupSpec = append(spec.GroupSpec, types.ClusterGroupSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationRemove, RemoveKey: vg.Name},
			Info: &types.ClusterVmGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: vg.Name}}})
		for _, r := range cfg.Rule {
			if hr, ok := r.(*types.ClusterVmHostRuleInfo); ok && hr.VmGroupName == vg.Name {
				spec.RulesSpec = append(spec.RulesSpec, types.ClusterRuleSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationRemove, RemoveKey: hr.Key}})
			}
		}
	}
	if len(spec.GroupSpec) == 0 {
		return nil
	}
	if err := c.reconfigureCluster(ctx, cl, spec); err != nil {
		return fmt.Errorf("VM groups of %s: %w", vm.Value, err)
	}
	c.log.Info("VM left VM groups", zap.String("vm", vm.Value), zap.Int("groups", len(spec.GroupSpec)))
	return nil
}
