package nsxt_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	vapierrors "github.com/vmware/vsphere-automation-sdk-go/lib/vapi/std/errors"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

type env struct {
	sim *simulator.Server
	c   *nsxt.Client
}

func newEnv(t testing.TB, cfg simulator.Config, opts ...nsxt.Option) *env {
	t.Helper()
	sim, ncfg := simulator.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts = append([]nsxt.Option{nsxt.WithLogger(zaptest.NewLogger(t)), nsxt.WithRetry(4, 10*time.Millisecond)}, opts...)
	c, err := nsxt.New(ctx, ncfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return &env{sim: sim, c: c}
}

func topology(sim *simulator.Server, cluster string, namespaces ...string) nsxt.Topology {
	inv := sim.Inventory()
	return nsxt.Topology{
		ClusterID:           cluster,
		Tier0Path:           "/infra/tier-0s/" + inv.Tier0,
		EdgeClusterPath:     inv.EdgeClusterPath(),
		TransportZonePath:   inv.TransportZonePath(),
		NodeIPBlockPath:     "/infra/ip-blocks/" + inv.NodeBlock.ID,
		PodIPBlockPaths:     []string{"/infra/ip-blocks/" + inv.PodBlock.ID},
		FloatingIPPoolPaths: []string{"/infra/ip-pools/" + inv.FloatingPool},
		APIMembers:          []string{"172.23.0.10", "172.23.0.11", "172.23.0.12"},
		Namespaces:          namespaces,
	}
}

func TestBuildTopology(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "default", "kube-system")
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 2, n.Writes, "one PATCH to allocate, one to configure")
	require.Equal(t, 2, e.sim.Requests()["PATCH /policy/api/v1/infra"])
	require.Equal(t, 2, e.sim.Writes(), "nothing but the two hierarchical PATCHes")
	require.Len(t, n.Plan.Allocate, 8)
	require.Len(t, n.Plan.Configure, 23)

	// What NSX holds matches what the Network reports.
	require.Equal(t, "172.23.0.0/24", n.NodeSubnet.String())
	seg := e.sim.Object(n.NodeSegmentPath)
	require.NotNil(t, seg)
	require.Equal(t, n.Tier1Path, seg["connectivity_path"])
	require.Equal(t, "172.23.0.1/24", seg["subnets"].([]any)[0].(map[string]any)["gateway_address"])
	nat := e.sim.Object(n.Tier1Path + "/nat/USER/nat-rules/kf_c1_nodes_snat")
	require.Equal(t, "172.23.0.0/24", nat["source_network"])
	require.Equal(t, n.SNATAddress, nat["translated_network"])
	vs := e.sim.Object("/infra/lb-virtual-servers/kf_c1_api")
	require.Equal(t, n.APIAddress, vs["ip_address"])
	require.Equal(t, []any{"8443"}, vs["ports"])
	require.Equal(t, 8443, n.APIPort)
	pool := e.sim.Object("/infra/lb-pools/kf_c1_api")
	require.Len(t, pool["members"], 3)
	require.Equal(t, []any{"/infra/lb-monitor-profiles/default-tcp-lb-monitor"}, pool["active_monitor_paths"])
	require.Equal(t, "SMALL", e.sim.Object("/infra/lb-services/kf_c1")["size"])
	// DFW groups are segment ports (NSX can apply rules to them), and the
	// API rule allows its port only.
	expr := e.sim.Object("/infra/domains/default/groups/kf_c1_nodes")["expression"].([]any)[0].(map[string]any)
	require.Equal(t, "PathExpression", expr["resource_type"])
	require.Equal(t, []any{n.NodeSegmentPath}, expr["paths"])
	api := e.sim.Object("/infra/domains/default/security-policies/kf_c1/rules/api")
	require.Empty(t, api["services"])
	require.Equal(t, []any{"8443"}, api["service_entries"].([]any)[0].(map[string]any)["destination_ports"])

	addrs := map[string]bool{n.SNATAddress: true, n.APIAddress: true}
	subnets := map[string]bool{n.NodeSubnet.String(): true}
	for _, ns := range []string{"default", "kube-system"} {
		nn := n.Namespaces[ns]
		require.True(t, nn.Subnet.IsValid(), ns)
		require.Equal(t, 24, nn.Subnet.Bits())
		require.True(t, nn.Subnet.Overlaps(mustPrefix(t, "172.24.0.0/14")), "namespace subnets come from the pod block")
		subnets[nn.Subnet.String()] = true
		addrs[nn.SNATAddress] = true
		s := e.sim.Object(nn.SegmentPath)
		require.Equal(t, []any{map[string]any{"scope": nsxt.TagCluster, "tag": "c1"}, map[string]any{"scope": nsxt.TagNamespace, "tag": ns}}, s["tags"])
		require.NotNil(t, e.sim.Object("/infra/domains/default/security-policies/kf_c1_ns_"+ns+"/rules/intra"))
	}
	require.Len(t, addrs, 4, "every floating address is distinct")
	require.Len(t, subnets, 3, "every subnet is distinct")

	// A rebuild with no change reads and writes nothing.
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 0, again.Writes, "%s", again.Plan)
	require.True(t, again.Plan.Empty())
	require.Equal(t, n.APIAddress, again.APIAddress)
	require.Equal(t, n.Namespaces, again.Namespaces)
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	require.NoError(t, err)
	return p
}

