package director_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
)

// servers are the records of the deployment's servers, by index.
func (g *rig) servers(t *testing.T) []director.InstanceRecord {
	t.Helper()
	var out []director.InstanceRecord
	for _, r := range g.instances(t) {
		if r.Group == "server" {
			out = append(out, r)
		}
	}
	return out
}

// storeFile is a file under /var/vcap/store of an instance's VM: on its
// persistent disk. ok is false when it is not there.
func (g *rig) storeFile(t *testing.T, rec director.InstanceRecord, name string) (content string, ok bool) {
	t.Helper()
	for _, id := range g.fleet.Agents() {
		if a, found := g.fleet.Agent(id); found && a.ID() == rec.AgentID {
			b, err := os.ReadFile(a.Layout().Path("/var/vcap/store/" + name))
			if errors.Is(err, os.ErrNotExist) {
				return "", false
			}
			require.NoError(t, err)
			return string(b), true
		}
	}
	t.Fatalf("no agent %s runs for %s/%d", rec.AgentID, rec.Group, rec.Index)
	return "", false
}

// writeStoreFile writes a file under /var/vcap/store of an instance's VM.
func (g *rig) writeStoreFile(t *testing.T, rec director.InstanceRecord, name, content string) {
	t.Helper()
	for _, id := range g.fleet.Agents() {
		if a, found := g.fleet.Agent(id); found && a.ID() == rec.AgentID {
			p := a.Layout().Path("/var/vcap/store/" + name)
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
			return
		}
	}
	t.Fatalf("no agent %s runs for %s/%d", rec.AgentID, rec.Group, rec.Index)
}

func orphanCIDs(t *testing.T, d *director.Director) []string {
	t.Helper()
	all, err := d.OrphanedDisks()
	require.NoError(t, err)
	var out []string
	for _, o := range all {
		out = append(out, o.CID)
	}
	slices.Sort(out)
	return out
}

