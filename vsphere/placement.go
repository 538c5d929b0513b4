package vsphere

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
)

// EnsureAntiAffinityRule creates or updates a DRS VM-VM anti-affinity rule
// on cluster that keeps vms on separate hosts. It is idempotent: a rule of
// that name already holding exactly vms is left alone.
func (c *Client) EnsureAntiAffinityRule(ctx context.Context, cluster, name string, vms []types.ManagedObjectReference) error {
	if name == "" || len(vms) < 2 {
		return &ValidationError{Problems: []FieldError{{Field: "rule", Reason: "a name and at least two VMs are required"}}}
	}
	cl, cfg, err := c.clusterConfig(ctx, cluster)
	if err != nil {
		return err
	}
	rule := &types.ClusterAntiAffinityRuleSpec{
		ClusterRuleInfo: types.ClusterRuleInfo{Name: name, Enabled: types.NewBool(true)},
		Vm:              sortedRefs(vms),
	}
	op := types.ArrayUpdateOperationAdd
	for _, r := range cfg.Rule {
		if info := r.GetClusterRuleInfo(); info.Name == name {
			existing, ok := r.(*types.ClusterAntiAffinityRuleSpec)
			if !ok {
				return fmt.Errorf("rule %q on %s exists and is a %s, not an anti-affinity rule: %w", name, cluster, typeName(r), ErrAlreadyExists)
			}
			if slices.Equal(sortedRefs(existing.Vm), rule.Vm) && info.Enabled != nil && *info.Enabled {
				return nil
			}
			op = types.ArrayUpdateOperationEdit
			rule.Key = info.Key
		}
	}
	spec := &types.ClusterConfigSpecEx{RulesSpec: []types.ClusterRuleSpec{{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: op}, Info: rule}}}
	if err := c.reconfigureCluster(ctx, cl, spec); err != nil {
		return fmt.Errorf("anti-affinity rule %q on %s: %w", name, cluster, err)
	}
	c.log.Info("anti-affinity rule set", zap.String("cluster", cluster), zap.String("rule", name), zap.Int("vms", len(vms)))
	return nil
}

// VMHostRule places a group of VMs on a group of hosts: an availability
// zone made of hosts within one vSphere cluster.
type VMHostRule struct {
	Name      string                         // the rule
	VMGroup   string                         // created or updated to hold VMs
	VMs       []types.ManagedObjectReference // members of VMGroup
	HostGroup string                         // created or updated to hold Hosts
	Hosts     []string                       // host names or inventory paths
	// Mandatory makes DRS never run the VMs elsewhere ("must run on");
	// otherwise it is "should run on".
	Mandatory bool
}