func TestAddAndRemoveNamespace(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	first, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a"))
	require.NoError(t, err)
	before := e.sim.Paths()

	added, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a", "b"))
	require.NoError(t, err)
	require.Equal(t, 2, added.Writes)
	for _, ch := range added.Plan.Changes() {
		require.Equal(t, nsxt.Create, ch.Action, "%s", ch)
		require.Contains(t, ch.Path, "_b", "only namespace b's objects change: %s", ch)
	}
	require.Equal(t, first.Namespaces["a"], added.Namespaces["a"])
	require.NotEqual(t, added.Namespaces["a"].Subnet, added.Namespaces["b"].Subnet)

	removed, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a"))
	require.NoError(t, err)
	require.Equal(t, 1, removed.Writes, "removing needs no allocation")
	for _, ch := range removed.Plan.Changes() {
		require.Equal(t, nsxt.Delete, ch.Action, "%s", ch)
	}
	require.Equal(t, before, e.sim.Paths(), "b's objects, subnet and address are gone")

	// The released subnet and address are handed out again.
	again, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a", "c"))
	require.NoError(t, err)
	require.Equal(t, added.Namespaces["b"].Subnet, again.Namespaces["c"].Subnet)
	require.Equal(t, added.Namespaces["b"].SNATAddress, again.Namespaces["c"].SNATAddress)
}

func TestUpdateWritesOnlyWhatChanged(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "a")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	rev := e.sim.Object("/infra/lb-services/kf_c1")["_revision"]

	topo.LBSize = "MEDIUM"
	topo.APIMembers = topo.APIMembers[:1]
	// The plan of a change that allocates nothing is not empty, and prints
	// each update with the fields it changes.
	p, err := e.c.PlanTopology(ctx, topo)
	require.NoError(t, err)
	require.Empty(t, p.Allocate)
	require.False(t, p.Empty(), "a plan with only a configure stage is not empty")
	require.Equal(t, "update LBService /infra/lb-services/kf_c1 (size)\nupdate LBPool /infra/lb-pools/kf_c1_api (members)\n", p.String())
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 1, n.Writes)
	require.Equal(t, []nsxt.Change{
		{Action: nsxt.Update, Path: "/infra/lb-services/kf_c1", Type: "LBService", Fields: []string{"size"}},
		{Action: nsxt.Update, Path: "/infra/lb-pools/kf_c1_api", Type: "LBPool", Fields: []string{"members"}},
	}, n.Plan.Changes())
	lb := e.sim.Object("/infra/lb-services/kf_c1")
	require.Equal(t, "MEDIUM", lb["size"])
	require.NotEqual(t, rev, lb["_revision"])
	require.Len(t, e.sim.Object("/infra/lb-pools/kf_c1_api")["members"], 1)
}

func TestPlanTopologyWritesNothing(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	p, err := e.c.PlanTopology(context.Background(), topology(e.sim, "c1", "a"))
	require.NoError(t, err)
	bad := topology(e.sim, "c1", "a")
	bad.Tier0Path = "/infra/tier-0s/nope"
	_, err = e.c.PlanTopology(context.Background(), bad)
	var fe *nsxt.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "Topology.Tier0Path", fe.Field)
	require.Zero(t, e.sim.Writes())
	require.Len(t, p.Allocate, 6)
	require.Contains(t, p.String(), "\ncreate Segment /infra/segments/kf_c1_ns_a\n", "a create names no fields")
	require.False(t, p.Empty())
	require.Empty(t, e.sim.Paths())
}

