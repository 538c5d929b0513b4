package vsphere_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

const defaultIPTimeout = 30 * time.Second

// vmProps reads a VM's configuration straight from the simulator's API.
func vmProps(t *testing.T, c *vsphere.Client, ref types.ManagedObjectReference) mo.VirtualMachine {
	t.Helper()
	var m mo.VirtualMachine
	require.NoError(t, object.NewVirtualMachine(c.Vim25(), ref).Properties(context.Background(), ref,
		[]string{"name", "config", "customValue", "runtime.powerState", "resourcePool", "parent", "guest.ipAddress", "snapshot"}, &m))
	return m
}

func extraConfig(m mo.VirtualMachine) map[string]string {
	out := map[string]string{}
	for _, o := range m.Config.ExtraConfig {
		ov := o.GetOptionValue()
		s, _ := ov.Value.(string)
		out[ov.Key] = s
	}
	return out
}

func TestProvisionVMs(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	ctx := context.Background()
	in := specs("alpha", 5)
	in[0].Disks = []vsphere.Disk{{SizeGB: 20}, {SizeGB: 5}}
	in[0].UserData = []byte("#cloud-config\nhostname: alpha-worker-0\n")
	in[0].NICs = []vsphere.NIC{{Network: simDVPG, IP: "10.0.0.10/24", Gateway: "10.0.0.1", DNS: []string{"10.0.0.2"}}}

	var mu sync.Mutex
	phases := map[string][]vsphere.Phase{}
	res, err := c.ProvisionVMs(ctx, in, vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
		mu.Lock()
		defer mu.Unlock()
		phases[ev.VM] = append(phases[ev.VM], ev.Phase)
		if ev.Phase == vsphere.PhaseCloneStarted {
			assert.Equal(t, "Task", ev.Task.Type, "the clone task is reported before it is waited on")
		}
	}))
	require.NoError(t, err)
	require.Len(t, res, 5)
	for i, r := range res {
		assert.Equal(t, in[i].Name, r.Name)
		assert.True(t, r.Created, r.Name)
		assert.NoError(t, r.Err)
		assert.Equal(t, in[i].ExtraConfig["SET.guest.ipAddress"], r.IP)
		assert.Equal(t, []vsphere.Phase{vsphere.PhaseCloneStarted, vsphere.PhaseCloned, vsphere.PhasePoweredOn, vsphere.PhaseReady}, phases[r.Name])
	}

	t.Run("hardware, placement, guestinfo and ownership are on the VM", func(t *testing.T) {
		m := vmProps(t, c, res[0].Ref)
		assert.Equal(t, int32(2), m.Config.Hardware.NumCPU)
		assert.Equal(t, int32(4096), m.Config.Hardware.MemoryMB)
		assert.Equal(t, types.VirtualMachinePowerStatePoweredOn, m.Runtime.PowerState)

		devices := object.VirtualDeviceList(m.Config.Hardware.Device)
		var sizes []int64
		for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
			sizes = append(sizes, d.(*types.VirtualDisk).CapacityInKB/(1024*1024))
		}
		assert.Subset(t, sizes, []int64{20, 5})
		nics := devices.SelectByType((*types.VirtualEthernetCard)(nil))
		require.Len(t, nics, 1)
		_, onDVPG := nics[0].GetVirtualDevice().Backing.(*types.VirtualEthernetCardDistributedVirtualPortBackingInfo)
		assert.True(t, onDVPG, "the NIC is on the distributed portgroup")

		ec := extraConfig(m)
		assert.Equal(t, "alpha", ec["kubefoundry.cluster"])
		assert.Equal(t, "worker", ec["kubefoundry.group"])
		assert.Equal(t, "0", ec["kubefoundry.index"])
		assert.Equal(t, "base64", ec["guestinfo.metadata.encoding"])
		raw, err := base64.StdEncoding.DecodeString(ec["guestinfo.metadata"])
		require.NoError(t, err)
		var md map[string]any
		require.NoError(t, json.Unmarshal(raw, &md))
		assert.Equal(t, "alpha-worker-0", md["instance-id"])
		assert.Equal(t, "alpha-worker-0", md["local-hostname"])
		eth := md["network"].(map[string]any)["ethernets"].(map[string]any)["nic0"].(map[string]any)
		assert.Equal(t, []any{"10.0.0.10/24"}, eth["addresses"])
		assert.Equal(t, false, eth["dhcp4"])
		user, err := base64.StdEncoding.DecodeString(ec["guestinfo.userdata"])
		require.NoError(t, err)
		assert.Equal(t, string(in[0].UserData), string(user))

		require.NotEmpty(t, m.CustomValue)
		assert.Equal(t, "alpha/worker/0", m.CustomValue[0].(*types.CustomFieldStringValue).Value)

		finder := find.NewFinder(c.Vim25(), true)
		finder.SetDatacenter(c.Datacenter())
		folder, err := finder.Folder(ctx, "/DC0/vm/kubefoundry/alpha")
		require.NoError(t, err)
		assert.Equal(t, folder.Reference(), *m.Parent)
		pool, err := finder.ResourcePool(ctx, "/DC0/host/DC0_C0/Resources/alpha")
		require.NoError(t, err)
		assert.Equal(t, pool.Reference(), *m.ResourcePool)
	})

	t.Run("calling again creates nothing and returns the same VMs", func(t *testing.T) {
		before := c.Stats().ByMethod["CloneVM_Task"]
		again, err := c.ProvisionVMs(ctx, in)
		require.NoError(t, err)
		for i := range again {
			assert.False(t, again[i].Created)
			assert.Equal(t, res[i].Ref, again[i].Ref)
			assert.Equal(t, res[i].IP, again[i].IP)
		}
		assert.Equal(t, before, c.Stats().ByMethod["CloneVM_Task"], "no clone was started")
	})

	t.Run("existing VMs are adopted without looking up what only a clone needs", func(t *testing.T) {
		// The template deleted or renamed since (a stemcell replaced): a
		// call whose VMs all exist still converges.
		gone := slices.Clone(in)
		for i := range gone {
			gone[i].Template = "deleted-stemcell"
		}
		before := c.Stats().ByMethod["CloneVM_Task"]
		again, err := c.ProvisionVMs(ctx, gone)
		require.NoError(t, err)
		for i := range again {
			assert.False(t, again[i].Created)
			assert.Equal(t, res[i].Ref, again[i].Ref)
		}
		assert.Equal(t, before, c.Stats().ByMethod["CloneVM_Task"])
	})

	t.Run("a powered-off VM is powered on again", func(t *testing.T) {
		require.NoError(t, c.PowerOff(ctx, res[1].Ref))
		var got []vsphere.Phase
		again, err := c.ProvisionVMs(ctx, in[1:2], vsphere.WithProgress(func(ev vsphere.ProgressEvent) { got = append(got, ev.Phase) }))
		require.NoError(t, err)
		assert.False(t, again[0].Created)
		assert.Equal(t, types.VirtualMachinePowerStatePoweredOn, vmProps(t, c, res[1].Ref).Runtime.PowerState)
		assert.Equal(t, []vsphere.Phase{vsphere.PhaseExisting, vsphere.PhasePoweredOn, vsphere.PhaseReady}, got)

		// A power-on vCenter refuses is the VM's error, not a success.
		require.NoError(t, c.PowerOff(ctx, res[1].Ref))
		s.refuseOnce("PowerOnVM_Task")
		got = nil
		again, err = c.ProvisionVMs(ctx, in[1:2], vsphere.WithProgress(func(ev vsphere.ProgressEvent) { got = append(got, ev.Phase) }))
		require.Error(t, err)
		assert.True(t, fault.Is(again[0].Err, &types.InvalidState{}), "%v", again[0].Err)
		assert.Equal(t, []vsphere.Phase{vsphere.PhaseExisting, vsphere.PhaseFailed}, got)
		assert.Equal(t, types.VirtualMachinePowerStatePoweredOff, vmProps(t, c, res[1].Ref).Runtime.PowerState)
		_, err = c.ProvisionVMs(ctx, in[1:2])
		require.NoError(t, err, "the next call powers it on")
	})

	// The owner is the whole of cluster, group and index: a VM of the
	// same name that differs in any one of them is another's.
	for _, tc := range []struct {
		name  string
		owner func(*vsphere.Owner)
	}{
		{"another cluster", func(o *vsphere.Owner) { o.Cluster = "beta" }},
		{"another group of the same cluster", func(o *vsphere.Owner) { o.Group = "control" }},
		{"another index of the same group", func(o *vsphere.Owner) { o.Index = 7 }},
	} {
		t.Run("a VM of the same name owned by "+tc.name+" is refused", func(t *testing.T) {
			before := c.Stats().ByMethod["CloneVM_Task"]
			other := in[2]
			tc.owner(&other.Owner)
			out, err := c.ProvisionVMs(ctx, []vsphere.VMSpec{other})
			require.ErrorIs(t, err, vsphere.ErrAlreadyExists)
			assert.ErrorIs(t, out[0].Err, vsphere.ErrAlreadyExists)
			assert.Contains(t, out[0].Err.Error(), "alpha/worker/2")
			assert.False(t, out[0].Created)
			assert.Equal(t, before, c.Stats().ByMethod["CloneVM_Task"], "no clone was started")
		})
	}
}

