package vspherecpi_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

// env is a CPI on vcsim with two clusters (DC0_C0, DC0_C1) and two
// datastores (LocalDS_0, LocalDS_1) mounted everywhere, and a stemcell.
type env struct {
	c   *vspherecpi.CPI
	vs  *vsphere.Client
	sim *vspheretest.Sim
	sc  string
}

func newEnv(t *testing.T, created func(*simulator.Model), opts ...vspherecpi.Option) *env {
	t.Helper()
	simOpts := []vspheretest.Option{vspheretest.WithModel(func(m *simulator.Model) { m.Cluster, m.Datastore = 2, 2 })}
	if created != nil {
		simOpts = append(simOpts, vspheretest.WithCreated(created))
	}
	sim := vspheretest.Start(t, simOpts...)
	ctx := context.Background()
	// vcsim races with itself on concurrent destroys.
	vs, err := vsphere.New(ctx, sim.Config, vsphere.WithLogger(zaptest.NewLogger(t)), vsphere.WithConcurrency(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = vs.Close(context.Background()) })
	vols, err := csi.New(ctx, vs.Vim25())
	require.NoError(t, err)
	c, err := vspherecpi.New(vs, vols, vspherecpi.Config{ClusterID: "bosh-1", VMFolder: "bosh/vms", StemcellFolder: "bosh/stemcells",
		Cluster: "DC0_C0", Datastore: "LocalDS_0", Agent: vspherecpi.AgentConfig{MBus: "nats://nats:secret@10.0.0.4:4222"}},
		append([]vspherecpi.Option{vspherecpi.WithLogger(zaptest.NewLogger(t))}, opts...)...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	sc, err := c.CreateStemcell(ctx, image(t), nil)
	require.NoError(t, err)
	return &env{c: c, vs: vs, sim: sim, sc: sc}
}

var ipSeq int32

func nets() cpi.Networks {
	n := int(ipSeq%200) + 10
	ipSeq++
	return cpi.Networks{"default": {Type: "manual", IP: fmt.Sprintf("10.0.0.%d", n), Netmask: "255.255.255.0", Gateway: "10.0.0.1",
		Default: []string{"dns", "gateway"}, CloudProperties: cpi.CloudProps{"name": "VM Network"}}}
}

func (e *env) create(t *testing.T, ctx context.Context, props cpi.CloudProps) (string, types.ManagedObjectReference) {
	t.Helper()
	cid, _, err := e.c.CreateVM(ctx, "agent", e.sc, props, nets(), nil, nil)
	require.NoError(t, err)
	return cid, e.ref(t, ctx, cid)
}

func (e *env) ref(t *testing.T, ctx context.Context, cid string) types.ManagedObjectReference {
	t.Helper()
	vm, err := e.vs.FindVM(ctx, "/DC0/vm/bosh/vms/"+cid)
	require.NoError(t, err)
	return vm.Reference()
}

func (e *env) clusterConfig(t *testing.T, ctx context.Context, cluster string) *types.ClusterConfigInfoEx {
	t.Helper()
	cl, err := e.vs.FindCluster(ctx, cluster)
	require.NoError(t, err)
	var m mo.ClusterComputeResource
	require.NoError(t, property.DefaultCollector(e.vs.Vim25()).RetrieveOne(ctx, cl.Reference(), []string{"configurationEx"}, &m))
	return m.ConfigurationEx.(*types.ClusterConfigInfoEx)
}

func (e *env) rule(t *testing.T, ctx context.Context, cluster, name string) types.BaseClusterRuleInfo {
	t.Helper()
	for _, r := range e.clusterConfig(t, ctx, cluster).Rule {
		if r.GetClusterRuleInfo().Name == name {
			return r
		}
	}
	return nil
}

func (e *env) vmGroup(t *testing.T, ctx context.Context, cluster, name string) *types.ClusterVmGroup {
	t.Helper()
	for _, g := range e.clusterConfig(t, ctx, cluster).Group {
		if vg, ok := g.(*types.ClusterVmGroup); ok && vg.Name == name {
			return vg
		}
	}
	return nil
}

// placedIn reads the cluster and datastores a VM is on.
func (e *env) placedIn(t *testing.T, ctx context.Context, vm types.ManagedObjectReference) (cluster string, datastores []string) {
	t.Helper()
	pc := property.DefaultCollector(e.vs.Vim25())
	var m mo.VirtualMachine
	require.NoError(t, pc.RetrieveOne(ctx, vm, []string{"resourcePool", "datastore"}, &m))
	var rp mo.ResourcePool
	require.NoError(t, pc.RetrieveOne(ctx, *m.ResourcePool, []string{"owner"}, &rp))
	var cl mo.ManagedEntity
	require.NoError(t, pc.RetrieveOne(ctx, rp.Owner, []string{"name"}, &cl))
	for _, ds := range m.Datastore {
		var d mo.Datastore
		require.NoError(t, pc.RetrieveOne(ctx, ds, []string{"name"}, &d))
		datastores = append(datastores, d.Name)
	}
	slices.Sort(datastores)
	return cl.Name, datastores
}

func separate(rule string) cpi.CloudProps {
	return cpi.CloudProps{"datacenters": []any{map[string]any{"name": "DC0", "clusters": []any{
		map[string]any{"DC0_C0": map[string]any{"drs_rules": []any{map[string]any{"name": rule, "type": "separate_vms"}}}}}}}}
}

// TestDRSRules: VMs that ask for the same separate_vms rule share one
// anti-affinity rule, made by the first; deleting them takes them out of
// it, and the rule goes with the last.
func TestDRSRules(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	a, refA := e.create(t, ctx, separate("etcd"))
	r, ok := e.rule(t, ctx, "DC0_C0", "etcd").(*types.ClusterAntiAffinityRuleSpec)
	require.True(t, ok, "the first VM makes an anti-affinity rule")
	assert.Equal(t, []types.ManagedObjectReference{refA}, r.Vm)
	assert.True(t, *r.Enabled)

	b, refB := e.create(t, ctx, separate("etcd"))
	_, refC := e.create(t, ctx, separate("other"))
	r = e.rule(t, ctx, "DC0_C0", "etcd").(*types.ClusterAntiAffinityRuleSpec)
	assert.ElementsMatch(t, []types.ManagedObjectReference{refA, refB}, r.Vm, "the next VM is added to the same rule")
	assert.Equal(t, []types.ManagedObjectReference{refC}, e.rule(t, ctx, "DC0_C0", "other").(*types.ClusterAntiAffinityRuleSpec).Vm)

	require.NoError(t, e.c.DeleteVM(ctx, a))
	r = e.rule(t, ctx, "DC0_C0", "etcd").(*types.ClusterAntiAffinityRuleSpec)
	assert.Equal(t, []types.ManagedObjectReference{refB}, r.Vm, "a deleted VM leaves the rule")
	require.NoError(t, e.c.DeleteVM(ctx, b))
	assert.Nil(t, e.rule(t, ctx, "DC0_C0", "etcd"), "the rule goes with its last VM")
	assert.NotNil(t, e.rule(t, ctx, "DC0_C0", "other"), "other rules stay")
}

// TestDRSRulesConcurrent: CPIs in separate processes (here, separate CPI
// values, each with its own in-process lock) adding VMs to one rule at
// once lose none of them, as the DRS lock on vCenter serialises them.
func TestDRSRulesConcurrent(t *testing.T) {
	if raceDetector {
		// vcsim's AddCustomFieldDef writes the availableField of every VM,
		// unguarded against a clone that is configuring a new one.
		t.Skip("vcsim races with itself when a custom attribute is defined during a clone")
	}
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	other, err := vspherecpi.New(e.vs, nil, vspherecpi.Config{ClusterID: "bosh-1", VMFolder: "bosh/vms", StemcellFolder: "bosh/stemcells",
		Cluster: "DC0_C0", Datastore: "LocalDS_0"})
	require.NoError(t, err)
	var wg sync.WaitGroup
	cids := make([]string, 6)
	errs := make([]error, 6)
	for i := range cids {
		c := e.c
		if i%2 == 1 {
			c = other
		}
		n := nets()
		wg.Go(func() { cids[i], _, errs[i] = c.CreateVM(ctx, "agent", e.sc, separate("web"), n, nil, nil) })
	}
	wg.Wait()
	var want []types.ManagedObjectReference
	for i := range cids {
		require.NoError(t, errs[i])
		want = append(want, e.ref(t, ctx, cids[i]))
	}
	assert.ElementsMatch(t, want, e.rule(t, ctx, "DC0_C0", "web").(*types.ClusterAntiAffinityRuleSpec).Vm)
}

// TestDRSLock: a DRS lock held elsewhere (the custom attribute drs_lock,
// as a vSphere CPI holds it) holds a VM's rule change back until it is
// released.
func TestDRSLock(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := object.NewCustomFieldsManager(e.vs.Vim25())
	held, err := m.Add(ctx, vspherecpi.RuleLock, "VirtualMachine", nil, nil)
	require.NoError(t, err)

	done := make(chan error, 1)
	var cid string
	go func() {
		var err error
		cid, _, err = e.c.CreateVM(ctx, "agent", e.sc, separate("held"), nets(), nil, nil)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("CreateVM finished while the DRS lock was held elsewhere: %v", err)
	case <-time.After(time.Second):
	}
	assert.Nil(t, e.rule(t, ctx, "DC0_C0", "held"), "no rule change under another's lock")
	require.NoError(t, m.Remove(ctx, held.Key))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("CreateVM did not finish after the lock was released")
	}
	assert.Equal(t, []types.ManagedObjectReference{e.ref(t, ctx, cid)}, e.rule(t, ctx, "DC0_C0", "held").(*types.ClusterAntiAffinityRuleSpec).Vm)
	_, err = m.FindKey(ctx, vspherecpi.RuleLock)
	assert.ErrorIs(t, err, object.ErrKeyNameNotFound, "the CPI released the lock it took")

	// A lock that stays held is an error naming it once ctx ends.
	_, err = m.Add(ctx, vspherecpi.RuleLock, "VirtualMachine", nil, nil)
	require.NoError(t, err)
	short, cancelShort := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancelShort()
	_, _, err = e.c.CreateVM(short, "agent", e.sc, separate("held"), nets(), nil, nil)
	var ce *cpi.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.VMCreationFailed, ce.Type)
	assert.Contains(t, ce.Message, `DRS lock "drs_lock"`)
}

