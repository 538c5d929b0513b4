package lifecycle_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/lifecycle"
)

func validSpec() lifecycle.ClusterSpec {
	return lifecycle.ClusterSpec{
		Name: "prod-1", Plan: "medium", KubernetesVersion: "1.36.3",
		Network: lifecycle.NetworkProfile{Tier0Path: "/infra/tier-0s/t0", PodIPBlockPaths: []string{"/infra/ip-blocks/pods"},
			FloatingIPPoolPaths: []string{"/infra/ip-pools/fip"}, LBSize: "MEDIUM"},
		Compute: &lifecycle.ComputeProfile{
			AZs: []lifecycle.AZ{{Name: "az1", Cluster: "DC0_C0"}, {Name: "az2", Cluster: "DC0_C1", HostGroup: "rack-2"}},
			NodePools: []lifecycle.NodePool{
				{Name: "general", Count: 3, Size: lifecycle.NodeSize{CPU: 4, MemoryMB: 16384, DiskGB: 100}},
				{Name: "gpu", Count: 1, Size: lifecycle.NodeSize{CPU: 8, MemoryMB: 65536, DiskGB: 200}, AZs: []string{"az2"},
					Labels: map[string]string{"example.com/gpu": "a100"},
					Taints: []corev1.Taint{{Key: "example.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}}},
			},
		},
		Kubernetes: lifecycle.KubernetesProfile{APIServerArgs: map[string]string{"audit-log-maxage": "30"},
			OIDC: &lifecycle.OIDC{IssuerURL: "https://login.example.com", ClientID: "kubernetes", GroupsClaim: "groups"}, EncryptionAtRest: true},
		Harbor: lifecycle.HarborSettings{Project: "prod-1-images"},
	}
}

func TestValidSpec(t *testing.T) {
	s := validSpec()
	require.NoError(t, s.Validate(lifecycle.DefaultPlans()))
	s.Compute = nil
	require.NoError(t, s.Validate(lifecycle.DefaultPlans()), "the plan's workers")
	for name, p := range lifecycle.DefaultPlans() {
		assert.NoError(t, p.Validate(), name)
		assert.Equal(t, name, p.Name)
	}

	raw, err := json.Marshal(validSpec())
	require.NoError(t, err)
	var back lifecycle.ClusterSpec
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.Equal(t, validSpec(), back, "a spec round-trips through JSON, as a journal keeps it")
}

// Every problem of a spec is reported at once, each at its path.
func TestInvalidSpecListsEveryProblem(t *testing.T) {
	s := validSpec()
	s.Name = "Prod_1"
	s.KubernetesVersion = "1.36"
	s.Network = lifecycle.NetworkProfile{Tier0Path: "t0", FloatingIPPoolPaths: []string{"/infra/ip-pools/a", "/infra/ip-pools/a", "/infra/ip-blocks/b"},
		LBSize: "HUGE", MaxL4LBServices: -1}
	s.Compute.AZs = append(s.Compute.AZs, lifecycle.AZ{Name: "az1"})
	s.Compute.NodePools[0].Name = "gpu"
	s.Compute.NodePools[1].AZs = []string{"az9"}
	s.Compute.NodePools[1].Labels["bad key!"] = "x"
	s.Compute.NodePools[1].Taints[0].Effect = "Sometimes"
	s.Compute.NodePools[1].Size.CPU = 0
	s.Kubernetes.APIServerArgs["etcd-servers"] = "https://elsewhere:2379"
	s.Kubernetes.KubeletArgs = map[string]string{"--max-pods": "200"}
	s.Kubernetes.OIDC = &lifecycle.OIDC{IssuerURL: "http://login.example.com"}
	s.Harbor = lifecycle.HarborSettings{Project: "Images", StorageLimitGB: -5}

	err := s.Validate(lifecycle.DefaultPlans())
	require.Error(t, err)
	assert.True(t, kubefoundry.IsInvalid(err))
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	slices.Sort(fields)
	assert.Equal(t, []string{
		"compute.azs[2].cluster",
		"compute.azs[2].name",
		"compute.nodePools[1].azs[0]",
		"compute.nodePools[1].labels",
		"compute.nodePools[1].name",
		"compute.nodePools[1].size.cpu",
		"compute.nodePools[1].taints[0].effect",
		"harbor.project",
		"harbor.storageLimitGB",
		"kubernetes.apiServerArgs.etcd-servers",
		"kubernetes.kubeletArgs",
		"kubernetes.oidc.clientID",
		"kubernetes.oidc.issuerURL",
		"kubernetesVersion",
		"name",
		"network.floatingIPPoolPaths[1]",
		"network.floatingIPPoolPaths[2]",
		"network.lbSize",
		"network.maxL4LBServices",
		"network.podIPBlockPaths",
		"network.tier0Path",
	}, fields, "%v", err)
}

func TestSpecPlanChecks(t *testing.T) {
	s := validSpec()
	s.Plan = "huge"
	err := s.Validate(lifecycle.DefaultPlans())
	require.ErrorContains(t, err, `plan "huge": no such plan: one of large, medium, small`)

	plans := lifecycle.DefaultPlans()
	bad := plans["small"]
	bad.ControlPlaneNodes = 2
	bad.ControlPlane.PersistentDiskGB = 0
	bad.Workers = 0
	plans["small"] = bad
	s.Plan, s.Compute = "small", nil
	err = s.Validate(plans)
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"plan(small).controlPlaneNodes", "plan(small).controlPlane.persistentDiskGB", "plan"}, fields, "%v", err)
	assert.Contains(t, err.Error(), "has no workers, and the cluster no compute profile")
}

// The smallest sizes and counts accepted are accepted; one less is not.
func TestSpecBoundaries(t *testing.T) {
	s := validSpec()
	s.Compute.NodePools[0].Size = lifecycle.NodeSize{CPU: 1, MemoryMB: 1024, DiskGB: 8}
	s.Compute.NodePools[0].Count = 0 // a pool scaled to nothing, beside one with a node
	s.Compute.NodePools[1].Taints[0].Value = ""
	require.NoError(t, s.Validate(lifecycle.DefaultPlans()))

	plans := lifecycle.DefaultPlans()
	one := plans["small"]
	one.Workers = 1
	plans["small"] = one
	s2 := validSpec()
	s2.Plan, s2.Compute = "small", nil
	require.NoError(t, s2.Validate(plans), "a plan of one worker")

	s.Compute.NodePools[0].Size = lifecycle.NodeSize{CPU: 0, MemoryMB: 1023, DiskGB: 7}
	s.Compute.NodePools[1].Count = 0
	s.Compute.NodePools[1].Taints[0].Value = "not a value!"
	err := s.Validate(lifecycle.DefaultPlans())
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"compute.nodePools[0].size.cpu", "compute.nodePools[0].size.memoryMB", "compute.nodePools[0].size.diskGB",
		"compute.nodePools[1].taints[0].value", "compute.nodePools"}, fields, "%v", err)
	assert.Contains(t, err.Error(), "the pools have no worker between them")
}

func TestSpecWithoutNodePools(t *testing.T) {
	s := validSpec()
	s.Compute.NodePools = nil
	err := s.Validate(lifecycle.DefaultPlans())
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 1, "%v", err)
	assert.Equal(t, "compute.nodePools", ve.Problems[0].Field)
	assert.Contains(t, ve.Problems[0].Reason, "at least one node pool is required")
}

// Workers overrides the plan's worker count; it is never negative, and a
// cluster with node pools sizes them instead.
func TestSpecWorkers(t *testing.T) {
	s := validSpec()
	s.Plan, s.Compute, s.Workers = "small", nil, 7
	require.NoError(t, s.Validate(lifecycle.DefaultPlans()))
	s.Workers = -1
	err := s.Validate(lifecycle.DefaultPlans())
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 1)
	assert.Equal(t, "workers", ve.Problems[0].Field)
	s2 := validSpec()
	s2.Workers = 2
	require.ErrorAs(t, s2.Validate(lifecycle.DefaultPlans()), &ve)
	require.Len(t, ve.Problems, 1)
	assert.Contains(t, ve.Problems[0].Reason, "node pools")
}
