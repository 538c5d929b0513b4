package nsxt_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// The fields of TKGI's network profile: several pod IP blocks and
// floating pools (pod_ip_block_ids, fip_pool_ids), routable pods
// (pod_routable) and a limit of LoadBalancer Services (max_l4_lb_service).

const (
	block2 = "/infra/ip-blocks/pods-2"
	pool2  = "/infra/ip-pools/fip-2"
)

// twoOfEach has a pod block with room for two /24s and a floating pool of
// four addresses, each followed by a roomy second one.
func twoOfEach() *simulator.Inventory {
	inv := simulator.DefaultInventory()
	inv.PodBlock = simulator.Block{ID: "pods-block", CIDR: "172.24.0.0/23"}
	inv.FloatingRange = [2]string{"10.40.14.10", "10.40.14.13"}
	inv.MorePodBlocks = []simulator.Block{{ID: "pods-2", CIDR: "172.30.0.0/16"}}
	inv.MoreFloatingPools = []simulator.Pool{{ID: "fip-2", CIDR: "10.50.0.0/24", Range: [2]string{"10.50.0.10", "10.50.0.250"}}}
	return &inv
}

func withBoth(topo nsxt.Topology) nsxt.Topology {
	topo.PodIPBlockPaths = append(topo.PodIPBlockPaths, block2)
	topo.FloatingIPPoolPaths = append(topo.FloatingIPPoolPaths, pool2)
	return topo
}

// nsSubnet is the path of namespace ns's subnet in cluster c1, carved
// from block: its id names the block.
func nsSubnet(ns, block string) string {
	return "/infra/ip-pools/kf_c1/ip-subnets/ns_" + ns + "_" + path.Base(block)
}

// subnetBlock is the block namespace ns's subnet in cluster c1 comes
// from, or "" when NSX holds none.
func subnetBlock(sim *simulator.Server, ns string) string {
	for _, p := range sim.Paths() {
		if strings.HasPrefix(p, "/infra/ip-pools/kf_c1/ip-subnets/ns_"+ns+"_") {
			b, _ := sim.Object(p)["ip_block_path"].(string)
			return b
		}
	}
	return ""
}

// searchKey counts the simulator's search requests in Requests.
const searchKey = "GET /policy/api/v1/search/query"

// allocationPaths counts the subnets and addresses the simulator holds.
func allocationPaths(sim *simulator.Server) (subnets, addrs int) {
	for _, p := range sim.Paths() {
		switch {
		case strings.Contains(p, "/ip-subnets/"):
			subnets++
		case strings.Contains(p, "/ip-allocations/"):
			addrs++
		}
	}
	return subnets, addrs
}

// requireNothingLeft checks that the simulator holds nothing a client made
// and that every block and pool has everything back.
func requireNothingLeft(t *testing.T, sim *simulator.Server) {
	t.Helper()
	require.Empty(t, sim.Paths(), "no owned object is left")
	require.Empty(t, sim.Allocated(), "every subnet and address went back")
}

// teardownLeavesNothing tears cluster down, the last cluster in e's
// simulator, and checks that nothing is left.
func teardownLeavesNothing(t *testing.T, e *env, cluster string) {
	t.Helper()
	_, err := e.c.TeardownTopology(context.Background(), cluster)
	require.NoError(t, err)
	requireNothingLeft(t, e.sim)
}

