package vsphere

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

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
			// No file name, on purpose: with FileOperation create, vCenter
			// makes the file in the VM's own directory under a name no file
			// there has yet (<vm>_1.vmdk, <vm>_2.vmdk beside the clone's
			// <vm>.vmdk, full or linked). A name of ours would need that
			// directory before vCenter has chosen it (it is "<vm>_1" when a
			// "<vm>" is left on the datastore), would fail the clone on a
			// file left by an earlier attempt, and a disk outside the VM's
			// directory is not the VM's own to DestroyVMs. vcsim picks the
			// same names and logs FileAlreadyExists for each name it finds
			// taken on the way: its search, not a failure. The Datastore is
			// informational; vSphere does not configure by it.
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
