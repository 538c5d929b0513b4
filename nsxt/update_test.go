package nsxt_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

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

// Right after a teardown the search index still shows what it deleted. A
// rebuild at once (the index frozen: it never catches up) reads from NSX
// that none of it is there, and makes it all again without reading again
// or waiting: NSX then holds exactly what a fresh build makes. The same
// holds for a Service deleted and made again at once.
func TestRebuildRightAfterTeardown(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		inv  *simulator.Inventory
		topo func(*simulator.Server) nsxt.Topology
		// extra are the writes beyond a fresh build's.
		extra int
	}{
		// The addresses the index shows are not read by path: their
		// realized state says NSX no longer holds them, and they are made
		// in one more allocation PATCH.
		{"one block and pool", nil, func(sim *simulator.Server) nsxt.Topology { return topology(sim, "c1", "a", "b") }, 1},
		// Allocations that may come from two sources are read by path
		// before the first PATCH.
		{"two blocks and pools", twoOfEach(), func(sim *simulator.Server) nsxt.Topology { return withBoth(topology(sim, "c1", "a", "b", "c")) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, simulator.Config{Inventory: tc.inv})
			topo := tc.topo(e.sim)
			_, err := e.c.BuildTopology(ctx, topo)
			require.NoError(t, err)
			lb := nsxt.LoadBalancer{ClusterID: "c1", Namespace: "a", Name: "fe", FloatingIPPoolPaths: topo.FloatingIPPoolPaths,
				Nodes: []string{"172.23.0.20"}, Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}}}
			_, err = e.c.EnsureLoadBalancer(ctx, lb)
			require.NoError(t, err)
			built, allocated := e.sim.Paths(), allocatedIn(e.sim)

			e.sim.FreezeSearch() // the index shows the build, and nothing after
			_, err = e.c.TeardownTopology(ctx, "c1")
			require.NoError(t, err)
			requireNothingLeft(t, e.sim)
			require.Equal(t, len(built), indexed(t, e.sim, "c1"), "the index still shows every object")

			c := newClient(t, e.sim)
			searches := e.sim.Requests()[searchKey]
			n, err := c.BuildTopology(ctx, topo)
			require.NoError(t, err)
			require.Equal(t, 2, e.sim.Requests()[searchKey]-searches, "the inventory and the cluster's objects, read once: no conflict, no waiting")
			require.True(t, n.Namespaces["a"].Subnet.IsValid())
			searches = e.sim.Requests()[searchKey]
			st, err := c.EnsureLoadBalancer(ctx, lb)
			require.NoError(t, err)
			require.NotEmpty(t, st.IP)
			require.Equal(t, 1, e.sim.Requests()[searchKey]-searches, "the Service's objects, read once")

			// What a fresh build makes, in a twin NSX.
			twin := newEnv(t, simulator.Config{Inventory: tc.inv})
			fresh, err := twin.c.BuildTopology(ctx, tc.topo(twin.sim))
			require.NoError(t, err)
			require.Equal(t, fresh.Writes+tc.extra, n.Writes)
			_, err = twin.c.EnsureLoadBalancer(ctx, lb)
			require.NoError(t, err)
			require.Equal(t, twin.sim.Paths(), e.sim.Paths(), "NSX holds what a fresh build makes")
			require.Equal(t, built, e.sim.Paths())
			require.Len(t, allocatedIn(e.sim), len(allocated), "as many subnets and addresses")
			for src, v := range twin.sim.Allocated() {
				require.Len(t, e.sim.Allocated()[src], len(v), src)
			}

			again, err := c.BuildTopology(ctx, topo)
			require.NoError(t, err)
			require.Zero(t, again.Writes, "%s", again.Plan)
			e.sim.ThawSearch()
			teardownLeavesNothing(t, e, "c1")
		})
	}
}