// TestVMGroup: vm_group adds the VM to a VM group of its cluster, made
// when missing, keeping the members it has; deleting the VM takes it out,
// and a group it leaves empty goes. host_group puts the VM in the vSphere
// CPI's VM group for that host group, bound to it by a VM/host rule.
func TestVMGroup(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	outside, err := e.vs.FindVM(ctx, "DC0_C0_RP0_VM0")
	require.NoError(t, err)
	hosts, err := object.NewClusterComputeResource(e.vs.Vim25(), mustCluster(t, ctx, e.vs, "DC0_C0")).Hosts(ctx)
	require.NoError(t, err)
	cl := mustCluster(t, ctx, e.vs, "DC0_C0")
	task, err := object.NewClusterComputeResource(e.vs.Vim25(), cl).Reconfigure(ctx, &types.ClusterConfigSpecEx{GroupSpec: []types.ClusterGroupSpec{
		{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd},
			Info: &types.ClusterVmGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: "kept"}, Vm: []types.ManagedObjectReference{outside.Reference()}}},
		{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd},
			Info: &types.ClusterHostGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: "gpu-hosts"}, Host: []types.ManagedObjectReference{hosts[0].Reference()}}},
	}}, true)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))

	a, refA := e.create(t, ctx, cpi.CloudProps{"vm_group": "kept"})
	b, refB := e.create(t, ctx, cpi.CloudProps{"vm_group": "kept"})
	assert.ElementsMatch(t, []types.ManagedObjectReference{outside.Reference(), refA, refB}, e.vmGroup(t, ctx, "DC0_C0", "kept").Vm,
		"members are added, not replaced")
	c, refC := e.create(t, ctx, cpi.CloudProps{"vm_group": "made"})
	assert.Equal(t, []types.ManagedObjectReference{refC}, e.vmGroup(t, ctx, "DC0_C0", "made").Vm, "a missing group is made")

	hg := cpi.CloudProps{"datacenters": []any{map[string]any{"name": "DC0", "clusters": []any{
		map[string]any{"DC0_C0": map[string]any{"host_group": map[string]any{"name": "gpu-hosts", "drs_rule": "must"}}}}}}}
	d, refD := e.create(t, ctx, hg)
	assert.Equal(t, []types.ManagedObjectReference{refD}, e.vmGroup(t, ctx, "DC0_C0", "gpu-hostsMUST_vm_group").Vm)
	rule, ok := e.rule(t, ctx, "DC0_C0", "gpu-hostsMUST_vm_group_rule").(*types.ClusterVmHostRuleInfo)
	require.True(t, ok, "a VM/host rule binds the VM group to the host group")
	assert.Equal(t, "gpu-hosts", rule.AffineHostGroupName)
	assert.True(t, *rule.Mandatory, "MUST (in any case) is mandatory")

	require.NoError(t, e.c.DeleteVM(ctx, a))
	assert.ElementsMatch(t, []types.ManagedObjectReference{outside.Reference(), refB}, e.vmGroup(t, ctx, "DC0_C0", "kept").Vm)
	require.NoError(t, e.c.DeleteVM(ctx, b))
	assert.Equal(t, []types.ManagedObjectReference{outside.Reference()}, e.vmGroup(t, ctx, "DC0_C0", "kept").Vm, "a group with other members stays")
	require.NoError(t, e.c.DeleteVM(ctx, c))
	assert.Nil(t, e.vmGroup(t, ctx, "DC0_C0", "made"), "a group left empty goes")
	require.NoError(t, e.c.DeleteVM(ctx, d))
	assert.Nil(t, e.vmGroup(t, ctx, "DC0_C0", "gpu-hostsMUST_vm_group"))
	assert.Nil(t, e.rule(t, ctx, "DC0_C0", "gpu-hostsMUST_vm_group_rule"), "the VM/host rule goes with its empty group")
	assert.NotNil(t, e.clusterConfig(t, ctx, "DC0_C0").Group, "the host group stays")
}

