package vsphere_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// TestPersistentDiskLifecycle: the CPI's calls, one object at a time: a VM
// made and deleted alone, a persistent disk created (idempotent by name),
// attached (again: no-op), kept when its VM is deleted, attached to the
// next VM, detached, deleted.
func TestPersistentDiskLifecycle(t *testing.T) {
	c := newSim(t).client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	vm1, err := c.CreateVM(ctx, specs("cpi", 1)[0])
	require.NoError(t, err)
	require.True(t, vm1.Created)

	spec := vsphere.PersistentDiskSpec{Name: "data", Cluster: "cpi", SizeMB: 2048, Datastore: simDatastore}
	d, err := c.CreateDisk(ctx, spec)
	require.NoError(t, err)
	assert.Equal(t, "data", d.Name)
	assert.Equal(t, "cpi", d.Cluster)
	assert.Equal(t, int64(2048), d.SizeMB)
	again, err := c.CreateDisk(ctx, spec)
	require.NoError(t, err)
	assert.Equal(t, d.ID, again.ID, "idempotent by name: no second disk")
	other := spec
	other.Cluster = "other"
	od, err := c.CreateDisk(ctx, other)
	require.NoError(t, err)
	assert.NotEqual(t, d.ID, od.ID, "another cluster's disk of that name is its own")
	list, err := c.ListDisks(ctx, simDatastore, "cpi")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, d.ID, list[0].ID)

	in := specs("cpi", 2)[1]
	vm2, err := c.CreateVM(ctx, in)
	require.NoError(t, err)
	holders := func() []types.ManagedObjectReference {
		got, err := c.GetDisk(ctx, *d)
		require.NoError(t, err)
		return got.AttachedTo
	}

	require.NoError(t, c.AttachDisk(ctx, vm1.Ref, *d))
	require.NoError(t, c.AttachDisk(ctx, vm1.Ref, *d), "attached there already")
	assert.Equal(t, []types.ManagedObjectReference{vm1.Ref}, holders())
	err = c.AttachDisk(ctx, vm2.Ref, *d)
	require.ErrorIs(t, err, vsphere.ErrInUse)
	assert.Contains(t, err.Error(), vm1.Ref.Value, "names the VM that holds it")
	require.ErrorIs(t, c.DeleteDisk(ctx, *d), vsphere.ErrInUse, "refused while attached")

	_, err = c.DeleteVM(ctx, vm1.Ref)
	require.NoError(t, err)
	list, err = c.ListDisks(ctx, simDatastore, "cpi")
	require.NoError(t, err)
	require.Len(t, list, 1, "it outlives its VM")
	require.NoError(t, c.DetachDisk(ctx, vm1.Ref, *d), "its VM gone: nothing to detach")

	require.NoError(t, c.AttachDisk(ctx, vm2.Ref, *d))
	assert.Equal(t, []types.ManagedObjectReference{vm2.Ref}, holders())
	require.NoError(t, c.DetachDisk(ctx, vm2.Ref, *d))
	require.NoError(t, c.DetachDisk(ctx, vm2.Ref, *d), "detached already")
	assert.Empty(t, holders())

	require.NoError(t, c.DeleteDisk(ctx, *d))
	require.NoError(t, c.DeleteDisk(ctx, *d), "gone already")
	list, err = c.ListDisks(ctx, simDatastore, "cpi")
	require.NoError(t, err)
	assert.Empty(t, list)

	_, err = c.CreateDisk(ctx, vsphere.PersistentDiskSpec{Name: "a.b", Cluster: "Bad_1"})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 4, "%v", err)
}