// Switching SingleTier moves the segments and their SNAT rules between
// the tier-1 and the tier-0. Right after a build, while the search index
// shows nothing of it or only what came before, each switch (on, off,
// and back) finds the NAT rules on the gateway it no longer uses in NSX's
// store (the gateways the cluster's segments hang off, read by path) and
// deletes them: NSX then holds what a fresh build of that Topology makes.
func TestSingleTierSwitchWithinTheIndexLag(t *testing.T) {
	ctx := context.Background()
	natRules := func(sim *simulator.Server, gw string) []string {
		var out []string
		for _, p := range ownedBy(sim, "c1", "") {
			if strings.HasPrefix(p, gw+"/nat/") {
				out = append(out, p)
			}
		}
		return out
	}
	for _, start := range []bool{false, true} {
		for _, freezeFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("single-tier %v first, the index frozen before the build %v", start, freezeFirst), func(t *testing.T) {
				e := newEnv(t, simulator.Config{})
				topo := topology(e.sim, "c1", "a", "b")
				topo.SingleTier = start
				if freezeFirst {
					e.sim.FreezeSearch() // the index shows nothing of the cluster
				}
				_, err := e.c.BuildTopology(ctx, topo)
				require.NoError(t, err)
				if !freezeFirst {
					e.sim.FreezeSearch() // the first build, nothing after
				}
				for _, single := range []bool{!start, start, !start} {
					topo.SingleTier = single
					_, err := newClient(t, e.sim).BuildTopology(ctx, topo)
					require.NoError(t, err)
					used, unused := topo.Tier0Path, "/infra/tier-1s/kf_c1"
					if !single {
						used, unused = unused, used
					}
					require.Empty(t, natRules(e.sim, unused), "no NAT rule of the cluster is left on %s", unused)
					require.Len(t, natRules(e.sim, used), 3, "the nodes' and two namespaces' SNAT rules on %s", used)

					twin := newEnv(t, simulator.Config{})
					fresh := topology(twin.sim, "c1", "a", "b")
					fresh.SingleTier = single
					_, err = twin.c.BuildTopology(ctx, fresh)
					require.NoError(t, err)
					require.Equal(t, twin.sim.Paths(), e.sim.Paths(), "NSX holds what a fresh build makes")
				}
				e.sim.ThawSearch()
				teardownLeavesNothing(t, e, "c1")
			})
		}
	}
}

// An allocation that may come from several pools, which the stale index
// shows in one pool where NSX no longer holds it (its namespace torn down
// a moment ago), may meanwhile have been made in another of its pools (by
// another client, or by a run that crashed): the rebuild reads its other
// paths before making it, and takes that copy rather than making a
// second one.
func TestRebuildFindsAnAllocationMadeElsewhereWhileTheIndexLags(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
	topo := withBoth(topology(e.sim, "c1", "a", "b"))
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	copies := func() []string {
		var out []string
		for _, p := range e.sim.Paths() {
			if strings.HasSuffix(p, "/ip-allocations/kf_c1_ns_a") {
				out = append(out, p)
			}
		}
		return out
	}
	first := copies()
	require.Len(t, first, 1)
	require.True(t, strings.HasPrefix(first[0], topo.FloatingIPPoolPaths[0]+"/"), first[0])
	orig := e.sim.Object(first[0])

	e.sim.FreezeSearch() // the index shows the build, and nothing after
	_, err = e.c.TeardownNamespace(ctx, "c1", "a")
	require.NoError(t, err)
	require.Empty(t, copies())
	elsewhere := topo.FloatingIPPoolPaths[1] + "/ip-allocations/kf_c1_ns_a"
	handMade(t, e.sim, elsewhere, map[string]any{"resource_type": "IpAddressAllocation", "tags": orig["tags"]})

	_, err = newClient(t, e.sim).BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, []string{elsewhere}, copies(), "one copy, the one NSX holds")
	e.sim.ThawSearch()
	teardownLeavesNothing(t, e, "c1")
}