// TestExtraDisksHaveFilesOfTheirOwn: the extra disks of a clone, full or
// linked, on the template's datastore or another, through ProvisionVMs or
// CreateVM (as the BOSH CPI's ephemeral disk), are each created in a file
// of their own beside the clone's own disk, in the VM's directory, with
// the capacity asked for; so DestroyVMs counts them as the VM's own and
// deletes them with it. vcsim applies a clone's device changes without
// failing the clone when one cannot be applied (a disk whose file exists
// is left out), so only the VM's devices afterwards tell. (vcsim logs
// "FileAlreadyExists .../<vm>.vmdk" for each name it finds taken while it
// picks "<vm>_N.vmdk" for a disk created without a file name: that is its
// search for a free name, not a failure.)
func TestExtraDisksHaveFilesOfTheirOwn(t *testing.T) {
	s := newSim(t, func(m *simulator.Model) { m.Datastore = 2 })
	c := s.client(t)
	ctx := context.Background()
	dc := c.Datacenter()
	vdm := object.NewVirtualDiskManager(c.Vim25())
	const otherDS = "LocalDS_1" // not the template's
	tests := []struct {
		name      string
		linked    bool
		datastore string
		createVM  bool
	}{
		{name: "full clone, template's datastore"},
		{name: "full clone, another datastore", datastore: otherDS},
		{name: "linked clone, template's datastore", linked: true},
		{name: "linked clone, another datastore, CreateVM", linked: true, datastore: otherDS, createVM: true},
	}
	all := specs("xi", len(tests))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := all[i]
			sp.LinkedClone, sp.Datastore = tc.linked, tc.datastore
			sp.Disks = []vsphere.Disk{{SizeGB: 3}, {SizeGB: 7}}
			var ref types.ManagedObjectReference
			if tc.createVM {
				r, err := c.CreateVM(ctx, sp)
				require.NoError(t, err)
				ref = r.Ref
			} else {
				res, err := c.ProvisionVMs(ctx, []vsphere.VMSpec{sp})
				require.NoError(t, err)
				ref = res[0].Ref
			}
			m := vmProps(t, c, ref)
			var vmx object.DatastorePath
			require.True(t, vmx.FromString(m.Config.Files.VmPathName))
			if tc.datastore != "" {
				require.Equal(t, tc.datastore, vmx.Datastore)
			}

			disks := object.VirtualDeviceList(m.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil))
			slices.SortFunc(disks, func(a, b types.BaseVirtualDevice) int {
				return int(*a.GetVirtualDevice().UnitNumber - *b.GetVirtualDevice().UnitNumber)
			})
			require.Len(t, disks, 3, "the clone's own disk and the two extra disks")
			files := map[string]int{}
			var extraGB []int64
			for j, d := range disks {
				file := diskFileName(d)
				if k, dup := files[file]; dup {
					t.Errorf("disks %d and %d share the file %q", k, j, file)
				}
				files[file] = j
				var p object.DatastorePath
				require.True(t, p.FromString(file), "disk %d: %q", j, file)
				assert.Equal(t, vmx.Datastore, p.Datastore, "disk %d (%s) is on the VM's datastore", j, file)
				assert.Equal(t, path.Dir(vmx.Path), path.Dir(p.Path), "disk %d (%s) is in the VM's directory", j, file)
				_, err := vdm.QueryVirtualDiskUuid(ctx, file, dc)
				assert.NoError(t, err, "%s exists", file)
				if j > 0 {
					extraGB = append(extraGB, d.(*types.VirtualDisk).CapacityInKB/(1024*1024))
				}
			}
			assert.Equal(t, []int64{3, 7}, extraGB, "the extra disks, in order, with their sizes")

			out, err := c.DestroyVMs(ctx, []types.ManagedObjectReference{ref})
			require.NoError(t, err)
			assert.Empty(t, out[0].KeptDisks, "the extra disks are the VM's own and go with it")
		})
	}
}

