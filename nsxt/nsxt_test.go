package nsxt_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

type env struct {
	sim *simulator.Server
	c   *nsxt.Client
}

func newEnv(t testing.TB, cfg simulator.Config, opts ...nsxt.Option) *env {
	t.Helper()
	sim, err := simulator.New(cfg)
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts = append([]nsxt.Option{nsxt.WithLogger(zaptest.NewLogger(t)), nsxt.WithRetry(4, 10*time.Millisecond)}, opts...)
	c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(), Password: sim.Password(),
		CACert: string(sim.CertificatePEM())}, opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &env{sim: sim, c: c}
}

func topology(sim *simulator.Server, cluster string, namespaces ...string) nsxt.Topology {
	inv := sim.Inventory()
	return nsxt.Topology{
		ClusterID:          cluster,
		Tier0Path:          "/infra/tier-0s/" + inv.Tier0,
		EdgeClusterPath:    inv.EdgeClusterPath(),
		TransportZonePath:  inv.TransportZonePath(),
		NodeIPBlockPath:    "/infra/ip-blocks/" + inv.NodeBlock.ID,
		PodIPBlockPath:     "/infra/ip-blocks/" + inv.PodBlock.ID,
		FloatingIPPoolPath: "/infra/ip-pools/" + inv.FloatingPool,
		APIMembers:         []string{"172.23.0.10", "172.23.0.11", "172.23.0.12"},
		Namespaces:         namespaces,
	}
}

func TestBuildTopology(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "default", "kube-system")
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	t.Logf("plan:\n%s", n.Plan)
	t.Logf("network: %+v", n)
	require.Equal(t, 2, n.Writes)
	require.Equal(t, "172.23.0.0/24", n.NodeSubnet.String())

	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 0, again.Writes, "%s", again.Plan)

	td, err := e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	t.Logf("deleted %d", len(td.Deleted))
	require.Empty(t, e.sim.Paths())
}
