package kuberelease_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/lifecycle/kuberelease"
	"github.com/kubefoundry/kubefoundry/lifecycle/simulator"
)

// binaries are the ones `make tools` builds into the repository's bin/;
// the test skips without them, or fails under KUBEFOUNDRY_REQUIRE_KUBE=1.
func binaries(t *testing.T) kuberelease.Binaries {
	t.Helper()
	bin, err := filepath.Abs("../../bin")
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

// cloudConfig is the test's cloud config, its node network on subnet,
// and the first static address.
func cloudConfig(subnet netip.Prefix) (string, string) {
	a := subnet.Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{a[0], a[1], a[2], last}).String() }
	return strings.NewReplacer("SUBNET", subnet.String(), "GW", ip(1), "R1", ip(2), "R2", ip(9), "S1", ip(10), "S2", ip(20)).
		Replace(cloudConfigTemplate), ip(10)
}

const cloudConfigTemplate = `
azs:
- {name: z1}
vm_types:
- {name: master, cloud_properties: {cpu: 2, ram: 4096, disk: 8192}}
- {name: worker, cloud_properties: {cpu: 2, ram: 2048, disk: 8192}}
disk_types:
- {name: etcd, disk_size: 1024}
networks:
- name: nodes
  type: manual
  subnets:
  - range: SUBNET
    gateway: GW
    reserved: [R1 - R2]
    static: [S1 - S2]
    azs: [z1]
    cloud_properties: {name: VM Network}
compilation: {workers: 1, az: z1, vm_type: master, network: nodes}
`

// The release, built from the real binaries and deployed by the director
// on the simulated foundation, runs a control plane that answers: etcd,
// the API server on the instance's own address with the certificates the
// director generated, and a controller manager and scheduler that hold
// their leader leases through it.
func TestDeployControlPlane(t *testing.T) {
	bins := binaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	f, err := simulator.Start(ctx, simulator.Config{Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, f.Close()) })
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, f.Dir())
		}
	})

	start := time.Now()
	out := filepath.Join(t.TempDir(), "kubernetes.tgz")
	w, err := os.Create(out)
	require.NoError(t, err)
	m, err := kuberelease.Build(ctx, bins, "1.36.3", "ubuntu-jammy/1.1", t.TempDir(), w)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	st, err := os.Stat(out)
	require.NoError(t, err)
	t.Logf("release built in %s, %d MB", time.Since(start).Round(time.Millisecond), st.Size()>>20)
	assert.Equal(t, kuberelease.Name, m.Name)
	assert.Len(t, m.CompiledPackages, 6)

	cc, master := cloudConfig(f.Subnet(0))
	require.NoError(t, f.Director.UpdateCloudConfig([]byte(cc)))
	sc, err := f.Stemcell("1.1")
	require.NoError(t, err)
	_, err = f.Director.UploadStemcell(ctx, sc)
	require.NoError(t, err)
	start = time.Now()
	_, err = f.Director.UploadRelease(ctx, out)
	require.NoError(t, err)
	t.Logf("release uploaded in %s", time.Since(start).Round(time.Millisecond))

	d := kuberelease.Deployment{Name: "k8s-one", ReleaseVersion: "1.36.3", StemcellOS: "ubuntu-jammy", StemcellVersion: "latest",
		Network: "nodes", APIAddress: master, NodeMonitorGracePeriod: "20s",
		ControlPlane: kuberelease.ControlPlane{StaticIPs: []string{master}, AZs: []string{"z1"}, VMType: "master", DiskType: "etcd"},
		Workers: []kuberelease.WorkerPool{{Name: "worker", Instances: 2, AZs: []string{"z1"}, VMType: "worker",
			Labels: map[string]string{"pool": "default"}, Taints: []kuberelease.Taint{{Key: "dedicated", Value: "apps", Effect: "PreferNoSchedule"}}}}}
	manifest, err := d.Manifest()
	require.NoError(t, err)
	start = time.Now()
	res, err := f.Director.Deploy(ctx, manifest, director.DeployOptions{})
	require.NoError(t, err, "%s", manifest)
	require.Equal(t, director.TaskDone, res.Task.State, "%+v", res.Task)
	t.Logf("deployed in %s", time.Since(start).Round(time.Millisecond))

	// An admin's client certificate from the cluster CA the director made.
	vars, err := f.Director.Variables("k8s-one")
	require.NoError(t, err)
	v, ok, err := vars.Get(kuberelease.VarClusterCA)
	require.NoError(t, err)
	require.True(t, ok)
	caVal := v.(map[string]any)
	ca, err := kube.ParseCA([]byte(caVal["certificate"].(string)), []byte(caVal["private_key"].(string)))
	require.NoError(t, err)
	admin, err := ca.IssueClient("admin", []string{"system:masters"}, time.Hour)
	require.NoError(t, err)
	key, err := kube.KeyPEM(admin.Key)
	require.NoError(t, err)
	cfg := &rest.Config{Host: "https://" + master + ":8443", Timeout: 10 * time.Second, TLSClientConfig: rest.TLSClientConfig{
		CAData: kube.CertPEM(ca.Cert), CertData: kube.CertPEM(admin.Cert), KeyData: key}}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)

	var leases []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		leases = leases[:0]
		for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
			l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
			if err == nil && l.Spec.HolderIdentity != nil {
				leases = append(leases, name+" held by "+*l.Spec.HolderIdentity)
			}
		}
		if len(leases) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	require.Len(t, leases, 2, "the controller manager and the scheduler lead, through the API server: %v", leases)
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "kube-system", ns.Name)
	// The controller manager's service-account controller works with the
	// key the API server verifies with: the default namespace gets its
	// default ServiceAccount.
	deadline = time.Now().Add(time.Minute)
	for {
		_, err = cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	assert.NoError(t, err, "the default ServiceAccount, within a minute")

	// The workers' simulated kubelets registered their VMs as Nodes, with
	// the pool's labels and taints, Ready; a Deployment's pods run there.
	recs, err := f.DirectorStore.Instances("k8s-one")
	require.NoError(t, err)
	var workerIPs []string
	for _, r := range recs {
		if r.Group == "worker" {
			workerIPs = append(workerIPs, strings.TrimPrefix(r.IPs[0], "nodes="))
		}
	}
	require.Len(t, workerIPs, 2)
	ready := func(name string) bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	}
	deadline = time.Now().Add(2 * time.Minute)
	for !(ready(workerIPs[0]) && ready(workerIPs[1])) && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	for _, ip := range workerIPs {
		require.True(t, ready(ip), "node %s Ready within 2 minutes", ip)
		n, err := cs.CoreV1().Nodes().Get(ctx, ip, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "default", n.Labels["pool"])
		assert.Equal(t, "worker", n.Labels["bosh.io/instance-group"])
		assert.Equal(t, []corev1.Taint{{Key: "dedicated", Value: "apps", Effect: corev1.TaintEffectPreferNoSchedule}}, n.Spec.Taints)
		assert.Contains(t, n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
		assert.NotEmpty(t, n.Spec.PodCIDR, "the controller manager gave it a pod CIDR")
	}
	replicas := int32(4)
	labels := map[string]string{"app": "web"}
	_, err = cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	var running map[string]int
	deadline = time.Now().Add(2 * time.Minute)
	for {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		require.NoError(t, err)
		running = map[string]int{}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				running[p.Spec.NodeName]++
			}
		}
		if running[workerIPs[0]]+running[workerIPs[1]] == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	assert.Equal(t, 4, running[workerIPs[0]]+running[workerIPs[1]], "4 pods Running on the workers within 2 minutes: %v", running)
}