func TestProvisionVMsValidation(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	bad := specs("alpha", 3)
	bad[0].Name = ""
	bad[1].Owner.Cluster = ""
	bad[1].MemoryMB = 1001
	bad[2].NICs = []vsphere.NIC{{Network: "a", IP: "10.0.0.1"}, {Network: "b", IP: "10.0.1.1/24"}}
	bad[2].Disks = []vsphere.Disk{{SizeGB: 0}}
	before := c.Stats().Calls
	res, err := c.ProvisionVMs(context.Background(), bad)
	require.ErrorIs(t, err, vsphere.ErrInvalidSpec)
	assert.Nil(t, res)
	var verr *vsphere.ValidationError
	require.ErrorAs(t, err, &verr)
	var fields []string
	for _, p := range verr.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{
		"specs[0].name", "specs[1].owner.cluster", "specs[1].memoryMB",
		"specs[2].nics[0].ip", "specs[2].nics[0].mac", "specs[2].nics[1].mac", "specs[2].disks[0].sizeGB",
	}, fields)
	assert.Equal(t, before, c.Stats().Calls, "invalid specs make no call")

	t.Run("unknown template is reported per VM with what exists", func(t *testing.T) {
		in := specs("alpha", 2)
		in[1].Template = "no-such-stemcell"
		res, err := c.ProvisionVMs(context.Background(), in)
		require.Error(t, err)
		require.NoError(t, res[0].Err)
		var nf *vsphere.NotFoundError
		require.ErrorAs(t, res[1].Err, &nf)
		assert.Contains(t, nf.Available, simTemplate)
	})
}

