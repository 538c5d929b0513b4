package director_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(childDirector(cfg))
	}
	goleak.VerifyTestMain(m)
}

// fleet is a group of in-process agents, one per instance.
type fleet struct {
	w         *agenttest.World
	instances []director.Instance
	roots     []string
}

func newFleet(t *testing.T, group string, azs ...string) *fleet {
	t.Helper()
	f := &fleet{w: agenttest.Start(t)}
	for i, az := range azs {
		id := fmt.Sprintf("agent-%s-%d", group, i)
		root := t.TempDir()
		f.w.StartAgent(t, f.w.Settings(t, id), root)
		f.roots = append(f.roots, root)
		f.instances = append(f.instances, director.Instance{Group: group, ID: fmt.Sprintf("id%d", i), Index: i, AZ: az, AgentID: id})
	}
	return f
}

// spec is a release with one job whose process prints its configuration
// hash and runs, or, when broken, exits at once.
func (f *fleet) spec(t *testing.T, inst director.Instance, hash string, broken bool) *agent.ApplySpec {
	t.Helper()
	body, version := "#!/bin/sh\necho \"config $HASH\"\nwhile :; do sleep 0.05; done\n", "1"
	if broken {
		// A package's version names its content: another content, another version.
		body, version = "#!/bin/sh\necho \"cannot start\" >&2\nexit 1\n", "1-broken"
	}
	pkg := f.w.Blob(t, "app", version, agenttest.TGZ(t, map[string]agenttest.File{"bin/app": {Mode: 0o755, Body: body}}))
	rendered := f.w.Blob(t, "", "", agenttest.TGZ(t, map[string]agenttest.File{
		"app/config/bpm.yml": {Mode: 0o644, Body: "processes:\n- name: app\n  executable: /var/vcap/packages/app/bin/app\n  env: {HASH: " + hash + "}\n"},
		"app/bin/pre-stop":   {Mode: 0o755, Body: "#!/bin/sh\necho \"pre-stop before " + hash + ", next $BOSH_VM_NEXT_STATE\"\n"},
		"app/bin/post-stop":  {Mode: 0o755, Body: "#!/bin/sh\necho \"post-stop\"\n"},
	}))
	return &agent.ApplySpec{Deployment: "d", Job: agent.JobSpec{Name: inst.Group, Templates: []agent.JobRef{{Name: "app", Version: "1"}}},
		Index: inst.Index, ID: inst.ID, AZ: inst.AZ, ConfigurationHash: hash,
		Packages: map[string]agent.BlobRef{"app": pkg}, RenderedTemplatesArchive: &rendered}
}

func (f *fleet) changes(t *testing.T, hash string, broken func(director.Instance) bool) []director.Change {
	t.Helper()
	out := make([]director.Change, len(f.instances))
	for i, inst := range f.instances {
		out[i] = director.Change{Instance: inst, Spec: f.spec(t, inst, hash, broken != nil && broken(inst))}
	}
	return out
}

// state is an instance's configuration hash and job state as its agent
// reports them.
func (f *fleet) state(t *testing.T, inst director.Instance) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	v, err := f.w.Director.Call(ctx, inst.AgentID, "get_state")
	require.NoError(t, err)
	var st struct {
		Hash     string `json:"configuration_hash"`
		JobState string `json:"job_state"`
	}
	require.NoError(t, json.Unmarshal(v, &st))
	return st.Hash, st.JobState
}

type recorder struct {
	mu     sync.Mutex
	events []director.Event
}

func (r *recorder) sink(e director.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.events))
	for i, e := range r.events {
		out[i] = e.State + " " + e.Task
	}
	return out
}

func update(canaries int, maxInFlight string, watch time.Duration) manifest.Update {
	m, err := manifest.ParseMaxInFlight(maxInFlight)
	if err != nil {
		panic(err)
	}
	w := manifest.WatchRange(100*time.Millisecond, watch)
	return manifest.Update{Canaries: manifest.CanaryCount(canaries), MaxInFlight: m, CanaryWatchTime: w, UpdateWatchTime: w}
}