// dumpLogs logs the end of every job's log on every VM of dir.
func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "vms", "*", "sys", "log", "*", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		t.Logf("%s:\n%s", l, b)
	}
}

// Every binary must be given, and be an executable file.
func TestBinariesValidate(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, []byte("x"), 0o644))
	err := kuberelease.Binaries{Etcd: plain, KubeAPIServer: dir, KubeControllerManager: filepath.Join(dir, "absent")}.Validate()
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	got := map[string]string{}
	for _, p := range ve.Problems {
		got[p.Field] = p.Reason
	}
	assert.Contains(t, got["Etcd"], "not executable")
	assert.Contains(t, got["KubeAPIServer"], "not a regular file")
	assert.Contains(t, got["KubeControllerManager"], "no such file")
	assert.Contains(t, got["KubeScheduler"], "required")
	assert.Contains(t, got["Kubectl"], "required")
	assert.Contains(t, got["Kubelet"], "required")
	_, err = kuberelease.Build(t.Context(), kuberelease.Binaries{}, "1", "ubuntu-jammy/1", t.TempDir(), nil)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
}

// The release's jobs are what the BOSH formats require, and the compiled
// release has each package compiled for the stemcell asked.
func TestBuildSmall(t *testing.T) {
	dir := t.TempDir()
	var bins kuberelease.Binaries
	for _, p := range []*string{&bins.Etcd, &bins.KubeAPIServer, &bins.KubeControllerManager, &bins.KubeScheduler, &bins.Kubectl, &bins.Kubelet} {
		*p = filepath.Join(dir, strings.ReplaceAll(filepath.Base(t.Name()), "/", "-")+"-"+time.Now().Format("150405.000000000"))
		require.NoError(t, os.WriteFile(*p, []byte("#!/bin/sh\necho "+*p+"\n"), 0o755))
	}
	out := filepath.Join(t.TempDir(), "r.tgz")
	w, err := os.Create(out)
	require.NoError(t, err)
	_, err = kuberelease.Build(t.Context(), bins, "7", "ubuntu-jammy/1.2", t.TempDir(), w)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	rel, err := release.Open(t.Context(), out)
	require.NoError(t, err)
	var jobs []string
	for _, j := range rel.Jobs {
		jobs = append(jobs, j.Name)
	}
	assert.ElementsMatch(t, []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"}, jobs)
	require.Len(t, rel.Manifest.CompiledPackages, 6)
	for _, c := range rel.Manifest.CompiledPackages {
		assert.Equal(t, "ubuntu-jammy/1.2", c.Stemcell)
		x := t.TempDir()
		require.NoError(t, rel.ExtractPackage(t.Context(), c.Name, x))
		st, err := os.Stat(filepath.Join(x, "bin", c.Name))
		require.NoError(t, err, "package %s installs bin/%s", c.Name, c.Name)
		assert.Equal(t, os.FileMode(0o755), st.Mode().Perm())
	}
}

// A deployment's problems come at once, each at its field.
func TestDeploymentValidate(t *testing.T) {
	err := kuberelease.Deployment{APIAddress: "lb", APIPort: 70000, ServiceCIDR: "10.0.0.0/30", PodCIDR: "10.1.0.0/25",
		ControlPlane: kuberelease.ControlPlane{StaticIPs: []string{"10.0.0.1", "10.0.0.1"}},
		Workers: []kuberelease.WorkerPool{{Name: "master", Instances: -1, Taints: []kuberelease.Taint{{Effect: "Sometimes"}}},
			{Name: "Bad_Name", AZs: []string{"z1"}, VMType: "w"}}}.Validate()
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"Name", "ReleaseVersion", "StemcellOS", "StemcellVersion", "Network", "ControlPlane.VMType",
		"APIAddress", "APIPort", "ControlPlane.StaticIPs", "ControlPlane.StaticIPs[1]", "ControlPlane.AZs", "ServiceCIDR", "PodCIDR",
		"Workers[0].Name", "Workers[0].Instances", "Workers[0].AZs", "Workers[0].VMType", "Workers[0].Taints[0].Key",
		"Workers[0].Taints[0].Effect", "Workers[1].Name"}, fields)
}

