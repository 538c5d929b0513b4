package vsphere

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// VM is a virtual machine as ListVMs reports it.
type VM struct {
	Name       string                         `json:"name"`
	Ref        types.ManagedObjectReference   `json:"ref"`
	Owner      Owner                          `json:"owner"`
	PowerState types.VirtualMachinePowerState `json:"powerState"`
	IP         string                         `json:"ip,omitempty"`
}

// existingVM is what ProvisionVMs needs to know of a VM already there.
type existingVM struct {
	ref      types.ManagedObjectReference
	owner    Owner
	hasOwner bool
	power    types.VirtualMachinePowerState
}

var ownerProps = []string{"name", "config.extraConfig", "runtime.powerState", "guest.ipAddress"}

// ownerOf reads the ownership keys written into extraConfig at creation.
func ownerOf(m *mo.VirtualMachine) (Owner, bool) {
	if m.Config == nil {
		return Owner{}, false
	}
	var o Owner
	var haveCluster, haveIndex bool
	for _, bov := range m.Config.ExtraConfig {
		ov := bov.GetOptionValue()
		v, _ := ov.Value.(string)
		switch ov.Key {
		case keyCluster:
			o.Cluster, haveCluster = v, v != ""
		case keyGroup:
			o.Group = v
		case keyIndex:
			n, err := strconv.Atoi(v)
			o.Index, haveIndex = n, err == nil
		}
	}
	return o, haveCluster && haveIndex
}

// vmsInFolder returns the VMs directly in a folder, by name, in one call.
func (c *Client) vmsInFolder(ctx context.Context, folder types.ManagedObjectReference) (map[string]existingVM, error) {
	req := types.RetrieveProperties{
		This: c.vim.ServiceContent.PropertyCollector,
		SpecSet: []types.PropertyFilterSpec{{
			ObjectSet: []types.ObjectSpec{{
				Obj:       folder,
				Skip:      types.NewBool(true),
				SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{Type: "Folder", Path: "childEntity"}},
			}},
			PropSet: []types.PropertySpec{{Type: "VirtualMachine", PathSet: ownerProps}},
		}},
	}
	res, err := methods.RetrieveProperties(ctx, c.vim, &req)
	if err != nil {
		return nil, fmt.Errorf("list VMs in folder %s: %w", folder.Value, err)
	}
	var vms []mo.VirtualMachine
	if err := mo.LoadObjectContent(res.Returnval, &vms); err != nil {
		return nil, err
	}
	out := make(map[string]existingVM, len(vms))
	for i := range vms {
		o, ok := ownerOf(&vms[i])
		out[vms[i].Name] = existingVM{ref: vms[i].Self, owner: o, hasOwner: ok, power: vms[i].Runtime.PowerState}
	}
	return out, nil
}

// ListVMs returns every VM of the datacenter owned by cluster, sorted by
// instance group, then index, then name: the orphan scan. An empty group
// matches every instance group. Ownership is read from what ProvisionVMs
// recorded at creation (cluster and index both), so VMs whose callers
// crashed or lost their records are found too.
func (c *Client) ListVMs(ctx context.Context, cluster, group string) ([]VM, error) {
	m := view.NewManager(c.vim)
	v, err := m.CreateContainerView(ctx, c.dc.Reference(), []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, fmt.Errorf("list VMs: %w", err)
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var all []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, ownerProps, &all); err != nil {
		return nil, fmt.Errorf("list VMs: %w", err)
	}
	var out []VM
	for i := range all {
		o, ok := ownerOf(&all[i])
		if !ok || o.Cluster != cluster || (group != "" && o.Group != group) {
			continue
		}
		vm := VM{Name: all[i].Name, Ref: all[i].Self, Owner: o, PowerState: all[i].Runtime.PowerState}
		if all[i].Guest != nil {
			vm.IP = all[i].Guest.IpAddress
		}
		out = append(out, vm)
	}
	slices.SortFunc(out, func(a, b VM) int {
		if a.Owner.Group != b.Owner.Group {
			return cmp.Compare(a.Owner.Group, b.Owner.Group)
		}
		if a.Owner.Index != b.Owner.Index {
			return a.Owner.Index - b.Owner.Index
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}

// setOwnerAttribute records the owner in the custom attribute the vSphere
// Client shows.
func (c *Client) setOwnerAttribute(ctx context.Context, vm types.ManagedObjectReference, o Owner) error {
	key, err := c.ownerFieldKey(ctx)
	if err != nil {
		return err
	}
	m, err := object.GetCustomFieldsManager(c.vim)
	if err != nil {
		return err
	}
	if err := m.Set(ctx, vm, key, o.String()); err != nil {
		if isGone(err) {
			return fmt.Errorf("set %s on %s: %w: %w", OwnerAttribute, vm.Value, ErrNotFound, err)
		}
		return fmt.Errorf("set %s on %s: %w", OwnerAttribute, vm.Value, err)
	}
	return nil
}

// ownerFieldKey finds or defines the owner custom attribute, once.
func (c *Client) ownerFieldKey(ctx context.Context) (int32, error) {
	return c.fieldKey(ctx, OwnerAttribute, "VirtualMachine", true)
}

// fieldKey finds the custom attribute name, once, defining it for moType
// ("" for every managed entity) when define is set. Without define, a
// missing attribute is (-1, nil).
func (c *Client) fieldKey(ctx context.Context, name, moType string, define bool) (int32, error) {
	c.fieldMu.Lock()
	defer c.fieldMu.Unlock()
	if k, ok := c.fieldKeys[name]; ok {
		return k, nil
	}
	m, err := object.GetCustomFieldsManager(c.vim)
	if err != nil {
		return 0, err
	}
	key, err := m.FindKey(ctx, name)
	if err != nil {
		if !define {
			if errors.Is(err, object.ErrKeyNameNotFound) {
				return -1, nil
			}
			return 0, fmt.Errorf("custom attribute %s: %w", name, err)
		}
		def, aerr := m.Add(ctx, name, moType, nil, nil)
		switch {
		case aerr == nil:
			key = def.Key
		case fault.Is(aerr, &types.DuplicateName{}):
			if key, err = m.FindKey(ctx, name); err != nil {
				return 0, fmt.Errorf("custom attribute %s: %w", name, err)
			}
		default:
			return 0, fmt.Errorf("define custom attribute %s: %w", name, aerr)
		}
	}
	if c.fieldKeys == nil {
		c.fieldKeys = map[string]int32{}
	}
	c.fieldKeys[name] = key
	return key, nil
}
