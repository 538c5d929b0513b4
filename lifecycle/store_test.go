package lifecycle_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/lifecycle"
)

// The Store keeps tasks under IDs it gives in order, and each task's
// journal in order, read from any index on; both outlive the process (the
// store opened again).
func TestStoreTasksAndJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lifecycle.db")
	st, err := lifecycle.OpenStore(path)
	require.NoError(t, err)
	a, err := st.PutTask(lifecycle.Task{Request: lifecycle.Request{Op: lifecycle.OpCreate, Cluster: "a"}, State: lifecycle.TaskRunning})
	require.NoError(t, err)
	b, err := st.PutTask(lifecycle.Task{Request: lifecycle.Request{Op: lifecycle.OpResize, Cluster: "b", Workers: map[string]int{"w": 2}}})
	require.NoError(t, err)
	assert.Equal(t, int64(1), a.ID)
	assert.Equal(t, int64(2), b.ID)
	a.State, a.Error = lifecycle.TaskFailed, "no quorum"
	_, err = st.PutTask(a)
	require.NoError(t, err)
	_, err = st.Task(3)
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)
	for i, phase := range []string{"started", "done", "failed"} {
		e := kubefoundry.Event{Op: "create cluster", Object: "network", Phase: phase, Step: i, Time: time.Unix(int64(i), 0).UTC()}
		if phase == "failed" {
			e.Err = errors.New("boom")
		}
		require.NoError(t, st.AddEvent(a.ID, e))
	}
	require.NoError(t, st.AddEvent(b.ID, kubefoundry.Event{Op: "task", Phase: "started"}))
	require.NoError(t, st.Close())

	st, err = lifecycle.OpenStore(path)
	require.NoError(t, err)
	defer st.Close()
	got, err := st.Task(a.ID)
	require.NoError(t, err)
	assert.Equal(t, lifecycle.TaskFailed, got.State)
	assert.Equal(t, "no quorum", got.Error)
	all, err := st.Tasks()
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, []int64{1, 2}, []int64{all[0].ID, all[1].ID}, "oldest first")
	assert.Equal(t, map[string]int{"w": 2}, all[1].Workers)
	evs, err := st.Events(a.ID, 0)
	require.NoError(t, err)
	require.Len(t, evs, 3, "a's journal only")
	assert.Equal(t, []string{"started", "done", "failed"}, []string{evs[0].Phase, evs[1].Phase, evs[2].Phase})
	require.EqualError(t, evs[2].Err, "boom")
	tail, err := st.Events(a.ID, 2)
	require.NoError(t, err)
	require.Len(t, tail, 1)
	assert.Equal(t, "failed", tail[0].Phase)
	none, err := st.Events(a.ID, 3)
	require.NoError(t, err)
	assert.Empty(t, none)
	_, err = st.Events(a.ID, -1)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	none, err = st.Events(99, 0)
	require.NoError(t, err)
	assert.Empty(t, none, "a task without a journal")
}
