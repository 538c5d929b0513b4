package lifecycle_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/lifecycle"
	"github.com/kubefoundry/kubefoundry/lifecycle/simulator"
)

// A create runs as a task in the background: while it runs, any other
// operation on the cluster is refused naming it. A Manager closed in the
// middle of its deploy (as a process killed there) leaves it running in
// the store; a Manager started again on the store resumes it, and the
// cluster converges. The journal holds both runs, in order, and the
// orphan scan finds nothing once the cluster is deleted.
func TestTaskKilledAndResumed(t *testing.T) {
	bins := binaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	f, err := simulator.Start(ctx, simulator.Config{Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, f.Close()) })
	lf, err := f.Lifecycle(ctx, bins, "1.36.3")
	require.NoError(t, err)
	st, err := lifecycle.OpenStore(filepath.Join(t.TempDir(), "lifecycle.db"))
	require.NoError(t, err)
	defer st.Close()
	plans := lifecycle.DefaultPlans()
	tiny := plans["small"]
	tiny.Name, tiny.Workers = "tiny", 1
	plans["tiny"] = tiny

	// The first Manager "dies" (is closed) once the deploy has begun.
	var m *lifecycle.Manager
	var once sync.Once
	closed := make(chan struct{})
	kill := kubefoundry.SinkFunc(func(e kubefoundry.Event) {
		if e.Op == "create cluster" && e.Object == "deploy" && e.Phase == "started" {
			once.Do(func() { go func() { _ = m.Close(); close(closed) }() })
		}
	})
	m, err = lifecycle.New(lifecycle.Config{Foundation: lf, Store: st, Plans: plans, Events: kill, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	spec := lifecycle.ClusterSpec{Name: "gamma", Plan: "tiny", KubernetesVersion: "1.36.3"}
	task, err := m.Start(lifecycle.Request{Op: lifecycle.OpCreate, Cluster: "gamma", Spec: &spec})
	require.NoError(t, err)
	assert.Equal(t, lifecycle.TaskRunning, task.State)
	assert.NotZero(t, task.ID)

	_, err = m.Start(lifecycle.Request{Op: lifecycle.OpResize, Cluster: "gamma", Workers: map[string]int{"worker": 2}})
	var busy *lifecycle.BusyError
	require.ErrorAs(t, err, &busy, "one task per cluster")
	assert.Equal(t, task.ID, busy.Task, "the refusal names the running task")
	assert.ErrorIs(t, err, kubefoundry.ErrConflict)
	_, err = m.Create(ctx, spec)
	require.ErrorAs(t, err, &busy, "a synchronous operation too")
	_, err = m.Start(lifecycle.Request{Op: lifecycle.OpCreate, Cluster: "delta", Spec: &lifecycle.ClusterSpec{Name: "delta", Plan: "huge"}})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid, "an invalid spec is refused before any task")
	tasks, err := m.Tasks()
	require.NoError(t, err)
	require.Len(t, tasks, 1, "no task was recorded for what was refused")

	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("the deploy never began")
	}
	got, err := m.Task(task.ID)
	require.NoError(t, err)
	assert.Equal(t, lifecycle.TaskRunning, got.State, "a task its Manager closed under stays running, to be resumed")

	var mu sync.Mutex
	var after []kubefoundry.Event
	sink := kubefoundry.SinkFunc(func(e kubefoundry.Event) { mu.Lock(); after = append(after, e); mu.Unlock() })
	m2, err := lifecycle.New(lifecycle.Config{Foundation: lf, Store: st, Plans: plans, Events: sink, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer m2.Close()
	resumed, err := m2.Resume()
	require.NoError(t, err)
	require.Len(t, resumed, 1)
	assert.Equal(t, 2, resumed[0].Runs)
	require.ErrorAs(t, m2.Delete(ctx, "gamma"), &busy, "the resumed task holds the cluster")
	assert.Equal(t, task.ID, busy.Task)
	done, err := m2.Wait(ctx, task.ID)
	require.NoError(t, err)
	require.Equal(t, lifecycle.TaskDone, done.State, "the resumed create finished: %s", done.Error)
	c, err := m2.Get(ctx, "gamma")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.StateRunning, c.State)
	assert.Len(t, c.Nodes, 2)

	journal, err := m2.Events(task.ID, 0)
	require.NoError(t, err)
	var phases []string
	for _, e := range journal {
		if e.Op == "task" {
			phases = append(phases, e.Phase)
		}
	}
	assert.Equal(t, []string{"started", "resumed", "done"}, phases, "both runs in the journal, in order")
	deploys := 0
	for _, e := range journal {
		if e.Op == "create cluster" && e.Object == "deploy" && e.Phase == "started" {
			deploys++
		}
	}
	assert.Equal(t, 2, deploys, "the deploy begun, then begun again")
	tail, err := m2.Events(task.ID, len(journal)-1)
	require.NoError(t, err)
	require.Len(t, tail, 1)
	assert.Equal(t, "done", tail[0].Phase)

	require.NoError(t, m2.Delete(ctx, "gamma"))
	tasks, err = m2.Tasks()
	require.NoError(t, err)
	require.Len(t, tasks, 2)
	for _, tk := range tasks {
		assert.Equal(t, lifecycle.TaskDone, tk.State, "task %d (%s)", tk.ID, tk.Op)
	}
	orphans, err := m2.Orphans(ctx)
	require.NoError(t, err)
	assert.Empty(t, orphans)

	m3, err := lifecycle.New(lifecycle.Config{Foundation: lf, Store: st, Plans: plans, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer m3.Close()
	again, err := m3.Resume()
	require.NoError(t, err)
	assert.Empty(t, again, "nothing left to resume: every task ended")
}
