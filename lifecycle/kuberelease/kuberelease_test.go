package kuberelease_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/variables"
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
	b := kuberelease.Binaries{Etcd: filepath.Join(bin, "etcd"), KubeAPIServer: filepath.Join(bin, "kube-apiserver"),
		KubeControllerManager: filepath.Join(bin, "kube-controller-manager"), KubeScheduler: filepath.Join(bin, "kube-scheduler")}
	if err := b.Validate(); err != nil {
		if os.Getenv("KUBEFOUNDRY_REQUIRE_KUBE") == "1" {
			t.Fatalf("the Kubernetes binaries (make tools): %v", err)
		}
		t.Skipf("the Kubernetes binaries are not built (make tools): %v", err)
	}
	return b
}

const cloudConfig = `
azs:
- {name: z1}
vm_types:
- {name: master, cloud_properties: {cpu: 2, ram: 4096, disk: 8192}}
disk_types:
- {name: etcd, disk_size: 1024}
networks:
- name: nodes
  type: manual
  subnets:
  - range: 127.16.9.0/24
    gateway: 127.16.9.1
    reserved: [127.16.9.2 - 127.16.9.9]
    static: [127.16.9.10 - 127.16.9.20]
    azs: [z1]
    cloud_properties: {name: VM Network}
compilation: {workers: 1, az: z1, vm_type: master, network: nodes}
`

// storeVars is a deployment's variables in the director's store.
type storeVars struct {
	st         director.Store
	deployment string
}

func (s storeVars) Load() ([]byte, error)     { return s.st.Variables(s.deployment) }
func (s storeVars) Save(content []byte) error { return s.st.PutVariables(s.deployment, content) }
func (s storeVars) String() string            { return s.deployment }

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
	assert.Len(t, m.CompiledPackages, 4)

	require.NoError(t, f.Director.UpdateCloudConfig([]byte(cloudConfig)))
	sc, err := f.Stemcell("1.1")
	require.NoError(t, err)
	_, err = f.Director.UploadStemcell(ctx, sc)
	require.NoError(t, err)
	start = time.Now()
	_, err = f.Director.UploadRelease(ctx, out)
	require.NoError(t, err)
	t.Logf("release uploaded in %s", time.Since(start).Round(time.Millisecond))

	d := kuberelease.Deployment{Name: "k8s-one", ReleaseVersion: "1.36.3", StemcellOS: "ubuntu-jammy", StemcellVersion: "latest",
		Network: "nodes", APIAddress: "127.16.9.10", NodeMonitorGracePeriod: "20s",
		ControlPlane: kuberelease.ControlPlane{StaticIPs: []string{"127.16.9.10"}, AZs: []string{"z1"}, VMType: "master", DiskType: "etcd"}}
	manifest, err := d.Manifest()
	require.NoError(t, err)
	start = time.Now()
	res, err := f.Director.Deploy(ctx, manifest, director.DeployOptions{})
	require.NoError(t, err, "%s", manifest)
	require.Equal(t, director.TaskDone, res.Task.State, "%+v", res.Task)
	t.Logf("deployed in %s", time.Since(start).Round(time.Millisecond))

	// An admin's client certificate from the cluster CA the director made.
	vars, err := variables.OpenBackend(storeVars{f.DirectorStore, "k8s-one"})
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
	cfg := &rest.Config{Host: "https://127.16.9.10:8443", Timeout: 10 * time.Second, TLSClientConfig: rest.TLSClientConfig{
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
	_, err = kuberelease.Build(t.Context(), kuberelease.Binaries{}, "1", "ubuntu-jammy/1", t.TempDir(), nil)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
}

// The release's jobs are what the BOSH formats require, and the compiled
// release has each package compiled for the stemcell asked.
func TestBuildSmall(t *testing.T) {
	dir := t.TempDir()
	var bins kuberelease.Binaries
	for _, p := range []*string{&bins.Etcd, &bins.KubeAPIServer, &bins.KubeControllerManager, &bins.KubeScheduler} {
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
	assert.ElementsMatch(t, []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}, jobs)
	for _, c := range rel.Manifest.CompiledPackages {
		assert.Equal(t, "ubuntu-jammy/1.2", c.Stemcell)
		x := t.TempDir()
		require.NoError(t, rel.ExtractPackage(t.Context(), c.Name, x))
		st, err := os.Stat(filepath.Join(x, "bin", c.Name))
		require.NoError(t, err, "package %s installs bin/%s", c.Name, c.Name)
		assert.Equal(t, os.FileMode(0o755), st.Mode().Perm())
	}
}