func TestUpdateGroupRollsOutCanaryFirstThenAZByAZ(t *testing.T) {
	f := newFleet(t, "web", "z1", "z2", "z1", "z2", "z1")
	u := director.NewUpdater(f.w.Director, zaptest.NewLogger(t))
	var rec recorder
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	res, err := u.UpdateGroup(ctx, f.changes(t, "v1", nil), update(1, "2", 10*time.Second), rec.sink)
	require.NoError(t, err)
	require.Len(t, res, 5)
	for _, r := range res {
		assert.True(t, r.Done, r.Instance.Name())
		assert.NoError(t, r.Err)
	}
	for _, inst := range f.instances {
		hash, state := f.state(t, inst)
		assert.Equal(t, "v1", hash, inst.Name())
		assert.Equal(t, "running", state, inst.Name())
	}
	lines := rec.lines()
	require.Len(t, lines, 10)
	// Ordered by AZ then index: z1 has 0, 2, 4; z2 has 1, 3. The canary
	// (web/id0) is done before anything else begins, and z1 is done
	// before z2 begins.
	assert.Equal(t, []string{"started web/id0 (0) (canary)", "finished web/id0 (0) (canary)"}, lines[:2])
	pos := func(line string) int {
		for i, l := range lines {
			if l == line {
				return i
			}
		}
		t.Fatalf("no event %q in %q", line, lines)
		return -1
	}
	for _, z1 := range []string{"web/id2 (2)", "web/id4 (4)"} {
		for _, z2 := range []string{"web/id1 (1)", "web/id3 (3)"} {
			assert.Less(t, pos("finished "+z1), pos("started "+z2), "%s (z1) before %s (z2)", z1, z2)
		}
	}
	// max_in_flight 2: z1's two remaining instances ran at once.
	assert.Less(t, pos("started web/id4 (4)"), pos("finished web/id2 (2)"), "z1's two updated together")
	rec.mu.Lock()
	e := rec.events[0]
	rec.mu.Unlock()
	assert.Equal(t, "Updating instance", e.Stage)
	assert.Equal(t, []string{"web"}, e.Tags)
	assert.Equal(t, 5, e.Total)
	assert.Equal(t, 1, e.Index)

	// A second rollout to running instances drains and stops each first.
	for i := range f.instances {
		f.instances[i].Running = true
	}
	_, err = u.UpdateGroup(ctx, f.changes(t, "v2", nil), update(1, "100%", 10*time.Second), nil)
	require.NoError(t, err)
	for i, inst := range f.instances {
		hash, state := f.state(t, inst)
		assert.Equal(t, "v2", hash)
		assert.Equal(t, "running", state)
		logs := filepath.Join(f.roots[i], "sys", "log", "app")
		b, err := os.ReadFile(filepath.Join(logs, "pre-stop.stdout.log"))
		require.NoError(t, err, "pre-stop ran on %s", inst.Name())
		assert.Equal(t, "pre-stop before v1, next keep\n", string(b), "v1's pre-stop, with BOSH_VM_NEXT_STATE")
		b, err = os.ReadFile(filepath.Join(logs, "post-stop.stdout.log"))
		require.NoError(t, err, "post-stop ran on %s", inst.Name())
		assert.Equal(t, "post-stop\n", string(b))
	}
}