// The manifest's certificates name exactly the addresses they must, and
// each worker pool is an instance group running the kubelet job.
func TestManifest(t *testing.T) {
	d := kuberelease.Deployment{Name: "k", ReleaseVersion: "1", StemcellOS: "ubuntu-jammy", StemcellVersion: "latest", Network: "n",
		APIAddress: "127.200.0.10", ServiceCIDR: "10.96.0.0/12",
		ControlPlane: kuberelease.ControlPlane{StaticIPs: []string{"127.16.0.10", "127.16.0.11", "127.16.0.12"}, AZs: []string{"z1"}, VMType: "m"},
		Workers:      []kuberelease.WorkerPool{{Name: "gpu", Instances: 2, AZs: []string{"z1", "z2"}, VMType: "w"}}}
	b, err := d.Manifest()
	require.NoError(t, err)
	var doc struct {
		InstanceGroups []struct {
			Name      string
			Instances int
			Jobs      []struct {
				Name       string
				Properties map[string]any
			}
			Networks []struct {
				StaticIPs []string `yaml:"static_ips"`
			}
			Update map[string]any
		} `yaml:"instance_groups"`
		Variables []struct {
			Name    string
			Options map[string]any
		}
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	alt := map[string][]any{}
	org := map[string]any{}
	for _, v := range doc.Variables {
		alt[v.Name], _ = v.Options["alternative_names"].([]any)
		org[v.Name] = v.Options["organization"]
	}
	assert.Equal(t, []any{"127.200.0.10", "127.16.0.10", "127.16.0.11", "127.16.0.12", "10.96.0.1", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, alt[kuberelease.VarAPIServer])
	assert.Equal(t, []any{"127.16.0.10", "127.16.0.11", "127.16.0.12"}, alt[kuberelease.VarEtcd])
	assert.Equal(t, "system:masters", org[kuberelease.VarAdmin])
	assert.Equal(t, "system:nodes", org[kuberelease.VarKubelet])
	require.Len(t, doc.InstanceGroups, 2)
	assert.Equal(t, 3, doc.InstanceGroups[0].Instances)
	assert.Equal(t, d.ControlPlane.StaticIPs, doc.InstanceGroups[0].Networks[0].StaticIPs)
	w := doc.InstanceGroups[1]
	assert.Equal(t, "gpu", w.Name)
	require.Len(t, w.Jobs, 1)
	assert.Equal(t, "kubelet", w.Jobs[0].Name)
	assert.Equal(t, "https://127.200.0.10:8443", w.Jobs[0].Properties["kubelet"].(map[string]any)["api_server"], "kubelets reach the load balancer")
	assert.Equal(t, map[string]any{"canaries": 0, "max_in_flight": 3, "initial_deploy_az_update_strategy": "parallel"},
		doc.InstanceGroups[0].Update, "a new control plane: every member at once, in every AZ at once")

	d.ControlPlane.Rolling = true
	b, err = d.Manifest()
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &doc))
	assert.Equal(t, map[string]any{"canaries": 1, "max_in_flight": 1}, doc.InstanceGroups[0].Update, "a running control plane: one member at a time")
}