func mustCluster(t *testing.T, ctx context.Context, vs *vsphere.Client, name string) types.ManagedObjectReference {
	t.Helper()
	cl, err := vs.FindCluster(ctx, name)
	require.NoError(t, err)
	return cl.Reference()
}

// setDatastores gives the datastores their free space (GB), and takes
// LocalDS_1 away from cluster DC0_C0 when only is set.
func setDatastores(free map[string]int64, notOnC0 ...string) func(*simulator.Model) {
	return func(m *simulator.Model) {
		for _, o := range m.Map().All("Datastore") {
			ds := o.(*simulator.Datastore)
			if gb, ok := free[ds.Name]; ok {
				ds.Summary.FreeSpace = gb << 30
				ds.Info.GetDatastoreInfo().FreeSpace = gb << 30
			}
		}
		for _, o := range m.Map().All("ClusterComputeResource") {
			cl := o.(*simulator.ClusterComputeResource)
			if cl.Name != "DC0_C0" {
				continue
			}
			cl.Datastore = slices.DeleteFunc(cl.Datastore, func(r types.ManagedObjectReference) bool {
				return slices.Contains(notOnC0, m.Map().Get(r).(*simulator.Datastore).Name)
			})
		}
	}
}

// TestDatastores: the ephemeral datastore is the one with the most free
// space among those datastores names (or /patterns/ match) that have room
// for the disk and 1 GB more.
func TestDatastores(t *testing.T) {
	e := newEnv(t, setDatastores(map[string]int64{"LocalDS_0": 10, "LocalDS_1": 40}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name       string
		datastores []any
		diskMB     int
		want       string
	}{
		{"most free of the names", []any{"LocalDS_0", "LocalDS_1"}, 1024, "LocalDS_1"},
		{"most free of a pattern", []any{"/^LocalDS_[0-9]$/"}, 1024, "LocalDS_1"},
		{"the only one named", []any{"LocalDS_0"}, 1024, "LocalDS_0"},
		{"the one with room", []any{"LocalDS_0", "LocalDS_1"}, 15000, "LocalDS_1"},
		{"the CPI's without datastores", nil, 1024, "LocalDS_0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := cpi.CloudProps{"disk": tc.diskMB}
			if tc.datastores != nil {
				props["datastores"] = tc.datastores
			}
			_, ref := e.create(t, ctx, props)
			_, ds := e.placedIn(t, ctx, ref)
			assert.Equal(t, []string{tc.want}, ds)
		})
	}

	// A disk that fits, but not with the 1 GB the CPI keeps free.
	ds, err := e.vs.FindDatastore(ctx, "LocalDS_0")
	require.NoError(t, err)
	var m mo.Datastore
	require.NoError(t, property.DefaultCollector(e.vs.Vim25()).RetrieveOne(ctx, ds.Reference(), []string{"summary"}, &m))
	freeMB := m.Summary.FreeSpace >> 20
	_, _, err = e.c.CreateVM(ctx, "agent", e.sc, cpi.CloudProps{"disk": freeMB - 512, "datastores": []any{"LocalDS_0"}}, nets(), nil, nil)
	var ce *cpi.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.VMCreationFailed, ce.Type)
	assert.Contains(t, ce.Message, fmt.Sprintf("LocalDS_0 (%d MB free)", freeMB), "no room, and it says how much there is")
}