// Subnets and addresses come from the first block and pool with room; one
// NSX cannot allocate is released and made again from the next. Rebuilding
// finds each where it is, and teardown returns them all.
func TestSeveralPodBlocksAndFloatingPools(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
	ctx := context.Background()
	inv := e.sim.Inventory()
	block1, pool1 := "/infra/ip-blocks/"+inv.PodBlock.ID, "/infra/ip-pools/"+inv.FloatingPool
	topo := withBoth(topology(e.sim, "c1", "a", "b", "c"))

	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	// Three namespace subnets, two fit the first block; five addresses,
	// four fit the first pool.
	alloc := e.sim.Allocated()
	require.Len(t, alloc[block1], 2)
	require.Len(t, alloc[block2], 1)
	require.Len(t, alloc[pool1], 4)
	require.Len(t, alloc[pool2], 1)
	require.Equal(t, 4, n.Writes, "allocate, release what did not fit, allocate it again, configure")
	var released int
	for _, ch := range n.Plan.Allocate {
		if ch.Action == nsxt.Delete {
			released++
		}
	}
	require.Equal(t, 2, released, "%s", n.Plan)
	subnets, addrs := allocationPaths(e.sim)
	require.Equal(t, 4, subnets, "nodes and three namespaces: nothing failed is left behind")
	require.Equal(t, 5, addrs)

	// The Network reports what NSX holds, wherever it came from.
	seen := map[string]bool{n.SNATAddress: true, n.APIAddress: true}
	var fromBlock2 string
	for _, ns := range []string{"a", "b", "c"} {
		nn := n.Namespaces[ns]
		require.True(t, nn.Subnet.IsValid(), ns)
		require.NotEmpty(t, nn.SNATAddress, ns)
		seen[nn.SNATAddress] = true
		if subnetBlock(e.sim, ns) == block2 {
			fromBlock2 = ns
			require.True(t, mustPrefix(t, "172.30.0.0/16").Contains(nn.Subnet.Addr()), "%s", nn.Subnet)
		}
		seg := e.sim.Object(nn.SegmentPath)
		require.Equal(t, netip.PrefixFrom(nn.Subnet.Addr().Next(), 24).String(), seg["subnets"].([]any)[0].(map[string]any)["gateway_address"])
		nat := e.sim.Object(n.Tier1Path + "/nat/USER/nat-rules/kf_c1_ns_" + ns + "_snat")
		require.Equal(t, nn.SNATAddress, nat["translated_network"])
	}
	require.NotEmpty(t, fromBlock2)
	require.Len(t, seen, 5, "every address is distinct")

	// A subnet from the second block and an address from the second pool
	// are no change.
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "%s", again.Plan)
	require.True(t, again.Plan.Empty())
	require.Equal(t, n.Namespaces, again.Namespaces)
	require.Equal(t, n.SNATAddress, again.SNATAddress)
	require.Equal(t, n.APIAddress, again.APIAddress)
	plan, err := e.c.PlanTopology(ctx, topo)
	require.NoError(t, err)
	require.True(t, plan.Empty(), "%s", plan)

	// A new namespace goes where there is room.
	topo.Namespaces = append(topo.Namespaces, "d")
	added, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, block2, subnetBlock(e.sim, "d"))
	require.NotNil(t, e.sim.Object(pool2+"/ip-allocations/kf_c1_ns_d"))
	require.Equal(t, n.Namespaces["a"], added.Namespaces["a"])

	teardownLeavesNothing(t, e, "c1")
}

// An allocation stays in the block or pool it came from: the list may be
// reordered and grow, and a block freeing up moves nothing, but a block or
// pool that still holds one cannot leave the list.
func TestAllocationsNeverMove(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
	ctx := context.Background()
	inv := e.sim.Inventory()
	block1, pool1 := "/infra/ip-blocks/"+inv.PodBlock.ID, "/infra/ip-pools/"+inv.FloatingPool
	topo := withBoth(topology(e.sim, "c1", "a", "b", "c"))
	first, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, block2, subnetBlock(e.sim, "c"))

	// a goes: the first block has room again, c stays where it is.
	topo.Namespaces = []string{"b", "c"}
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 1, n.Writes)
	for _, ch := range n.Plan.Changes() {
		require.Equal(t, nsxt.Delete, ch.Action, "%s", ch)
		require.Contains(t, ch.Path, "_a", "%s", ch)
	}
	require.Equal(t, first.Namespaces["c"], n.Namespaces["c"])

	// Reordered, nothing moves; what is new comes from the new first.
	topo.PodIPBlockPaths = []string{block2, block1}
	topo.FloatingIPPoolPaths = []string{pool2, pool1}
	n, err = e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, n.Writes, "%s", n.Plan)
	require.Equal(t, first.Namespaces["b"], n.Namespaces["b"])
	topo.Namespaces = append(topo.Namespaces, "e")
	_, err = e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, block2, subnetBlock(e.sim, "e"))
	require.NotNil(t, e.sim.Object(pool2+"/ip-allocations/kf_c1_ns_e"))

	// The block and pool that hold b's subnet and the cluster's addresses
	// cannot go.
	writes := e.sim.Writes()
	for _, tc := range []struct {
		edit  func(*nsxt.Topology)
		field string
		value string
	}{
		{func(t *nsxt.Topology) { t.PodIPBlockPaths = []string{block2} }, "PodIPBlockPaths", block1},
		{func(t *nsxt.Topology) { t.FloatingIPPoolPaths = []string{pool2} }, "FloatingIPPoolPaths", pool1},
	} {
		bad := topo
		tc.edit(&bad)
		_, err = e.c.BuildTopology(ctx, bad)
		var fe *nsxt.FieldError
		require.ErrorAs(t, err, &fe)
		require.ErrorIs(t, err, nsxt.ErrInvalid)
		require.Equal(t, "Topology."+tc.field, fe.Field)
		require.Equal(t, tc.value, fe.Value)
		require.Contains(t, fe.Reason, "never moves")
		_, err = e.c.PlanTopology(ctx, bad)
		require.ErrorAs(t, err, &fe, "the dry run says so too")
	}
	require.Equal(t, writes, e.sim.Writes(), "a refused topology writes nothing")

	teardownLeavesNothing(t, e, "c1")
}

