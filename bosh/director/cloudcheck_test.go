package director_test

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agentsim"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

// TestCloudCheck: five instances on vcsim with their agents (agentsim),
// four of them broken behind the director's back, each in its own way.
// Scan finds each problem; the resolutions fix them; a second scan finds
// nothing.
func TestCloudCheck(t *testing.T) {
	w := agenttest.Start(t)
	sim := vspheretest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	vs, err := vsphere.New(ctx, sim.Config, vsphere.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	defer func() { _ = vs.Close(context.Background()) }()
	vols, err := csi.New(ctx, vs.Vim25())
	require.NoError(t, err)
	base := w.Settings(t, "unused")
	c, err := vspherecpi.New(vs, vols, vspherecpi.Config{ClusterID: "bosh-1", VMFolder: "bosh/vms", StemcellFolder: "bosh/stemcells",
		Cluster: "DC0_C0", Datastore: "LocalDS_0", Agent: vspherecpi.AgentConfig{MBus: base.MBus, Blobstore: base.Blobstore}})
	require.NoError(t, err)
	fleet, err := agentsim.Start(ctx, vs.Vim25(), agentsim.Config{Root: t.TempDir(),
		Agent: agent.Config{HeartbeatInterval: time.Hour, Supervisor: agenttest.FastSupervisor}}, zaptest.NewLogger(t))
	require.NoError(t, err)
	defer fleet.Close()
	store, err := director.OpenStore(filepath.Join(t.TempDir(), "director.db"))
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, store.PutDeployment(director.Deployment{Name: "cf"}))

	sc, err := c.CreateStemcell(ctx, vspheretest.StemcellImage(t), nil)
	require.NoError(t, err)
	nets := cpi.Networks{"default": {Type: "dynamic", CloudProperties: cpi.CloudProps{"name": "VM Network"}}}
	recs := make([]director.InstanceRecord, 5)
	for i := range recs {
		id := "cc-" + string(rune('0'+i))
		agentID := id
		if i == 1 {
			agentID = id + "-other" // the VM's agent is not the one recorded: it never answers as cc-1
		}
		env := w.Settings(t, agentID).Env
		vm, _, err := c.CreateVM(ctx, agentID, sc, nil, nets, nil, env)
		require.NoError(t, err)
		recs[i] = director.InstanceRecord{Deployment: "cf", Group: "router", Index: i, ID: id, VMCID: vm, AgentID: id, State: "started"}
	}
	// 0: healthy, with its disk attached.
	disk0, err := c.CreateDisk(ctx, 1024, nil, recs[0].VMCID)
	require.NoError(t, err)
	_, err = c.AttachDisk(ctx, recs[0].VMCID, disk0)
	require.NoError(t, err)
	recs[0].DiskCID = disk0
	// 2: its VM deleted.
	require.NoError(t, c.DeleteVM(ctx, recs[2].VMCID))
	// 3: a disk that is not there.
	recs[3].DiskCID = "disk-gone"
	// 4: a disk that is there, not attached.
	disk4, err := c.CreateDisk(ctx, 1024, nil, recs[4].VMCID)
	require.NoError(t, err)
	recs[4].DiskCID = disk4
	for _, r := range recs {
		require.NoError(t, store.PutInstance(r))
	}
	for _, i := range []int{0, 3, 4} {
		agenttest.Eventually(t, func() bool {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := w.Director.Call(pctx, recs[i].AgentID, "ping")
			return err == nil
		}, "the agent of %s never answers", recs[i].ID)
	}

	cc := &director.CloudCheck{Store: store, CPI: c, Bus: w.Director, PingTimeout: 2 * time.Second}
	problems, err := cc.Scan(ctx, "cf")
	require.NoError(t, err)
	got := map[string]string{}
	for _, p := range problems {
		got[p.Instance.ID] = p.Type
	}
	assert.Equal(t, map[string]string{"cc-1": director.ProblemUnresponsiveAgent, "cc-2": director.ProblemMissingVM,
		"cc-3": director.ProblemMissingDisk, "cc-4": director.ProblemMountInfoMismatch}, got)
	byID := map[string]director.Problem{}
	for _, p := range problems {
		byID[p.Instance.ID] = p
	}
	assert.Contains(t, byID["cc-2"].Description, recs[2].VMCID)

	// Bad choices lose nothing.
	err = cc.Resolve(ctx, byID["cc-2"], director.ResolutionReattachDisk)
	assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
	stale := byID["cc-3"]
	stale.Instance.DiskCID = "another"
	assert.ErrorIs(t, cc.Resolve(ctx, stale, director.ResolutionDeleteDiskReference), kubefoundry.ErrConflict)

	require.NoError(t, cc.Resolve(ctx, byID["cc-1"], director.ResolutionRebootVM))
	require.NoError(t, cc.Resolve(ctx, byID["cc-2"], director.ResolutionDeleteVMReference))
	require.NoError(t, cc.Resolve(ctx, byID["cc-3"], director.ResolutionDeleteDiskReference))
	require.NoError(t, cc.Resolve(ctx, byID["cc-4"], director.ResolutionReattachDisk))
	require.NoError(t, cc.Resolve(ctx, byID["cc-4"], director.ResolutionIgnore))

	// Rebooted, cc-1's agent is still not the one recorded: delete its VM.
	problems, err = cc.Scan(ctx, "cf")
	require.NoError(t, err)
	require.Len(t, problems, 1)
	assert.Equal(t, director.ProblemUnresponsiveAgent, problems[0].Type)
	require.NoError(t, cc.Resolve(ctx, problems[0], director.ResolutionDeleteVM))
	has, err := c.HasVM(ctx, recs[1].VMCID)
	require.NoError(t, err)
	assert.False(t, has)

	problems, err = cc.Scan(ctx, "cf")
	require.NoError(t, err)
	assert.Empty(t, problems)
	after, err := store.Instances("cf")
	require.NoError(t, err)
	sort.Slice(after, func(i, j int) bool { return after[i].Index < after[j].Index })
	assert.Empty(t, after[1].VMCID, "the deleted VM's reference is gone")
	assert.Empty(t, after[2].VMCID)
	assert.Empty(t, after[3].DiskCID)
	disks, err := c.GetDisks(ctx, recs[4].VMCID)
	require.NoError(t, err)
	assert.Contains(t, disks, disk4, "reattached")

	_, err = cc.Scan(ctx, "nope")
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound)
}
