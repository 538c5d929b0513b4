package nsxt_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// NSX's search index trails writes. An update that drops what was made a
// moment ago, while the index does not show it yet, still deletes it: it
// finds what it owns in NSX's store too. Each case makes a set of objects
// (want), then, with the index frozen, makes more and drops it again; once
// the index catches up, NSX holds exactly want and its allocations, and
// doing it again writes nothing.
func TestUpdateDropsWhatTheIndexDoesNotShowYet(t *testing.T) {
	ctx := context.Background()
	svc := func(topo nsxt.Topology, ports ...int) nsxt.LoadBalancer {
		lb := nsxt.LoadBalancer{ClusterID: topo.ClusterID, Namespace: "web", Name: "fe",
			FloatingIPPoolPaths: topo.FloatingIPPoolPaths, Nodes: []string{"172.23.0.20"}}
		for _, p := range ports {
			lb.Ports = append(lb.Ports, nsxt.ServicePort{Port: p, NodePort: 30000 + p})
		}
		return lb
	}
	ensure := func(c *nsxt.Client, lb nsxt.LoadBalancer) (int, error) {
		st, err := c.EnsureLoadBalancer(ctx, lb)
		if err != nil {
			return 0, err
		}
		return st.Writes, nil
	}
	policy := func(topo nsxt.Topology, peers ...string) nsxt.NetworkPolicy {
		np := nsxt.NetworkPolicy{ClusterID: topo.ClusterID, Namespace: "web", Name: "db",
			PodSelector: nsxt.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}
		for _, p := range peers {
			np.Ingress = append(np.Ingress, nsxt.PolicyRule{
				Peers: []nsxt.Peer{{PodSelector: &nsxt.LabelSelector{MatchLabels: map[string]string{"app": p}}}},
				Ports: []nsxt.PolicyPort{{Port: 5432}}})
		}
		np.Egress = []nsxt.PolicyRule{{Ports: []nsxt.PolicyPort{{Protocol: "UDP", Port: 53}}}}
		return np
	}
	apply := func(c *nsxt.Client, np nsxt.NetworkPolicy) (int, error) {
		_, w, err := c.ApplyNetworkPolicy(ctx, np)
		return w, err
	}
	build := func(c *nsxt.Client, topo nsxt.Topology) (int, error) {
		n, err := c.BuildTopology(ctx, topo)
		if err != nil {
			return 0, err
		}
		return n.Writes, nil
	}
	// EnsureNamespace reports no writes: the end counts what NSX saw.
	ensureNS := func(c *nsxt.Client, topo nsxt.Topology) (int, error) {
		_, err := c.EnsureNamespace(ctx, topo, "web")
		return 0, err
	}

	for _, tc := range []struct {
		name string
		// topo edits the cluster's Topology, built first.
		topo func(*nsxt.Topology)
		// base is written before the index is frozen, want is what NSX
		// must hold in the end, more what is made and dropped while the
		// index is frozen (each step in turn, then want).
		base func(c *nsxt.Client, topo nsxt.Topology) error
		more []func(c *nsxt.Client, topo nsxt.Topology) (int, error)
		want func(c *nsxt.Client, topo nsxt.Topology) (int, error)
	}{
		{
			name: "a Service's ports shrink right after it is made",
			more: []func(*nsxt.Client, nsxt.Topology) (int, error){
				func(c *nsxt.Client, topo nsxt.Topology) (int, error) { return ensure(c, svc(topo, 80, 443)) },
			},
			want: func(c *nsxt.Client, topo nsxt.Topology) (int, error) { return ensure(c, svc(topo, 80)) },
		},
		{
			name: "a Service's ports shrink right after they changed",
			base: func(c *nsxt.Client, topo nsxt.Topology) error { _, err := ensure(c, svc(topo, 80, 443)); return err },
			more: []func(*nsxt.Client, nsxt.Topology) (int, error){
				func(c *nsxt.Client, topo nsxt.Topology) (int, error) { return ensure(c, svc(topo, 80, 8080, 9090)) },
			},
			want: func(c *nsxt.Client, topo nsxt.Topology) (int, error) { return ensure(c, svc(topo, 80)) },
		},
		{
			name: "a namespace goes right after it came",
			more: []func(*nsxt.Client, nsxt.Topology) (int, error){
				func(c *nsxt.Client, topo nsxt.Topology) (int, error) {
					topo.Namespaces = append(topo.Namespaces, "b", "c")
					return build(c, topo)
				},
			},
			want: build,
		},
		{
			name: "default deny goes right after it came",
			more: []func(*nsxt.Client, nsxt.Topology) (int, error){
				func(c *nsxt.Client, topo nsxt.Topology) (int, error) { topo.DefaultDeny = true; return build(c, topo) },
			},
			want: build,
		},
		{
			name: "single-tier goes right after it came",
			more: []func(*nsxt.Client, nsxt.Topology) (int, error){
				func(c *nsxt.Client, topo nsxt.Topology) (int, error) { topo.SingleTier = true; return build(c, topo) },
			},
			want: build,
		},
		{
			name: "a NetworkPolicy's rules and groups go right after they came",
			base: func(c *nsxt.Client, topo nsxt.Topology) error { _, err := apply(c, policy(topo, "a")); return err },
			more: []func(*nsxt.Client, nsxt.Topology) (int, error){
				func(c *nsxt.Client, topo nsxt.Topology) (int, error) { return apply(c, policy(topo, "a", "b", "c")) },
			},
			want: func(c *nsxt.Client, topo nsxt.Topology) (int, error) { return apply(c, policy(topo, "a")) },
		},
		{
			name: "a namespace of a controller turns routable right after it came",
			topo: func(topo *nsxt.Topology) { topo.NamespacesManagedElsewhere = true },
			more: []func(*nsxt.Client, nsxt.Topology) (int, error){
				func(c *nsxt.Client, topo nsxt.Topology) (int, error) {
					topo.DefaultDeny = true
					return ensureNS(c, topo)
				},
			},
			want: func(c *nsxt.Client, topo nsxt.Topology) (int, error) {
				topo.PodRoutable = true
				return ensureNS(c, topo)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := func(sim *simulator.Server) nsxt.Topology {
				topo := topology(sim, "c1", "web")
				if tc.topo != nil {
					tc.topo(&topo)
				}
				return topo
			}
			e := newEnv(t, simulator.Config{})
			topo := cluster(e.sim)
			_, err := e.c.BuildTopology(ctx, topo)
			require.NoError(t, err)
			if tc.base != nil {
				require.NoError(t, tc.base(e.c, topo))
			}
			// What want alone makes, in a twin NSX: the expected end.
			twin := newEnv(t, simulator.Config{})
			_, err = twin.c.BuildTopology(ctx, cluster(twin.sim))
			require.NoError(t, err)
			_, err = tc.want(twin.c, cluster(twin.sim))
			require.NoError(t, err)

			e.sim.FreezeSearch() // the index shows nothing written from now on
			for _, step := range tc.more {
				_, err := step(e.c, topo)
				require.NoError(t, err)
			}
			_, err = tc.want(newClient(t, e.sim), topo)
			require.NoError(t, err)
			e.sim.ThawSearch()

			require.Equal(t, twin.sim.Paths(), e.sim.Paths(), "NSX holds what want makes, no more")
			require.Equal(t, len(allocatedIn(twin.sim)), len(allocatedIn(e.sim)), "and as many subnets and addresses: %v", allocatedIn(e.sim))
			for src, v := range twin.sim.Allocated() {
				require.Len(t, e.sim.Allocated()[src], len(v), src)
			}
			writes := e.sim.Writes()
			w, err := tc.want(e.c, topo)
			require.NoError(t, err)
			require.Zero(t, w)
			_, err = e.c.BuildTopology(ctx, topo)
			require.NoError(t, err)
			require.Equal(t, writes, e.sim.Writes(), "doing it again writes nothing")
		})
	}
}

