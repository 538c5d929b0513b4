package nsxt_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// Objects others make under kubefoundry's: a CNI's segment ports, a rule
// added by hand to one of the cluster's DFW policies.

// handMade writes body at path of the Policy API as another client (a
// CNI, an operator at the NSX UI) would: a plain PATCH.
func handMade(t *testing.T, sim *simulator.Server, path string, body map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	handRequest(t, sim, http.MethodPatch, path, bytes.NewReader(b))
}

// handRequest sends one request to the Policy API as another client would.
func handRequest(t *testing.T, sim *simulator.Server, method, path string, body io.Reader) {
	t.Helper()
	handRequestAs(t, sim, nil, method, path, body)
}

// handRequestAs is handRequest as the principal identity of cert, or with
// the simulator's user and password when cert is nil.
func handRequestAs(t *testing.T, sim *simulator.Server, cert *tls.Certificate, method, path string, body io.Reader) {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(sim.CertificatePEM()))
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), method, sim.URL+"/policy/api/v1"+path, body)
	require.NoError(t, err)
	if cert == nil {
		req.SetBasicAuth(sim.Username(), sim.Password())
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", msg)
}

// handRule adds an untagged rule to a security policy, as an operator
// does by hand.
func handRule(t *testing.T, sim *simulator.Server, policy, id string) string {
	t.Helper()
	path := "/infra/domains/default/security-policies/" + policy + "/rules/" + id
	handMade(t, sim, path, map[string]any{"resource_type": "Rule", "action": "ALLOW",
		"source_groups": []any{"ANY"}, "destination_groups": []any{"ANY"}, "services": []any{"ANY"}, "sequence_number": 5})
	return path
}

// NSX deletes a security policy together with its rules, whoever made
// them. A rule an operator adds by hand, untagged, to one of the
// cluster's policies, does not keep the policy from going: not in a
// teardown, nor in an update that drops the policy, nor when a
// NetworkPolicy goes; an update that keeps the policy leaves the rule
// alone. Each happens with the search index frozen (showing the build and
// nothing after) and with it caught up.
func TestHandMadeRuleUnderOurPolicy(t *testing.T) {
	ctx := context.Background()
	indexStates(t, func(t *testing.T, e *env, topo nsxt.Topology, frozen bool) {
		var err error
		if frozen {
			e.sim.FreezeSearch() // the index shows the build, nothing after
		}
		np := nsxt.NetworkPolicy{ClusterID: "c1", Namespace: "a", Name: "db",
			PodSelector: nsxt.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}
		_, _, err = e.c.ApplyNetworkPolicy(ctx, np)
		require.NoError(t, err)
		for _, p := range []string{"kf_c1", "kf_c1_ns_a", "kf_c1_ns_b", "kf_c1_ns_c", "kf_c1_np_a_db"} {
			handRule(t, e.sim, p, "by-hand")
		}

		// An update that keeps the policies leaves the rules alone.
		again, err := newClient(t, e.sim).BuildTopology(ctx, topo)
		require.NoError(t, err)
		require.Zero(t, again.Writes, "%s", again.Plan)
		require.NotNil(t, e.sim.Object("/infra/domains/default/security-policies/kf_c1_ns_b/rules/by-hand"))

		// An update that drops namespace c drops its policy, rule and all.
		topo.Namespaces = []string{"a", "b"}
		_, err = newClient(t, e.sim).BuildTopology(ctx, topo)
		require.NoError(t, err)
		require.Nil(t, e.sim.Object("/infra/domains/default/security-policies/kf_c1_ns_c"))
		require.Nil(t, e.sim.Object("/infra/domains/default/security-policies/kf_c1_ns_c/rules/by-hand"))

		del, err := newClient(t, e.sim).DeleteNetworkPolicy(ctx, "c1", "a", "db")
		require.NoError(t, err)
		require.Equal(t, 1, del.Writes)
		require.Nil(t, e.sim.Object("/infra/domains/default/security-policies/kf_c1_np_a_db/rules/by-hand"))

		ns, err := newClient(t, e.sim).TeardownNamespace(ctx, "c1", "b")
		require.NoError(t, err)
		require.Equal(t, 1, ns.Writes)
		require.Nil(t, e.sim.Object("/infra/domains/default/security-policies/kf_c1_ns_b/rules/by-hand"))

		td, err := newClient(t, e.sim).TeardownTopology(ctx, "c1")
		require.NoError(t, err)
		require.Equal(t, 1, td.Writes, "one PATCH")
		requireNothingLeft(t, e.sim)
	})
}