// TestDeleteDeploymentKeepsDisks: a deployment deleted with KeepDisks
// leaves its servers' disks on vcsim, detached and listed as orphans
// with what they belonged to, also by a director started again on the
// store; an orphan attached to an instance of the deployment deployed
// again brings its data back (the instance's own disk orphaned in its
// place); deleting and cleaning up the orphans, then deleting the
// deployment, leaves no disk on vcsim.
func TestDeleteDeploymentKeepsDisks(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	m := withDisk(deployment(2, 0, 8080, false, "1"), 1024)
	_, err := g.dir.Deploy(ctx, m, director.DeployOptions{})
	require.NoError(t, err)
	first := g.servers(t)
	require.Len(t, first, 2)
	for _, r := range first {
		g.writeStoreFile(t, r, "server/marker", "data of "+r.ID)
	}

	before := time.Now()
	task, err := g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{KeepDisks: true})
	require.NoError(t, err)
	assert.Equal(t, director.TaskDone, task.State)
	assert.Empty(t, g.vms(t))
	_, err = g.st.Deployment("e2e")
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)
	assert.Equal(t, map[string]string{first[0].DiskCID: "", first[1].DiskCID: ""}, g.disks(t), "the disks are on vcsim, detached")
	check := func(d *director.Director) {
		t.Helper()
		orphans, err := d.OrphanedDisks()
		require.NoError(t, err)
		require.Len(t, orphans, 2)
		for _, r := range first {
			i := slices.IndexFunc(orphans, func(o director.OrphanedDisk) bool { return o.CID == r.DiskCID })
			require.GreaterOrEqual(t, i, 0, "the disk of %s/%d is orphaned", r.Group, r.Index)
			o := orphans[i]
			assert.Equal(t, director.OrphanedDisk{CID: r.DiskCID, Size: 1024, Deployment: "e2e", Group: "server", InstanceID: r.ID,
				Index: r.Index, AZ: r.AZ, OrphanedAt: o.OrphanedAt}, o)
			assert.False(t, o.OrphanedAt.Before(before.Add(-time.Second)) || o.OrphanedAt.After(time.Now()), "orphaned at %s", o.OrphanedAt)
		}
	}
	check(g.dir)
	g.open(t)
	check(g.dir)

	// Deployed again: new disks; the first server's old disk attached to
	// the new server/0 brings its data back.
	_, err = g.dir.Deploy(ctx, m, director.DeployOptions{})
	require.NoError(t, err)
	second := g.servers(t)
	require.Len(t, second, 2)
	for _, r := range second {
		assert.NotContains(t, []string{first[0].DiskCID, first[1].DiskCID}, r.DiskCID, "a new disk")
		_, ok := g.storeFile(t, r, "server/marker")
		assert.False(t, ok, "a new disk has no data")
	}
	_, err = g.dir.AttachDisk(ctx, "e2e", "server/0", "disk-nope", director.AttachDiskOptions{})
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)
	_, err = g.dir.AttachDisk(ctx, "e2e", "server", first[0].DiskCID, director.AttachDiskOptions{})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid, "a group of two is not one instance")
	_, err = g.dir.AttachDisk(ctx, "e2e", "server/0", first[0].DiskCID, director.AttachDiskOptions{})
	require.NoError(t, err)
	r0 := g.servers(t)[0]
	assert.Equal(t, first[0].DiskCID, r0.DiskCID)
	assert.Equal(t, second[0].VMCID, r0.VMCID, "the VM is kept")
	st, _ := g.state(t, r0)
	assert.Equal(t, "running", st, "started again")
	data, ok := g.storeFile(t, r0, "server/marker")
	assert.True(t, ok)
	assert.Equal(t, "data of "+first[0].ID, data, "the old data is back")
	starts, _ := g.storeFile(t, r0, "server/starts")
	assert.Equal(t, 2, strings.Count(starts, "started"), "its first start, and this one")
	assert.Equal(t, sortedOf(first[1].DiskCID, second[0].DiskCID), orphanCIDs(t, g.dir), "server/0's new disk is orphaned in its place")
	disks := g.disks(t)
	assert.NotEmpty(t, disks[first[0].DiskCID], "attached")
	assert.Empty(t, disks[second[0].DiskCID], "detached")
	_, err = g.dir.AttachDisk(ctx, "e2e", "server/0", first[0].DiskCID, director.AttachDiskOptions{})
	require.NoError(t, err, "attaching the disk it has")
	assert.Equal(t, first[0].DiskCID, g.servers(t)[0].DiskCID)
	res, err := g.dir.Deploy(ctx, m, director.DeployOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"keep server/0", "keep server/1"}, actions(res.Plan), "a disk of the size the manifest wants is no change")

	cc := g.dir.CloudCheck()
	cc.PingTimeout = 5 * time.Second
	problems, err := cc.Scan(ctx, "e2e")
	require.NoError(t, err)
	assert.Empty(t, problems, "orphans are not the deployment's problems")

	// Deleted one by one, or cleaned up by age.
	_, err = g.dir.DeleteOrphanedDisk(ctx, r0.DiskCID, director.OrphanedDiskOptions{})
	require.ErrorIs(t, err, kubefoundry.ErrConflict, "an instance's disk is no orphan")
	_, err = g.dir.DeleteOrphanedDisk(ctx, second[0].DiskCID, director.OrphanedDiskOptions{})
	require.NoError(t, err)
	assert.NotContains(t, g.disks(t), second[0].DiskCID)
	assert.Equal(t, []string{first[1].DiskCID}, orphanCIDs(t, g.dir))
	task, err = g.dir.DeleteOrphanedDisk(ctx, second[0].DiskCID, director.OrphanedDiskOptions{})
	require.NoError(t, err, "again")
	assert.Equal(t, director.TaskDone, task.State)
	_, err = g.dir.CleanUpOrphanedDisks(ctx, director.OrphanedDiskRetention, director.OrphanedDiskOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{first[1].DiskCID}, orphanCIDs(t, g.dir), "not old enough")
	var rec recorder
	task, err = g.dir.CleanUpOrphanedDisks(ctx, 0, director.OrphanedDiskOptions{Events: rec.sink})
	require.NoError(t, err)
	assert.Contains(t, task.Result, "deleted 1 orphaned disk(s)")
	assert.Empty(t, orphanCIDs(t, g.dir))
	assert.NotContains(t, g.disks(t), first[1].DiskCID)
	assert.Contains(t, strings.Join(rec.lines(), "\n"), first[1].DiskCID, "an event per disk")

	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
	require.NoError(t, err)
	assert.Empty(t, g.disks(t), "nothing left on vcsim")
	assert.Empty(t, g.vms(t))
	locks, err := g.st.Locks()
	require.NoError(t, err)
	assert.Empty(t, locks)
}