// TestProvisionVMsOneCloneFails injects a fault into one CloneVM_Task call
// among many: that VM reports it, the others are provisioned, and nothing
// of the failed one is left behind.
func TestProvisionVMsOneCloneFails(t *testing.T) {
	s := newSim(t)
	// One clone call at a time, so that the 4th is the one refused.
	c := s.client(t, vsphere.WithConcurrency(1))
	s.faultOnce("CloneVM_Task", simulator.FaultTypeInsufficientResourcesFault, 3)
	in := specs("gamma", 8)
	res, err := c.ProvisionVMs(context.Background(), in)
	require.Error(t, err)
	var failed []string
	for _, r := range res {
		if r.Err != nil {
			failed = append(failed, r.Name)
			assert.True(t, fault.Is(r.Err, &types.InsufficientResourcesFault{}), "%v", r.Err)
			var te *vsphere.TaskError
			assert.ErrorAs(t, r.Err, &te)
		} else {
			assert.NotEmpty(t, r.IP)
		}
	}
	require.Len(t, failed, 1)

	vms, err := c.ListVMs(context.Background(), "gamma", "")
	require.NoError(t, err)
	assert.Len(t, vms, 7, "the failed VM left nothing behind")
	for _, vm := range vms {
		assert.NotEqual(t, failed[0], vm.Name)
	}

	// The failed one alone is created on the next call.
	res, err = c.ProvisionVMs(context.Background(), in)
	require.NoError(t, err)
	created := 0
	for _, r := range res {
		if r.Created {
			created++
			assert.Equal(t, failed[0], r.Name)
		}
	}
	assert.Equal(t, 1, created)
}