// port adds a port to a segment, as a CNI (NCP, antrea-nsx) does for a
// pod, tagged with what the scopes and tags say, or as vCenter or another
// tool does, untagged.
func port(t *testing.T, sim *simulator.Server, segment, id string, tags ...string) string {
	t.Helper()
	var list []any
	for i := 0; i+1 < len(tags); i += 2 {
		list = append(list, map[string]any{"scope": tags[i], "tag": tags[i+1]})
	}
	path := segment + "/ports/" + id
	body := map[string]any{"resource_type": "SegmentPort"}
	if list != nil {
		body["tags"] = list
	}
	handMade(t, sim, path, body)
	return path
}

// A CNI makes a port on the cluster's segments for each pod, tagged with
// the cluster (and namespace); vCenter or another tool may make more,
// untagged. NSX refuses to delete a segment that has ports: a teardown
// deletes the ports of the segments it deletes, tagged or not (the segment
// is the cluster's, and going means whatever is attached to it goes), in
// the same PATCH, and a port tagged with the cluster wherever the search
// shows it (only the search finds one on a segment that is not ours). An
// update leaves the ports of the segments it keeps alone, and deletes
// those of a segment it drops. Each with the search index caught up (it
// shows the tagged ports) and frozen (it shows none).
func TestSegmentPortsOnOurSegments(t *testing.T) {
	ctx := context.Background()
	const segs = "/infra/segments/"
	indexStates(t, func(t *testing.T, e *env, topo nsxt.Topology, frozen bool) {
		var err error
		// A segment of the platform team's, not the cluster's.
		handMade(t, e.sim, segs+"shared", map[string]any{"resource_type": "Segment", "connectivity_path": topo.Tier0Path})
		if frozen {
			e.sim.FreezeSearch() // the index shows the build, no port
		}
		var ports []string
		for _, ns := range []string{"a", "b", "c"} {
			seg := segs + "kf_c1_ns_" + ns
			ports = append(ports,
				port(t, e.sim, seg, "pod-1", nsxt.TagCluster, "c1", nsxt.TagNamespace, ns),
				port(t, e.sim, seg, "pod-2", nsxt.TagCluster, "c1", nsxt.TagNamespace, ns),
				port(t, e.sim, seg, "other"))
		}
		ports = append(ports,
			port(t, e.sim, segs+"kf_c1_nodes", "vm-1"),
			port(t, e.sim, segs+"shared", "pod-x", nsxt.TagCluster, "c1", nsxt.TagNamespace, "a"))
		sharedOther := port(t, e.sim, segs+"shared", "vm-x")
		if !frozen {
			e.sim.FreezeSearch()
			e.sim.ThawSearch() // the index shows the tagged ports
			require.Equal(t, len(ownedBy(e.sim, "c1", "")), indexed(t, e.sim, "c1"))
		}

		// Updates that keep the segments leave their ports alone.
		again, err := newClient(t, e.sim).BuildTopology(ctx, topo)
		require.NoError(t, err)
		require.Zero(t, again.Writes, "%s", again.Plan)
		_, err = newClient(t, e.sim).EnsureNamespace(ctx, topo, "a")
		require.NoError(t, err)
		for _, p := range ports {
			require.NotNil(t, e.sim.Object(p), p)
		}

		// An update that drops c deletes its segment's ports with it.
		topo.Namespaces = []string{"a", "b"}
		n, err := newClient(t, e.sim).BuildTopology(ctx, topo)
		require.NoError(t, err)
		require.Equal(t, 1, n.Writes)
		require.Contains(t, n.Plan.Configure, nsxt.Change{Action: nsxt.Delete, Path: segs + "kf_c1_ns_c/ports/other", Type: "SegmentPort"})
		require.Empty(t, ownedBy(e.sim, "c1", "c"))
		require.Nil(t, e.sim.Object(segs+"kf_c1_ns_c/ports/other"))

		// A namespace's teardown deletes its segment's ports, and its
		// ports elsewhere that the index shows: only the search finds
		// one on a segment that is not the cluster's.
		ns, err := newClient(t, e.sim).TeardownNamespace(ctx, "c1", "a")
		require.NoError(t, err)
		require.Equal(t, 1, ns.Writes, "one PATCH")
		for _, p := range []string{segs + "kf_c1_ns_a/ports/pod-1", segs + "kf_c1_ns_a/ports/other"} {
			require.Contains(t, ns.Deleted, p)
		}
		elsewhere := segs + "shared/ports/pod-x"
		if frozen {
			require.NotContains(t, ns.Deleted, elsewhere)
		} else {
			require.Contains(t, ns.Deleted, elsewhere)
		}
		require.NotNil(t, e.sim.Object(segs+"kf_c1_ns_b/ports/pod-1"), "b's are b's")

		td, err := newClient(t, e.sim).TeardownTopology(ctx, "c1")
		require.NoError(t, err)
		require.Equal(t, 1, td.Writes, "one PATCH")
		require.Contains(t, td.Deleted, segs+"kf_c1_nodes/ports/vm-1")
		require.Contains(t, td.Deleted, segs+"kf_c1_ns_b/ports/other")
		require.Empty(t, e.sim.Allocated())
		if frozen {
			require.Equal(t, []string{segs + "shared", elsewhere, sharedOther}, e.sim.Paths())
			e.sim.ThawSearch()
			late, err := newClient(t, e.sim).TeardownTopology(ctx, "c1")
			require.NoError(t, err)
			require.Equal(t, []string{elsewhere}, late.Deleted, "once the index shows it")
		}
		require.Equal(t, []string{segs + "shared", sharedOther}, e.sim.Paths(), "what is not the cluster's stays")

		again2, err := newClient(t, e.sim).TeardownTopology(ctx, "c1")
		require.NoError(t, err)
		require.Zero(t, again2.Writes)
	})
}

