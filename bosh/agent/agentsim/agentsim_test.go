package agentsim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agentsim"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/vmware/govmomi/simulator.(*Registry).PutEntity"))
}

// TestAgentsFollowTheirVMs: a VM the vSphere CPI creates on vcsim, with
// the bus's certificate in its env, gets its agent, which the director
// reaches over the bus; the agent stops when the VM powers off, comes back
// on the same disk when it powers on, and goes with the VM.
func TestAgentsFollowTheirVMs(t *testing.T) {
	w := agenttest.Start(t)
	sim := vspheretest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	vs, err := vsphere.New(ctx, sim.Config, vsphere.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	defer func() { _ = vs.Close(context.Background()) }()
	vols, err := csi.New(ctx, vs.Vim25())
	require.NoError(t, err)
	// The settings a director gives: the bus, the blobstore, and per VM
	// the agent's certificate in its env.
	template := w.Settings(t, "agent-1")
	c, err := vspherecpi.New(vs, vols, vspherecpi.Config{ClusterID: "bosh-1", VMFolder: "bosh/vms", StemcellFolder: "bosh/stemcells",
		Cluster: "DC0_C0", Datastore: "LocalDS_0", Agent: vspherecpi.AgentConfig{MBus: template.MBus, Blobstore: template.Blobstore}})
	require.NoError(t, err)

	fleet, err := agentsim.Start(ctx, vs.Vim25(), agentsim.Config{Root: t.TempDir(), Agent: agentConfig()}, zaptest.NewLogger(t))
	require.NoError(t, err)
	defer fleet.Close()

	sc, err := c.CreateStemcell(ctx, vspheretest.StemcellImage(t), nil)
	require.NoError(t, err)
	nets := cpi.Networks{"default": {Type: "manual", IP: "10.0.0.10", Netmask: "255.255.255.0", Gateway: "10.0.0.1",
		CloudProperties: cpi.CloudProps{"name": "VM Network"}}}
	cid, _, err := c.CreateVM(ctx, "agent-1", sc, nil, nets, nil, template.Env)
	require.NoError(t, err)
	vm, err := vs.FindVM(ctx, "/DC0/vm/bosh/vms/"+cid)
	require.NoError(t, err)
	moid := vm.Reference().Value

	ping := func() error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := w.Director.Call(pctx, "agent-1", "ping")
		return err
	}
	agenttest.Eventually(t, func() bool { return ping() == nil }, "the VM's agent never answers: %v", fleet.Err(moid))
	assert.Equal(t, []string{moid}, fleet.Agents())
	a, ok := fleet.Agent(moid)
	require.True(t, ok)
	assert.Equal(t, filepath.Base(a.Layout().Root), moid, "the VM's disk is its own directory")

	require.NoError(t, vs.PowerOff(ctx, vm.Reference()))
	agenttest.Eventually(t, func() bool { return len(fleet.Agents()) == 0 }, "the agent of a VM powered off still runs")
	require.Error(t, ping(), "nobody answers for a VM that is off")

	require.NoError(t, vs.PowerOn(ctx, vm.Reference()))
	agenttest.Eventually(t, func() bool { return ping() == nil }, "the agent is not back after power on")

	require.NoError(t, c.DeleteVM(ctx, cid))
	agenttest.Eventually(t, func() bool { return len(fleet.Agents()) == 0 }, "the agent of a deleted VM still runs")
}

func agentConfig() (c agent.Config) {
	c.HeartbeatInterval = 100 * time.Millisecond
	c.Supervisor = agenttest.FastSupervisor
	return c
}

// TestFailedStartsBackOff: a VM whose agent cannot start (its settings
// are bad) is tried again with a growing wait, not on every poll.
func TestFailedStartsBackOff(t *testing.T) {
	sim := vspheretest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	vs, err := vsphere.New(ctx, sim.Config, vsphere.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	defer func() { _ = vs.Close(context.Background()) }()
	vm, err := vs.FindVM(ctx, "DC0_H0_VM0")
	require.NoError(t, err)
	settings, err := json.Marshal(cpi.AgentSettings{AgentID: "not.a.valid.id"})
	require.NoError(t, err)
	require.NoError(t, vs.SetExtraConfig(ctx, vm.Reference(), map[string]string{
		agentsim.SettingsKey: base64.StdEncoding.EncodeToString(settings), agentsim.SettingsKey + ".encoding": "base64"}))

	fleet, err := agentsim.Start(ctx, vs.Vim25(), agentsim.Config{Root: t.TempDir(), PollInterval: 20 * time.Millisecond, Agent: agentConfig()},
		zaptest.NewLogger(t))
	require.NoError(t, err)
	defer fleet.Close()
	moid := vm.Reference().Value
	agenttest.Eventually(t, func() bool { return fleet.Err(moid) != nil }, "the bad settings were not tried")
	time.Sleep(time.Second)
	// Polled 50 times in that second; tried at 0, 0.25 and 0.75 s (then
	// 1.75 s): a few times, not 50.
	assert.LessOrEqual(t, fleet.Failures(moid), 4, "failed starts are retried with backoff")
	assert.GreaterOrEqual(t, fleet.Failures(moid), 2, "and retried")
	assert.ErrorContains(t, fleet.Err(moid), "agent_id")
}