// A rebuild with no change reads, besides the two searches and the
// realized state of the allocations, what it may delete: what follows from
// the cluster id, and per kept namespace only its policy's rules (a rule
// made a moment ago and no longer wanted may not show in the index yet).
// What it keeps and the index shows is not read again.
func TestRebuildReads(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		namespaces int
		reads      int64
	}{
		// 2 searches (the inventory, the cluster's objects); 6 GETs (IP
		// pool, tier-1, load balancer, node segment and group, the
		// cluster's policy) and 2 listings (the pool's subnets, the
		// cluster's policy's rules); the tier-1's locale services and NAT
		// rules; the API's pool and virtual server; the realized state of
		// the node subnet, SNAT and API addresses: 17. Per namespace: GETs
		// of its segment, group and policy, a listing of its policy's
		// rules, and the realized state of its subnet and address: 6. The
		// store reads are what keeps an update from missing what the
		// search index does not show yet.
		{1, 17 + 6}, {10, 17 + 6*10},
	} {
		e := newEnv(t, simulator.Config{})
		var ns []string
		for i := range tc.namespaces {
			ns = append(ns, fmt.Sprintf("ns-%02d", i))
		}
		topo := topology(e.sim, "c1", ns...)
		_, err := e.c.BuildTopology(ctx, topo)
		require.NoError(t, err)
		c := newClient(t, e.sim)
		r0, w0 := c.Calls()
		again, err := c.BuildTopology(ctx, topo)
		require.NoError(t, err)
		r1, w1 := c.Calls()
		require.Zero(t, again.Writes)
		require.Equal(t, w0, w1)
		t.Logf("%d namespaces: %d reads", tc.namespaces, r1-r0)
		require.Equal(t, tc.reads, r1-r0, "reads of a no-change rebuild with %d namespaces", tc.namespaces)
	}
}