// TestProvisionVMsTaskError fails the clone task itself (not the call): the
// host is in maintenance mode, so the power-on inside the clone fails after
// the VM exists. The VM is reported with a TaskError, is found by the
// orphan scan, and a later call adopts and powers it on.
func TestProvisionVMsTaskError(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	ctx := context.Background()
	tpl, err := c.FindVM(ctx, simTemplate)
	require.NoError(t, err)
	host, err := tpl.HostSystem(ctx)
	require.NoError(t, err)
	task, err := host.EnterMaintenanceMode(ctx, 0, false, nil)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))

	in := specs("delta", 1)
	res, err := c.ProvisionVMs(ctx, in)
	require.Error(t, err)
	var te *vsphere.TaskError
	require.ErrorAs(t, res[0].Err, &te)
	assert.Equal(t, "Task", te.Ref.Type)
	assert.Contains(t, te.Op, "clone delta-worker-0")
	assert.True(t, fault.Is(res[0].Err, &types.InvalidState{}), "%v", res[0].Err)

	vms, err := c.ListVMs(ctx, "delta", "")
	require.NoError(t, err)
	require.Len(t, vms, 1, "the half-made VM is owned and found")
	assert.Equal(t, types.VirtualMachinePowerStatePoweredOff, vms[0].PowerState)

	task, err = host.ExitMaintenanceMode(ctx, 0)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))
	res, err = c.ProvisionVMs(ctx, in)
	require.NoError(t, err)
	assert.False(t, res[0].Created)
	assert.Equal(t, vms[0].Ref, res[0].Ref)
	assert.NotEmpty(t, res[0].IP)
}

// TestProvisionVMsSessionExpires terminates the client's session on the
// server while clones are running, as an expired vCenter session would. The
// client logs in again and every VM is provisioned.
func TestProvisionVMsSessionExpires(t *testing.T) {
	withTaskDelays(t, map[string]int{"CloneVm": 300, "LockHandoff": 0})
	s := newSim(t)
	c := s.client(t, vsphere.WithConcurrency(3))
	admin := s.client(t)
	ctx := context.Background()

	var once sync.Once
	terminated := make(chan struct{})
	res, err := c.ProvisionVMs(ctx, specs("epsilon", 9), vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
		if ev.Phase != vsphere.PhaseCloneStarted {
			return
		}
		once.Do(func() {
			go func() {
				defer close(terminated)
				terminateOtherSessions(t, admin)
			}()
		})
	}))
	<-terminated
	require.NoError(t, err)
	for _, r := range res {
		assert.NotEmpty(t, r.IP, r.Name)
	}
	assert.GreaterOrEqual(t, c.Stats().Relogins, int64(1))
	vms, err := c.ListVMs(ctx, "epsilon", "")
	require.NoError(t, err)
	assert.Len(t, vms, 9)
}

// terminateOtherSessions ends every session but admin's own.
func terminateOtherSessions(t *testing.T, admin *vsphere.Client) {
	ctx := context.Background()
	var sm mo.SessionManager
	ref := *admin.Vim25().ServiceContent.SessionManager
	require.NoError(t, object.NewCommon(admin.Vim25(), ref).Properties(ctx, ref, []string{"sessionList", "currentSession"}, &sm))
	var keys []string
	for _, s := range sm.SessionList {
		if sm.CurrentSession == nil || s.Key != sm.CurrentSession.Key {
			keys = append(keys, s.Key)
		}
	}
	require.NotEmpty(t, keys)
	_, err := methods.TerminateSession(ctx, admin.Vim25(), &types.TerminateSession{This: ref, SessionId: keys})
	require.NoError(t, err)
}

