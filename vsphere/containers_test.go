package vsphere_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

func paths(cs []vsphere.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Kind+" "+c.Path)
	}
	return out
}

// TestFailedRunCreatesNothing: a bad template or network fails before any
// folder or pool is created (they were left behind, empty, before).
func TestFailedRunCreatesNothing(t *testing.T) {
	c := newSim(t).client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, edit := range map[string]func(*vsphere.VMSpec){
		"template": func(s *vsphere.VMSpec) { s.Template = "no-such-template" },
		"network":  func(s *vsphere.VMSpec) { s.NICs[0].Network = "no-such-network" },
		"cluster":  func(s *vsphere.VMSpec) { s.Cluster = "no-such-cluster" },
	} {
		sp := specs("bad", 2)
		for i := range sp {
			edit(&sp[i])
		}
		_, err := c.ProvisionVMs(ctx, sp)
		require.ErrorIs(t, err, vsphere.ErrNotFound, name)
		_, err = c.FindResourcePool(ctx, "/DC0/host/DC0_C0/Resources/bad")
		assert.ErrorIs(t, err, vsphere.ErrNotFound, "%s: no pool created", name)
		list, err := c.ListContainers(ctx, "bad")
		require.NoError(t, err)
		assert.Empty(t, list, name)
	}
}

// TestRemoveContainers: what a cluster's run created is listed and removed
// with the cluster; what another cluster still uses, and what existed
// before, stay.
func TestRemoveContainers(t *testing.T) {
	// One VM operation at a time: vcsim races with itself when it destroys
	// VMs at once (one destroy's disk deletion reads the datastore another
	// destroy's unregister writes), which the race detector reports.
	c := newSim(t).client(t, vsphere.WithConcurrency(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.EnsureFolder(ctx, "preexisting")
	require.NoError(t, err)
	one := specs("one", 2)
	two := specs("two", 1)
	for i := range one {
		one[i].Folder = "preexisting/kf/one"
	}
	two[0].Folder = "preexisting/kf/two"
	res1, err := c.ProvisionVMs(ctx, one)
	require.NoError(t, err)
	_, err = c.ProvisionVMs(ctx, two)
	require.NoError(t, err)

	list, err := c.ListContainers(ctx, "one")
	require.NoError(t, err)
	assert.Equal(t, []string{
		"resource pool /DC0/host/DC0_C0/Resources/one",
		"folder /DC0/vm/preexisting/kf/one",
		"folder /DC0/vm/preexisting/kf",
	}, paths(list), "deepest first, then by path; the folder made before is not the cluster's")
	assert.Equal(t, 2, list[0].VMs)
	assert.Equal(t, 2, list[1].VMs)

	// Its VMs still there: kept, and the error names it.
	_, err = c.RemoveContainers(ctx, "one")
	require.ErrorIs(t, err, vsphere.ErrInUse)
	assert.Contains(t, err.Error(), "/DC0/vm/preexisting/kf/one holds 2 VMs")

	refs := []types.ManagedObjectReference{res1[0].Ref, res1[1].Ref}
	_, err = c.DestroyVMs(ctx, refs)
	require.NoError(t, err)
	removed, err := c.RemoveContainers(ctx, "one")
	require.NoError(t, err, "kf holds two's folder: kept without error")
	assert.Equal(t, []string{"resource pool /DC0/host/DC0_C0/Resources/one", "folder /DC0/vm/preexisting/kf/one"}, paths(removed))
	left, err := c.ListContainers(ctx, "one")
	require.NoError(t, err)
	assert.Equal(t, []string{"folder /DC0/vm/preexisting/kf"}, paths(left))

	removed, err = c.RemoveContainers(ctx, "one")
	require.NoError(t, err)
	assert.Empty(t, removed, "idempotent")

	vms, err := c.ListVMs(ctx, "two", "")
	require.NoError(t, err)
	_, err = c.DestroyVMs(ctx, []types.ManagedObjectReference{vms[0].Ref})
	require.NoError(t, err)
	removed, err = c.RemoveContainers(ctx, "two")
	require.NoError(t, err)
	assert.Equal(t, []string{"resource pool /DC0/host/DC0_C0/Resources/two", "folder /DC0/vm/preexisting/kf/two"}, paths(removed))
	removed, err = c.RemoveContainers(ctx, "one")
	require.NoError(t, err)
	assert.Equal(t, []string{"folder /DC0/vm/preexisting/kf"}, paths(removed), "kf is empty now: it goes with the cluster that made it")
	_, err = c.FindFolder(ctx, "preexisting")
	assert.NoError(t, err, "a folder made before stays")
}

// TestContainersOnlyByTheirOwnAttribute: before any run has defined the
// container attribute, a folder or pool carrying another custom attribute
// whose value is the cluster's name is not the cluster's: not listed, and
// not removed.
func TestContainersOnlyByTheirOwnAttribute(t *testing.T) {
	c := newSim(t).client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dc, err := find.NewFinder(c.Vim25()).DefaultDatacenter(ctx)
	require.NoError(t, err)
	dcFolders, err := dc.Folders(ctx)
	require.NoError(t, err)
	theirs, err := dcFolders.VmFolder.CreateFolder(ctx, "theirs")
	require.NoError(t, err)
	fields, err := object.GetCustomFieldsManager(c.Vim25())
	require.NoError(t, err)
	for _, name := range []string{"team", "cost-centre", "project"} {
		def, err := fields.Add(ctx, name, "", nil, nil)
		require.NoError(t, err)
		require.NoError(t, fields.Set(ctx, theirs.Reference(), def.Key, "one"))
	}

	list, err := c.ListContainers(ctx, "one")
	require.NoError(t, err)
	assert.Empty(t, list)
	removed, err := c.RemoveContainers(ctx, "one")
	require.NoError(t, err)
	assert.Empty(t, removed)
	_, err = find.NewFinder(c.Vim25()).Folder(ctx, "/DC0/vm/theirs")
	require.NoError(t, err, "the folder is still there")
}
