package lifecycle_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/lifecycle"
	"github.com/kubefoundry/kubefoundry/lifecycle/simulator"
	"github.com/kubefoundry/kubefoundry/nsxt"
)

// What a cluster no record knows left on the foundation (a cloud config,
// its NSX network) is listed as orphans, cluster by
// cluster; what a recorded cluster has, and what is not kubefoundry's,
// is not. DeleteOrphans removes the orphans and nothing else.
func TestOrphans(t *testing.T) {
	bins := binaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	f, err := simulator.Start(ctx, simulator.Config{Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, f.Close()) })
	lf, err := f.Lifecycle(ctx, bins, "1.36.3")
	require.NoError(t, err)
	st, err := lifecycle.OpenStore(filepath.Join(t.TempDir(), "lifecycle.db"))
	require.NoError(t, err)
	defer st.Close()
	m, err := lifecycle.New(lifecycle.Config{Foundation: lf, Store: st, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)

	none, err := m.Orphans(ctx)
	require.NoError(t, err)
	assert.Empty(t, none)

	// ghost's leftovers, and alpha's (recorded), and someone else's.
	topo := func(id string) nsxt.Topology {
		return nsxt.Topology{ClusterID: id, Tier0Path: lf.Tier0Path, EdgeClusterPath: lf.EdgeClusterPath,
			TransportZonePath: lf.TransportZonePath, NodeIPBlockPath: lf.NodeIPBlockPath, PodIPBlockPaths: lf.PodIPBlockPaths,
			FloatingIPPoolPaths: lf.FloatingIPPoolPaths, NamespacesManagedElsewhere: true}
	}
	for _, id := range []string{"ghost", "alpha"} {
		_, err := lf.NSX.BuildTopology(ctx, topo(id))
		require.NoError(t, err)
	}
	require.NoError(t, st.PutCluster(lifecycle.ClusterRecord{Spec: lifecycle.ClusterSpec{Name: "alpha"}, State: lifecycle.StateRunning}))
	for _, name := range []string{"kubefoundry-ghost", "kubefoundry-alpha", "someone-else", "kubefoundry-Not_A_Name"} {
		_, err := f.Director.UpdateConfig("cloud", name, []byte("azs: [{name: "+name+"-z1}]\n"))
		require.NoError(t, err)
	}
	found, err := m.Orphans(ctx)
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, o := range found {
		assert.Equal(t, "ghost", o.Cluster, "%+v", o)
		kinds[o.System+" "+o.Kind]++
	}
	assert.Equal(t, 1, kinds["bosh cloud config"])
	assert.Equal(t, 1, kinds["nsx Tier1"])
	assert.Greater(t, kinds["nsx LBVirtualServer"]+kinds["nsx Segment"], 0)
	owned, err := lf.NSX.ListOwned(ctx, "ghost")
	require.NoError(t, err)
	assert.Len(t, found, 1+len(owned), "ghost's cloud config and every NSX object of it (a deployment's is in TestCreateAndDelete)")

	deleted, err := m.DeleteOrphans(ctx)
	require.NoError(t, err)
	assert.Equal(t, found, deleted)
	left, err := m.Orphans(ctx)
	require.NoError(t, err)
	assert.Empty(t, left, "nothing of ghost is left")
	owned, err = lf.NSX.ListOwned(ctx, "alpha")
	require.NoError(t, err)
	assert.NotEmpty(t, owned, "alpha's network stays: alpha is recorded")
	cfgs, err := f.Director.Configs("cloud")
	require.NoError(t, err)
	var names []string
	for _, c := range cfgs {
		names = append(names, c.Name)
	}
	assert.Subset(t, names, []string{"kubefoundry-alpha", "someone-else", "kubefoundry-Not_A_Name"}, "what is not an orphan stays")
	assert.NotContains(t, names, "kubefoundry-ghost")
}
