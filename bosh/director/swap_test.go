package director_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/director"
)

// withCSD gives the deployment vm_strategy create-swap-delete.
func withCSD(m []byte) []byte {
	return []byte(strings.Replace(string(m), "update:\n", "update:\n  vm_strategy: create-swap-delete\n", 1))
}

// serversOn puts the servers (the first group) on vm_type vt.
func serversOn(m []byte, vt string) []byte {
	return []byte(strings.Replace(string(m), "  vm_type: small\n", "  vm_type: "+vt+"\n", 1))
}

// mediumCloudConfig is the test's cloud config with a second vm_type,
// medium.
func mediumCloudConfig() string {
	return strings.Replace(cloudConfig, "vm_types:\n", "vm_types:\n- name: medium\n  cloud_properties: {cpu: 2, ram: 1024, disk: 1024}\n", 1)
}

// cpiLog is the CPI calls a serialCPI was told of, in order, each as
// "method arg".
type cpiLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *cpiLog) add(method, arg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, method+" "+arg)
}

// at is the position of call in the log, -1 when it is not there.
func (l *cpiLog) at(call string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Index(l.calls, call)
}

func (l *cpiLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// jobState is what an agent reports, "<job state> <configuration
// hash>", for hooks that run in the director's goroutines (no require
// there).
func (g *rig) jobState(agentID string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := g.w.Director.Call(ctx, agentID, "get_state")
	if err != nil {
		return "error: " + err.Error()
	}
	var st struct {
		JobState string `json:"job_state"`
		Hash     string `json:"configuration_hash"`
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return "error: " + err.Error()
	}
	return st.JobState + " " + st.Hash
}

// starts counts the starts the server job wrote on its persistent disk,
// as the instance's agent sees it.
func (g *rig) starts(t *testing.T, rec director.InstanceRecord) int {
	t.Helper()
	for _, id := range g.fleet.Agents() {
		if a, ok := g.fleet.Agent(id); ok && a.ID() == rec.AgentID {
			b, err := os.ReadFile(a.Layout().Path("/var/vcap/store/server/starts"))
			require.NoError(t, err)
			return strings.Count(string(b), "started")
		}
	}
	t.Fatalf("no agent for %s/%d", rec.Group, rec.Index)
	return 0
}

func (g *rig) byGroup(t *testing.T, group string) []director.InstanceRecord {
	t.Helper()
	var out []director.InstanceRecord
	for _, r := range g.instances(t) {
		if r.Group == group {
			out = append(out, r)
		}
	}
	return out
}

func findChange(plan []director.InstanceChange, group string, index int) director.InstanceChange {
	for _, c := range plan {
		if c.Group == group && c.Index == index {
			return c
		}
	}
	return director.InstanceChange{}
}

func ipsOf(recs []director.InstanceRecord) []string {
	var out []string
	for _, r := range recs {
		for _, ip := range r.IPs {
			out = append(out, strings.TrimPrefix(ip, "default="))
		}
	}
	return out
}

// TestCreateSwapDeleteOnVcsim: with vm_strategy create-swap-delete, a
// vm_type change gives each server a new VM made while its old one still
// runs its job, with new addresses; the old VM is then stopped, its
// persistent disk moved (with its data) to the new one, which is
// started and watched, and the old VM is deleted last. The client's link
// lists the new addresses; a deploy again changes nothing; Recreate swaps
// too, updating the client; nothing is left on vcsim.
func TestCreateSwapDeleteOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	require.NoError(t, g.dir.UpdateCloudConfig([]byte(mediumCloudConfig())))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	small := withCSD(withDisk(deployment(2, 1, 8080, false, "1"), 1024))
	res, err := g.dir.Deploy(ctx, small, director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"create client/0", "create server/0", "create server/1"}, actions(res.Plan), "new instances are created")
	before := g.byGroup(t, "server")
	require.Len(t, before, 2)
	for _, r := range before {
		require.NotEmpty(t, r.DiskCID)
		assert.Equal(t, 1, g.starts(t, r))
	}
	oldIPs := ipsOf(before)

	// The order of things, seen from the CPI: before each create_vm, the
	// old VM's job runs; before each delete_vm of an old VM, the new one's
	// does.
	var log cpiLog
	var mu sync.Mutex
	runningAtCreate := map[string]string{} // the old agent's job state when its successor is created, by instance
	runningAtDelete := map[string]string{} // the new agent's job state when the old VM is deleted, by instance
	hook := func(method, arg string) {
		log.add(method, arg)
		for _, r := range before {
			switch {
			case method == "create_vm":
				now, err := g.st.Instances("e2e")
				if err != nil {
					continue
				}
				for _, n := range now {
					if n.ID == r.ID && n.NextAgentID == arg {
						st := g.jobState(r.AgentID)
						mu.Lock()
						runningAtCreate[r.ID] = st
						mu.Unlock()
					}
				}
			case method == "delete_vm" && arg == r.VMCID:
				now, err := g.st.Instances("e2e")
				if err != nil {
					continue
				}
				for _, n := range now {
					if n.ID == r.ID {
						st := g.jobState(n.AgentID)
						mu.Lock()
						runningAtDelete[r.ID] = st
						mu.Unlock()
					}
				}
			}
		}
	}
	g.scpi.before.Store(&hook)
	var rec recorder
	medium := serversOn(small, "medium")
	res, err = g.dir.Deploy(ctx, medium, director.DeployOptions{Events: rec.sink})
	g.scpi.before.Store(nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"update client/0", "recreate server/0", "recreate server/1"}, actions(res.Plan),
		"the client is updated: its link lists the servers' new addresses")
	for i := range 2 {
		c := findChange(res.Plan, "server", i)
		assert.True(t, c.Swap, "server/%d is swapped", i)
		assert.Contains(t, c.Reasons, "vm_type changed")
		assert.NotContains(t, c.Reasons, "networks changed", "the new addresses are the swap's own")
		assert.Contains(t, strings.Join(c.Reasons, "; "), "create-swap-delete")
	}
	assert.False(t, findChange(res.Plan, "client", 0).Swap)

	after := g.byGroup(t, "server")
	require.Len(t, after, 2)
	calls := log.all()
	for i, r := range after {
		old := before[i]
		require.Equal(t, old.ID, r.ID)
		assert.NotEqual(t, old.VMCID, r.VMCID, "server/%d has a new VM", i)
		assert.Equal(t, old.DiskCID, r.DiskCID, "server/%d keeps its disk", i)
		assert.Equal(t, 2, g.starts(t, r), "server/%d: the data moved with the disk", i)
		assert.Empty(t, r.NextVMCID+r.NextAgentID+r.OldVMCID+r.OldAgentID, "server/%d: no VM but its own", i)
		assert.Empty(t, r.NextIPs)
		assert.Empty(t, r.OldIPs)
		assert.False(t, r.Dirty)
		for _, ip := range ipsOf([]director.InstanceRecord{r}) {
			assert.NotContains(t, oldIPs, ip, "server/%d's new VM has an address no old VM had", i)
		}
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st)
		assert.Equal(t, "running "+old.Applied.ConfigurationHash, runningAtCreate[r.ID], "server/%d's old VM ran its job while the new one was made", i)
		assert.Equal(t, "running "+r.Applied.ConfigurationHash, runningAtDelete[r.ID], "server/%d's new VM ran its job, applied, when the old one was deleted", i)
		create := log.at("create_vm " + r.AgentID)
		detach := log.at("detach_disk " + old.VMCID)
		attach := log.at("attach_disk " + r.VMCID)
		del := log.at("delete_vm " + old.VMCID)
		require.True(t, create >= 0 && detach >= 0 && attach >= 0 && del >= 0, "server/%d: %v", i, calls)
		assert.True(t, create < detach && detach < attach && attach < del,
			"server/%d: the new VM made, the disk detached from the old and attached to the new, the old deleted, in that order: %v", i, calls)
	}
	assert.Len(t, g.vms(t), 3, "one VM per instance: the old ones are gone")
	for _, r := range before {
		assert.NotContains(t, g.vms(t), r.VMCID)
	}
	client := g.byGroup(t, "client")[0]
	assert.Equal(t, "servers: "+strings.Join(ipsOf(after), ",")+"\nport: 8080\n", g.config(t, client, "client"),
		"the client's link lists the servers' new addresses")
	created := 0
	for _, e := range rec.events {
		if e.Stage == "Creating missing vms" && e.State == director.EventFinished {
			created++
		}
	}
	assert.Equal(t, 2, created, "the events say the servers' new VMs were made ahead: %v", rec.lines())

	// Deployed again: nothing to do; every instance keeps its addresses.
	dry, err := g.dir.Deploy(ctx, medium, director.DeployOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"keep client/0", "keep server/0", "keep server/1"}, actions(dry.Plan))

	// Recreate swaps too, and updates the client for the new address.
	log = cpiLog{}
	g.scpi.before.Store(&hook)
	before = after
	_, err = g.dir.Recreate(ctx, "e2e", director.RecreateOptions{Instances: []string{"server/0"}})
	g.scpi.before.Store(nil)
	require.NoError(t, err)
	after = g.byGroup(t, "server")
	assert.NotEqual(t, before[0].VMCID, after[0].VMCID)
	assert.NotEqual(t, before[0].IPs, after[0].IPs, "the new VM has a new address")
	assert.Equal(t, before[1], after[1], "server/1 is left as it was")
	assert.Equal(t, "running "+before[0].Applied.ConfigurationHash, runningAtCreate[after[0].ID], "the old VM ran its job while the new one was made: %v", log.all())
	assert.Equal(t, "running "+after[0].Applied.ConfigurationHash, runningAtDelete[after[0].ID], "the new VM ran its job when the old one was deleted: %v", log.all())
	assert.Equal(t, 3, g.starts(t, after[0]))
	assert.Equal(t, "servers: "+strings.Join(ipsOf(after), ",")+"\nport: 8080\n", g.config(t, g.byGroup(t, "client")[0], "client"),
		"the client is updated for server/0's new address")
	assert.Len(t, g.vms(t), 3)

	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
	require.NoError(t, err)
	assert.Empty(t, g.vms(t))
	has, err := g.cpi.HasDisk(ctx, after[0].DiskCID)
	require.NoError(t, err)
	assert.False(t, has)
}