// TestProvisionVMsDeletedWhileWaiting deletes a VM (from another session)
// while ProvisionVMs waits for its IP: the VM is reported as gone at once
// instead of after the IP timeout, and the other VM is unaffected.
func TestProvisionVMsDeletedWhileWaiting(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	other := s.client(t)
	ctx := context.Background()
	in := specs("mu", 2)
	delete(in[1].ExtraConfig, "SET.guest.ipAddress") // never reports an IP
	in[1].IPTimeout = time.Hour

	var wg sync.WaitGroup
	defer wg.Wait()
	res, err := c.ProvisionVMs(ctx, in, vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
		if ev.VM != in[1].Name || ev.Phase != vsphere.PhaseCloned {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			vms, err := other.ListVMs(ctx, "mu", "")
			if assert.NoError(t, err) {
				for _, vm := range vms {
					if vm.Name == in[1].Name {
						_, err := other.DestroyVMs(ctx, []types.ManagedObjectReference{vm.Ref})
						assert.NoError(t, err)
					}
				}
			}
		}()
	}))
	require.Error(t, err)
	require.NoError(t, res[0].Err)
	assert.ErrorIs(t, res[1].Err, vsphere.ErrNotFound)
}

// TestProvisionVMsInjectedNotAuthenticated makes vcsim answer one clone
// call NotAuthenticated (a FaultInjectionRule) while the session is in fact
// valid: the client finds its session still good, repeats the call, and
// creates each VM exactly once.
func TestProvisionVMsInjectedNotAuthenticated(t *testing.T) {
	s := newSim(t)
	// One clone call at a time, so that the 3rd is the one refused.
	c := s.client(t, vsphere.WithConcurrency(1))
	s.faultOnce("CloneVM_Task", simulator.FaultTypeNotAuthenticated, 2)
	res, err := c.ProvisionVMs(context.Background(), specs("xi", 6))
	require.NoError(t, err)
	for _, r := range res {
		assert.True(t, r.Created)
	}
	assert.Equal(t, int64(1), c.Stats().Relogins)
	assert.Equal(t, int64(7), c.Stats().ByMethod["CloneVM_Task"], "6 clones and the refused call")
	vms, err := c.ListVMs(context.Background(), "xi", "")
	require.NoError(t, err)
	assert.Len(t, vms, 6)
}

// TestProvisionVMsIPWaitHoldsNoSlot: with concurrency 1, a VM whose guest
// is slow to report an IP does not keep the others from being cloned.
func TestProvisionVMsIPWaitHoldsNoSlot(t *testing.T) {
	s := newSim(t)
	c := s.client(t, vsphere.WithConcurrency(1))
	in := specs("omicron", 3)
	delete(in[0].ExtraConfig, "SET.guest.ipAddress")
	in[0].IPTimeout = 2 * time.Second

	var order []string
	res, err := c.ProvisionVMs(context.Background(), in, vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
		if ev.Phase == vsphere.PhaseReady || ev.Phase == vsphere.PhaseFailed {
			order = append(order, ev.VM)
		}
	}))
	require.Error(t, err)
	assert.ErrorIs(t, res[0].Err, vsphere.ErrIPTimeout)
	assert.NotEmpty(t, res[0].Ref.Value, "the VM exists and is reported")
	require.Len(t, order, 3)
	assert.ElementsMatch(t, []string{in[1].Name, in[2].Name}, order[:2], "the others finish first")
	assert.Equal(t, in[0].Name, order[2])
}