func TestSingleTier(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	topo := topology(e.sim, "c1", "a")
	topo.SingleTier = true
	n, err := e.c.BuildTopology(context.Background(), topo)
	require.NoError(t, err)
	require.Equal(t, topo.Tier0Path, e.sim.Object(n.Namespaces["a"].SegmentPath)["connectivity_path"])
	require.NotNil(t, e.sim.Object(topo.Tier0Path+"/nat/USER/nat-rules/kf_c1_ns_a_snat"))
	require.Equal(t, n.Tier1Path, e.sim.Object("/infra/lb-services/kf_c1")["connectivity_path"], "the tier-1 hosts the load balancer")

	td, err := e.c.TeardownTopology(context.Background(), "c1")
	require.NoError(t, err)
	require.NotEmpty(t, td.Deleted)
	require.Empty(t, e.sim.Paths())
	require.Nil(t, e.sim.Object(topo.Tier0Path+"/nat/USER/nat-rules/kf_c1_ns_a_snat"))
}

func TestTeardownFindsObjectsByTag(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	_, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a", "b"))
	require.NoError(t, err)
	_, err = e.c.BuildTopology(ctx, topology(e.sim, "c2", "a"))
	require.NoError(t, err)
	c2 := e.sim.Paths()

	// A new client knows nothing of c1 but its name.
	other := newClient(t, e.sim)
	ns, err := other.TeardownNamespace(ctx, "c1", "b")
	require.NoError(t, err)
	require.Equal(t, 1, ns.Writes)
	require.Contains(t, ns.Deleted, "/infra/segments/kf_c1_ns_b")
	require.NotContains(t, ns.Deleted, "/infra/segments/kf_c1_ns_a")

	td, err := other.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, 1, td.Writes)
	for _, p := range e.sim.Paths() {
		require.NotContains(t, p, "kf_c1", "nothing of c1 is left")
	}
	require.Less(t, len(e.sim.Paths()), len(c2))
	require.NotNil(t, e.sim.Object("/infra/tier-1s/kf_c2"), "c2 is untouched")

	again, err := other.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.Zero(t, again.Writes)
	require.Empty(t, again.Deleted)
}

func TestPoolExhaustion(t *testing.T) {
	inv := simulator.DefaultInventory()
	inv.FloatingRange = [2]string{"10.40.14.10", "10.40.14.13"} // four addresses
	e := newEnv(t, simulator.Config{Inventory: &inv})
	// Two for the cluster and one per namespace: three namespaces need five.
	_, err := e.c.BuildTopology(context.Background(), topology(e.sim, "c1", "a", "b", "c"))
	var re *nsxt.RealizationError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "ERROR", re.State)
	require.Contains(t, re.Message, "exhausted")
	require.Contains(t, err.Error(), "/infra/ip-pools/floating-pool/ip-allocations/kf_c1_")
	require.Nil(t, e.sim.Object(re.Path), "the failed allocation is released, not left in ERROR")

	// Asking for less succeeds without a teardown first, and the teardown
	// returns every address.
	_, err = e.c.BuildTopology(context.Background(), topology(e.sim, "c1", "a", "b"))
	require.NoError(t, err)
	_, err = e.c.TeardownTopology(context.Background(), "c1")
	require.NoError(t, err)
	require.Empty(t, e.sim.Paths())
	require.Empty(t, e.sim.Allocated())
}