// With every block exhausted the build fails with NSX's reason, naming the
// namespace's subnet and the blocks tried, and leaves nothing in ERROR
// behind. Dropping a namespace makes room in the same build.
func TestEveryBlockExhausted(t *testing.T) {
	inv := simulator.DefaultInventory()
	inv.PodBlock = simulator.Block{ID: "pods-block", CIDR: "172.24.0.0/24"}
	inv.MorePodBlocks = []simulator.Block{{ID: "pods-2", CIDR: "172.30.0.0/24"}}
	e := newEnv(t, simulator.Config{Inventory: &inv})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "a", "b", "c")
	topo.PodIPBlockPaths = append(topo.PodIPBlockPaths, block2)

	_, err := e.c.BuildTopology(ctx, topo)
	var re *nsxt.RealizationError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "ERROR", re.State)
	require.Equal(t, nsSubnet("c", block2), re.Path)
	require.Contains(t, re.Message, "IP block "+block2+" (172.30.0.0/24) is exhausted")
	require.Contains(t, err.Error(), "PodIPBlockPaths (/infra/ip-blocks/pods-block, "+block2+")")
	require.Nil(t, e.sim.Object(re.Path), "what NSX could not allocate is released")
	// What was allocated stays the cluster's (tagged, for the next build
	// or the teardown); nothing in ERROR does.
	subnets, addrs := allocationPaths(e.sim)
	allocated := 0
	for _, v := range e.sim.Allocated() {
		allocated += len(v)
	}
	require.Equal(t, subnets+addrs, allocated)

	// b gives its room to c: its subnet is released before c's is made
	// again, rather than with the rest of b after the allocation stage.
	require.Equal(t, block2, subnetBlock(e.sim, "b"))
	topo.Namespaces = []string{"a", "c"}
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, block2, subnetBlock(e.sim, "c"))
	require.Equal(t, "172.30.0.0/24", n.Namespaces["c"].Subnet.String())
	for _, p := range e.sim.Paths() {
		require.NotContains(t, p, "ns_b")
	}
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "%s", again.Plan)

	teardownLeavesNothing(t, e, "c1")
}

// The node subnet has one block. With no room left there, the build
// fails naming the field, Topology.NodeIPBlockPath, as it names
// PodIPBlockPaths, and wraps NSX's reason: the subnet in state ERROR, or
// NSX's refusal of it.
func TestNodeBlockExhausted(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprint("RefuseFullBlocks=", refuse), func(t *testing.T) {
			inv := simulator.DefaultInventory()
			inv.NodeBlock = simulator.Block{ID: "nodes-block", CIDR: "172.23.0.0/24"} // one node subnet
			e := newEnv(t, simulator.Config{Inventory: &inv, RefuseFullBlocks: refuse})
			ctx := context.Background()
			_, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a"))
			require.NoError(t, err)

			_, err = e.c.BuildTopology(ctx, topology(e.sim, "c2", "a"))
			require.ErrorContains(t, err, "nsxt: NSX could not allocate /infra/ip-pools/kf_c2/ip-subnets/nodes from Topology.NodeIPBlockPath (/infra/ip-blocks/nodes-block): ")
			if refuse {
				var ae *nsxt.APIError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, []int64{520012}, ae.RelatedCodes)
			} else {
				var re *nsxt.RealizationError
				require.ErrorAs(t, err, &re)
				require.Equal(t, "ERROR", re.State)
				require.Equal(t, "/infra/ip-pools/kf_c2/ip-subnets/nodes", re.Path)
				require.Contains(t, re.Message, "IP block /infra/ip-blocks/nodes-block (172.23.0.0/24) is exhausted")
			}
			require.Nil(t, e.sim.Object("/infra/ip-pools/kf_c2/ip-subnets/nodes"), "nothing is left in ERROR")

			for _, c := range []string{"c1", "c2"} {
				_, err = e.c.TeardownTopology(ctx, c)
				require.NoError(t, err)
			}
			requireNothingLeft(t, e.sim)
		})
	}
}

