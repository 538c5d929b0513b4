package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// external starts a simulator the test can inspect and returns the flags
// that point build-topology at it as at a real manager.
func external(t *testing.T) (*simulator.Server, []string) {
	t.Helper()
	return externalWith(t, simulator.Config{})
}

func externalWith(t *testing.T, cfg simulator.Config) (*simulator.Server, []string) {
	t.Helper()
	sim, err := simulator.New(cfg)
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, sim.CertificatePEM(), 0o644))
	t.Setenv("NSXT_USERNAME", sim.Username())
	t.Setenv("NSXT_PASSWORD", sim.Password())
	inv := sim.Inventory()
	return sim, []string{"-url", sim.URL, "-ca-file", ca,
		"-tier0", inv.Tier0, "-edge-cluster", inv.EdgeClusterPath(), "-transport-zone", inv.TransportZone,
		"-node-block", inv.NodeBlock.ID, "-pod-block", "/infra/ip-blocks/" + inv.PodBlock.ID, "-floating-pool", inv.FloatingPool}
}

func TestRunOnEmbeddedSimulator(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(testContext(t), []string{"-cluster", "c1", "-namespaces", "default,web"}, &out))
	s := out.String()
	assert.Regexp(t, `^plan for cluster c1: 31 changes\n`, s)
	for _, line := range []string{
		"create IpAddressPool /infra/ip-pools/kf_c1\n",
		"create Tier1 /infra/tier-1s/kf_c1\n",
		"create LBVirtualServer /infra/lb-virtual-servers/kf_c1_api\n",
		"create Segment /infra/segments/kf_c1_ns_web\n",
	} {
		assert.Contains(t, s, line)
	}
	assert.Contains(t, s, "realized with 2 writes:\n")
	assert.Regexp(t, `(?m)^tier-1\s+/infra/tier-1s/kf_c1$`, s)
	assert.Regexp(t, `(?m)^node subnet\s+172\.23\.0\.0/24$`, s)
	assert.Regexp(t, `(?m)^API VIP\s+10\.40\.14\.\d+:8443$`, s)
	assert.Regexp(t, `(?m)^NAMESPACE\s+SEGMENT\s+SUBNET\s+SNAT ADDRESS$`, s)
	assert.Regexp(t, `(?m)^default\s+/infra/segments/kf_c1_ns_default\s+172\.24\.\d+\.0/24\s+10\.40\.14\.\d+$`, s)
	assert.Regexp(t, `(?m)^web\s+/infra/segments/kf_c1_ns_web\s+172\.24\.\d+\.0/24\s+10\.40\.14\.\d+$`, s)
	assert.NotContains(t, s, "torn down")
}

func TestRunExternal(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		writes bool     // the simulator saw writes
		left   bool     // objects are left behind
		want   []string // in the output
	}{
		{"dry run", []string{"-dry-run"}, false, false, []string{"dry run: nothing written\n"}},
		{"build", nil, true, true, []string{"realized with 2 writes:\n", "API VIP"}},
		{"build without a session", []string{"-no-session"}, true, true, []string{"realized with 2 writes:\n"}},
		{"single tier, torn down", []string{"-teardown", "-single-tier"}, true, false, []string{
			"create PolicyNatRule /infra/tier-0s/t0/nat/USER/nat-rules/kf_demo_nodes_snat\n",
			"torn down: 31 objects deleted with 1 writes\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, args := external(t)
			var out bytes.Buffer
			require.NoError(t, run(testContext(t), append(args, tt.args...), &out))
			assert.Contains(t, out.String(), "plan for cluster demo: 31 changes\n")
			for _, w := range tt.want {
				assert.Contains(t, out.String(), w)
			}
			assert.Equal(t, tt.writes, sim.Writes() > 0, "writes")
			assert.Equal(t, tt.left, len(sim.Paths()) > 0, "%v", sim.Paths())
			assert.NotContains(t, out.String(), sim.Password())
			sessions := 1
			if slices.Contains(tt.args, "-no-session") {
				sessions = 0
			}
			assert.Equal(t, sessions, sim.Requests()["POST /api/session/create"], "sessions made")
		})
	}
}

func TestRunFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"url without inventory", []string{"-url", "https://127.0.0.1:1"},
			"-url needs the inventory NSX already holds; missing -tier0, -edge-cluster, -transport-zone, -node-block, -pod-block, -floating-pool"},
		{"url without tier0", []string{"-url", "https://127.0.0.1:1", "-edge-cluster", "e", "-transport-zone", "t",
			"-node-block", "n", "-pod-block", "p", "-floating-pool", "f"}, "missing -tier0"},
		{"bad cluster id", []string{"-cluster", "Demo"}, `Topology.ClusterID "Demo"`},
		{"tier0 not in NSX", []string{"-tier0", "nope"}, `Topology.Tier0Path "/infra/tier-0s/nope": does not exist in NSX`},
		{"second pod block not in NSX", []string{"-pod-block", "pods-block,nope"}, `Topology.PodIPBlockPaths[1] "/infra/ip-blocks/nope": does not exist in NSX`},
		{"negative limit", []string{"-max-l4-lb-services", "-1"}, `Topology.MaxL4LBServices "-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(testContext(t), tt.args, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestRunTwiceWritesNothing(t *testing.T) {
	sim, args := external(t)
	require.NoError(t, run(testContext(t), args, &bytes.Buffer{}))
	writes := sim.Writes()
	var out bytes.Buffer
	require.NoError(t, run(testContext(t), args, &out))
	assert.Contains(t, out.String(), "plan for cluster demo: 0 changes\n")
	assert.Contains(t, out.String(), "realized with 0 writes:\n")
	assert.Equal(t, writes, sim.Writes())
}

// Several pod blocks and floating pools, tried in order, with routable
// namespaces and a limit of LoadBalancer Services, as a TKGI network
// profile has them.
func TestRunNetworkProfile(t *testing.T) {
	inv := simulator.DefaultInventory()
	inv.PodBlock.CIDR = "172.24.0.0/24" // room for one namespace
	inv.MorePodBlocks = []simulator.Block{{ID: "pods-2", CIDR: "172.30.0.0/16"}}
	inv.MoreFloatingPools = []simulator.Pool{{ID: "fip-2", CIDR: "10.50.0.0/24", Range: [2]string{"10.50.0.10", "10.50.0.20"}}}
	sim, args := externalWith(t, simulator.Config{Inventory: &inv})
	args = append(args, "-pod-block", "pods-2", "-floating-pool", "/infra/ip-pools/fip-2",
		"-namespaces", "a,b", "-pod-routable", "-max-l4-lb-services", "20")
	var out bytes.Buffer
	require.NoError(t, run(testContext(t), args, &out))
	s := out.String()
	assert.Regexp(t, `(?m)^a\s+/infra/segments/kf_demo_ns_a\s+172\.24\.0\.0/24\s+- \(routable\)$`, s)
	assert.Regexp(t, `(?m)^b\s+/infra/segments/kf_demo_ns_b\s+172\.30\.0\.0/24\s+- \(routable\)$`, s, "the first block is full")
	assert.NotContains(t, s, "nat-rules/kf_demo_ns_")
	assert.Contains(t, sim.Object("/infra/lb-services/kf_demo")["tags"],
		map[string]any{"scope": "kubefoundry/max-l4-lb-services", "tag": "20"})

	out.Reset()
	require.NoError(t, run(testContext(t), args, &out))
	assert.Contains(t, out.String(), "realized with 0 writes:\n")
}
