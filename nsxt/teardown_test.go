package nsxt_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// ownedBy lists the paths of the objects the simulator holds that are
// tagged with cluster and, when ns is not empty, with the namespace.
func ownedBy(sim *simulator.Server, cluster, ns string) []string {
	var out []string
	for _, p := range sim.Paths() {
		tags, _ := sim.Object(p)["tags"].([]any)
		var c, n bool
		for _, t := range tags {
			m, _ := t.(map[string]any)
			c = c || (m["scope"] == nsxt.TagCluster && m["tag"] == cluster)
			n = n || (m["scope"] == nsxt.TagNamespace && m["tag"] == ns)
		}
		if c && (ns == "" || n) {
			out = append(out, p)
		}
	}
	return out
}

// indexed counts what NSX's search index shows tagged with cluster.
func indexed(t *testing.T, sim *simulator.Server, cluster string) int {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(sim.CertificatePEM()))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	q := url.Values{"query": {"tags.scope:kubefoundry\\/cluster AND tags.tag:" + cluster}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, sim.URL+"/policy/api/v1/search/query?"+q.Encode(), nil)
	require.NoError(t, err)
	req.SetBasicAuth(sim.Username(), sim.Password())
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var res struct {
		ResultCount int `json:"result_count"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	return res.ResultCount
}

// allocatedIn flattens Allocated, for comparing what went back.
func allocatedIn(sim *simulator.Server) []string {
	var out []string
	for src, v := range sim.Allocated() {
		for _, a := range v {
			out = append(out, src+" "+a)
		}
	}
	slices.Sort(out)
	return out
}

func without(all, drop []string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

// NSX's search index trails writes. A teardown right after a build, by a
// client that knows nothing but the cluster id (and the namespace), still
// finds and deletes everything the cluster owns, from NSX's store: the
// namespaces' networks, a LoadBalancer Service, a NetworkPolicy, and the
// subnets and addresses in every block and pool they came from, while the
// search index still shows none of it. Another cluster is untouched, and
// a second teardown writes nothing.
func TestTeardownBeforeTheSearchIndexCatchesUp(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
	e.sim.FreezeSearch() // the index shows nothing the test writes
	ctx := context.Background()

	// c1 takes both pod blocks and both floating pools; c2 is single-tier,
	// its NAT rules on the tier-0.
	c1 := withBoth(topology(e.sim, "c1", "a", "b", "c"))
	_, err := e.c.BuildTopology(ctx, c1)
	require.NoError(t, err)
	c2 := withBoth(topology(e.sim, "c2", "a"))
	c2.SingleTier = true
	_, err = e.c.BuildTopology(ctx, c2)
	require.NoError(t, err)
	for _, ns := range []string{"a", "b"} {
		_, err = e.c.EnsureLoadBalancer(ctx, nsxt.LoadBalancer{ClusterID: "c1", Namespace: ns, Name: "web",
			FloatingIPPoolPaths: c1.FloatingIPPoolPaths, Nodes: []string{"172.23.0.20"},
			Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}, {Port: 443, NodePort: 30443}}})
		require.NoError(t, err)
	}
	_, _, err = e.c.ApplyNetworkPolicy(ctx, nsxt.NetworkPolicy{ClusterID: "c1", Namespace: "b", Name: "db",
		PodSelector: nsxt.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		Ingress: []nsxt.PolicyRule{{Peers: []nsxt.Peer{{PodSelector: &nsxt.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
			Ports: []nsxt.PolicyPort{{Port: 5432}}}},
		Egress: []nsxt.PolicyRule{{Ports: []nsxt.PolicyPort{{Protocol: "UDP", Port: 53}}}}})
	require.NoError(t, err)
	// What is spread where: the test means something only if c1 holds
	// subnets in both blocks and addresses in both pools.
	inv := e.sim.Inventory()
	alloc := e.sim.Allocated()
	for _, src := range []string{"/infra/ip-blocks/" + inv.PodBlock.ID, block2, "/infra/ip-pools/" + inv.FloatingPool, pool2} {
		require.NotEmpty(t, alloc[src], src)
	}
	require.Zero(t, indexed(t, e.sim, "c1"), "the search index shows nothing of c1 yet")

	t.Run("TeardownNamespace", func(t *testing.T) {
		before, allocBefore := e.sim.Paths(), allocatedIn(e.sim)
		b := ownedBy(e.sim, "c1", "b")
		for _, p := range []string{
			"/infra/segments/kf_c1_ns_b",
			"/infra/tier-1s/kf_c1/nat/USER/nat-rules/kf_c1_ns_b_snat",
			"/infra/domains/default/security-policies/kf_c1_ns_b/rules/intra",
			"/infra/ip-pools/kf_c1/ip-subnets/ns_b_pods-block",
			"/infra/lb-virtual-servers/kf_c1_svc_b_web_tcp_443",
			"/infra/domains/default/security-policies/kf_c1_np_b_db/rules/in-0",
			"/infra/domains/default/groups/kf_c1_np_b_db_in0_p0",
		} {
			require.Contains(t, b, p)
		}

		td, err := newClient(t, e.sim).TeardownNamespace(ctx, "c1", "b")
		require.NoError(t, err)
		require.Equal(t, 1, td.Writes, "one PATCH")
		require.Equal(t, b, td.Deleted)
		require.Equal(t, without(before, b), e.sim.Paths(), "b's objects went, no other")
		released := without(allocBefore, allocatedIn(e.sim))
		require.Len(t, released, 3, "b's subnet, SNAT address and Service address: %v", released)
		require.Subset(t, allocBefore, allocatedIn(e.sim))

		again, err := newClient(t, e.sim).TeardownNamespace(ctx, "c1", "b")
		require.NoError(t, err)
		require.Zero(t, again.Writes)
		require.Empty(t, again.Deleted)
	})

	t.Run("TeardownTopology", func(t *testing.T) {
		c2Paths := ownedBy(e.sim, "c2", "")
		require.NotEmpty(t, c2Paths)
		require.Contains(t, c2Paths, c2.Tier0Path+"/nat/USER/nat-rules/kf_c2_ns_a_snat")
		c := newClient(t, e.sim)
		r0, _ := c.Calls()
		td, err := c.TeardownTopology(ctx, "c1")
		require.NoError(t, err)
		r1, _ := c.Calls()
		require.Equal(t, 1, td.Writes, "one PATCH")
		require.Empty(t, ownedBy(e.sim, "c1", ""), "nothing of c1 is left")
		require.Equal(t, c2Paths, e.sim.Paths(), "c2 is untouched")
		require.Contains(t, td.Deleted, "/infra/tier-1s/kf_c1")
		require.Contains(t, td.Deleted, "/infra/lb-virtual-servers/kf_c1_svc_a_web_tcp_80")
		// Two rounds (delete, then check), each a search, 5 GETs (the
		// cluster's IP pool, tier-1, load balancer, node segment and
		// group) and 4 listings (the pool's subnets, LB pools and virtual
		// servers, security policies). The first also reads what they
		// name: a GET of the segment and the group of a and c (the
		// namespaces the pool's subnets name), listings of the tier-1's
		// locale services, of the rules of c1's three policies (the
		// cluster's, a's and c's), of the addresses of the two floating
		// pools the IP pool records, and of the tier-1's NAT rules and the
		// ports of the three segments (nodes, a, c). No shared collection
		// but those of Services and policies is listed.
		require.EqualValues(t, (1+5+4)+(4+1+3+2)+(1+3)+(1+5+4), r1-r0, "reads")

		// The other cluster's subnets and addresses are all that is left.
		for src, v := range e.sim.Allocated() {
			for _, a := range v {
				require.True(t, src == c2.NodeIPBlockPath || src == block2 || src == pool2, "%s %s", src, a)
			}
		}
		require.Len(t, allocatedIn(e.sim), 5, "c2's node and namespace subnets, and its nodes', namespace's and API addresses")

		again, err := newClient(t, e.sim).TeardownTopology(ctx, "c1")
		require.NoError(t, err)
		require.Zero(t, again.Writes)
		require.Empty(t, again.Deleted)

		single, err := newClient(t, e.sim).TeardownTopology(ctx, "c2")
		require.NoError(t, err)
		require.Equal(t, 1, single.Writes)
		requireNothingLeft(t, e.sim)
	})
}

// A Service and a NetworkPolicy deleted right after they are made, while
// the search index still shows neither, go with their address.
func TestDeleteServiceAndPolicyBeforeTheSearchIndexCatchesUp(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	e.sim.FreezeSearch() // the index shows nothing the test writes
	ctx := context.Background()
	topo := topology(e.sim, "c1", "web")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	before, allocBefore := e.sim.Paths(), allocatedIn(e.sim)

	lb := nsxt.LoadBalancer{ClusterID: "c1", Namespace: "web", Name: "fe", FloatingIPPoolPaths: topo.FloatingIPPoolPaths,
		Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}}}
	_, err = e.c.EnsureLoadBalancer(ctx, lb)
	require.NoError(t, err)
	np := nsxt.NetworkPolicy{ClusterID: "c1", Namespace: "web", Name: "deny"}
	_, _, err = e.c.ApplyNetworkPolicy(ctx, np)
	require.NoError(t, err)
	require.Greater(t, len(e.sim.Paths()), len(before))

	other := newClient(t, e.sim)
	del, err := other.DeleteLoadBalancer(ctx, "c1", "web", "fe")
	require.NoError(t, err)
	require.Equal(t, 1, del.Writes)
	require.Len(t, del.Deleted, 3, "pool, virtual server and address")
	delNP, err := other.DeleteNetworkPolicy(ctx, "c1", "web", "deny")
	require.NoError(t, err)
	require.Equal(t, 1, delNP.Writes)
	require.Equal(t, before, e.sim.Paths())
	require.Equal(t, allocBefore, allocatedIn(e.sim))

	for _, td := range []func() (*nsxt.Teardown, error){
		func() (*nsxt.Teardown, error) { return other.DeleteLoadBalancer(ctx, "c1", "web", "fe") },
		func() (*nsxt.Teardown, error) { return other.DeleteNetworkPolicy(ctx, "c1", "web", "deny") },
	} {
		again, err := td()
		require.NoError(t, err)
		require.Zero(t, again.Writes)
	}
}

// Right after a teardown the search index still shows what it deleted. A
// second teardown, by another client, reads from NSX's store that none of
// it is there any more, and writes nothing.
func TestSecondTeardownWhileTheIndexShowsThePast(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	_, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a", "b"))
	require.NoError(t, err)
	e.sim.FreezeSearch() // the index shows the build, and nothing after
	shown := indexed(t, e.sim, "c1")
	require.Equal(t, len(ownedBy(e.sim, "c1", "")), shown, "the index shows the build")

	ns, err := e.c.TeardownNamespace(ctx, "c1", "b")
	require.NoError(t, err)
	require.Equal(t, 1, ns.Writes)
	td, err := e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, 1, td.Writes)
	requireNothingLeft(t, e.sim)
	require.Equal(t, shown, indexed(t, e.sim, "c1"), "the index still shows every object")

	other := newClient(t, e.sim)
	for _, again := range []func() (*nsxt.Teardown, error){
		func() (*nsxt.Teardown, error) { return other.TeardownNamespace(ctx, "c1", "b") },
		func() (*nsxt.Teardown, error) { return other.TeardownTopology(ctx, "c1") },
	} {
		writes := e.sim.Writes()
		res, err := again()
		require.NoError(t, err)
		require.Zero(t, res.Writes)
		require.Empty(t, res.Deleted)
		require.Equal(t, writes, e.sim.Writes())
	}
}

// A teardown reads by path what follows from the cluster id and lists
// only collections of the cluster's own, the floating pools its IP pool
// records, and those whose ids follow from names it cannot know (the load
// balancer pools and virtual servers of Services, the security policies
// of NetworkPolicies): not the segments, groups or IP pools of a shared
// NSX, nor the addresses of a pool the cluster does not use. Only NSX's
// store tells it what there is here: the index shows nothing.
func TestTeardownReadsWhatIsTheClusters(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
	e.sim.FreezeSearch()
	ctx := context.Background()
	c1 := topology(e.sim, "c1", "a", "b")
	_, err := e.c.BuildTopology(ctx, c1)
	require.NoError(t, err)
	require.Contains(t, e.sim.Object("/infra/ip-pools/kf_c1")["tags"],
		map[string]any{"scope": nsxt.TagFloatingPool, "tag": c1.FloatingIPPoolPaths[0]}, "the IP pool records the floating pool")
	c2 := topology(e.sim, "c2", "x", "y", "z")
	c2.SingleTier, c2.PodIPBlockPaths, c2.FloatingIPPoolPaths = true, []string{block2}, []string{pool2}
	_, err = e.c.BuildTopology(ctx, c2)
	require.NoError(t, err)
	c2Paths := ownedBy(e.sim, "c2", "")

	c := newClient(t, e.sim)
	before := e.sim.Requests()
	r0, _ := c.Calls()
	td, err := c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	r1, _ := c.Calls()
	require.Equal(t, 1, td.Writes)
	require.Empty(t, ownedBy(e.sim, "c1", ""))
	require.Equal(t, c2Paths, e.sim.Paths(), "c2 is untouched")
	for _, coll := range []string{"/infra/segments", "/infra/domains/default/groups", "/infra/ip-pools",
		pool2 + "/ip-allocations", c2.Tier0Path + "/nat/USER/nat-rules"} {
		key := "GET /policy/api/v1" + coll
		require.Equal(t, before[key], e.sim.Requests()[key], "%s is not listed", coll)
	}
	// Two rounds (delete, then check), each a search, 5 GETs (IP pool,
	// tier-1, load balancer, node segment and group) and 4 listings (the
	// pool's subnets, LB pools and virtual servers, security policies);
	// the first also GETs the segment and group of a and b, and lists the
	// tier-1's locale services and NAT rules, the rules of the cluster's,
	// a's and b's policies, the addresses of the recorded pool and the
	// ports of the three segments (nodes, a, b).
	require.EqualValues(t, (1+5+4)+(2*2+1+3+1)+(1+3)+(1+5+4), r1-r0, "reads")

	single, err := c.TeardownTopology(ctx, "c2")
	require.NoError(t, err)
	require.Equal(t, 1, single.Writes, "the single-tier cluster's NAT rules on the tier-0 are read by id")
	requireNothingLeft(t, e.sim)
}

// The cluster's IP pool records the floating pools of its Topology. A
// teardown finds the addresses of a cluster built before it did, and a
// Service's from a pool the Topology does not list, all the same (only
// NSX's store tells it what there is): it then looks in every pool
// kubefoundry did not make.
func TestTeardownFindsAddressesInPoolsNotRecorded(t *testing.T) {
	t.Run("a cluster that records no pool", func(t *testing.T) {
		e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
		e.sim.FreezeSearch()
		ctx := context.Background()
		_, err := e.c.BuildTopology(ctx, withBoth(topology(e.sim, "c1", "a", "b", "c")))
		require.NoError(t, err)
		require.Len(t, e.sim.Allocated(), 5, "the node block, both pod blocks and both pools hold some")
		require.NoError(t, e.sim.Patch("/infra/ip-pools/kf_c1", map[string]any{"tags": []any{
			map[string]any{"scope": nsxt.TagCluster, "tag": "c1"}}}))

		td, err := newClient(t, e.sim).TeardownTopology(ctx, "c1")
		require.NoError(t, err)
		require.Equal(t, 1, td.Writes)
		requireNothingLeft(t, e.sim)
	})
	t.Run("a Service from a pool the Topology does not list", func(t *testing.T) {
		e := newEnv(t, simulator.Config{Inventory: twoOfEach()})
		e.sim.FreezeSearch()
		ctx := context.Background()
		topo := topology(e.sim, "c1", "web")
		_, err := e.c.BuildTopology(ctx, topo)
		require.NoError(t, err)
		_, err = e.c.EnsureLoadBalancer(ctx, nsxt.LoadBalancer{ClusterID: "c1", Namespace: "web", Name: "fe",
			FloatingIPPoolPaths: []string{pool2}, Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}}})
		require.NoError(t, err)
		require.NotNil(t, e.sim.Object(pool2+"/ip-allocations/kf_c1_svc_web_fe"))

		for _, td := range []func() (*nsxt.Teardown, error){
			func() (*nsxt.Teardown, error) { return newClient(t, e.sim).TeardownNamespace(ctx, "c1", "web") },
			func() (*nsxt.Teardown, error) { return newClient(t, e.sim).TeardownTopology(ctx, "c1") },
		} {
			res, err := td()
			require.NoError(t, err)
			require.Equal(t, 1, res.Writes)
		}
		requireNothingLeft(t, e.sim)
	})
}

// TestTeardownGivesUpOnEndlessConflicts: a teardown NSX refuses for a
// concurrent change on every try reads again a bounded number of rounds
// (with backoff), then returns an error naming what is left and NSX's
// last answer; it does not loop until the caller's deadline.
func TestTeardownGivesUpOnEndlessConflicts(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	_, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a"))
	require.NoError(t, err)
	before := e.sim.Requests()["PATCH /policy/api/v1/infra"]
	e.sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 1, Times: 1000, Status: http.StatusConflict})

	_, err = e.c.TeardownTopology(ctx, "c1")
	require.ErrorIs(t, err, nsxt.ErrConflict)
	require.NoError(t, ctx.Err(), "given up before the deadline: %v", err)
	require.Contains(t, err.Error(), "objects are still there after 6 rounds")
	require.Equal(t, 6, e.sim.Requests()["PATCH /policy/api/v1/infra"]-before, "one PATCH a round")
	require.NotEmpty(t, ownedBy(e.sim, "c1", ""), "nothing was deleted")
}
