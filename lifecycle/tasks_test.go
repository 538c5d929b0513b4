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
// operation on the cluster is refused naming it. A Manager closed as a
// step of the task begins (as a process killed there) leaves the task
// running in the store, and a Manager started again on the store resumes
// it: killed at its first step, resumed and killed at the second, and so
// on (the steps are the stages the journal shows) until a run finishes,
// the cluster converges. The journal holds every run, in order, and the
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

	// killedAt is a Manager that "dies" (is closed) as the k-th stage of
	// its run begins; closed is closed once it has.
	// The Manager's Context ends in the sink, before the stage runs.
	killedAt := func(k int) (m *lifecycle.Manager, closed chan struct{}) {
		life, die := context.WithCancel(ctx)
		var once sync.Once
		var mu sync.Mutex
		n := 0
		closed = make(chan struct{})
		kill := kubefoundry.SinkFunc(func(e kubefoundry.Event) {
			if e.Op != "create cluster" || e.Phase != "started" {
				return
			}
			mu.Lock()
			n++
			hit := n == k
			mu.Unlock()
			if hit {
				t.Logf("killed as stage %d (%s) begins", k, e.Object)
				die()
				once.Do(func() { go func() { _ = m.Close(); close(closed) }() })
			}
		})
		m, err := lifecycle.New(lifecycle.Config{Foundation: lf, Store: st, Plans: plans, Events: kill, Log: zaptest.NewLogger(t),
			Context: life})
		require.NoError(t, err)
		t.Cleanup(die)
		return m, closed
	}
	m, closed := killedAt(1)
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

	var m2 *lifecycle.Manager
	runs := 1
	for k := 2; ; k++ {
		select {
		case <-closed:
		case <-ctx.Done():
			t.Fatalf("run %d was never killed", runs)
		}
		got, err := m.Task(task.ID)
		require.NoError(t, err)
		require.Equal(t, lifecycle.TaskRunning, got.State, "a task its Manager closed under stays running, to be resumed")
		require.Less(t, k, 20, "the task never finishes")

		m, closed = killedAt(k)
		if k == 2 {
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			w, err := m.Wait(wctx, task.ID)
			wcancel()
			require.NoError(t, err, "a task no one runs is returned at once, not waited for")
			assert.Equal(t, lifecycle.TaskRunning, w.State, "abandoned, for Resume")
		}
		resumed, err := m.Resume()
		require.NoError(t, err)
		require.Len(t, resumed, 1)
		runs++
		assert.Equal(t, runs, resumed[0].Runs)
		if k == 2 {
			require.ErrorAs(t, m.Delete(ctx, "gamma"), &busy, "the resumed task holds the cluster")
			assert.Equal(t, task.ID, busy.Task)
		}
		done, err := m.Wait(ctx, task.ID)
		require.NoError(t, err)
		if done.State != lifecycle.TaskRunning {
			require.Equal(t, lifecycle.TaskDone, done.State, "the resumed create finished: %s", done.Error)
			m2 = m
			break
		}
	}
	defer m2.Close()
	t.Logf("the create ran %d times", runs)
	assert.Equal(t, 8, runs, "killed at each of its 7 stages, then finished")
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
	want := []string{"started"}
	for range runs - 1 {
		want = append(want, "resumed")
	}
	assert.Equal(t, append(want, "done"), phases, "every run in the journal, in order")
	var stages []string
	for _, e := range journal {
		if e.Op == "create cluster" && e.Phase == "done" {
			stages = append(stages, e.Object)
		}
	}
	assert.Equal(t, []string{"network", "cloud config", "stemcell", "release", "deploy", "api", "nodes"}, stages[len(stages)-7:],
		"the last run did every stage")
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
	require.ErrorIs(t, m3.Cancel(task.ID), kubefoundry.ErrNotFound, "a task that ended is not running to cancel")

	// Cancel: a create canceled as its deploy begins ends failed, canceled,
	// not left to resume; Delete then removes what it made.
	var m4 *lifecycle.Manager
	var id int64
	var idMu sync.Mutex
	cancelAt := kubefoundry.SinkFunc(func(e kubefoundry.Event) {
		if e.Op == "create cluster" && e.Object == "deploy" && e.Phase == "started" {
			idMu.Lock()
			defer idMu.Unlock()
			assert.NoError(t, m4.Cancel(id))
		}
	})
	m4, err = lifecycle.New(lifecycle.Config{Foundation: lf, Store: st, Plans: plans, Events: cancelAt, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	defer m4.Close()
	eps := lifecycle.ClusterSpec{Name: "epsilon", Plan: "tiny", KubernetesVersion: "1.36.3"}
	idMu.Lock()
	started, err := m4.Start(lifecycle.Request{Op: lifecycle.OpCreate, Cluster: "epsilon", Spec: &eps})
	id = started.ID
	idMu.Unlock()
	require.NoError(t, err)
	ended, err := m4.Wait(ctx, started.ID)
	require.NoError(t, err)
	assert.Equal(t, lifecycle.TaskFailed, ended.State)
	assert.Contains(t, ended.Error, lifecycle.ErrCanceled.Error())
	c, err = m4.Get(ctx, "epsilon")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.StateFailed, c.State)
	gone, err := m4.Resume()
	require.NoError(t, err)
	assert.Empty(t, gone, "a canceled task is not resumed")
	require.NoError(t, m4.Delete(ctx, "epsilon"))
	orphans, err = m4.Orphans(ctx)
	require.NoError(t, err)
	assert.Empty(t, orphans)

	// What an ended process left running is overtaken by a newer task on
	// the cluster: by one begun here, or by the newest of them on Resume.
	stale := func(cluster string) lifecycle.Task {
		tk, err := st.PutTask(lifecycle.Task{Request: lifecycle.Request{Op: lifecycle.OpDelete, Cluster: cluster}, State: lifecycle.TaskRunning, Runs: 1})
		require.NoError(t, err)
		return tk
	}
	zeta := stale("zeta")
	require.NoError(t, m4.Delete(ctx, "zeta"))
	got, err := st.Task(zeta.ID)
	require.NoError(t, err)
	assert.Equal(t, lifecycle.TaskFailed, got.State)
	assert.Contains(t, got.Error, "superseded by task")
	older, newer := stale("eta"), stale("eta")
	resumed, err := m4.Resume()
	require.NoError(t, err)
	require.Len(t, resumed, 1, "only the newest of a cluster's running tasks")
	assert.Equal(t, newer.ID, resumed[0].ID)
	_, err = m4.Wait(ctx, newer.ID)
	require.NoError(t, err)
	got, err = st.Task(older.ID)
	require.NoError(t, err)
	assert.Equal(t, lifecycle.TaskFailed, got.State, "the older is superseded")

	require.NoError(t, m4.Close())
	_, err = m4.Start(lifecycle.Request{Op: lifecycle.OpDelete, Cluster: "eta"})
	require.ErrorIs(t, err, lifecycle.ErrClosed)
}