func TestConflictIsReadAndReapplied(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "a")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)

	// Someone else edits the load balancer between our read and our write:
	// NSX answers the stale _revision with a conflict.
	e.sim.Inject(&simulator.Fault{Method: "PATCH", Path: regexp.MustCompile(`/infra$`), Nth: 1, Status: 409})
	topo.LBSize = "LARGE"
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 2, n.Writes, "the conflicting PATCH and the one after reading again")
	require.Equal(t, "LARGE", e.sim.Object("/infra/lb-services/kf_c1")["size"])

	// A real one: another writer changes the load balancer after our read,
	// NSX refuses our stale _revision (412, code 604), we read again and
	// win with the fresh revision.
	e.sim.Inject(&simulator.Fault{Method: "PATCH", Path: regexp.MustCompile(`/infra$`), Nth: 1, Before: func() {
		assert.NoError(t, e.sim.Patch("/infra/lb-services/kf_c1", map[string]any{"size": "SMALL", "description": "edited by hand"}))
	}})
	topo.LBSize = "XLARGE"
	n, err = e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 2, n.Writes)
	lb := e.sim.Object("/infra/lb-services/kf_c1")
	require.Equal(t, "XLARGE", lb["size"])
	require.Equal(t, "edited by hand", lb["description"], "a field we do not manage is kept")
}

func TestRetriesBusyManager(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	e.sim.Inject(&simulator.Fault{Method: "PATCH", Path: regexp.MustCompile(`/infra$`), Nth: 1, Times: 2, Status: 503})
	e.sim.Inject(&simulator.Fault{Method: "GET", Path: regexp.MustCompile(`/search/query$`), Nth: 1, Status: 429})
	n, err := e.c.BuildTopology(context.Background(), topology(e.sim, "c1", "a"))
	require.NoError(t, err)
	require.Equal(t, 4, n.Writes, "two 503s retried, then the two PATCHes")
	require.Equal(t, 4, e.sim.Requests()["PATCH /policy/api/v1/infra"])
	require.NotNil(t, e.sim.Object("/infra/tier-1s/kf_c1"))

	// A manager that stays busy past the retries gives a typed error.
	e.sim.Inject(&simulator.Fault{Method: "PATCH", Path: regexp.MustCompile(`/infra$`), Nth: 1, Times: 100, Status: 503})
	_, err = e.c.TeardownTopology(context.Background(), "c1")
	require.ErrorIs(t, err, nsxt.ErrUnavailable)
	require.ErrorIs(t, err, kubefoundry.ErrUnavailable, "the SDK's sentinel")
	var su vapierrors.ServiceUnavailable
	require.ErrorAs(t, err, &su, "the SDK's error it was made from")
}

func TestWrongCredentials(t *testing.T) {
	sim, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer sim.Close()
	_, err = nsxt.New(context.Background(), nsxt.Config{URLs: []string{sim.URL}, Username: "admin", Password: "wrong",
		CACert: string(sim.CertificatePEM())})
	require.ErrorIs(t, err, nsxt.ErrUnauthorized)
	require.Contains(t, err.Error(), "credentials were incorrect")
	require.NotContains(t, err.Error(), "wrong")
}

func TestFailover(t *testing.T) {
	sim, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer sim.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "https://" + ln.Addr().String()
	ln.Close()
	c, err := nsxt.New(context.Background(), nsxt.Config{URLs: []string{dead, sim.URL}, Username: sim.Username(),
		Password: sim.Password(), CACert: string(sim.CertificatePEM())}, nsxt.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.BuildTopology(context.Background(), topology(sim, "c1"))
	require.NoError(t, err)

	_, err = nsxt.New(context.Background(), nsxt.Config{URLs: []string{dead}, Username: "u", Password: "p", Insecure: true})
	require.ErrorContains(t, err, "no manager answered")
}

func TestTrustByThumbprint(t *testing.T) {
	sim, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer sim.Close()
	sum := sha256.Sum256(sim.Certificate().Raw)
	c, err := nsxt.New(context.Background(), nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(),
		Password: sim.Password(), Thumbprint: hex.EncodeToString(sum[:])})
	require.NoError(t, err)
	c.Close(context.Background())
	_, err = nsxt.New(context.Background(), nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(),
		Password: sim.Password(), Thumbprint: strings.Repeat("ab", 32)})
	require.ErrorContains(t, err, "does not match the configured "+strings.Repeat("ab", 32))
	_, err = nsxt.New(context.Background(), nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(), Password: sim.Password()})
	require.Error(t, err, "an untrusted certificate is refused unless Insecure is set")
}