// Routable namespaces get no SNAT address and no SNAT rule; their
// segments hang off the tier-1, which advertises connected segments.
// Switching converges both ways, and a rebuild writes nothing.
func TestPodRoutable(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	inv := e.sim.Inventory()
	pool := "/infra/ip-pools/" + inv.FloatingPool
	topo := topology(e.sim, "c1", "a", "b")
	topo.PodRoutable = true
	snatRule := func(ns string) map[string]any {
		return e.sim.Object("/infra/tier-1s/kf_c1/nat/USER/nat-rules/kf_c1_ns_" + ns + "_snat")
	}
	rebuildWritesNothing := func() {
		t.Helper()
		again, err := e.c.BuildTopology(ctx, topo)
		require.NoError(t, err)
		require.Zero(t, again.Writes, "%s", again.Plan)
	}

	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 2, n.Writes)
	t1 := e.sim.Object(n.Tier1Path)
	require.Contains(t, t1["route_advertisement_types"], "TIER1_CONNECTED", "the namespace segments reach the tier-0")
	for _, ns := range []string{"a", "b"} {
		require.Empty(t, n.Namespaces[ns].SNATAddress)
		require.True(t, n.Namespaces[ns].Subnet.IsValid())
		require.Equal(t, n.Tier1Path, e.sim.Object(n.Namespaces[ns].SegmentPath)["connectivity_path"])
		require.Nil(t, snatRule(ns))
	}
	require.NotNil(t, e.sim.Object(n.Tier1Path+"/nat/USER/nat-rules/kf_c1_nodes_snat"), "the nodes keep their SNAT")
	require.Len(t, e.sim.Allocated()[pool], 2, "the nodes' SNAT and the API address only")
	rebuildWritesNothing()

	// Not routable: the SNAT addresses and rules come.
	topo.PodRoutable = false
	n, err = e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 2, n.Writes)
	for _, ch := range n.Plan.Changes() {
		require.Equal(t, nsxt.Create, ch.Action, "%s", ch)
		require.Contains(t, []string{"IpAddressAllocation", "PolicyNatRule"}, ch.Type, "%s", ch)
	}
	require.Len(t, n.Plan.Changes(), 4)
	for _, ns := range []string{"a", "b"} {
		nn := n.Namespaces[ns]
		require.NotEmpty(t, nn.SNATAddress)
		rule := snatRule(ns)
		require.Equal(t, nn.Subnet.String(), rule["source_network"])
		require.Equal(t, nn.SNATAddress, rule["translated_network"])
	}
	require.Len(t, e.sim.Allocated()[pool], 4)
	rebuildWritesNothing()

	// Routable again: they go, and the addresses return to the pool.
	topo.PodRoutable = true
	n, err = e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 1, n.Writes, "removing needs no allocation")
	require.Len(t, n.Plan.Changes(), 4)
	for _, ch := range n.Plan.Changes() {
		require.Equal(t, nsxt.Delete, ch.Action, "%s", ch)
	}
	require.Nil(t, snatRule("a"))
	require.Len(t, e.sim.Allocated()[pool], 2)
	rebuildWritesNothing()

	// A namespace controller's namespace is routable too.
	ctrl := topo
	ctrl.ClusterID, ctrl.NamespacesManagedElsewhere = "c2", true
	_, err = e.c.BuildTopology(ctx, ctrl)
	require.NoError(t, err)
	nn, err := e.c.EnsureNamespace(ctx, ctrl, "x")
	require.NoError(t, err)
	require.Empty(t, nn.SNATAddress)
	require.Nil(t, e.sim.Object("/infra/tier-1s/kf_c2/nat/USER/nat-rules/kf_c2_ns_x_snat"))

	// Single-tier: the segments are the tier-0's own, with no SNAT.
	single := topology(e.sim, "c3", "a")
	single.SingleTier, single.PodRoutable = true, true
	sn, err := e.c.BuildTopology(ctx, single)
	require.NoError(t, err)
	require.Equal(t, single.Tier0Path, e.sim.Object(sn.Namespaces["a"].SegmentPath)["connectivity_path"])
	require.Nil(t, e.sim.Object(single.Tier0Path+"/nat/USER/nat-rules/kf_c3_ns_a_snat"))
	require.NotNil(t, e.sim.Object(single.Tier0Path+"/nat/USER/nat-rules/kf_c3_nodes_snat"))

	for _, c := range []string{"c1", "c2", "c3"} {
		_, err = e.c.TeardownTopology(ctx, c)
		require.NoError(t, err)
	}
	requireNothingLeft(t, e.sim)
}