// TestClusters: the VM goes to a cluster datacenters lists, with its
// resource pool; among several, to one with a datastore asked for.
func TestClusters(t *testing.T) {
	e := newEnv(t, setDatastores(nil, "LocalDS_1"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := e.vs.EnsureResourcePool(ctx, "DC0_C1", "team-a")
	require.NoError(t, err)
	in := func(clusters ...any) cpi.CloudProps {
		return cpi.CloudProps{"datacenters": []any{map[string]any{"name": "DC0", "clusters": clusters}}}
	}

	_, ref := e.create(t, ctx, in(map[string]any{"DC0_C1": map[string]any{"resource_pool": "team-a"}}))
	cl, _ := e.placedIn(t, ctx, ref)
	assert.Equal(t, "DC0_C1", cl)
	var m mo.VirtualMachine
	require.NoError(t, property.DefaultCollector(e.vs.Vim25()).RetrieveOne(ctx, ref, []string{"resourcePool"}, &m))
	var rp mo.ResourcePool
	require.NoError(t, property.DefaultCollector(e.vs.Vim25()).RetrieveOne(ctx, *m.ResourcePool, []string{"name"}, &rp))
	assert.Equal(t, "team-a", rp.Name)

	props := in(map[string]any{"DC0_C0": nil}, map[string]any{"DC0_C1": nil})
	props["datastores"] = []any{"LocalDS_1"}
	_, ref = e.create(t, ctx, props)
	cl, ds := e.placedIn(t, ctx, ref)
	assert.Equal(t, "DC0_C1", cl, "LocalDS_1 is accessible from DC0_C1 only")
	assert.Equal(t, []string{"LocalDS_1"}, ds)

	props = in(map[string]any{"DC0_C1": map[string]any{"drs_rules": []any{map[string]any{"name": "c1", "type": "separate_vms"}}}})
	_, ref = e.create(t, ctx, props)
	assert.Equal(t, []types.ManagedObjectReference{ref}, e.rule(t, ctx, "DC0_C1", "c1").(*types.ClusterAntiAffinityRuleSpec).Vm,
		"the rule is on the VM's cluster")
	assert.Nil(t, e.rule(t, ctx, "DC0_C0", "c1"))
}

// TestInvalidCloudProperties: bad cloud_properties, and clusters, resource
// pools, host groups or datastores that are not there, are one CloudError
// naming every field at fault, and nothing is made.
func TestInvalidCloudProperties(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name  string
		props cpi.CloudProps
		want  []string // fields named
	}{
		{"syntax", cpi.CloudProps{
			"cpu": "two", "ram": 1023, "disk": -1, "datastores": "LocalDS_0", "vm_group": 7,
			"datacenters": []any{map[string]any{"name": "DC0", "clusters": []any{
				map[string]any{"DC0_C0": map[string]any{"resource_pool": 3,
					"drs_rules": []any{map[string]any{"name": "r", "type": "together"}}}}}}},
			"nsxt": map[string]any{"ns_groups": []any{""}, "lb": map[string]any{"server_pools": []any{map[string]any{"port": 70000}}}},
		}, []string{"cpu", "ram", "disk", "datastores", "vm_group", "datacenters[0].clusters[0].DC0_C0.resource_pool",
			"datacenters[0].clusters[0].DC0_C0.drs_rules[0].type", "nsxt.ns_groups[0]", "nsxt.lb.server_pools[0].name",
			"nsxt.lb.server_pools[0].port"}},
		{"two rules, no name, no type", cpi.CloudProps{"datacenters": []any{map[string]any{"name": "DC0", "clusters": []any{
			map[string]any{"DC0_C0": map[string]any{"drs_rules": []any{map[string]any{}, map[string]any{"name": "b", "type": "separate_vms"}}}}}}}},
			[]string{"datacenters[0].clusters[0].DC0_C0.drs_rules", "drs_rules[0].name", "drs_rules[0].type"}},
		{"inventory", cpi.CloudProps{"ram": 1024, "datastores": []any{"LocalDS_9", "/[/"},
			"datacenters": []any{map[string]any{"name": "DC9", "clusters": []any{
				map[string]any{"NoSuchCluster": nil},
				map[string]any{"DC0_C1": map[string]any{"resource_pool": "no-such-pool"}},
				map[string]any{"DC0_C0": map[string]any{"host_group": "no-such-hosts"}},
			}}}}, []string{"datacenters[0].name", `datacenters[0].clusters[0] "NoSuchCluster"`,
			`datacenters[0].clusters[1].DC0_C1.resource_pool "no-such-pool"`, `datacenters[0].clusters[2].DC0_C0.host_group "no-such-hosts"`,
			`datastores[1] "/[/"`}},
		{"datastore not there", cpi.CloudProps{"datastores": []any{"LocalDS_9", "/^nfs-/"}}, []string{`datastores "LocalDS_9, /^nfs-/"`, "LocalDS_0, LocalDS_1"}},
		{"more than one datacenter", cpi.CloudProps{"datacenters": []any{map[string]any{"name": "DC0", "clusters": []any{map[string]any{"DC0_C0": nil}}},
			map[string]any{"name": "DC1", "clusters": []any{}}}}, []string{"datacenters:"}},
		{"nsxt without NSX-T", cpi.CloudProps{"nsxt": map[string]any{"ns_groups": []any{"web"}}}, []string{"nsxt:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.c.CreateVM(ctx, "agent", e.sc, tc.props, nets(), nil, nil)
			var ce *cpi.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, cpi.CloudError, ce.Type)
			assert.False(t, ce.OKToRetry)
			assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
			var ve *kubefoundry.ValidationError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, ve.Error(), ce.Message)
			for _, f := range tc.want {
				assert.Contains(t, ce.Message, f)
			}
		})
	}
	vms, err := e.vs.ListVMs(ctx, "bosh-1", "")
	require.NoError(t, err)
	assert.Empty(t, vms, "nothing is made of invalid cloud_properties")
}

