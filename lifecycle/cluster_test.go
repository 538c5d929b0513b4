package lifecycle_test

import (
	"context"
	"fmt"
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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/lifecycle"
	"github.com/kubefoundry/kubefoundry/lifecycle/kuberelease"
	"github.com/kubefoundry/kubefoundry/lifecycle/simulator"
	"github.com/kubefoundry/kubefoundry/nsxt"
)

// binaries are the ones `make tools` builds into the repository's bin/;
// the test skips without them, or fails under KUBEFOUNDRY_REQUIRE_KUBE=1.
func binaries(t *testing.T) kuberelease.Binaries {
	t.Helper()
	bin, err := filepath.Abs("../bin")
	require.NoError(t, err)
	b := kuberelease.BinariesIn(bin)
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
	assert.True(t, netip.MustParsePrefix(f.NSXInventory.FloatingCIDR).Contains(mustAddr(t, c.APIAddress)),
		"the API address is the load balancer's, from the floating pool %s: %s", f.NSXInventory.FloatingCIDR, c.APIAddress)
	require.Len(t, c.Nodes, 3)
	assert.Equal(t, "master", c.Nodes[0].Group)
	assert.True(t, c.NodeSubnet.Contains(mustAddr(t, c.Nodes[0].IP)), "the nodes are on the cluster's NSX node subnet %s", c.NodeSubnet)

	// A cluster whose record is lost is orphans, all of it; with its record
	// back, none.
	rec, err := st.Cluster("alpha")
	require.NoError(t, err)
	require.NoError(t, st.DeleteCluster("alpha"))
	orphans, err := m.Orphans(ctx)
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, o := range orphans {
		assert.Equal(t, "alpha", o.Cluster)
		kinds[o.System+" "+o.Kind] = true
	}
	assert.True(t, kinds["bosh deployment"] && kinds["bosh cloud config"] && kinds["nsx Tier1"] && kinds["nsx LBVirtualServer"], "%v", kinds)
	require.NoError(t, st.PutCluster(rec))
	orphans, err = m.Orphans(ctx)
	require.NoError(t, err)
	assert.Empty(t, orphans)

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

	// Resize: a worker goes, drained first, its pods moved and its Node
	// removed; then two come.
	replicas := int32(4)
	labels := map[string]string{"app": "web"}
	_, err = cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	minAvailable := intstr.FromInt32(3)
	_, err = cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable, Selector: &metav1.LabelSelector{MatchLabels: labels}}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	webReady := func() int32 {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		return d.Status.ReadyReplicas
	}
	waitFor(t, func() bool { return webReady() == 4 }, "4 pods of web ready")
	removed := c.Nodes[2].Name // worker/1, the highest index, goes
	onRemoved := 0
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	for _, p := range pods.Items {
		if p.Spec.NodeName == removed {
			onRemoved++
		}
	}
	require.NotZero(t, onRemoved, "pods of web run on the worker to remove")
	mu.Lock()
	events = nil
	mu.Unlock()
	c, err = m.Resize(ctx, "alpha", map[string]int{"worker": 1})
	require.NoError(t, err)
	mu.Lock()
	evicted := 0
	for _, e := range events {
		if e.Op == "drain" && e.Phase == "evicted" && strings.HasPrefix(e.Object, "default/web-") {
			evicted++
		}
	}
	mu.Unlock()
	assert.Equal(t, onRemoved, evicted, "the worker was drained before it went: each of its pods evicted, through its PDB")
	require.Len(t, c.Nodes, 2)
	_, err = cs.CoreV1().Nodes().Get(ctx, removed, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the removed worker's Node is gone: %v", err)
	pods, err = cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	for _, p := range pods.Items {
		assert.NotEqual(t, removed, p.Spec.NodeName, "no pod is left on the removed worker")
	}
	waitFor(t, func() bool { return webReady() == 4 }, "web back to 4 ready pods on the remaining worker")
	assert.Len(t, mustGet(t, m, "alpha").Nodes, 2, "the record and the director agree: one worker left")
	c, err = m.Resize(ctx, "alpha", map[string]int{"worker": 3})
	require.NoError(t, err)
	require.Len(t, c.Nodes, 4, "1 control-plane node and 3 workers")
	_, err = m.Resize(ctx, "alpha", map[string]int{"gpu": 2})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid, "no such pool")
	spec.Workers = 3 // what the record now says

	// Upgrade: the platform has a new stemcell. Every VM is replaced, one
	// at a time, each node drained first and back before the next, while
	// web's budget keeps at least 3 of its 4 pods ready.
	before := map[string]string{}
	for _, r := range directorInstances(t, f, "kubefoundry-alpha") {
		before[r.ID] = r.VMCID
		assert.Equal(t, "ubuntu-jammy/1.0", r.Applied.Stemcell)
	}
	waitFor(t, func() bool { return webReady() == 4 }, "4 pods of web ready before the upgrade")
	newer := lf
	newer.Stemcell, err = f.Stemcell("1.1")
	require.NoError(t, err)
	newer.StemcellVersion = "1.1"
	m2, err := lifecycle.New(lifecycle.Config{Foundation: newer, Store: st, Plans: plans, Events: sink, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	got := mustGet(t, m2, "alpha")
	assert.True(t, got.UpgradeAvailable, "the foundation has a newer stemcell")
	assert.Equal(t, "ubuntu-jammy/1.0", got.Stemcell)
	assert.False(t, mustGet(t, m, "alpha").UpgradeAvailable, "nothing newer for the old foundation")
	resized, err := m2.Resize(ctx, "alpha", map[string]int{"worker": 3})
	require.NoError(t, err, "a resize changes nothing it runs")
	assert.Equal(t, "ubuntu-jammy/1.0", resized.Stemcell)
	for _, r := range directorInstances(t, f, "kubefoundry-alpha") {
		assert.Equal(t, before[r.ID], r.VMCID, "%s/%d: a resize on a newer foundation replaces no VM", r.Group, r.Index)
	}
	// The least number of web's pods ready while it upgrades, read every
	// 200 ms (a read the API does not answer, while the control plane's
	// VM is replaced, counts for nothing).
	least := int32(4)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			d, err := cs.AppsV1().Deployments("default").Get(rctx, "web", metav1.GetOptions{})
			rcancel()
			if err == nil && d.Status.ReadyReplicas < least {
				least = d.Status.ReadyReplicas
			}
		}
	}()
	mu.Lock()
	events = nil
	mu.Unlock()
	start = time.Now()
	c, err = m2.Upgrade(ctx, "alpha")
	close(stop)
	<-watched
	require.NoError(t, err)
	t.Logf("upgraded 1+3 in %s; web's least ready pods: %d", time.Since(start).Round(time.Second), least)
	assert.GreaterOrEqual(t, least, int32(3), "web's budget held through the upgrade")
	assert.Equal(t, "ubuntu-jammy/1.1", c.Stemcell)
	assert.False(t, c.UpgradeAvailable)
	assert.Equal(t, lifecycle.StateRunning, c.State)
	for _, r := range directorInstances(t, f, "kubefoundry-alpha") {
		assert.NotEqual(t, before[r.ID], r.VMCID, "%s/%d has a new VM", r.Group, r.Index)
		assert.Equal(t, "ubuntu-jammy/1.1", r.Applied.Stemcell, "%s/%d", r.Group, r.Index)
	}
	mu.Lock()
	evicted = 0
	for _, e := range events {
		if e.Op == "drain" && e.Phase == "evicted" && strings.HasPrefix(e.Object, "default/web-") {
			evicted++
		}
	}
	mu.Unlock()
	assert.GreaterOrEqual(t, evicted, 4, "each worker drained before its VM was replaced")
	nodes, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, nodes.Items, 4)
	for _, n := range nodes.Items {
		assert.False(t, n.Spec.Unschedulable, "node %s is schedulable again", n.Name)
		assert.NotContains(t, n.Annotations, "kubefoundry.io/drained-for", "node %s", n.Name)
	}
	waitFor(t, func() bool { return webReady() == 4 }, "web back to 4 ready pods")
	again, err := m2.Upgrade(ctx, "alpha")
	require.NoError(t, err, "an upgrade done converges")
	for i, n := range again.Nodes {
		assert.Equal(t, c.Nodes[i].VM, n.VM, "and replaces nothing")
	}
	m = m2

	// A drain that a budget never allows (a pod on the worker that would
	// go, which its budget keeps) fails the resize at that worker: the
	// pod named, the worker left running and schedulable, nothing removed.
	last := c.Nodes[len(c.Nodes)-1].Name // worker/2, the highest index, would go
	pinned := map[string]string{"app": "pinned"}
	_, err = cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pinned", Labels: pinned},
		Spec: corev1.PodSpec{NodeName: last, Containers: []corev1.Container{{Name: "p", Image: "nginx"}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	one := intstr.FromInt32(1)
	_, err = cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "pinned"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: pinned}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	strict, err := lifecycle.New(lifecycle.Config{Foundation: newer, Store: st, Plans: plans, Log: zaptest.NewLogger(t),
		DrainTimeout: 3 * time.Second})
	require.NoError(t, err)
	_, err = strict.Resize(ctx, "alpha", map[string]int{"worker": 2})
	var de *lifecycle.DrainError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, last, de.Node)
	require.Len(t, de.Pods, 1)
	assert.Equal(t, "pinned", de.Pods[0].Name)
	assert.Equal(t, kube.Refused, de.Pods[0].Result)
	assert.Len(t, mustGet(t, strict, "alpha").Nodes, 4, "nothing removed")
	n, err := cs.CoreV1().Nodes().Get(ctx, last, metav1.GetOptions{})
	require.NoError(t, err)
	assert.False(t, n.Spec.Unschedulable, "the node that could not be drained is schedulable again")
	assert.NotContains(t, n.Annotations, "kubefoundry.io/drained-for")
	require.NoError(t, cs.PolicyV1().PodDisruptionBudgets("default").Delete(ctx, "pinned", metav1.DeleteOptions{}))
	c, err = strict.Resize(ctx, "alpha", map[string]int{"worker": 3})
	require.NoError(t, err, "back to what the record said before")
	require.Len(t, c.Nodes, 4)

	again, err = m.Create(ctx, spec)
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
	orphans, err = m.Orphans(ctx)
	require.NoError(t, err)
	assert.Empty(t, orphans, "the orphan scan finds nothing of a deleted cluster")
}