// The cluster's limit of LoadBalancer Services holds for new Services,
// across clients, and follows the topology; existing Services may always
// change.
func TestMaxL4LBServices(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "web")
	topo.MaxL4LBServices = 2
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Contains(t, e.sim.Object("/infra/lb-services/kf_c1")["tags"],
		map[string]any{"scope": nsxt.TagMaxL4LBServices, "tag": "2"})
	svc := func(name string) nsxt.LoadBalancer {
		return nsxt.LoadBalancer{ClusterID: "c1", Namespace: "web", Name: name, FloatingIPPoolPaths: topo.FloatingIPPoolPaths,
			Nodes: []string{"172.23.0.20"}, Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}, {Port: 443, NodePort: 30443}}}
	}
	for _, name := range []string{"s1", "s2"} {
		_, err := e.c.EnsureLoadBalancer(ctx, svc(name))
		require.NoError(t, err)
	}

	refused := func(c *nsxt.Client, name string, count, limit int) {
		t.Helper()
		writes := e.sim.Writes()
		_, err := c.EnsureLoadBalancer(ctx, svc(name))
		require.ErrorIs(t, err, nsxt.ErrLimitExceeded)
		require.False(t, errors.Is(err, nsxt.ErrInvalid), "a valid request at a limit")
		var le *nsxt.LimitError
		require.ErrorAs(t, err, &le)
		require.Equal(t, nsxt.LimitError{ClusterID: "c1", Field: "MaxL4LBServices", Limit: limit, Count: count,
			Object: "LoadBalancer Service web/" + name}, *le)
		require.Contains(t, err.Error(), "MaxL4LBServices")
		require.Equal(t, writes, e.sim.Writes(), "nothing is written")
		require.Nil(t, e.sim.Object("/infra/lb-virtual-servers/kf_c1_svc_web_"+name+"_tcp_80"))
	}
	refused(e.c, "s3", 2, 2)

	// An existing Service changes freely at the limit.
	changed := svc("s1")
	changed.Ports = changed.Ports[:1]
	st, err := e.c.EnsureLoadBalancer(ctx, changed)
	require.NoError(t, err)
	require.Equal(t, 1, st.Writes)

	// Another process knows nothing but what NSX holds, and refuses too.
	refused(newClient(t, e.sim), "s3", 2, 2)

	// Room again once a Service goes.
	_, err = e.c.DeleteLoadBalancer(ctx, "c1", "web", "s2")
	require.NoError(t, err)
	_, err = e.c.EnsureLoadBalancer(ctx, svc("s3"))
	require.NoError(t, err)

	// No limit, then a lower one than the Services there are: those stay
	// and may change, new ones wait.
	topo.MaxL4LBServices = 0
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 1, n.Writes, "the load balancer's tags")
	require.Equal(t, []nsxt.Change{{Action: nsxt.Update, Path: "/infra/lb-services/kf_c1", Type: "LBService", Fields: []string{"tags"}}}, n.Plan.Changes())
	_, err = e.c.EnsureLoadBalancer(ctx, svc("s4"))
	require.NoError(t, err)
	topo.MaxL4LBServices = 1
	_, err = e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "%s", again.Plan)
	_, err = e.c.EnsureLoadBalancer(ctx, svc("s4"))
	require.NoError(t, err)
	refused(e.c, "s5", 3, 1)

	teardownLeavesNothing(t, e, "c1")
}

// The search index trails writes: right after a build, and in a burst of
// new Services, it shows neither the limit nor the Services. The limit is
// read from the load balancer and the Services counted in NSX's store, so
// it holds all the same, for this client and another; a Service counts
// once whatever its ports, and one that exists may change.
func TestMaxL4LBServicesWhileTheIndexTrails(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	e.sim.FreezeSearch() // the index shows nothing the test writes
	ctx := context.Background()
	topo := topology(e.sim, "c1", "web")
	topo.MaxL4LBServices = 2
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	svc := func(name string, ports ...int) nsxt.LoadBalancer {
		lb := nsxt.LoadBalancer{ClusterID: "c1", Namespace: "web", Name: name, FloatingIPPoolPaths: topo.FloatingIPPoolPaths,
			Nodes: []string{"172.23.0.20"}}
		for _, p := range ports {
			lb.Ports = append(lb.Ports, nsxt.ServicePort{Port: p, NodePort: 30000 + p})
		}
		return lb
	}
	refused := func(c *nsxt.Client, name string, count int) {
		t.Helper()
		writes := e.sim.Writes()
		_, err := c.EnsureLoadBalancer(ctx, svc(name, 80))
		var le *nsxt.LimitError
		require.ErrorAs(t, err, &le, name)
		require.Equal(t, nsxt.LimitError{ClusterID: "c1", Field: "MaxL4LBServices", Limit: 2, Count: count,
			Object: "LoadBalancer Service web/" + name}, *le)
		require.Equal(t, writes, e.sim.Writes(), "nothing is written")
	}

	// s1 has three ports, three virtual servers: one Service.
	_, err = e.c.EnsureLoadBalancer(ctx, svc("s1", 80, 443, 8080))
	require.NoError(t, err)
	_, err = e.c.EnsureLoadBalancer(ctx, svc("s2", 80))
	require.NoError(t, err)
	require.Zero(t, indexed(t, e.sim, "c1"), "the index shows none of it")
	refused(e.c, "s3", 2)
	refused(e.c, "s4", 2)
	refused(newClient(t, e.sim), "s3", 2)
	moved := svc("s1", 80, 443, 8080)
	moved.Nodes = []string{"172.23.0.21"}
	_, err = e.c.EnsureLoadBalancer(ctx, moved)
	require.NoError(t, err, "an existing Service changes at the limit")
	require.Equal(t, "172.23.0.21", e.sim.Object("/infra/lb-pools/kf_c1_svc_web_s1_tcp_443")["members"].([]any)[0].(map[string]any)["ip_address"])

	// Once the index shows s2, it goes: the index still shows it, NSX
	// does not, and a new one takes its place; the next is refused.
	e.sim.FreezeSearch()
	_, err = e.c.DeleteLoadBalancer(ctx, "c1", "web", "s2")
	require.NoError(t, err)
	require.Positive(t, indexed(t, e.sim, "c1"))
	_, err = e.c.EnsureLoadBalancer(ctx, svc("s3", 80))
	require.NoError(t, err)
	refused(e.c, "s4", 2)

	teardownLeavesNothing(t, e, "c1")
}