// TestCreateSwapDeleteFallsBackWithStaticIPs: an instance group with
// static IPs is recreated delete-create whatever its vm_strategy, as
// BOSH does (the old VM and the new cannot both hold the address), and
// the plan says so.
func TestCreateSwapDeleteFallsBackWithStaticIPs(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	cc := strings.Replace(mediumCloudConfig(), "    reserved: [10.0.0.2 - 10.0.0.9]\n", "    reserved: [10.0.0.2 - 10.0.0.9]\n    static: [10.0.0.20 - 10.0.0.29]\n", 1)
	require.NoError(t, g.dir.UpdateCloudConfig([]byte(cc)))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	m := withCSD(deployment(1, 1, 8080, false, "1"))
	m = []byte(strings.Replace(string(m), "  networks: [{name: default}]\n  jobs:\n  - name: server",
		"  networks: [{name: default, static_ips: [10.0.0.20]}]\n  jobs:\n  - name: server", 1))
	_, err := g.dir.Deploy(ctx, m, director.DeployOptions{})
	require.NoError(t, err)
	before := g.byGroup(t, "server")[0]

	var log cpiLog
	hook := func(method, arg string) { log.add(method, arg) }
	g.scpi.before.Store(&hook)
	res, err := g.dir.Deploy(ctx, serversOn(m, "medium"), director.DeployOptions{})
	g.scpi.before.Store(nil)
	require.NoError(t, err)
	c := findChange(res.Plan, "server", 0)
	assert.Equal(t, director.ActionRecreate, c.Action)
	assert.False(t, c.Swap)
	assert.Contains(t, c.Reasons, "delete-create: create-swap-delete does not apply to an instance group with static IPs")
	assert.Equal(t, director.ActionKeep, findChange(res.Plan, "client", 0).Action, "the server's address is the same: the client is kept")
	after := g.byGroup(t, "server")[0]
	assert.Equal(t, []string{"default=10.0.0.20"}, after.IPs)
	assert.NotEqual(t, before.VMCID, after.VMCID)
	del, create := log.at("delete_vm "+before.VMCID), log.at("create_vm "+after.AgentID)
	require.True(t, del >= 0 && create >= 0, "%v", log.all())
	assert.Less(t, del, create, "the old VM is deleted before the new one is made: %v", log.all())
	st, _ := g.state(t, after)
	assert.Equal(t, "running", st)
	assert.Len(t, g.vms(t), 2)
}