// TestProvisionVMsResumesInFlightClones: a run that ends (a crash) while
// its clones run leaves their tasks running in vCenter; the next run, given
// the tasks the first one reported, waits for them instead of cloning the
// VMs a second time. A recorded task vCenter does not know is cloned again.
func TestProvisionVMsResumesInFlightClones(t *testing.T) {
	withTaskDelays(t, map[string]int{"CloneVm": 1500, "LockHandoff": 0})
	s := newSim(t)
	ctx := context.Background()
	sp := specs("iota", 3)

	first := s.client(t)
	crash, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	recorded := map[string]types.ManagedObjectReference{}
	_, err := first.ProvisionVMs(crash, sp, vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
		if ev.Phase != vsphere.PhaseCloneStarted {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		recorded[ev.VM] = ev.Task
		if len(recorded) == len(sp) {
			cancel() // every clone started: the process dies
		}
	}))
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, recorded, len(sp))
	// The third VM's record is lost: that one is cloned again.
	recorded[sp[2].Name] = types.ManagedObjectReference{Type: "Task", Value: "task-lost"}

	second := s.client(t)
	clones := second.Stats().ByMethod["CloneVM_Task"]
	// The second run journals as the first did, into the very map it
	// resumes from (the option copies it: no race).
	phases := map[string][]vsphere.Phase{}
	res, err := second.ProvisionVMs(ctx, sp, vsphere.WithInFlight(recorded), vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
		phases[ev.VM] = append(phases[ev.VM], ev.Phase)
		if ev.Phase == vsphere.PhaseCloneStarted {
			recorded[ev.VM] = ev.Task
		}
	}))
	require.NoError(t, err)
	for _, vm := range []string{sp[0].Name, sp[1].Name} {
		assert.Equal(t, []vsphere.Phase{vsphere.PhaseCloneStarted, vsphere.PhaseCloned, vsphere.PhasePoweredOn, vsphere.PhaseReady}, phases[vm],
			"%s: resumed, not found existing", vm)
	}
	assert.EqualValues(t, 1, second.Stats().ByMethod["CloneVM_Task"]-clones, "only the VM whose task was lost is cloned")
	for i, r := range res {
		// The lost one's second clone finds the name taken by the first
		// run's clone and adopts that VM: it existed already.
		assert.Equal(t, i < 2, r.Created, "%s: made by the clone it resumed", r.Name)
		m := vmProps(t, second, r.Ref)
		assert.Equal(t, sp[i].Name, m.Name)
		assert.Equal(t, types.VirtualMachinePowerStatePoweredOn, m.Runtime.PowerState)
	}
	vms, err := second.ListVMs(ctx, "iota", "")
	require.NoError(t, err)
	assert.Len(t, vms, len(sp), "no VM twice")
}

// TestProvisionVMsInFlightWithoutATask: a journal entry that names no task
// (a VM recorded before its clone started) is nothing to resume: the VM is
// cloned, once, and no task is waited for.
func TestProvisionVMsInFlightWithoutATask(t *testing.T) {
	c := newSim(t).client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sp := specs("kappa", 2)
	journal := map[string]types.ManagedObjectReference{sp[0].Name: {}, sp[1].Name: {Type: "Task"}}
	var mu sync.Mutex
	phases := map[string][]vsphere.Phase{}
	res, err := c.ProvisionVMs(ctx, sp, vsphere.WithInFlight(journal), vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
		mu.Lock()
		defer mu.Unlock()
		phases[ev.VM] = append(phases[ev.VM], ev.Phase)
	}))
	require.NoError(t, err)
	assert.EqualValues(t, 2, c.Stats().ByMethod["CloneVM_Task"])
	for _, r := range res {
		assert.True(t, r.Created, r.Name)
		assert.Equal(t, []vsphere.Phase{vsphere.PhaseCloneStarted, vsphere.PhaseCloned, vsphere.PhasePoweredOn, vsphere.PhaseReady}, phases[r.Name],
			"%s: one clone started, none resumed", r.Name)
	}
}