// With initial_deploy_az_update_strategy parallel, a group's initial
// deploy (every change New) updates every AZ at once: an instance of z2
// begins before z1's are done, which AZ by AZ never does; a group with an
// instance deployed before goes AZ by AZ still.
func TestUpdateGroupInitialDeployAcrossAZs(t *testing.T) {
	f := newFleet(t, "master", "z1", "z2", "z3")
	u := director.NewUpdater(f.w.Director, zaptest.NewLogger(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	up := update(0, "3", 10*time.Second)
	up.InitialDeployAZUpdateStrategy = "parallel"
	first := func(lines []string, prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no event %q in %q", prefix, lines)
		return -1
	}
	var rec recorder
	changes := f.changes(t, "v1", nil)
	for i := range changes {
		changes[i].New = true
	}
	_, err := u.UpdateGroup(ctx, changes, up, rec.sink)
	require.NoError(t, err)
	lines := rec.lines()
	assert.Less(t, first(lines, "started master/id2"), first(lines, "finished"), "all AZs began before one ended: %q", lines)

	var serial recorder
	for i := range f.instances {
		f.instances[i].Running = true
	}
	changes = f.changes(t, "v2", nil)
	changes[1].New = true
	_, err = u.UpdateGroup(ctx, changes, up, serial.sink)
	require.NoError(t, err)
	lines = serial.lines()
	assert.Less(t, first(lines, "finished master/id0"), first(lines, "started master/id1"), "AZ by AZ: %q", lines)
}

func TestUpdateGroupStopsAtAFailedCanary(t *testing.T) {
	f := newFleet(t, "worker", "z1", "z1", "z1")
	u := director.NewUpdater(f.w.Director, zaptest.NewLogger(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	_, err := u.UpdateGroup(ctx, f.changes(t, "v1", nil), update(1, "3", 10*time.Second), nil)
	require.NoError(t, err)
	for i := range f.instances {
		f.instances[i].Running = true
	}

	// v2 cannot start on the canary (index 0).
	var rec recorder
	res, err := u.UpdateGroup(ctx, f.changes(t, "v2", func(i director.Instance) bool { return i.Index == 0 }), update(1, "3", 500*time.Millisecond), rec.sink)
	var ue *director.UpdateError
	require.ErrorAs(t, err, &ue)
	require.Len(t, ue.Failed, 1)
	assert.True(t, ue.Failed[0].Canary)
	assert.Equal(t, 2, ue.Untouched)
	var nr *director.NotRunningError
	require.ErrorAs(t, err, &nr)
	assert.Equal(t, "agent-worker-0", nr.AgentID)
	assert.Contains(t, err.Error(), "worker/id0 (0) (canary)")
	assert.False(t, res[1].Done || res[2].Done)
	assert.Equal(t, []string{"started worker/id0 (0) (canary)", "failed worker/id0 (0) (canary)"}, rec.lines())
	rec.mu.Lock()
	assert.Contains(t, rec.events[1].Data.Error, "not running")
	rec.mu.Unlock()

	for _, inst := range f.instances[1:] {
		hash, state := f.state(t, inst)
		assert.Equal(t, "v1", hash, "%s was left as it was", inst.Name())
		assert.Equal(t, "running", state, "%s was left running", inst.Name())
	}
}

func TestUpdateGroupStopsBeginningAfterAFailure(t *testing.T) {
	f := newFleet(t, "w", "z1", "z1", "z1", "z1", "z1")
	u := director.NewUpdater(f.w.Director, zaptest.NewLogger(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Index 1 (the first after the canary) is broken; max_in_flight 1:
	// indexes 2-4 are never begun.
	res, err := u.UpdateGroup(ctx, f.changes(t, "v1", func(i director.Instance) bool { return i.Index == 1 }), update(1, "1", 500*time.Millisecond), nil)
	var ue *director.UpdateError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, 3, ue.Untouched)
	assert.True(t, res[0].Done)
	assert.Error(t, res[1].Err)
	for _, inst := range f.instances[2:] {
		hash, _ := f.state(t, inst)
		assert.Empty(t, hash, "%s never applied", inst.Name())
	}
	assert.True(t, strings.Contains(err.Error(), "w/id1 (1):"), err.Error())
}

func TestUpdateGroupRefusesMixedGroups(t *testing.T) {
	u := director.NewUpdater(nil, nil)
	_, err := u.UpdateGroup(t.Context(), []director.Change{
		{Instance: director.Instance{Group: "a"}, Spec: &agent.ApplySpec{}},
		{Instance: director.Instance{Group: "b"}, Spec: &agent.ApplySpec{}},
	}, manifest.Update{}, nil)
	assert.ErrorContains(t, err, "one group at a time")
}

func TestUpdateGroupStopsBetweenStepsWhenCancelled(t *testing.T) {
	f := newFleet(t, "c", "z1", "z1", "z1")
	u := director.NewUpdater(f.w.Director, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel as soon as the canary is done.
	sink := func(e director.Event) {
		if e.Index == 1 && e.State == director.EventFinished {
			cancel()
		}
	}
	res, err := u.UpdateGroup(ctx, f.changes(t, "v1", nil), update(1, "1", 10*time.Second), sink)
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "2 instance(s) left untouched")
	assert.True(t, res[0].Done)
	for _, inst := range f.instances[1:] {
		hash, _ := f.state(t, inst)
		assert.Empty(t, hash, "%s never applied", inst.Name())
	}
}

// TestReplacedInstanceIsDrainedOnceForShutdown: an instance whose VM is to
// go is drained once, for shutdown, and its pre-stop is told the VM goes.
func TestReplacedInstanceIsDrainedOnceForShutdown(t *testing.T) {
	f := newFleet(t, "web", "z1")
	inst := f.instances[0]
	marks := filepath.Join(f.roots[0], "sys", "log", "marks")
	spec := func(hash string) *agent.ApplySpec {
		s := f.spec(t, inst, hash, false)
		rendered := f.w.Blob(t, "", "", agenttest.TGZ(t, map[string]agenttest.File{
			"app/config/bpm.yml": {Mode: 0o644, Body: "processes:\n- name: app\n  executable: /var/vcap/packages/app/bin/app\n"},
			"app/bin/drain":      {Mode: 0o755, Body: "#!/bin/sh\necho \"drain $*\" >> " + marks + "\necho 0\n"},
			"app/bin/pre-stop":   {Mode: 0o755, Body: "#!/bin/sh\necho \"pre-stop $BOSH_VM_NEXT_STATE\" >> " + marks + "\n"},
		}))
		s.RenderedTemplatesArchive = &rendered
		return s
	}
	u := director.NewUpdater(f.w.Director, zaptest.NewLogger(t))
	up := update(1, "1", time.Second)
	_, err := u.UpdateGroup(t.Context(), []director.Change{{Instance: inst, Spec: spec("h1")}}, up, nil)
	require.NoError(t, err)

	running := inst
	running.Running = true
	replaced := 0
	_, err = u.UpdateGroup(t.Context(), []director.Change{{Instance: running, Spec: spec("h2"),
		Replace: func(context.Context) (string, error) { replaced++; return inst.AgentID, nil }}}, up, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, replaced)
	b, err := os.ReadFile(marks)
	require.NoError(t, err)
	assert.Equal(t, "pre-stop delete\ndrain job_shutdown hash_unchanged\n", string(b), "one drain, for shutdown")
}