// handDelete deletes path as another client would.
func handDelete(t *testing.T, sim *simulator.Server, path string) {
	t.Helper()
	handRequest(t, sim, http.MethodDelete, path, nil)
}

// A VM's NIC on one of the cluster's segments is not kubefoundry's to
// delete: NSX would delete the port but leave the VM attached, in
// vCenter, to a network that is gone. An update that drops that segment,
// and a teardown, refuse (ErrInUse, naming the port) and write nothing;
// what has no VM on it goes as usual; once the VM is off the segment the
// teardown finishes.
func TestVMPortKeepsItsSegment(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{})
	topo := topology(e.sim, "c1", "a", "b")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	const vmPort = "/infra/segments/kf_c1_ns_b/ports/vm-nic"
	handMade(t, e.sim, vmPort, map[string]any{"resource_type": "SegmentPort",
		"attachment": map[string]any{"id": "vif-1", "type": "PARENT"}})
	// A CNI's container port, untagged, goes with its segment.
	child := port(t, e.sim, "/infra/segments/kf_c1_ns_b", "pod-1")
	handMade(t, e.sim, child, map[string]any{"resource_type": "SegmentPort",
		"attachment": map[string]any{"id": "cif-1", "type": "CHILD", "context_id": "vif-1"}})
	before := e.sim.Paths()
	writes := e.sim.Writes()

	drop := topo
	drop.Namespaces = []string{"a"}
	_, err = e.c.BuildTopology(ctx, drop)
	require.ErrorIs(t, err, nsxt.ErrInUse)
	require.ErrorContains(t, err, vmPort)
	require.NotContains(t, err.Error(), child, "the container port is not in the way")
	_, err = e.c.TeardownTopology(ctx, "c1")
	require.ErrorIs(t, err, nsxt.ErrInUse)
	require.ErrorContains(t, err, "vif-1")
	require.Equal(t, writes, e.sim.Writes(), "nothing written")
	require.Equal(t, before, e.sim.Paths())

	_, err = e.c.TeardownNamespace(ctx, "c1", "a")
	require.NoError(t, err, "a's segment has no VM on it")

	handDelete(t, e.sim, vmPort) // the VM leaves the segment
	td, err := e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.Contains(t, td.Deleted, child)
	requireNothingLeft(t, e.sim)
}

// indexStates runs body on a cluster c1 with namespaces a, b and c just
// built, once with NSX's search index caught up and once with it to be
// frozen by body (frozen true) where body wants.
func indexStates(t *testing.T, body func(t *testing.T, e *env, topo nsxt.Topology, frozen bool)) {
	for _, frozen := range []bool{false, true} {
		name := "the index caught up"
		if frozen {
			name = "the index frozen"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, simulator.Config{})
			topo := topology(e.sim, "c1", "a", "b", "c")
			_, err := e.c.BuildTopology(context.Background(), topo)
			require.NoError(t, err)
			body(t, e, topo, frozen)
		})
	}
}

