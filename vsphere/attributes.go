package vsphere

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// SetExtraConfig sets keys of a VM's extraConfig (an empty value removes
// a key), as a guest reads them through guestinfo: a BOSH agent's
// settings, a changed disk hint. The ownership keys ProvisionVMs writes
// (kubefoundry.*) and the cloud-init guestinfo it builds may not be set
// here (ErrInvalidSpec).
func (c *Client) SetExtraConfig(ctx context.Context, vm types.ManagedObjectReference, kv map[string]string) error {
	verr := &ValidationError{Object: "extraConfig"}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
		if k == "" || strings.HasPrefix(k, ownerKeyPrefix) || strings.HasPrefix(k, "guestinfo.metadata") || strings.HasPrefix(k, "guestinfo.userdata") {
			verr.Add(k, "", "reserved: set by ProvisionVMs")
		}
	}
	if err := verr.Err(); err != nil {
		return err
	}
	slices.Sort(keys)
	opts := make([]types.BaseOptionValue, len(keys))
	for i, k := range keys {
		opts[i] = &types.OptionValue{Key: k, Value: kv[k]}
	}
	task, err := object.NewVirtualMachine(c.vim, vm).Reconfigure(ctx, types.VirtualMachineConfigSpec{ExtraConfig: opts})
	if err == nil {
		_, err = c.wait(ctx, nil, "set extraConfig of "+vm.Value, task.Reference())
	}
	if err != nil {
		if isGone(err) {
			return fmt.Errorf("VM %s: %w: %w", vm.Value, ErrNotFound, err)
		}
		return fmt.Errorf("set extraConfig of %s: %w", vm.Value, err)
	}
	return nil
}

// ExtraConfig reads the keys of a VM's extraConfig that have prefix.
func (c *Client) ExtraConfig(ctx context.Context, vm types.ManagedObjectReference, prefix string) (map[string]string, error) {
	var m mo.VirtualMachine
	if err := c.collector().RetrieveOne(ctx, vm, []string{"config.extraConfig"}, &m); err != nil {
		if isGone(err) {
			return nil, fmt.Errorf("VM %s: %w: %w", vm.Value, ErrNotFound, err)
		}
		return nil, fmt.Errorf("extraConfig of %s: %w", vm.Value, err)
	}
	out := map[string]string{}
	if m.Config != nil {
		for _, b := range m.Config.ExtraConfig {
			ov := b.GetOptionValue()
			if v, ok := ov.Value.(string); ok && strings.HasPrefix(ov.Key, prefix) {
				out[ov.Key] = v
			}
		}
	}
	return out, nil
}

// SetAttributes sets custom attributes (vSphere's custom fields, which the
// vSphere Client shows) on a VM, defining those that do not exist yet:
// BOSH's VM metadata (deployment, job, index...). The owner attribute
// ProvisionVMs keeps may not be set here (ErrInvalidSpec).
func (c *Client) SetAttributes(ctx context.Context, vm types.ManagedObjectReference, attrs map[string]string) error {
	if _, ok := attrs[OwnerAttribute]; ok {
		return &ValidationError{Object: "attributes", Problems: []FieldError{{Field: OwnerAttribute, Reason: "reserved: set by ProvisionVMs"}}}
	}
	m, err := object.GetCustomFieldsManager(c.vim)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		key, err := c.fieldKey(ctx, name, "VirtualMachine", true)
		if err != nil {
			return err
		}
		if err := m.Set(ctx, vm, key, attrs[name]); err != nil {
			if isGone(err) {
				return fmt.Errorf("VM %s: %w: %w", vm.Value, ErrNotFound, err)
			}
			return fmt.Errorf("set attribute %s on %s: %w", name, vm.Value, err)
		}
	}
	return nil
}
