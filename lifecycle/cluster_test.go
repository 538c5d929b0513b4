package lifecycle_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/find"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/lifecycle"
	"github.com/kubefoundry/kubefoundry/lifecycle/kuberelease"
	"github.com/kubefoundry/kubefoundry/lifecycle/simulator"
)

// binaries are the ones `make tools` builds into the repository's bin/;
// the test skips without them, or fails under KUBEFOUNDRY_REQUIRE_KUBE=1.
func binaries(t *testing.T) kuberelease.Binaries {
	t.Helper()
	bin, err := filepath.Abs("../bin")
	require.NoError(t, err)
	b := kuberelease.Binaries{Etcd: filepath.Join(bin, "etcd"), KubeAPIServer: filepath.Join(bin, "kube-apiserver"),
		KubeControllerManager: filepath.Join(bin, "kube-controller-manager"), KubeScheduler: filepath.Join(bin, "kube-scheduler"),
		Kubectl: filepath.Join(bin, "kubectl"), Kubelet: filepath.Join(bin, "kwok")}
	if err := b.Validate(); err != nil {
		if os.Getenv("KUBEFOUNDRY_REQUIRE_KUBE") == "1" {
			t.Fatalf("the Kubernetes binaries (make tools): %v", err)
		}
		t.Skipf("the Kubernetes binaries are not built (make tools): %v", err)
	}
	return b
}

// A cluster made by Create on the simulated foundation answers through
// its load balancer with the kubeconfig Credentials gives, its workers
// Ready; Delete takes away its VMs, its NSX objects and its record, and
// a second Delete finds nothing to do.
func TestCreateAndDelete(t *testing.T) {
	bins := binaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	f, err := simulator.Start(ctx, simulator.Config{Clusters: 2, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, f.Close()) })
	lf, err := f.Lifecycle(ctx, bins, "1.36.3")
	require.NoError(t, err)
	st, err := lifecycle.OpenStore(filepath.Join(t.TempDir(), "lifecycle.db"))
	require.NoError(t, err)
	defer st.Close()
	plans := lifecycle.DefaultPlans()
	tiny := plans["small"]
	tiny.Name, tiny.Workers = "tiny", 2
	plans["tiny"] = tiny
	var mu sync.Mutex
	var events []kubefoundry.Event
	sink := kubefoundry.SinkFunc(func(e kubefoundry.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	m, err := lifecycle.New(lifecycle.Config{Foundation: lf, Store: st, Plans: plans, Events: sink, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)

	spec := lifecycle.ClusterSpec{Name: "alpha", Plan: "tiny", KubernetesVersion: "1.36.3"}
	start := time.Now()
	c, err := m.Create(ctx, spec)
	require.NoError(t, err)
	t.Logf("created in %s", time.Since(start).Round(time.Second))
	mu.Lock()
	var stages []string
	deploySteps := 0
	for _, e := range events {
		switch e.Op {
		case "create cluster":
			assert.Equal(t, "alpha", e.Message)
			assert.Equal(t, 7, e.Steps)
			stages = append(stages, e.Object+" "+e.Phase)
		case "deploy":
			if e.Phase == "done" {
				deploySteps++
			}
		}
	}
	mu.Unlock()
	assert.Equal(t, []string{"network started", "network done", "cloud config started", "cloud config done", "stemcell started",
		"stemcell done", "release started", "release done", "deploy started", "deploy done", "api started", "api done",
		"nodes started", "nodes done"}, stages, "one stream: the stages in order")
	assert.GreaterOrEqual(t, deploySteps, 3, "the director's steps, one per instance at least")
	assert.Equal(t, lifecycle.StateRunning, mustGet(t, m, "alpha").State)
	assert.True(t, strings.HasPrefix(c.APIAddress, "127.200."), "the API address is the load balancer's, from the floating pool: %s", c.APIAddress)
	require.Len(t, c.Nodes, 3)
	assert.Equal(t, "master", c.Nodes[0].Group)
	assert.True(t, c.NodeSubnet.Contains(mustAddr(t, c.Nodes[0].IP)), "the nodes are on the cluster's NSX node subnet %s", c.NodeSubnet)

	kc, err := m.Credentials(ctx, "alpha")
	require.NoError(t, err)
	assert.Contains(t, string(kc), "https://"+c.APIAddress+":8443", "the kubeconfig points at the load balancer")
	rc, err := kube.RESTConfig(kc)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	ready := 0
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	assert.Equal(t, 3, ready, "the control-plane node and both workers Ready, through the load balancer")

	again, err := m.Create(ctx, spec)
	require.NoError(t, err, "Create again converges")
	assert.Equal(t, c.APIAddress, again.APIAddress)
	other := spec
	other.Plan = "small"
	_, err = m.Create(ctx, other)
	require.ErrorIs(t, err, kubefoundry.ErrConflict, "another spec under the same name")

	require.NoError(t, m.Delete(ctx, "alpha"))
	_, err = m.Get(ctx, "alpha")
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)
	vms, err := find.NewFinder(f.VSphere.Vim25()).VirtualMachineList(ctx, "/DC0/vm/"+simulator.VMFolder+"/*")
	if err == nil {
		assert.Empty(t, vms, "no VM is left")
	}
	owned, err := lf.NSX.ListOwned(ctx, "alpha")
	require.NoError(t, err)
	assert.Empty(t, owned, "no NSX object of the cluster is left")
	cfgs, err := f.Director.Configs("cloud")
	require.NoError(t, err)
	for _, c := range cfgs {
		assert.NotEqual(t, "kubefoundry-alpha", c.Name, "the cluster's cloud config is gone")
	}
	require.NoError(t, m.Delete(ctx, "alpha"), "deleting what is gone is done")
}

func mustGet(t *testing.T, m *lifecycle.Manager, name string) *lifecycle.Cluster {
	t.Helper()
	c, err := m.Get(t.Context(), name)
	require.NoError(t, err)
	return c
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	require.NoError(t, err)
	return a
}