// TestCreateSwapDeleteLeavesTheOldInstanceWhenTheNewVMFails: a new VM
// that cannot be made fails the instance before anything of it is
// stopped: it runs on its VM as it was, and the deploy stops there. A
// new VM made for an instance whose BeforeStop then fails is deleted,
// the instance again left running. The next deploy swaps.
func TestCreateSwapDeleteLeavesTheOldInstanceWhenTheNewVMFails(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	require.NoError(t, g.dir.UpdateCloudConfig([]byte(mediumCloudConfig())))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	small := withCSD(withDisk(deployment(2, 0, 8080, false, "1"), 1024))
	_, err := g.dir.Deploy(ctx, small, director.DeployOptions{})
	require.NoError(t, err)
	before := g.byGroup(t, "server")
	hashes := map[string]string{}
	pids := map[string]int{}
	for _, r := range before {
		_, hashes[r.ID] = g.state(t, r)
		pids[r.ID] = g.pid(t, r)
	}
	vms := g.vms(t)
	untouched := func(what string) {
		t.Helper()
		now := g.byGroup(t, "server")
		require.Len(t, now, 2)
		for i, r := range now {
			assert.Equal(t, before[i].VMCID, r.VMCID, "%s: server/%d keeps its VM", what, i)
			assert.Equal(t, before[i].IPs, r.IPs, "%s: server/%d keeps its addresses", what, i)
			assert.Equal(t, before[i].Applied, r.Applied, "%s: server/%d", what, i)
			assert.False(t, r.Dirty, "%s: nothing of server/%d changed", what, i)
			assert.Empty(t, r.NextVMCID+r.NextAgentID+r.OldVMCID+r.OldAgentID, "%s: server/%d", what, i)
			assert.Empty(t, r.NextIPs, "%s: server/%d's next addresses are let go", what, i)
			st, hash := g.state(t, r)
			assert.Equal(t, "running", st, "%s: server/%d runs", what, i)
			assert.Equal(t, hashes[r.ID], hash, "%s: server/%d", what, i)
			assert.Equal(t, pids[r.ID], g.pid(t, r), "%s: server/%d's job was never stopped", what, i)
			assert.Equal(t, 1, g.starts(t, r), "%s: server/%d", what, i)
			attached, err := g.cpi.GetDisks(ctx, r.VMCID)
			require.NoError(t, err)
			assert.Equal(t, []string{r.DiskCID}, attached, "%s: server/%d's disk is on its VM", what, i)
		}
		assert.ElementsMatch(t, vms, g.vms(t), "%s: no VM is left of the attempt", what)
	}

	medium := serversOn(small, "medium")
	g.scpi.failCreate.Store(true)
	_, err = g.dir.Deploy(ctx, medium, director.DeployOptions{})
	g.scpi.failCreate.Store(false)
	var ue *director.UpdateError
	require.ErrorAs(t, err, &ue)
	require.ErrorContains(t, err, "create_vm refused")
	require.Len(t, ue.Failed, 1)
	assert.True(t, ue.Failed[0].Canary)
	assert.Equal(t, 1, ue.Untouched)
	untouched("create_vm refused")

	_, err = g.dir.Deploy(ctx, medium, director.DeployOptions{BeforeStop: func(context.Context, director.Instance) error {
		return errors.New("the node's pods cannot be evicted")
	}})
	require.ErrorContains(t, err, "the node's pods cannot be evicted")
	untouched("before stop failed")

	res, err := g.dir.Deploy(ctx, medium, director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"recreate server/0", "recreate server/1"}, actions(res.Plan))
	for _, r := range g.byGroup(t, "server") {
		assert.Equal(t, 2, g.starts(t, r))
	}
	assert.Len(t, g.vms(t), 2)
}
