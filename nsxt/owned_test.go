package nsxt_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

func ownedPaths(objs []nsxt.OwnedObject) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.Path)
	}
	return out
}

// ListOwned lists exactly what NSX holds tagged with the cluster: the
// topology, a namespace added while the search index does not show it
// yet, a Service and a NetworkPolicy, each with its type, name and tags,
// and nothing of another cluster. After a teardown, before NSX purges
// what it deleted, it lists nothing; the other cluster's list is
// unchanged.
func TestListOwned(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{PurgeAfter: time.Hour})
	topo := topology(e.sim, "c1", "a")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	_, err = e.c.BuildTopology(ctx, topology(e.sim, "c2", "a"))
	require.NoError(t, err)
	other, err := e.c.ListOwned(ctx, "c2")
	require.NoError(t, err)
	require.Equal(t, ownedBy(e.sim, "c2", ""), ownedPaths(other))

	// An object renamed in NSX (its display name, not its id) is listed
	// by the name NSX shows.
	require.NoError(t, e.sim.Patch("/infra/lb-pools/kf_c1_api", map[string]any{"display_name": "c1 API servers"}))

	e.sim.FreezeSearch() // the index shows nothing written from here on
	topo.NamespacesManagedElsewhere = true
	_, err = e.c.EnsureNamespace(ctx, topo, "b")
	require.NoError(t, err)
	_, err = e.c.EnsureLoadBalancer(ctx, nsxt.LoadBalancer{ClusterID: "c1", Namespace: "a", Name: "fe",
		FloatingIPPoolPaths: topo.FloatingIPPoolPaths, Nodes: []string{"172.23.0.10"}, Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}}})
	require.NoError(t, err)
	_, _, err = e.c.ApplyNetworkPolicy(ctx, nsxt.NetworkPolicy{ClusterID: "c1", Namespace: "a", Name: "deny"})
	require.NoError(t, err)

	objs, err := e.c.ListOwned(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, ownedBy(e.sim, "c1", ""), ownedPaths(objs), "what NSX holds of c1, in path order")
	byPath := map[string]nsxt.OwnedObject{}
	types := map[string]bool{}
	for _, o := range objs {
		byPath[o.Path] = o
		types[o.Type] = true
		require.NotEmpty(t, o.Name, o.Path)
	}
	for _, typ := range []string{"Tier1", "LocaleServices", "Segment", "PolicyNatRule", "LBService", "LBPool", "LBVirtualServer",
		"Group", "SecurityPolicy", "Rule", "IpAddressPool", "IpAddressPoolBlockSubnet", "IpAddressAllocation"} {
		require.True(t, types[typ], "lists a %s", typ)
	}
	require.Equal(t, nsxt.OwnedObject{Type: "Tier1", Path: "/infra/tier-1s/kf_c1", Name: "kf_c1"}, byPath["/infra/tier-1s/kf_c1"])
	require.Equal(t, nsxt.OwnedObject{Type: "Segment", Path: "/infra/segments/kf_c1_ns_b", Name: "kf_c1_ns_b", Namespace: "b"},
		byPath["/infra/segments/kf_c1_ns_b"], "a namespace the search index does not show yet")
	require.Equal(t, "c1 API servers", byPath["/infra/lb-pools/kf_c1_api"].Name, "the display name, not the id")
	require.Equal(t, "a/fe", byPath["/infra/lb-virtual-servers/kf_c1_svc_a_fe_tcp_80"].Service)
	require.Equal(t, "a", byPath["/infra/lb-virtual-servers/kf_c1_svc_a_fe_tcp_80"].Namespace)
	var policies int
	for _, o := range objs {
		if o.NetworkPolicy == "a/deny" {
			policies++
		}
	}
	require.NotZero(t, policies, "the NetworkPolicy's objects carry its name")

	_, err = e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.NotEmpty(t, e.sim.Marked(), "NSX has not purged what the teardown deleted")
	objs, err = e.c.ListOwned(ctx, "c1")
	require.NoError(t, err)
	require.Empty(t, objs)
	again, err := e.c.ListOwned(ctx, "c2")
	require.NoError(t, err)
	require.Equal(t, other, again)

	_, err = e.c.ListOwned(ctx, "C1")
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
}

// Clusters lists every cluster that owns something in NSX, once each, and
// not one whose objects a teardown deleted, before NSX purges them.
func TestClusters(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{PurgeAfter: time.Hour})
	none, err := e.c.Clusters(ctx)
	require.NoError(t, err)
	require.Empty(t, none)
	for _, id := range []string{"c2", "c1"} {
		_, err := e.c.BuildTopology(ctx, topology(e.sim, id, "a"))
		require.NoError(t, err)
	}
	ids, err := e.c.Clusters(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"c1", "c2"}, ids)
	_, err = e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.NotEmpty(t, e.sim.Marked())
	ids, err = e.c.Clusters(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"c2"}, ids)
}