// recordingNSXT is an NSXT that keeps memberships in memory, refusing
// groups it does not have: package nsxt has no such calls yet (see
// vspherecpi.NSXT), so this stands in for it on the NSX side of the test.
type recordingNSXT struct {
	mu      sync.Mutex
	groups  map[string][]string // group name -> VM names
	members map[string][]string // pool -> "ip:port"
	calls   []string
}

func (n *recordingNSXT) AddVMToGroups(_ context.Context, vm string, groups []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, "add-groups "+vm)
	for _, g := range groups {
		if _, ok := n.groups[g]; !ok {
			return fmt.Errorf("group %q: %w", g, kubefoundry.ErrNotFound)
		}
	}
	for _, g := range groups {
		n.groups[g] = append(n.groups[g], vm)
	}
	return nil
}

func (n *recordingNSXT) RemoveVMFromGroups(_ context.Context, vm string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, "remove-groups "+vm)
	for g, vms := range n.groups {
		n.groups[g] = slices.DeleteFunc(vms, func(v string) bool { return v == vm })
	}
	return nil
}

func (n *recordingNSXT) AddToServerPools(_ context.Context, vm, ip string, pools []vspherecpi.ServerPool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, "add-pools "+vm)
	for _, p := range pools {
		n.members[p.Name] = append(n.members[p.Name], fmt.Sprintf("%s:%d", ip, p.Port))
	}
	return nil
}