func TestTopologyValidation(t *testing.T) {
	sim, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer sim.Close()
	for _, tc := range []struct {
		field string
		edit  func(*nsxt.Topology)
	}{
		{"ClusterID", func(t *nsxt.Topology) { t.ClusterID = "Bad_ID" }},
		{"Tier0Path", func(t *nsxt.Topology) { t.Tier0Path = "t0" }},
		{"PodIPBlockPaths", func(t *nsxt.Topology) { t.PodIPBlockPaths = nil }},
		{"PodIPBlockPaths[1]", func(t *nsxt.Topology) { t.PodIPBlockPaths = append(t.PodIPBlockPaths, "/infra/ip-pools/x") }},
		{"PodIPBlockPaths[1]", func(t *nsxt.Topology) { t.PodIPBlockPaths = append(t.PodIPBlockPaths, "/infra/ip-blocks/") }},
		{"PodIPBlockPaths[1]", func(t *nsxt.Topology) { t.PodIPBlockPaths = append(t.PodIPBlockPaths, "/infra/ip-blocks/a/b") }},
		{"PodIPBlockPaths[1]", func(t *nsxt.Topology) { t.PodIPBlockPaths = append(t.PodIPBlockPaths, t.PodIPBlockPaths[0]) }},
		{"FloatingIPPoolPaths", func(t *nsxt.Topology) { t.FloatingIPPoolPaths = []string{} }},
		{"FloatingIPPoolPaths[0]", func(t *nsxt.Topology) { t.FloatingIPPoolPaths = []string{"/infra/ip-blocks/x"} }},
		{"MaxL4LBServices", func(t *nsxt.Topology) { t.MaxL4LBServices = -1 }},
		{"LBSize", func(t *nsxt.Topology) { t.LBSize = "HUGE" }},
		{"APIPort", func(t *nsxt.Topology) { t.APIPort = 70000 }},
		{"APIMembers[1]", func(t *nsxt.Topology) { t.APIMembers[1] = "master-1" }},
		{"NamespaceSubnetSize", func(t *nsxt.Topology) { t.NamespaceSubnetSize = 100 }},
		{"Namespaces[1]", func(t *nsxt.Topology) { t.Namespaces = []string{"a", "A"} }},
		{"Namespaces[1]", func(t *nsxt.Topology) { t.Namespaces = []string{"a", "a"} }},
	} {
		topo := topology(sim, "c1", "a")
		tc.edit(&topo)
		err := topo.Validate()
		require.ErrorIs(t, err, nsxt.ErrInvalid, tc.field)
		require.Equal(t, []string{"Topology." + tc.field}, problemFields(t, err))
	}
}

// problemFields are the fields a *kubefoundry.ValidationError names.
func problemFields(t *testing.T, err error) []string {
	t.Helper()
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var out []string
	for _, p := range ve.Problems {
		out = append(out, p.Field)
	}
	return out
}

func TestMissingInventoryNamesTheField(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	topo := topology(e.sim, "c1", "a")
	topo.PodIPBlockPaths = append(topo.PodIPBlockPaths, "/infra/ip-blocks/no-such-block")
	_, err := e.c.BuildTopology(context.Background(), topo)
	var fe *nsxt.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "Topology.PodIPBlockPaths[1]", fe.Field)
	require.Equal(t, "/infra/ip-blocks/no-such-block", fe.Value)
	topo = topology(e.sim, "c1", "a")
	topo.FloatingIPPoolPaths = []string{"/infra/ip-pools/nope", topo.FloatingIPPoolPaths[0]}
	_, err = e.c.BuildTopology(context.Background(), topo)
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "Topology.FloatingIPPoolPaths[0]", fe.Field)

	// Every missing object is named at once.
	topo.Tier0Path = "/infra/tier-0s/gone"
	topo.PodIPBlockPaths = append(topo.PodIPBlockPaths, "/infra/ip-blocks/no-such-block")
	_, err = e.c.BuildTopology(context.Background(), topo)
	require.Equal(t, []string{"Topology.Tier0Path", "Topology.PodIPBlockPaths[1]", "Topology.FloatingIPPoolPaths[0]"},
		problemFields(t, err))
	require.Zero(t, e.sim.Writes(), "nothing is written for a bad topology")
}