func sortedOf(s ...string) []string {
	slices.Sort(s)
	return s
}

// TestScaleDownOrphansDisks: as BOSH does, the disks of instances a
// scale-down deletes are orphaned, not deleted, and cloud-check finds
// nothing wrong; a clean-up goes on past a disk it cannot delete, which
// keeps its record and is named in the error, and deletes it when run
// again. Orphan tasks hold the orphaned disks' lock, which a director
// started again frees when the task holding it died.
func TestScaleDownOrphansDisks(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, withDisk(deployment(3, 0, 8080, false, "1"), 1024), director.DeployOptions{})
	require.NoError(t, err)
	recs := g.servers(t)
	require.Len(t, recs, 3)

	res, err := g.dir.Deploy(ctx, withDisk(deployment(1, 0, 8080, false, "1"), 1024), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"keep server/0", "delete server/2", "delete server/1"}, actions(res.Plan))
	assert.Len(t, g.vms(t), 1)
	gone := sortedOf(recs[1].DiskCID, recs[2].DiskCID)
	assert.Equal(t, gone, orphanCIDs(t, g.dir), "the scaled-down instances' disks are orphaned")
	disks := g.disks(t)
	assert.Len(t, disks, 3, "and on vcsim")
	for _, cid := range gone {
		assert.Empty(t, disks[cid], "detached")
	}
	cc := g.dir.CloudCheck()
	cc.PingTimeout = 5 * time.Second
	problems, err := cc.Scan(ctx, "e2e")
	require.NoError(t, err)
	assert.Empty(t, problems)

	// A dead task holding the orphaned disks' lock refuses the clean-up
	// until a director is started again.
	dead, err := g.st.NewTask("scheduled_orphaned_disk_cleanup", "", "clean up")
	require.NoError(t, err)
	dead.State = director.TaskProcessing
	require.NoError(t, g.st.PutTask(dead))
	require.NoError(t, g.st.Lock("orphaned-disks", dead.ID))
	_, err = g.dir.CleanUpOrphanedDisks(ctx, 0, director.OrphanedDiskOptions{})
	require.ErrorIs(t, err, kubefoundry.ErrConflict)
	assert.Contains(t, err.Error(), "the orphaned disks are locked by task")
	_, err = g.dir.AttachDisk(ctx, "e2e", "server/0", gone[0], director.AttachDiskOptions{})
	require.ErrorIs(t, err, kubefoundry.ErrConflict, "attaching takes the lock too")
	g.open(t)

	g.scpi.failDisk.Store(gone[0], "delete_disk")
	task, err := g.dir.CleanUpOrphanedDisks(ctx, 0, director.OrphanedDiskOptions{})
	require.ErrorContains(t, err, gone[0])
	require.ErrorContains(t, err, "delete_disk refused")
	assert.NotContains(t, err.Error(), gone[1])
	assert.Equal(t, director.TaskError, task.State)
	assert.Equal(t, []string{gone[0]}, orphanCIDs(t, g.dir), "the other one is deleted")
	assert.Contains(t, g.disks(t), gone[0])
	assert.NotContains(t, g.disks(t), gone[1])

	g.scpi.failDisk.Delete(gone[0])
	_, err = g.dir.CleanUpOrphanedDisks(ctx, 0, director.OrphanedDiskOptions{})
	require.NoError(t, err)
	assert.Empty(t, orphanCIDs(t, g.dir))
	assert.Equal(t, []string{recs[0].DiskCID}, slices.Collect(maps.Keys(g.disks(t))))
}