func (n *recordingNSXT) RemoveFromServerPools(_ context.Context, ip string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, "remove-pools "+ip)
	for p, ms := range n.members {
		n.members[p] = slices.DeleteFunc(ms, func(m string) bool { return strings.HasPrefix(m, ip+":") })
	}
	return nil
}

// TestNSXT: nsxt.ns_groups and nsxt.lb.server_pools reach NSX-T with the
// VM's name and static address, and are undone on delete; a VM whose
// groups NSX-T refuses is not left, nor its DRS rule.
func TestNSXT(t *testing.T) {
	n := &recordingNSXT{groups: map[string][]string{"web": nil, "dmz": nil}, members: map[string][]string{}}
	e := newEnv(t, nil, vspherecpi.WithNSXT(n))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	props := cpi.CloudProps{"nsxt": map[string]any{"ns_groups": []any{"web", "dmz", "web"}, "vif_type": "PARENT",
		"lb": map[string]any{"server_pools": []any{map[string]any{"name": "https", "port": 443}, map[string]any{"name": "any"}}}}}
	nw := nets()
	cid, _, err := e.c.CreateVM(ctx, "agent", e.sc, props, nw, nil, nil)
	require.NoError(t, err)
	ip := nw["default"].IP
	assert.Equal(t, map[string][]string{"web": {cid}, "dmz": {cid}}, n.groups, "each group once")
	assert.Equal(t, map[string][]string{"https": {ip + ":443"}, "any": {ip + ":0"}}, n.members)

	require.NoError(t, e.c.DeleteVM(ctx, cid))
	assert.Equal(t, map[string][]string{"web": {}, "dmz": {}}, n.groups)
	assert.Equal(t, map[string][]string{"https": {}, "any": {}}, n.members)

	bad := separate("nsx")
	bad["nsxt"] = map[string]any{"ns_groups": []any{"web", "no-such-group"}}
	_, _, err = e.c.CreateVM(ctx, "agent", e.sc, bad, nets(), nil, nil)
	var ce *cpi.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.VMCreationFailed, ce.Type)
	assert.Contains(t, ce.Message, "no-such-group")
	vms, err := e.vs.ListVMs(ctx, "bosh-1", "")
	require.NoError(t, err)
	assert.Empty(t, vms, "the VM NSX-T refused is deleted")
	assert.Nil(t, e.rule(t, ctx, "DC0_C0", "nsx"), "and has left its DRS rule")
	var failed string
	for _, c := range n.calls {
		if vm, ok := strings.CutPrefix(c, "add-groups "); ok {
			failed = vm
		}
	}
	assert.Equal(t, "remove-groups "+failed, n.calls[len(n.calls)-1], "and NSX-T is asked to forget it")
}