// TestProvisionVMsSink: the shared progress event carries each VM's steps,
// the clone task's handle before it is waited for, the count of VMs done,
// and the IP.
func TestProvisionVMsSink(t *testing.T) {
	c := newSim(t).client(t)
	var events []kubefoundry.Event
	_, err := c.ProvisionVMs(context.Background(), specs("sink", 2), vsphere.WithSink(kubefoundry.SinkFunc(func(e kubefoundry.Event) {
		events = append(events, e)
	})))
	require.NoError(t, err)
	byVM := map[string][]string{}
	for _, e := range events {
		assert.Equal(t, "provision", e.Op)
		assert.Equal(t, 2, e.Steps)
		byVM[e.Object] = append(byVM[e.Object], e.Phase)
		switch e.Phase {
		case string(vsphere.PhaseCloneStarted):
			assert.Regexp(t, `^task-\d+$`, e.Handle)
		case string(vsphere.PhaseReady):
			assert.Regexp(t, `^10\.0\.0\.\d+$`, e.Message)
		}
	}
	for _, vm := range []string{"sink-worker-0", "sink-worker-1"} {
		assert.Equal(t, []string{"clone-started", "cloned", "powered-on", "ready"}, byVM[vm], vm)
	}
	assert.Equal(t, 2, events[len(events)-1].Step, "the last event counts both VMs done")
}

// TestDestroyVMsResumes: a DestroyVMs that dies while vCenter deletes a
// VM (its ctx ends once the first destroy task is reported) is resumed
// from the journaled task: the next call waits for it and starts no second
// destroy of that VM, and destroys the one not started; the events say
// where each VM is. One VM at a time: vcsim races with itself when it
// destroys VMs at once, which the race detector reports.
func TestDestroyVMsResumes(t *testing.T) {
	withTaskDelays(t, map[string]int{"Destroy": 1500, "LockHandoff": 0})
	c := newSim(t).client(t, vsphere.WithConcurrency(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.ProvisionVMs(ctx, specs("omega", 2))
	require.NoError(t, err)
	refs := []types.ManagedObjectReference{res[0].Ref, res[1].Ref}

	crash, die := context.WithCancel(ctx)
	var mu sync.Mutex
	journal := map[string]types.ManagedObjectReference{}
	var phases []string
	sink := kubefoundry.SinkFunc(func(e kubefoundry.Event) {
		mu.Lock()
		defer mu.Unlock()
		phases = append(phases, e.Object+" "+e.Phase)
		if e.Phase == string(vsphere.PhaseDestroyStarted) {
			journal[e.Object] = types.ManagedObjectReference{Type: "Task", Value: e.Handle}
			die()
		}
	})
	_, err = c.DestroyVMs(crash, refs, vsphere.WithSink(sink))
	require.Error(t, err)
	require.Len(t, journal, 1, "the destroy task is reported before it is waited for")
	assert.Contains(t, phases, "omega-worker-0 powered-off")

	destroys := c.Stats().ByMethod["Destroy_Task"]
	phases = nil
	out, err := c.DestroyVMs(ctx, refs, vsphere.WithInFlight(journal), vsphere.WithSink(sink))
	require.NoError(t, err)
	assert.Equal(t, destroys+1, c.Stats().ByMethod["Destroy_Task"], "the earlier task is waited for; only the VM not started is destroyed now")
	for _, r := range out {
		assert.NoError(t, r.Err)
	}
	assert.Contains(t, phases, "omega-worker-1 destroyed")
	vms, err := c.ListVMs(ctx, "omega", "")
	require.NoError(t, err)
	assert.Empty(t, vms)
}

// TestProvisionVMsPollPace: while every VM's clone is in flight (none
// waits for a slot) the one poll of all pending tasks and VMs keeps its
// normal pace, a read every 100 ms; only while VMs queue for a slot does
// it poll four times as often, to free slots sooner.
func TestProvisionVMsPollPace(t *testing.T) {
	withTaskDelays(t, map[string]int{"CloneVm": 2000, "LockHandoff": 0})
	c := newSim(t).client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := c.Stats().ByMethod["RetrievePropertiesEx"]
	start := time.Now()
	_, err := c.ProvisionVMs(ctx, specs("pace", 2))
	require.NoError(t, err)
	took := time.Since(start)
	reads := c.Stats().ByMethod["RetrievePropertiesEx"] - before
	// About 25 reads find the template, folders, pool and network, and
	// then one poll every 100 ms (polling every 25 ms made about 100
	// reads in all).
	polls := float64(took) / float64(100*time.Millisecond)
	assert.Less(t, float64(reads), 30+1.5*polls, "%d reads in %s", reads, took)
}