// EnsureVMHostRule creates or updates a VM group, a host group and the
// rule binding them on cluster. It is idempotent.
func (c *Client) EnsureVMHostRule(ctx context.Context, cluster string, r VMHostRule) error {
	verr := &ValidationError{Object: "spec"}
	if r.Name == "" {
		verr.Add("rule.name", "", "required")
	}
	if r.VMGroup == "" {
		verr.Add("rule.vmGroup", "", "required")
	}
	if r.HostGroup == "" {
		verr.Add("rule.hostGroup", "", "required")
	}
	if len(r.Hosts) == 0 {
		verr.Add("rule.hosts", "", "at least one host is required")
	}
	if err := verr.Err(); err != nil {
		return err
	}
	cl, cfg, err := c.clusterConfig(ctx, cluster)
	if err != nil {
		return err
	}
	hosts := make([]types.ManagedObjectReference, 0, len(r.Hosts))
	for _, h := range r.Hosts {
		host, err := c.finder.HostSystem(ctx, h)
		if err != nil {
			return notFound(ctx, "host", h, cluster, names(c.finder.HostSystemList, "*/*"), err)
		}
		hosts = append(hosts, host.Reference())
	}

	spec := &types.ClusterConfigSpecEx{}
	vmGroup := &types.ClusterVmGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: r.VMGroup}, Vm: sortedRefs(r.VMs)}
	hostGroup := &types.ClusterHostGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: r.HostGroup}, Host: sortedRefs(hosts)}
	vmOp, hostOp := types.ArrayUpdateOperationAdd, types.ArrayUpdateOperationAdd
	vmSame, hostSame := false, false
	for _, g := range cfg.Group {
		switch g := g.(type) {
		case *types.ClusterVmGroup:
			if g.Name == r.VMGroup {
				vmOp, vmSame = types.ArrayUpdateOperationEdit, slices.Equal(sortedRefs(g.Vm), vmGroup.Vm)
			}
		case *types.ClusterHostGroup:
			if g.Name == r.HostGroup {
				hostOp, hostSame = types.ArrayUpdateOperationEdit, slices.Equal(sortedRefs(g.Host), hostGroup.Host)
			}
		}
	}
	if !vmSame {
		spec.GroupSpec = append(spec.GroupSpec, types.ClusterGroupSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: vmOp}, Info: vmGroup})
	}
	if !hostSame {
		spec.GroupSpec = append(spec.GroupSpec, types.ClusterGroupSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: hostOp}, Info: hostGroup})
	}

	rule := &types.ClusterVmHostRuleInfo{
		ClusterRuleInfo:     types.ClusterRuleInfo{Name: r.Name, Enabled: types.NewBool(true), Mandatory: types.NewBool(r.Mandatory)},
		VmGroupName:         r.VMGroup,
		AffineHostGroupName: r.HostGroup,
	}
	ruleOp, ruleSame := types.ArrayUpdateOperationAdd, false
	for _, existing := range cfg.Rule {
		if info := existing.GetClusterRuleInfo(); info.Name == r.Name {
			e, ok := existing.(*types.ClusterVmHostRuleInfo)
			if !ok {
				return fmt.Errorf("rule %q on %s exists and is a %s, not a VM/host rule: %w", r.Name, cluster, typeName(existing), ErrAlreadyExists)
			}
			ruleOp, rule.Key = types.ArrayUpdateOperationEdit, info.Key
			ruleSame = e.VmGroupName == r.VMGroup && e.AffineHostGroupName == r.HostGroup &&
				info.Mandatory != nil && *info.Mandatory == r.Mandatory && info.Enabled != nil && *info.Enabled
		}
	}
	if !ruleSame {
		spec.RulesSpec = append(spec.RulesSpec, types.ClusterRuleSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: ruleOp}, Info: rule})
	}
	if len(spec.GroupSpec) == 0 && len(spec.RulesSpec) == 0 {
		return nil
	}
	if err := c.reconfigureCluster(ctx, cl, spec); err != nil {
		return fmt.Errorf("VM/host rule %q on %s: %w", r.Name, cluster, err)
	}
	c.log.Info("VM/host rule set", zap.String("cluster", cluster), zap.String("rule", r.Name))
	return nil
}

// Rules returns the DRS rules of a cluster.
func (c *Client) Rules(ctx context.Context, cluster string) ([]types.BaseClusterRuleInfo, error) {
	_, cfg, err := c.clusterConfig(ctx, cluster)
	if err != nil {
		return nil, err
	}
	return cfg.Rule, nil
}

func (c *Client) clusterConfig(ctx context.Context, cluster string) (types.ManagedObjectReference, *types.ClusterConfigInfoEx, error) {
	cl, err := c.FindCluster(ctx, cluster)
	if err != nil {
		return types.ManagedObjectReference{}, nil, err
	}
	var m mo.ClusterComputeResource
	if err := c.collector().RetrieveOne(ctx, cl.Reference(), []string{"configurationEx"}, &m); err != nil {
		return types.ManagedObjectReference{}, nil, fmt.Errorf("configuration of %s: %w", cluster, err)
	}
	cfg, ok := m.ConfigurationEx.(*types.ClusterConfigInfoEx)
	if !ok {
		return types.ManagedObjectReference{}, nil, fmt.Errorf("configuration of %s: unexpected %T", cluster, m.ConfigurationEx)
	}
	return cl.Reference(), cfg, nil
}

func (c *Client) reconfigureCluster(ctx context.Context, cl types.ManagedObjectReference, spec *types.ClusterConfigSpecEx) error {
	res, err := methods.ReconfigureComputeResource_Task(ctx, c.vim, &types.ReconfigureComputeResource_Task{This: cl, Spec: spec, Modify: true})
	if err != nil {
		return err
	}
	_, err = c.wait(ctx, nil, "reconfigure cluster", res.Returnval)
	return err
}

func sortedRefs(refs []types.ManagedObjectReference) []types.ManagedObjectReference {
	out := slices.Clone(refs)
	slices.SortFunc(out, func(a, b types.ManagedObjectReference) int {
		if a.Type != b.Type {
			return cmp.Compare(a.Type, b.Type)
		}
		return cmp.Compare(a.Value, b.Value)
	})
	return slices.Compact(out)
}