// TestDeleteGoesOnPastADisk: a disk that cannot be detached or deleted
// fails alone, named in the error; the instance's other disks and the
// other instances go. server/0 is given two disks (a migration whose old
// disk could not be detached), and then its current disk fails. With
// KeepDisks, an instance whose disk cannot be detached keeps its VM and
// that disk; without, a disk that cannot be deleted stays named by its
// instance once the VM is gone. Deleting again finishes either.
func TestDeleteGoesOnPastADisk(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(map[bool]string{true: "keep", false: "delete"}[keep], func(t *testing.T) {
			g := newRig(t)
			g.upload(t)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			_, err := g.dir.Deploy(ctx, withDisk(deployment(2, 0, 8080, false, "1"), 1024), director.DeployOptions{})
			require.NoError(t, err)
			old := g.servers(t)[0].DiskCID
			g.scpi.failDisk.Store(old, "detach_disk")
			_, err = g.dir.Deploy(ctx, withDisk(deployment(2, 0, 8080, false, "1"), 2048), director.DeployOptions{})
			require.ErrorContains(t, err, "detach_disk refused", "the canary's old disk stays on it; server/1 is untouched")
			g.scpi.failDisk.Delete(old)
			recs := g.servers(t)
			stuck, free := recs[0], recs[1]
			require.Equal(t, old, stuck.OldDiskCID)
			if keep {
				g.scpi.failDisk.Store(stuck.DiskCID, "detach_disk")
			} else {
				g.scpi.failDisk.Store(stuck.DiskCID, "delete_disk")
			}

			_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{KeepDisks: keep})
			require.ErrorContains(t, err, stuck.DiskCID)
			assert.NotContains(t, err.Error(), old)
			assert.NotContains(t, err.Error(), free.DiskCID)
			left := g.instances(t)
			require.Len(t, left, 1, "the other instance is gone")
			assert.Equal(t, stuck.ID, left[0].ID)
			assert.Equal(t, stuck.DiskCID, left[0].DiskCID, "the disk is still named by its instance")
			assert.Empty(t, left[0].OldDiskCID, "its other disk went")
			_, err = g.st.Deployment("e2e")
			require.NoError(t, err, "the deployment is kept while it has an instance")
			if keep {
				assert.Equal(t, sortedOf(old, free.DiskCID), orphanCIDs(t, g.dir))
				assert.Equal(t, stuck.VMCID, left[0].VMCID, "its VM is kept: deleting it would delete the disk")
				assert.Equal(t, []string{stuck.VMCID}, g.vms(t))
			} else {
				assert.Empty(t, orphanCIDs(t, g.dir))
				assert.Empty(t, left[0].VMCID)
				assert.Empty(t, g.vms(t))
				assert.Equal(t, map[string]string{stuck.DiskCID: ""}, g.disks(t))
			}

			g.scpi.failDisk.Delete(stuck.DiskCID)
			_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{KeepDisks: keep})
			require.NoError(t, err)
			assert.Empty(t, g.instances(t))
			assert.Empty(t, g.vms(t))
			if keep {
				assert.Equal(t, sortedOf(stuck.DiskCID, old, free.DiskCID), orphanCIDs(t, g.dir))
				assert.Len(t, g.disks(t), 3)
			} else {
				assert.Empty(t, g.disks(t))
			}
		})
	}
}

// dyingStore is a director's store that dies the moment a disk is to be
// recorded orphaned, as the director's process would: ChangeDisks writes
// nothing and ends the task's goroutine there (a panic, which the task
// recovers from), and nothing the task writes after reaches the store.
type dyingStore struct {
	director.Store
	dead atomic.Bool
}

var errDead = errors.New("the director is dead")

func (s *dyingStore) ChangeDisks(director.DiskChange) error {
	s.dead.Store(true)
	panic("the director died")
}

func (s *dyingStore) PutTask(t director.Task) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.PutTask(t)
}

func (s *dyingStore) AddEvent(id int64, e director.Event) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.AddEvent(id, e)
}

func (s *dyingStore) Unlock(deployment string, task int64) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.Unlock(deployment, task)
}