// A Service's address comes from the next pool when the first is
// exhausted; one asked for by value comes from the pool that holds it.
func TestLoadBalancerFromSeveralPools(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
	ctx := context.Background()
	pool1 := "/infra/ip-pools/" + e.sim.Inventory().FloatingPool
	topo := withBoth(topology(e.sim, "c1"))
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	svc := func(name, ip string) nsxt.LoadBalancer {
		return nsxt.LoadBalancer{ClusterID: "c1", Namespace: "web", Name: name, FloatingIPPoolPaths: topo.FloatingIPPoolPaths,
			IP: ip, Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}}}
	}
	for _, name := range []string{"s1", "s2"} {
		st, err := e.c.EnsureLoadBalancer(ctx, svc(name, ""))
		require.NoError(t, err)
		require.Equal(t, 2, st.Writes)
	}
	require.Len(t, e.sim.Allocated()[pool1], 4, "the first pool is full")

	st, err := e.c.EnsureLoadBalancer(ctx, svc("s3", ""))
	require.NoError(t, err)
	require.Equal(t, 4, st.Writes, "allocate, release, allocate again, configure")
	require.True(t, mustPrefix(t, "10.50.0.0/24").Contains(netip.MustParseAddr(st.IP)), st.IP)
	require.Equal(t, st.IP, e.sim.Object(st.VirtualServers[0])["ip_address"])
	again, err := e.c.EnsureLoadBalancer(ctx, svc("s3", ""))
	require.NoError(t, err)
	require.Zero(t, again.Writes, "%s", again.Plan)

	byValue, err := e.c.EnsureLoadBalancer(ctx, svc("s4", "10.50.0.100"))
	require.NoError(t, err)
	require.Equal(t, 2, byValue.Writes, "straight to the pool that holds it")
	require.Equal(t, "10.50.0.100", byValue.IP)
	require.NotNil(t, e.sim.Object(pool2+"/ip-allocations/kf_c1_svc_web_s4"))

	var fe *nsxt.FieldError
	bad := svc("s5", "")
	bad.FloatingIPPoolPaths = append(bad.FloatingIPPoolPaths, pool2)
	require.ErrorAs(t, bad.Validate(), &fe)
	require.Equal(t, "LoadBalancer.FloatingIPPoolPaths[2]", fe.Field)

	teardownLeavesNothing(t, e, "c1")
}

// The search index may show an allocation NSX released a moment ago. A
// Service whose address was in the second pool goes, and comes back with
// the first pool only, which has room again: the index still shows its
// old address, in a pool the Service no longer lists. That is not taken
// as an address that cannot move (a FieldError): it is read from NSX,
// found gone, and the Service is read again once the index catches up.
func TestStaleAddressInAnUnlistedPool(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
	ctx := context.Background()
	pool1 := "/infra/ip-pools/" + e.sim.Inventory().FloatingPool
	topo := withBoth(topology(e.sim, "c1"))
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	svc := func(name string, pools ...string) nsxt.LoadBalancer {
		return nsxt.LoadBalancer{ClusterID: "c1", Namespace: "web", Name: name, FloatingIPPoolPaths: pools,
			Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}}}
	}
	for _, name := range []string{"s1", "s2", "s3"} {
		_, err := e.c.EnsureLoadBalancer(ctx, svc(name, topo.FloatingIPPoolPaths...))
		require.NoError(t, err)
	}
	old := pool2 + "/ip-allocations/kf_c1_svc_web_s3"
	require.NotNil(t, e.sim.Object(old), "the first pool was full")

	e.sim.FreezeSearch() // the index shows s3's address in the second pool
	for _, name := range []string{"s1", "s3"} {
		_, err := e.c.DeleteLoadBalancer(ctx, "c1", "web", name)
		require.NoError(t, err)
	}
	var thawed atomic.Bool
	e.sim.Inject(&simulator.Fault{Method: "GET", Path: regexp.MustCompile(regexp.QuoteMeta(old) + "$"), Nth: 1,
		Before: func() { thawed.Store(true); e.sim.ThawSearch() }})
	st, err := e.c.EnsureLoadBalancer(ctx, svc("s3", pool1))
	require.NoError(t, err)
	require.True(t, thawed.Load(), "the address the index shows is read from NSX")
	require.NotNil(t, e.sim.Object(pool1+"/ip-allocations/kf_c1_svc_web_s3"))
	require.Nil(t, e.sim.Object(old))
	require.Equal(t, st.IP, e.sim.Object(st.VirtualServers[0])["ip_address"])

	teardownLeavesNothing(t, e, "c1")
}

