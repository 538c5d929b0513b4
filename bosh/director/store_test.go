package director_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
)

func TestStoreSurvivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "director.db")
	s, err := director.OpenStore(path)
	require.NoError(t, err)

	require.NoError(t, s.PutDeployment(director.Deployment{Name: "cf", Manifest: []byte("name: cf\n")}))
	require.NoError(t, s.PutDeployment(director.Deployment{Name: "k8s", Manifest: []byte("name: k8s\n")}))
	for _, i := range []director.InstanceRecord{
		{Deployment: "cf", Group: "router", Index: 1, ID: "r1", VMCID: "vm-2", AgentID: "a2", State: "started"},
		{Deployment: "cf", Group: "router", Index: 0, ID: "r0", VMCID: "vm-1", AgentID: "a1", DiskCID: "disk-1", State: "started"},
		{Deployment: "cf", Group: "api", Index: 0, ID: "a0", State: "started"},
	} {
		require.NoError(t, s.PutInstance(i))
	}
	task, err := s.NewTask("deploy", "cf", "create deployment")
	require.NoError(t, err)
	assert.Equal(t, director.TaskQueued, task.State)
	for i, state := range []string{director.EventStarted, director.EventFinished} {
		require.NoError(t, s.AddEvent(task.ID, director.Event{Stage: "Updating instance", Task: "router/r0 (0)", Index: 1, State: state, Total: 2 + i}))
	}
	require.NoError(t, s.Lock("cf", task.ID))
	require.NoError(t, s.Close())

	s, err = director.OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	d, err := s.Deployment("cf")
	require.NoError(t, err)
	assert.Equal(t, "name: cf\n", string(d.Manifest))
	insts, err := s.Instances("cf")
	require.NoError(t, err)
	var ids []string
	for _, i := range insts {
		ids = append(ids, i.ID)
	}
	assert.Equal(t, []string{"a0", "r0", "r1"}, ids, "by group, then index")
	assert.Equal(t, "disk-1", insts[1].DiskCID)
	ev, err := s.Events(task.ID, 0)
	require.NoError(t, err)
	require.Len(t, ev, 2)
	assert.Equal(t, director.EventFinished, ev[1].State)
	ev, err = s.Events(task.ID, 1)
	require.NoError(t, err)
	require.Len(t, ev, 1, "from the second event on")
	assert.Equal(t, 3, ev[0].Total)
	locks, err := s.Locks()
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"cf": task.ID}, locks, "a lock survives: the task it names is resumed or released")

	require.NoError(t, s.DeleteDeployment("cf"))
	_, err = s.Deployment("cf")
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound)
	insts, err = s.Instances("cf")
	require.NoError(t, err)
	assert.Empty(t, insts, "the instances go with the deployment")
	require.NoError(t, s.DeleteDeployment("cf"), "deleting again")
	all, err := s.Deployments()
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.Equal(t, "k8s", all[0].Name)
}

func TestStoreLocks(t *testing.T) {
	s, err := director.OpenStore(filepath.Join(t.TempDir(), "d.db"))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Lock("cf", 7))
	require.NoError(t, s.Lock("cf", 7), "the holder again")
	err = s.Lock("cf", 8)
	var le *director.LockedError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, int64(7), le.Task)
	assert.ErrorIs(t, err, kubefoundry.ErrConflict)
	assert.EqualError(t, err, "deployment cf is locked by task 7")
	require.NoError(t, s.Lock("k8s", 8), "another deployment")
	require.NoError(t, s.Unlock("cf", 8), "not the holder: nothing happens")
	require.ErrorAs(t, s.Lock("cf", 9), &le)
	require.NoError(t, s.Unlock("cf", 7))
	require.NoError(t, s.Lock("cf", 9))
}

func TestStoreTasks(t *testing.T) {
	s, err := director.OpenStore(filepath.Join(t.TempDir(), "d.db"))
	require.NoError(t, err)
	defer s.Close()
	var ids []int64
	for _, k := range []string{"deploy", "deploy", "delete_deployment"} {
		task, err := s.NewTask(k, "cf", k)
		require.NoError(t, err)
		ids = append(ids, task.ID)
	}
	assert.Equal(t, []int64{1, 2, 3}, ids)
	last, err := s.Tasks(2)
	require.NoError(t, err)
	require.Len(t, last, 2)
	assert.Equal(t, int64(3), last[0].ID, "newest first")
	assert.Equal(t, int64(2), last[1].ID)

	task, err := s.Task(2)
	require.NoError(t, err)
	task.State, task.Result = director.TaskError, "canary failed"
	require.NoError(t, s.PutTask(task))
	task, err = s.Task(2)
	require.NoError(t, err)
	assert.Equal(t, "canary failed", task.Result)

	_, err = s.Task(99)
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound)
	assert.ErrorIs(t, s.PutTask(director.Task{ID: 99}), kubefoundry.ErrNotFound)
	assert.ErrorIs(t, s.AddEvent(99, director.Event{}), kubefoundry.ErrNotFound)
	_, err = s.Events(99, 0)
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound)
	ev, err := s.Events(1, 0)
	require.NoError(t, err)
	assert.Empty(t, ev, "a task with no events")

	err = s.PutInstance(director.InstanceRecord{Deployment: "nope", ID: "x"})
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound, "an instance of a deployment not recorded")
	err = s.PutInstance(director.InstanceRecord{})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 2)
}