func TestConfigStringRedacts(t *testing.T) {
	cfg := nsxt.Config{URLs: []string{"https://nsx", "https://ops:urlpass@nsx-2"}, Username: "admin", Password: "s3cret!",
		ClientKey: "-----BEGIN KEY-----xyz", TLSHandshakeTimeout: 3 * time.Second}
	for _, s := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		require.NotContains(t, s, "s3cret!")
		require.NotContains(t, s, "xyz")
		require.NotContains(t, s, "urlpass", "a password in a URL (which New refuses) is redacted too")
		require.Contains(t, s, "admin")
		require.Contains(t, s, "TLSHandshakeTimeout: 3s")
	}
}

func newClient(t *testing.T, sim *simulator.Server, opts ...nsxt.Option) *nsxt.Client {
	c, err := nsxt.New(context.Background(), nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(),
		Password: sim.Password(), CACert: string(sim.CertificatePEM())}, append([]nsxt.Option{nsxt.WithLogger(zaptest.NewLogger(t))}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Neither the password nor the basic-auth header made of it is logged,
// even at debug level, with a session or without.
func TestPasswordNeverLogged(t *testing.T) {
	for _, noSession := range []bool{false, true} {
		core, logs := observer.New(zap.DebugLevel)
		sim, err := simulator.New(simulator.Config{Password: "pa55-w0rd-xyz", Username: "admin"})
		require.NoError(t, err)
		defer sim.Close()
		c, err := nsxt.New(context.Background(), nsxt.Config{URLs: []string{sim.URL}, Username: "admin", Password: "pa55-w0rd-xyz",
			CACert: string(sim.CertificatePEM()), NoSession: noSession}, nsxt.WithLogger(zap.New(core)))
		require.NoError(t, err)
		sim.ExpireSessions() // a session made again is not logged either
		_, err = c.BuildTopology(context.Background(), topology(sim, "c1", "a"))
		require.NoError(t, err)
		c.Close(context.Background())
		require.NotZero(t, logs.Len())
		basic := base64.StdEncoding.EncodeToString([]byte("admin:pa55-w0rd-xyz"))
		for _, e := range logs.All() {
			line := e.Message + fmt.Sprint(e.ContextMap())
			require.NotContains(t, line, "pa55-w0rd-xyz")
			require.NotContains(t, line, basic)
			require.NotContains(t, line, "%!(EXTRA", "runtime lines without a verb are logged as they are")
		}
	}
}

func TestEnsureNamespace(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1")
	topo.NamespacesManagedElsewhere = true
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)

	a, err := e.c.EnsureNamespace(ctx, topo, "a")
	require.NoError(t, err)
	b, err := e.c.EnsureNamespace(ctx, topo, "b")
	require.NoError(t, err)
	require.NotEqual(t, a.Subnet, b.Subnet)
	require.NotNil(t, e.sim.Object(a.SegmentPath))
	again, err := e.c.EnsureNamespace(ctx, topo, "a")
	require.NoError(t, err)
	require.Equal(t, a, again)

	// The topology leaves the controller's namespaces alone.
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, n.Writes, "%s", n.Plan)
	require.NotNil(t, e.sim.Object(b.SegmentPath))

	_, err = e.c.TeardownNamespace(ctx, "c1", "a")
	require.NoError(t, err)
	require.Nil(t, e.sim.Object(a.SegmentPath))
	require.NotNil(t, e.sim.Object(b.SegmentPath))
}

func TestConcurrentClustersOnOneClient(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	var wg sync.WaitGroup
	nets := make([]*nsxt.Network, 4)
	errs := make([]error, 4)
	for i := range nets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nets[i], errs[i] = e.c.BuildTopology(ctx, topology(e.sim, fmt.Sprintf("c%d", i), "a", "b"))
		}()
	}
	wg.Wait()
	subnets := map[string]bool{}
	for i, n := range nets {
		require.NoError(t, errs[i])
		require.Equal(t, 2, n.Writes, "each call counts its own writes")
		for _, ns := range n.Namespaces {
			subnets[ns.Subnet.String()] = true
		}
	}
	require.Len(t, subnets, 8, "no subnet handed out twice")
}