// NSX's search index trails its writes. Right after a build that fell back
// to the second block and pool, a rebuild reads from NSX itself where the
// allocations are, rather than guessing from the index and making them
// again elsewhere; right after a namespace is torn down, the index still
// shows it, and the rebuild, which reads from NSX that it is gone, makes
// it again at once.
func TestSeveralBlocksWithStaleSearchIndex(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
	e.sim.FreezeSearch() // the index shows nothing of the build
	ctx := context.Background()
	topo := withBoth(topology(e.sim, "c1", "a", "b", "c"))
	first, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	before := e.sim.Allocated()
	require.Zero(t, indexed(t, e.sim, "c1"))

	reqs := e.sim.Requests()
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, first.Namespaces, again.Namespaces)
	require.Equal(t, first.SNATAddress, again.SNATAddress)
	require.Equal(t, before, e.sim.Allocated(), "nothing allocated twice")
	// Each allocation that may come from two sources is read where it may
	// be: no shared pool is listed whole.
	for _, pool := range []string{"/infra/ip-pools/" + e.sim.Inventory().FloatingPool, pool2} {
		require.Equal(t, reqs["GET /policy/api/v1"+pool+"/ip-allocations"], e.sim.Requests()["GET /policy/api/v1"+pool+"/ip-allocations"], pool)
		require.Equal(t, reqs["GET /policy/api/v1"+pool+"/ip-allocations/kf_c1_snat"]+1,
			e.sim.Requests()["GET /policy/api/v1"+pool+"/ip-allocations/kf_c1_snat"], pool)
	}

	// Once the index shows c, tear it down and build it again at once:
	// the index still shows c's objects, which NSX no longer holds. The
	// build reads c's subnet and address from NSX, finds them gone, and
	// makes them again, without reading again: the index never catches up.
	e.sim.FreezeSearch()
	td, err := e.c.TeardownNamespace(ctx, "c1", "c")
	require.NoError(t, err)
	require.Contains(t, td.Deleted, nsSubnet("c", block2))
	require.Positive(t, indexed(t, e.sim, "c1"))
	searches := e.sim.Requests()[searchKey]
	back, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 2, e.sim.Requests()[searchKey]-searches, "the inventory and the cluster's objects, once")
	require.NotNil(t, e.sim.Object(back.Namespaces["c"].SegmentPath), "c's network is made again, not taken as there")
	require.True(t, back.Namespaces["c"].Subnet.IsValid())
	e.sim.ThawSearch()

	settled, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, settled.Writes, "%s", settled.Plan)

	teardownLeavesNothing(t, e, "c1")
}

// Some NSX versions refuse a subnet its block has no room for at once
// (400, error code 520012, the whole PATCH failing) rather than realize it
// in state ERROR. It falls over to the next block all the same, and the
// subnets end up where they would have with ERROR: a block with room for
// all but one keeps the others.
func TestFullBlockRefusedAtOnce(t *testing.T) {
	inv := twoOfEach()
	e := newEnv(t, simulator.Config{Inventory: inv, RefuseFullBlocks: true})
	ctx := context.Background()
	block1, pool1 := "/infra/ip-blocks/"+inv.PodBlock.ID, "/infra/ip-pools/"+inv.FloatingPool
	topo := withBoth(topology(e.sim, "c1", "a", "b", "c"))

	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	alloc := e.sim.Allocated()
	require.Len(t, alloc[block1], 2)
	require.Len(t, alloc[block2], 1)
	require.Len(t, alloc[pool1], 4)
	require.Len(t, alloc[pool2], 1)
	require.Equal(t, block2, subnetBlock(e.sim, "c"), "the last one listed moves")
	require.Equal(t, 5, n.Writes, "the refused PATCH, allocate, release the address in ERROR, allocate it again, configure")
	for ns, nn := range n.Namespaces {
		require.True(t, nn.Subnet.IsValid(), ns)
	}
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "%s", again.Plan)

	// A new namespace: the first block refuses it, the second has room.
	topo.Namespaces = append(topo.Namespaces, "d")
	added, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 5, added.Writes, "the refused PATCH, allocate, release the address the full first pool has in ERROR, allocate it again, configure")
	require.NotNil(t, e.sim.Object(pool2+"/ip-allocations/kf_c1_ns_d"))
	require.Equal(t, block2, subnetBlock(e.sim, "d"))

	teardownLeavesNothing(t, e, "c1")
}

