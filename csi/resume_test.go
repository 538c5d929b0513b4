package csi_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/csi"
)

// TestCreateVolumeResumesItsTask: a create whose process dies while CNS
// works (the ctx ends right after the task is reported) is resumed from
// the journaled task: the next call waits for that task and returns its
// volume, and there is one volume of that name, not two (CNS names are not
// unique).
func TestCreateVolumeResumesItsTask(t *testing.T) {
	old := simulator.TaskDelay.MethodDelay
	simulator.TaskDelay.MethodDelay = map[string]int{"CnsCreateVolume": 1500}
	defer func() { simulator.TaskDelay.MethodDelay = old }()
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	crash, die := context.WithCancel(ctx)
	var mu sync.Mutex
	var events []kubefoundry.Event
	journal := map[string]string{}
	sink := kubefoundry.SinkFunc(func(ev kubefoundry.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
		if ev.Phase == csi.PhaseTaskStarted {
			journal[ev.Object] = ev.Handle
			die() // the process dies with the task running in vCenter
		}
	})
	_, err := e.c.CreateVolume(crash, spec("pv-resume"), csi.WithSink(sink))
	require.ErrorIs(t, err, context.Canceled)
	require.NotEmpty(t, journal["pv-resume"], "the task is reported before it is waited for")
	assert.Equal(t, "create volume", events[0].Op)

	vol, err := e.c.CreateVolume(ctx, spec("pv-resume"), csi.WithInFlight(journal), csi.WithSink(sink))
	require.NoError(t, err)
	// Whatever the second call did, let the first task end before counting.
	task := object.NewTask(e.vms[0].Client(), types.ManagedObjectReference{Type: "Task", Value: journal["pv-resume"]})
	_ = task.Wait(ctx)
	vols, err := e.c.QueryVolumes(ctx, "c1")
	require.NoError(t, err)
	require.Len(t, vols, 1, "the resumed task's volume, not a second one")
	assert.Equal(t, vol.ID, vols[0].ID)
	last := events[len(events)-1]
	assert.Equal(t, csi.PhaseCreated, last.Phase)
	assert.Equal(t, vol.ID, last.Handle)

	// A task vCenter does not know is followed by a create.
	vol2, err := e.c.CreateVolume(ctx, spec("pv-fresh"), csi.WithInFlight(map[string]string{"pv-fresh": "task-999999"}))
	require.NoError(t, err)
	assert.Equal(t, "pv-fresh", vol2.Name)
	var bad *kubefoundry.ValidationError
	_, err = e.c.CreateVolume(ctx, csi.VolumeSpec{Name: "x", ClusterID: "Prod_1"}, csi.WithSink(sink))
	require.True(t, errors.As(err, &bad))
	assert.Equal(t, csi.PhaseFailed, events[len(events)-1].Phase)
	assert.Len(t, bad.Problems, 3, "size, datastore and cluster id at once: %v", err)
}