// TestStoreOrphanedDisks: ChangeDisks takes a disk off an instance and
// records it orphaned at once, adopts an orphan only when it is recorded
// (else nothing changes), and refuses a change that would leave a disk
// named twice; orphans outlive their deployment and a restart.
func TestStoreOrphanedDisks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := director.OpenStore(path)
	require.NoError(t, err)
	require.NoError(t, s.PutDeployment(director.Deployment{Name: "cf"}))
	inst := director.InstanceRecord{Deployment: "cf", Group: "db", Index: 1, ID: "db1", AZ: "z2", DiskCID: "disk-1", DiskSize: 1024, State: "started"}
	require.NoError(t, s.PutInstance(inst))
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	orphan := director.OrphanedDisk{CID: "disk-1", Size: 1024, Deployment: "cf", Group: "db", InstanceID: "db1", Index: 1, AZ: "z2",
		OrphanedAt: at, CloudProperties: map[string]any{"type": "thin"}}

	named := inst
	err = s.ChangeDisks(director.DiskChange{Instance: named, Orphan: []director.OrphanedDisk{orphan}})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid, "the instance still names the disk")
	bare := inst
	bare.DiskCID, bare.DiskSize = "", 0
	err = s.ChangeDisks(director.DiskChange{Instance: bare, Adopt: []string{"disk-1"}})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid, "adopting a disk the instance does not name")

	require.NoError(t, s.ChangeDisks(director.DiskChange{Instance: bare, Orphan: []director.OrphanedDisk{orphan}}))
	insts, err := s.Instances("cf")
	require.NoError(t, err)
	assert.Empty(t, insts[0].DiskCID, "taken off the instance")
	got, err := s.OrphanedDisk("disk-1")
	require.NoError(t, err)
	assert.Equal(t, orphan, got)

	// Adopting one that is not an orphan changes nothing.
	other := bare
	other.DiskCID = "disk-nope"
	err = s.ChangeDisks(director.DiskChange{Instance: other, Adopt: []string{"disk-nope"}})
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)
	insts, err = s.Instances("cf")
	require.NoError(t, err)
	assert.Empty(t, insts[0].DiskCID, "nothing changed")

	later := orphan
	later.CID, later.OrphanedAt = "disk-0", at.Add(time.Hour)
	require.NoError(t, s.ChangeDisks(director.DiskChange{Instance: bare, Orphan: []director.OrphanedDisk{later}}))
	require.NoError(t, s.DeleteDeployment("cf"))
	require.NoError(t, s.Close())

	s, err = director.OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	all, err := s.OrphanedDisks()
	require.NoError(t, err)
	require.Len(t, all, 2, "orphans outlive their deployment and a restart")
	assert.Equal(t, []string{"disk-1", "disk-0"}, []string{all[0].CID, all[1].CID}, "oldest first")
	assert.Equal(t, orphan, all[0])

	require.NoError(t, s.PutDeployment(director.Deployment{Name: "cf"}))
	adopter := director.InstanceRecord{Deployment: "cf", Group: "db", ID: "db0", DiskCID: "disk-1", DiskSize: 1024, State: "stopped"}
	require.NoError(t, s.ChangeDisks(director.DiskChange{Instance: adopter, Adopt: []string{"disk-1"}}))
	_, err = s.OrphanedDisk("disk-1")
	require.ErrorIs(t, err, kubefoundry.ErrNotFound, "adopted")
	insts, err = s.Instances("cf")
	require.NoError(t, err)
	require.Len(t, insts, 1)
	assert.Equal(t, "disk-1", insts[0].DiskCID)
	require.NoError(t, s.DeleteOrphanedDisk("disk-0"))
	require.NoError(t, s.DeleteOrphanedDisk("disk-0"), "again")
	all, err = s.OrphanedDisks()
	require.NoError(t, err)
	assert.Empty(t, all)
}