// With every block refusing, the build fails with NSX's refusal, naming
// the blocks tried, and has allocated nothing; asking for less succeeds.
func TestEveryBlockRefuses(t *testing.T) {
	inv := simulator.DefaultInventory()
	inv.PodBlock = simulator.Block{ID: "pods-block", CIDR: "172.24.0.0/24"}
	inv.MorePodBlocks = []simulator.Block{{ID: "pods-2", CIDR: "172.30.0.0/24"}}
	e := newEnv(t, simulator.Config{Inventory: &inv, RefuseFullBlocks: true})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "a", "b", "c")
	topo.PodIPBlockPaths = append(topo.PodIPBlockPaths, block2)

	_, err := e.c.BuildTopology(ctx, topo)
	require.ErrorIs(t, err, nsxt.ErrInvalid)
	var ae *nsxt.APIError
	require.ErrorAs(t, err, &ae, "the refusal is wrapped")
	require.Equal(t, []int64{520012}, ae.RelatedCodes, "NSX names the full block among the related errors")
	require.Len(t, ae.Related, 1)
	require.Contains(t, ae.Related[0], "IpAddressBlock with path=["+block2+"] does not have spare capacity")
	require.Contains(t, err.Error(), "/infra/ip-pools/kf_c1/ip-subnets/ns_c from none of Topology.PodIPBlockPaths (/infra/ip-blocks/pods-block, "+block2+")")
	require.Empty(t, e.sim.Paths(), "every PATCH was refused: nothing was made")

	topo.Namespaces = []string{"a", "c"}
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, "172.24.0.0/24", n.Namespaces["a"].Subnet.String())
	require.Equal(t, "172.30.0.0/24", n.Namespaces["c"].Subnet.String())
	teardownLeavesNothing(t, e, "c1")
}

// A subnet or address NSX cannot allocate from the first block or pool
// (realized in ERROR) is released, which NSX keeps, marked for delete,
// until it purges it, and made from the next at a path of its own (a
// subnet's id names its block): no waiting for the purge, the same writes
// as with deletes that take effect at once. Even an apply that starts
// over does not go back to the first.
func TestFallbackWhileNSXPurges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{Inventory: twoOfEach(), PurgeAfter: time.Hour},
		nsxt.WithPurgeWait(20*time.Millisecond, time.Minute), nsxt.WithRateLimit(0, 1))
	block1 := "/infra/ip-blocks/" + e.sim.Inventory().PodBlock.ID
	// A concurrent change answered to the PATCH that allocates from the
	// next block and pool makes the apply start over.
	e.sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 3, Status: http.StatusPreconditionFailed})
	n, err := e.c.BuildTopology(ctx, withBoth(topology(e.sim, "c1", "a", "b", "c")))
	require.NoError(t, err)
	require.Equal(t, 5, n.Writes, "allocate, release, allocate from the next (refused), again, configure")
	require.Contains(t, e.sim.Marked(), nsSubnet("c", block1), "released, not purged")
	require.Equal(t, block2, subnetBlock(e.sim, "c"))
	e.sim.Purge()
	alloc := e.sim.Allocated()
	require.Len(t, alloc[block2], 1)
	require.Len(t, alloc[pool2], 1)
	require.Len(t, alloc[block1], 2)
	for _, ns := range []string{"a", "b", "c"} {
		require.True(t, n.Namespaces[ns].Subnet.IsValid(), ns)
	}
	_, err = e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	e.sim.Purge()
	requireNothingLeft(t, e.sim)
}

// A namespace's subnet made before its id named its block (ns_<ns>, as
// kubefoundry made them until then) stays where it is: a build finds it,
// keeps its CIDR and makes no other; a second writes nothing; the teardown
// takes it.
func TestSubnetWithTheOldIDStays(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{})
	topo := topology(e.sim, "c1", "a")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	const old = "/infra/ip-pools/kf_c1/ip-subnets/ns_b"
	// What kubefoundry made for namespace b of c1 from the pod block.
	subnetB := map[string]any{"resource_type": "IpAddressPoolBlockSubnet",
		"ip_block_path": topo.PodIPBlockPaths[0], "subnet_size": "256", "auto_assign_gateway": true,
		"tags": []any{map[string]any{"scope": nsxt.TagCluster, "tag": "c1"}, map[string]any{"scope": nsxt.TagNamespace, "tag": "b"}}}
	require.NoError(t, e.sim.Put(old, subnetB))
	cidr := e.sim.Allocated()[topo.PodIPBlockPaths[0]]

	topo.Namespaces = []string{"a", "b"}
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, cidr, e.sim.Allocated()[topo.PodIPBlockPaths[0]], "no subnet made, none released")
	require.Contains(t, cidr, n.Namespaces["b"].Subnet.String())
	require.NotNil(t, e.sim.Object(old))
	require.Nil(t, e.sim.Object(nsSubnet("b", topo.PodIPBlockPaths[0])))
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "%s", again.Plan)

	// A copy at the new path from the same block too (a build that
	// stopped before it could delete the old one): the old one, which the
	// segment uses, is kept, whatever order NSX lists them in.
	for range 5 {
		require.NoError(t, e.sim.Put(nsSubnet("b", topo.PodIPBlockPaths[0]), subnetB))
		n2, err := e.c.BuildTopology(ctx, topo)
		require.NoError(t, err)
		require.Equal(t, n.Namespaces["b"], n2.Namespaces["b"])
		require.Nil(t, e.sim.Object(nsSubnet("b", topo.PodIPBlockPaths[0])))
		require.NotNil(t, e.sim.Object(old))
	}
	teardownLeavesNothing(t, e, "c1")
}