// Another writer deletes a subnet this apply has just allocated, before
// NSX has realized it: the apply does not take the hole for the search
// index's lag (it made the subnet itself) but for a concurrent change,
// reads again and allocates it anew; the segment is built on the subnet
// NSX holds.
func TestAllocationDeletedRightAfterItIsMade(t *testing.T) {
	ctx := context.Background()
	core, logs := observer.New(zap.InfoLevel)
	e := newEnv(t, simulator.Config{}, nsxt.WithLogger(zap.New(core)))
	topo := topology(e.sim, "c1", "a")
	subnet := "/infra/ip-pools/kf_c1/ip-subnets/ns_a_pods-block"
	var deleted error = errors.New("never deleted")
	// The subnet's realized state is first read after the allocation
	// PATCH.
	e.sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: regexp.MustCompile(`/realized-entities$`),
		Query: regexp.MustCompile(`intent_path=` + regexp.QuoteMeta(subnet) + `$`), Nth: 1,
		Before: func() { deleted = e.sim.Delete(subnet) }})
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.NoError(t, deleted, "the subnet existed when the first realized state was read")
	require.Equal(t, 1, logs.FilterMessage("nsx reported a concurrent change; reading again").
		FilterFieldKey("error").Len(), "%v", logs.All())
	require.Contains(t, fmt.Sprint(logs.FilterMessage("nsx reported a concurrent change; reading again").All()[0].ContextMap()["error"]),
		subnet+" is gone since it was created")
	require.Equal(t, 3, n.Writes, "allocate, allocate the subnet again, configure")

	got := n.Namespaces["a"].Subnet
	require.NotNil(t, e.sim.Object(subnet))
	seg := e.sim.Object(n.Namespaces["a"].SegmentPath)
	gw := seg["subnets"].([]any)[0].(map[string]any)["gateway_address"].(string)
	require.True(t, got.Contains(netip.MustParsePrefix(gw).Addr()), "gateway %s in %s", gw, got)
	require.Equal(t, []string{got.String()}, e.sim.Allocated()["/infra/ip-blocks/"+e.sim.Inventory().PodBlock.ID],
		"the subnet NSX holds; the first went back to the block")

	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes)
	teardownLeavesNothing(t, e, "c1")
}

// NSX deletes asynchronously: what a teardown deletes stays, marked for
// delete, until NSX's purge cycle. The teardown is done when nothing of
// the cluster is left unmarked (the search shows the marked objects; they
// are not the cluster's any more), and a second one writes nothing. A
// rebuild before the purge is refused (500045) and waits for it, then
// builds what a fresh build makes; with no wait allowed, it fails at once
// with ErrPendingDelete naming the path.
func TestRebuildWhileNSXPurges(t *testing.T) {
	ctx := context.Background()
	core, logs := observer.New(zap.InfoLevel)
	e := newEnv(t, simulator.Config{PurgeAfter: time.Hour}, nsxt.WithLogger(zap.New(core)), nsxt.WithPurgeWait(20*time.Millisecond, time.Minute), nsxt.WithRateLimit(0, 1))
	topo := topology(e.sim, "c1", "a", "b")
	fresh, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	built := e.sim.Paths()

	td, err := e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, 1, td.Writes)
	require.Empty(t, e.sim.Paths())
	require.Subset(t, e.sim.Marked(), built, "NSX has not purged anything yet")
	td, err = e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.Zero(t, td.Writes, "what is marked for delete is not the cluster's any more")

	// Without waiting: refused at once, nothing else written.
	impatient := newClient(t, e.sim, nsxt.WithPurgeWait(time.Millisecond, 0))
	writes := e.sim.Writes()
	_, err = impatient.BuildTopology(ctx, topo)
	require.ErrorIs(t, err, nsxt.ErrPendingDelete)
	require.ErrorContains(t, err, "is marked for deletion")
	require.Equal(t, writes+1, e.sim.Writes(), "the refused PATCH")

	// Waiting: NSX purges between the first refusal and the next try.
	e.sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 2, Before: e.sim.Purge})
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, fresh.Writes+1, n.Writes, "the refused PATCH, then a fresh build's")
	require.Equal(t, built, e.sim.Paths())
	require.Equal(t, 1, logs.FilterMessageSnippet("waiting for its purge cycle").Len())
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes)
	_, err = e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	e.sim.Purge()
	requireNothingLeft(t, e.sim)
}