// directorInstances are a deployment's instances as the director has them.
func directorInstances(t *testing.T, f *simulator.Foundation, deployment string) []director.InstanceRecord {
	t.Helper()
	recs, err := f.Director.Instances(deployment)
	require.NoError(t, err)
	return recs
}

// waitFor polls cond every second for up to 2 minutes.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes: %s", what)
		}
		time.Sleep(time.Second)
	}
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

// What a spec may say that Create does not do yet is refused, each at its
// field, before anything is made.
func TestCreateRefusesWhatItCannotDo(t *testing.T) {
	st, err := lifecycle.OpenStore(filepath.Join(t.TempDir(), "lifecycle.db"))
	require.NoError(t, err)
	defer st.Close()
	dir := t.TempDir()
	var bins kuberelease.Binaries
	for _, p := range []*string{&bins.Etcd, &bins.KubeAPIServer, &bins.KubeControllerManager, &bins.KubeScheduler, &bins.Kubectl, &bins.Kubelet} {
		*p = filepath.Join(dir, fmt.Sprint(len(dir), p))
		require.NoError(t, os.WriteFile(*p, nil, 0o755))
	}
	// A foundation whose director and NSX are never reached.
	m, err := lifecycle.New(lifecycle.Config{Foundation: lifecycle.Foundation{Director: &director.Director{}, NSX: &nsxt.Client{},
		Tier0Path: "/infra/tier-0s/t0", EdgeClusterPath: "e", TransportZonePath: "tz", NodeIPBlockPath: "/infra/ip-blocks/n",
		PodIPBlockPaths: []string{"/infra/ip-blocks/p"}, FloatingIPPoolPaths: []string{"/infra/ip-pools/f"},
		AZs: []lifecycle.AZ{{Name: "az1", Cluster: "C0"}}, Stemcell: "s.tgz", StemcellOS: "ubuntu-jammy", StemcellVersion: "1",
		Kubernetes: bins, KubernetesVersion: "1.36.3", CacheDir: t.TempDir()}, Store: st})
	require.NoError(t, err)
	spec := lifecycle.ClusterSpec{Name: "beta", Plan: "small", KubernetesVersion: "1.36.3",
		Kubernetes: lifecycle.KubernetesProfile{EncryptionAtRest: true, KubeletArgs: map[string]string{"max-pods": "50"},
			OIDC: &lifecycle.OIDC{IssuerURL: "https://id.example.com", ClientID: "k8s"}},
		Harbor: lifecycle.HarborSettings{Project: "beta"}}
	_, err = m.Create(t.Context(), spec)
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"kubernetes.oidc", "kubernetes.encryptionAtRest", "kubernetes.kubeletArgs", "harbor"}, fields)
	_, err = st.Cluster("beta")
	require.ErrorIs(t, err, kubefoundry.ErrNotFound, "nothing recorded")

	spec = lifecycle.ClusterSpec{Name: "beta", Plan: "small", KubernetesVersion: "1.35.0"}
	_, err = m.Create(t.Context(), spec)
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "kubernetesVersion", ve.Problems[0].Field)

	_, err = lifecycle.New(lifecycle.Config{})
	require.ErrorAs(t, err, &ve)
	assert.GreaterOrEqual(t, len(ve.Problems), 10, "every missing part of the foundation at once: %v", err)
}