// Ids join their parts with "_", so names that contain "-" never make two
// clusters' (or two Services') objects collide.
func TestIDsDoNotCollide(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	a, err := e.c.BuildTopology(ctx, topology(e.sim, "a", "nodes"))
	require.NoError(t, err)
	ans, err := e.c.BuildTopology(ctx, topology(e.sim, "a-ns"))
	require.NoError(t, err)
	require.NotEqual(t, a.Namespaces["nodes"].SegmentPath, ans.NodeSegmentPath)

	l1 := nsxt.LoadBalancer{ClusterID: "a", Namespace: "team-a", Name: "web", FloatingIPPoolPaths: topology(e.sim, "a").FloatingIPPoolPaths,
		Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}}}
	l2 := l1
	l2.Namespace, l2.Name = "team", "a-web"
	s1, err := e.c.EnsureLoadBalancer(ctx, l1)
	require.NoError(t, err)
	s2, err := e.c.EnsureLoadBalancer(ctx, l2)
	require.NoError(t, err)
	require.NotEqual(t, s1.IP, s2.IP)
	require.NotEqual(t, s1.VirtualServers, s2.VirtualServers)

	_, err = e.c.TeardownTopology(ctx, "a-ns")
	require.NoError(t, err)
	require.NotNil(t, e.sim.Object(a.Namespaces["nodes"].SegmentPath), "cluster a keeps its namespace")
	again, err := e.c.EnsureLoadBalancer(ctx, l1)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "the other Service did not take it over")
}

// Emptying a list the package manages reaches NSX: an update sends [].
func TestEmptiedListsAreCleared(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Len(t, e.sim.Object("/infra/lb-pools/kf_c1_api")["members"], 3)
	topo.APIMembers = nil
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 1, n.Writes)
	require.Empty(t, e.sim.Object("/infra/lb-pools/kf_c1_api")["members"])
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "%s", again.Plan)

	np := nsxt.NetworkPolicy{ClusterID: "c1", Namespace: "shop", Name: "web",
		Ingress: []nsxt.PolicyRule{{Ports: []nsxt.PolicyPort{{Port: 80}}}}}
	_, _, err = e.c.ApplyNetworkPolicy(ctx, np)
	require.NoError(t, err)
	rule := "/infra/domains/default/security-policies/kf_c1_np_shop_web/rules/in-0"
	require.Len(t, e.sim.Object(rule)["service_entries"], 1)
	np.Ingress[0].Ports = nil
	_, writes, err := e.c.ApplyNetworkPolicy(ctx, np)
	require.NoError(t, err)
	require.Equal(t, 1, writes)
	require.Empty(t, e.sim.Object(rule)["service_entries"], "no ports: every port")
}

func TestAllocationsCannotChangeInPlace(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "a")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	topo.NamespaceSubnetSize = 512
	_, err = e.c.BuildTopology(ctx, topo)
	var fe *nsxt.FieldError
	require.ErrorAs(t, err, &fe)
	require.Contains(t, fe.Field, "NamespaceSubnetSize")
	require.Contains(t, fe.Value, "ip-subnets/ns_a")
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "nsxt.Topology", ve.Object, "the error names what was refused: %v", err)
	_, err = e.c.PlanTopology(ctx, topo)
	require.ErrorAs(t, err, &fe, "the dry run says so too")
}

// NSX's search index trails its writes. Right after a build, a change and
// a teardown still come out right: updates read the revision from the
// object, and teardown reads NSX's store as well as the index.
func TestStaleSearchIndex(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	e.sim.FreezeSearch() // the index shows nothing of the build
	ctx := context.Background()
	topo := topology(e.sim, "c1", "a")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)

	// The index does not show the objects: they are written again (PATCH
	// is an upsert), never duplicated, and nothing is allocated twice.
	allocated := e.sim.Allocated()
	topo.LBSize = "LARGE"
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, "LARGE", e.sim.Object("/infra/lb-services/kf_c1")["size"])
	require.Equal(t, "172.24.0.0/24", n.Namespaces["a"].Subnet.String(), "the same subnet, not a second one")
	require.Equal(t, allocated, e.sim.Allocated())

	// Once the index has caught up, an update is one write with the
	// object's own revision.
	e.sim.FreezeSearch()
	topo.LBSize = "MEDIUM"
	n, err = e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, 1, n.Writes, "%s", n.Plan)

	// A teardown right after a change, which the index does not show,
	// still removes everything.
	topo.Namespaces = append(topo.Namespaces, "b")
	_, err = e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	_, err = e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.Empty(t, e.sim.Paths())
}