// TestOrphaningLeaksNothing: a director that dies between detaching a
// disk and recording it orphaned leaves the disk named by its instance's
// record (and its task processing, holding the lock); a director started
// again on the store ends the task, and deleting again orphans the disk.
func TestOrphaningLeaksNothing(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, withDisk(deployment(1, 0, 8080, false, "1"), 1024), director.DeployOptions{})
	require.NoError(t, err)
	server := g.servers(t)[0]

	dying, err := director.New(director.Config{Store: &dyingStore{Store: g.st}, CPI: g.scpi, Bus: g.w.Bus, Agents: g.w.Director,
		Blobs: g.w.Store, Signer: g.w.Blobs.Signer(), BlobstoreURL: g.w.HTTPS.URL, Renderer: g.r, AgentPing: 50 * time.Millisecond,
		PingTimeout: time.Second, AgentWait: time.Minute, TempDir: t.TempDir(), Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	task, err := dying.DeleteDeployment(ctx, "e2e", director.DeleteOptions{KeepDisks: true})
	require.ErrorContains(t, err, "the director died")
	got, err := g.st.Task(task.ID)
	require.NoError(t, err)
	assert.Equal(t, director.TaskProcessing, got.State, "as a director that died leaves it")
	assert.Equal(t, map[string]string{server.DiskCID: ""}, g.disks(t), "detached")
	recs := g.instances(t)
	require.Len(t, recs, 1)
	assert.Equal(t, server.DiskCID, recs[0].DiskCID, "named by its instance until it is recorded orphaned")
	assert.Empty(t, orphanCIDs(t, g.dir))

	g.open(t)
	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{KeepDisks: true})
	require.NoError(t, err)
	assert.Equal(t, []string{server.DiskCID}, orphanCIDs(t, g.dir))
	assert.Empty(t, g.vms(t))
	assert.Equal(t, map[string]string{server.DiskCID: ""}, g.disks(t))
}

// TestAttachDiskToStoppedInstances: an orphan attached to a hard-stopped
// (detached) instance is recorded as its disk and attached to the VM
// Start gives it; one attached to a soft-stopped instance is attached and
// mounted, and the instance stays stopped until Start.
func TestAttachDiskToStoppedInstances(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, withDisk(deployment(2, 0, 8080, false, "1"), 1024), director.DeployOptions{})
	require.NoError(t, err)
	recs := g.servers(t)
	for _, r := range recs {
		g.writeStoreFile(t, r, "server/marker", "data of "+r.ID)
	}
	_, err = g.dir.Deploy(ctx, withDisk(deployment(1, 0, 8080, false, "1"), 1024), director.DeployOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{recs[1].DiskCID}, orphanCIDs(t, g.dir))
	marker := func() string {
		t.Helper()
		data, ok := g.storeFile(t, g.servers(t)[0], "server/marker")
		require.True(t, ok, "server/0 has no marker on its disk")
		return data
	}

	_, err = g.dir.Stop(ctx, "e2e", director.StateOptions{Instances: []string{"server/0"}, Hard: true})
	require.NoError(t, err)
	_, err = g.dir.AttachDisk(ctx, "e2e", "server/0", recs[1].DiskCID, director.AttachDiskOptions{})
	require.NoError(t, err)
	r := g.servers(t)[0]
	assert.Equal(t, director.StateDetached, r.State, "still detached")
	assert.Equal(t, recs[1].DiskCID, r.DiskCID)
	assert.Equal(t, []string{recs[0].DiskCID}, orphanCIDs(t, g.dir), "its own disk is orphaned")
	_, err = g.dir.Start(ctx, "e2e", director.StateOptions{})
	require.NoError(t, err)
	assert.Equal(t, "data of "+recs[1].ID, marker(), "started with the disk attached")

	_, err = g.dir.Stop(ctx, "e2e", director.StateOptions{Instances: []string{"server/0"}})
	require.NoError(t, err)
	_, err = g.dir.AttachDisk(ctx, "e2e", "server/0", recs[0].DiskCID, director.AttachDiskOptions{})
	require.NoError(t, err)
	r = g.servers(t)[0]
	assert.Equal(t, director.StateStopped, r.State)
	st, _ := g.state(t, r)
	assert.Equal(t, "stopped", st, "a soft-stopped instance stays stopped")
	assert.Equal(t, "data of "+recs[0].ID, marker(), "the disk is attached and mounted")
	assert.Equal(t, []string{recs[1].DiskCID}, orphanCIDs(t, g.dir))
	_, err = g.dir.Start(ctx, "e2e", director.StateOptions{})
	require.NoError(t, err)
	st, _ = g.state(t, g.servers(t)[0])
	assert.Equal(t, "running", st)
}