// A port added to a segment between the update's reads and its PATCH
// (a CNI starting a pod as the namespace goes, or a VM attached) makes
// NSX refuse the segment's delete (error code 503040): the update reads
// again and, as when the port was there before, deletes a CNI's port with
// the segment, or refuses a VM's NIC with ErrInUse, having written
// nothing.
func TestPortAddedWhileAnUpdateDropsItsSegment(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		port map[string]any
		ok   bool
	}{
		{"a CNI's port", map[string]any{"resource_type": "SegmentPort",
			"tags": []any{map[string]any{"scope": nsxt.TagCluster, "tag": "c1"}}}, true},
		{"a VM's NIC", map[string]any{"resource_type": "SegmentPort",
			"attachment": map[string]any{"id": "vif-9", "type": "PARENT"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, simulator.Config{})
			topo := topology(e.sim, "c1", "a", "b")
			_, err := e.c.BuildTopology(ctx, topo)
			require.NoError(t, err)
			const racer = "/infra/segments/kf_c1_ns_b/ports/racer"
			added := errors.New("never added")
			e.sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 1,
				Before: func() { added = e.sim.Put(racer, tc.port) }})
			before, writes := e.sim.Paths(), e.sim.Writes()

			drop := topo
			drop.Namespaces = []string{"a"}
			n, err := e.c.BuildTopology(ctx, drop)
			require.NoError(t, added)
			if !tc.ok {
				require.ErrorIs(t, err, nsxt.ErrInUse)
				require.ErrorContains(t, err, racer)
				require.Equal(t, writes+1, e.sim.Writes(), "the refused PATCH, and nothing after")
				require.ElementsMatch(t, append(slices.Clone(before), racer), e.sim.Paths())
				handDelete(t, e.sim, racer)
				teardownLeavesNothing(t, e, "c1")
				return
			}
			require.NoError(t, err)
			require.Equal(t, 2, n.Writes, "the refused PATCH, and the one after reading again")
			require.Nil(t, e.sim.Object(racer))
			require.Nil(t, e.sim.Object("/infra/segments/kf_c1_ns_b"))
			again, err := e.c.BuildTopology(ctx, drop)
			require.NoError(t, err)
			require.Zero(t, again.Writes)
			teardownLeavesNothing(t, e, "c1")
		})
	}
}

// Someone else's rule naming one of the cluster's groups keeps it: NSX
// refuses the delete (500030) for a reference kubefoundry cannot see. The
// update that drops the namespace, and the teardown, read again twice (a
// CNI's port added since the read is found so), then fail with ErrInUse
// naming the reference; once the rule goes, both succeed.
func TestUnseenReferenceKeepsAGroup(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{})
	topo := topology(e.sim, "c1", "a", "b")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	const policy = "/infra/domains/default/security-policies/theirs"
	handMade(t, e.sim, policy, map[string]any{"resource_type": "SecurityPolicy", "category": "Application", "sequence_number": 5})
	handMade(t, e.sim, policy+"/rules/to-b", map[string]any{"resource_type": "Rule", "action": "ALLOW",
		"source_groups": []any{"ANY"}, "destination_groups": []any{"/infra/domains/default/groups/kf_c1_ns_b"},
		"services": []any{"ANY"}, "sequence_number": 1})

	drop := topo
	drop.Namespaces = []string{"a"}
	writes := e.sim.Writes()
	_, err = e.c.BuildTopology(ctx, drop)
	require.ErrorIs(t, err, nsxt.ErrInUse)
	require.ErrorContains(t, err, policy+"/rules/to-b")
	require.Equal(t, writes+3, e.sim.Writes(), "refused, and twice more after reading again")
	writes = e.sim.Writes()
	_, err = e.c.TeardownTopology(ctx, "c1")
	require.ErrorIs(t, err, nsxt.ErrInUse)
	require.Equal(t, writes+3, e.sim.Writes())

	handDelete(t, e.sim, policy)
	_, err = e.c.BuildTopology(ctx, drop)
	require.NoError(t, err)
	teardownLeavesNothing(t, e, "c1")
}
