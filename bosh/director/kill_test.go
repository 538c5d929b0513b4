package director_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/find"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agentsim"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/blobstore"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
	"github.com/kubefoundry/kubefoundry/bosh/template"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

// childEnv names the file of a childConfig: the test binary then runs as
// a director process (childDirector) instead of the tests.
const childEnv = "KF_DIRECTOR_CHILD"

// childConfig is what a director process is given: the foundation the
// test runs (vcsim, the blobstore), its own bus's port and CA, its store,
// and what to upload and deploy.
type childConfig struct {
	VSphere      vsphere.Config `json:"vsphere"`
	BusPort      int            `json:"bus_port"`
	CACert       string         `json:"ca_cert"`
	CAKey        string         `json:"ca_key"`
	BlobDir      string         `json:"blob_dir"`
	BlobURL      string         `json:"blob_url"`
	BlobCA       string         `json:"blob_ca"`
	Secret       string         `json:"secret"`
	Store        string         `json:"store"`
	Stemcell     string         `json:"stemcell"`
	Release      string         `json:"release"`
	CloudConfig  string         `json:"cloud_config"`
	Manifest     string         `json:"manifest"`
	KillAtCanary bool           `json:"kill_at_canary"`
	// Then is a manifest deployed once Manifest is; the process dies by
	// SIGKILL once the CPI call KillAt (create_vm, delete_vm,
	// attach_disk, detach_disk) of that deploy returns.
	Then   string `json:"then,omitempty"`
	KillAt string `json:"kill_at,omitempty"`
}

// childDirector is a director process: it uploads, deploys and, when told
// to, dies by SIGKILL the moment its first canary is updated, before the
// next instance begins (the event is sent before the next batch starts).
func childDirector(path string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child director:", err)
		return 2
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fail(err)
	}
	var c childConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return fail(err)
	}
	ctx := context.Background()
	g, err := newFoundation(ctx, c)
	if err != nil {
		return fail(err)
	}
	if err := g.dir.UpdateCloudConfig([]byte(c.CloudConfig)); err != nil {
		return fail(err)
	}
	if _, err := g.dir.UploadStemcell(ctx, c.Stemcell); err != nil {
		return fail(err)
	}
	if _, err := g.dir.UploadRelease(ctx, c.Release); err != nil {
		return fail(err)
	}
	_, err = g.dir.Deploy(ctx, []byte(c.Manifest), director.DeployOptions{Events: func(e director.Event) {
		fmt.Printf("event %s %s\n", e.State, e.Task)
		if c.KillAtCanary && e.State == director.EventFinished && strings.HasSuffix(e.Task, "(canary)") {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}})
	if err != nil {
		return fail(err)
	}
	if c.Then == "" {
		return 0
	}
	kill := func(method, _ string) {
		if method == c.KillAt {
			fmt.Printf("killed after %s\n", method)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
	g.scpi.after.Store(&kill)
	if _, err := g.dir.Deploy(ctx, []byte(c.Then), director.DeployOptions{}); err != nil {
		return fail(err)
	}
	return fail(fmt.Errorf("the deploy ended without a %s", c.KillAt))
}

// foundation is a director with its own bus, on the test's vcsim and
// blobstore.
type foundation struct {
	bus    *mbus.Bus
	client *mbus.Client
	st     director.Store
	scpi   *serialCPI
	dir    *director.Director
	close  func()
}

func newFoundation(ctx context.Context, c childConfig) (*foundation, error) {
	ca, err := mbus.LoadCA([]byte(c.CACert), []byte(c.CAKey))
	if err != nil {
		return nil, err
	}
	bus, err := mbus.StartBus(ctx, mbus.BusConfig{Port: c.BusPort, CA: ca})
	if err != nil {
		return nil, err
	}
	f := &foundation{bus: bus}
	var closers []func()
	f.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	closers = append(closers, bus.Close)
	fail := func(err error) (*foundation, error) {
		f.close()
		return nil, err
	}
	f.client, err = mbus.Dial(ctx, mbus.Config{URL: bus.URL(), Credentials: bus.DirectorCredentials(), CallTimeout: 30 * time.Second,
		PollInterval: 20 * time.Millisecond})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, f.client.Close)
	vs, err := vsphere.New(ctx, c.VSphere)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = vs.Close(context.Background()) })
	vols, err := csi.New(ctx, vs.Vim25())
	if err != nil {
		return fail(err)
	}
	blobSettings := map[string]any{"provider": "dav", "options": map[string]any{"endpoint": c.BlobURL,
		"tls": map[string]any{"cert": map[string]any{"ca": c.BlobCA}}}}
	cp, err := vspherecpi.New(vs, vols, vspherecpi.Config{ClusterID: "bosh-1", VMFolder: "bosh/vms", StemcellFolder: "bosh/stemcells",
		Cluster: "DC0_C0", Datastore: "LocalDS_0", Agent: vspherecpi.AgentConfig{MBus: bus.URL(), Blobstore: blobSettings}})
	if err != nil {
		return fail(err)
	}
	blobs, err := blobstore.NewLocal(c.BlobDir)
	if err != nil {
		return fail(err)
	}
	signer, err := blobstore.NewSigner(c.Secret)
	if err != nil {
		return fail(err)
	}
	f.st, err = director.OpenStore(c.Store)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = f.st.Close() })
	r := template.New()
	closers = append(closers, func() { _ = r.Close() })
	f.scpi = &serialCPI{CPI: cp}
	f.dir, err = director.New(director.Config{Store: f.st, CPI: f.scpi, Bus: bus, Agents: f.client, Blobs: blobs, Signer: signer,
		BlobstoreURL: c.BlobURL, Renderer: r, AgentPing: 50 * time.Millisecond, PingTimeout: time.Second, AgentWait: time.Minute})
	if err != nil {
		return fail(err)
	}
	return f, nil
}

// testCA is a bus CA the test and the director process share.
func testCA(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kf-test-bus"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// childRig is what a director process works on, which outlives it: vcsim,
// the blobstore server (as the director's nginx would) and the agents.
type childRig struct {
	vs    *vsphere.Client
	fleet *agentsim.Fleet
	cfg   childConfig
}

func newChildRig(t *testing.T) *childRig {
	t.Helper()
	if _, err := exec.LookPath("ruby"); err != nil {
		t.Skip("ruby is needed to render templates (apt-get install ruby)")
	}
	sim := vspheretest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	vs, err := vsphere.New(ctx, sim.Config, vsphere.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = vs.Close(context.Background()) })
	blobDir := t.TempDir()
	local, err := blobstore.NewLocal(blobDir)
	require.NoError(t, err)
	const secret = "a-secret-of-32-bytes-for-signing"
	srv, err := blobstore.NewServer(local, blobstore.ServerConfig{Username: "director", Password: "pw", Secret: secret})
	require.NoError(t, err)
	https := httptest.NewTLSServer(srv)
	t.Cleanup(https.Close)
	var ac agent.Config
	ac.HeartbeatInterval = 100 * time.Millisecond
	ac.Supervisor = agenttest.FastSupervisor
	fleet, err := agentsim.Start(context.Background(), vs.Vim25(), agentsim.Config{Root: t.TempDir(), Agent: ac}, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(fleet.Close)
	caCert, caKey := testCA(t)
	cfg := childConfig{VSphere: sim.Config, BusPort: freePort(t), CACert: caCert, CAKey: caKey, BlobDir: blobDir, BlobURL: https.URL,
		BlobCA: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: https.Certificate().Raw})), Secret: secret,
		Store: filepath.Join(t.TempDir(), "director.db"), Stemcell: stemcellTarball(t, "1.1"), Release: testRelease(t, "1", "ubuntu-jammy/1.1"),
		CloudConfig: cloudConfig}
	return &childRig{vs: vs, fleet: fleet, cfg: cfg}
}

// kill runs a director process on cfg, which is to die by SIGKILL within
// 3 minutes, and returns what it printed.
func (c *childRig) kill(t *testing.T, cfg childConfig) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	cfgFile := filepath.Join(t.TempDir(), "child.json")
	require.NoError(t, os.WriteFile(cfgFile, raw, 0o600))
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgFile)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the director process was to die: %s", out)
	ws, _ := ee.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "killed by SIGKILL: %v\n%s", err, out)
	return string(out)
}

// vms lists the VMs in the CPI's folder.
func (c *childRig) vms(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	vms, err := find.NewFinder(c.vs.Vim25()).VirtualMachineList(ctx, "/DC0/vm/bosh/vms/*")
	var nf *find.NotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, vm := range vms {
		out = append(out, vm.Name())
	}
	return out
}

// TestDirectorKilledMidDeploy: a director process killed (SIGKILL, its
// bus with it) once the first canary is updated; a director started again
// on its store, with a bus of the same CA and port, reports the task the
// dead one left and converges the deployment on the next deploy, with one
// VM per instance and none leaked.
func TestDirectorKilledMidDeploy(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	c := newChildRig(t)
	vs, cfg := c.vs, c.cfg
	cfg.Manifest, cfg.KillAtCanary = string(deployment(3, 1, 8080, false, "1")), true
	out := c.kill(t, cfg)
	require.Contains(t, out, "event finished server/", "it died after the canary: %s", out)
	require.Len(t, c.vms(t), 1, "the canary's VM, and no other yet")

	// A new director on the store: the task is reported, and a deploy
	// converges.
	cfg.KillAtCanary = false
	f, err := newFoundation(ctx, cfg)
	require.NoError(t, err)
	defer f.close()
	tasks, err := f.st.Tasks(0)
	require.NoError(t, err)
	var deploys []director.Task
	for _, task := range tasks {
		if task.Kind == "deploy" {
			deploys = append(deploys, task)
		}
	}
	require.Len(t, deploys, 1)
	assert.Equal(t, director.TaskError, deploys[0].State)
	assert.Contains(t, deploys[0].Result, "the director stopped during this task")
	locks, err := f.st.Locks()
	require.NoError(t, err)
	assert.Empty(t, locks)

	res, err := f.dir.Deploy(ctx, []byte(cfg.Manifest), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, director.TaskDone, res.Task.State)
	vms, err := find.NewFinder(vs.Vim25()).VirtualMachineList(ctx, "/DC0/vm/bosh/vms/*")
	require.NoError(t, err)
	assert.Len(t, vms, 4, "one VM per instance, none leaked")
	recs, err := f.st.Instances("e2e")
	require.NoError(t, err)
	require.Len(t, recs, 4)
	for _, r := range recs {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		v, err := f.client.Call(pctx, r.AgentID, "get_state")
		cancel()
		require.NoError(t, err)
		var st struct {
			JobState string `json:"job_state"`
		}
		require.NoError(t, json.Unmarshal(v, &st))
		assert.Equal(t, "running", st.JobState, "%s/%d", r.Group, r.Index)
	}
	_, err = f.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
	require.NoError(t, err)
	_, err = find.NewFinder(vs.Vim25()).VirtualMachineList(ctx, "/DC0/vm/bosh/vms/*")
	var nf *find.NotFoundError
	assert.True(t, errors.As(err, &nf), "no VM is left: %v", err)
}

// TestDirectorKilledMidSwap: a director process killed (SIGKILL) in the
// middle of a create-swap-delete, before the swap (the old VM stopped and
// its disk detached, the new VM made and recorded as the next) and after
// it (the new VM the instance's, its disk being attached, the old one
// recorded to be deleted). Every VM on vcsim is one the store names; a
// director started again on the store converges on the next deploy (a
// swap cut short before is made again, one after is finished as an
// update), with one VM per instance, the data on the disk, and no VM
// leaked.
func TestDirectorKilledMidSwap(t *testing.T) {
	for _, tc := range []struct {
		name, killAt, plan string
	}{
		{"before the swap", "detach_disk", "recreate server/0"},
		{"after the swap", "attach_disk", "update server/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			c := newChildRig(t)
			cfg := c.cfg
			cfg.CloudConfig = mediumCloudConfig()
			small := withCSD(withDisk(deployment(1, 0, 8080, false, "1"), 1024))
			cfg.Manifest, cfg.Then, cfg.KillAt = string(small), string(serversOn(small, "medium")), tc.killAt
			out := c.kill(t, cfg)
			require.Contains(t, out, "killed after "+tc.killAt, "%s", out)

			f, err := newFoundation(ctx, cfg)
			require.NoError(t, err)
			defer f.close()
			recs, err := f.st.Instances("e2e")
			require.NoError(t, err)
			require.Len(t, recs, 1)
			r := recs[0]
			named := []string{r.VMCID, r.NextVMCID, r.OldVMCID}
			for _, vm := range c.vms(t) {
				assert.Contains(t, named, vm, "every VM is one the store names")
			}
			assert.Len(t, c.vms(t), 2, "the old VM and the new")
			if tc.killAt == "detach_disk" {
				assert.NotEmpty(t, r.NextVMCID, "the new VM is recorded as the next")
				assert.Empty(t, r.OldVMCID)
			} else {
				assert.NotEmpty(t, r.OldVMCID, "the old VM is recorded to be deleted")
				assert.Empty(t, r.NextVMCID)
			}

			// The instance's agent back on the new bus first, as an
			// operator would wait for it (TestDirectorRestartsOnANewBus).
			agenttest.Eventually(t, func() bool {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				_, err := f.client.Call(pctx, r.AgentID, "ping")
				return err == nil
			}, "the agent of server/0 is not back on the bus")
			res, err := f.dir.Deploy(ctx, []byte(cfg.Then), director.DeployOptions{})
			require.NoError(t, err)
			assert.Equal(t, []string{tc.plan}, actions(res.Plan))
			recs, err = f.st.Instances("e2e")
			require.NoError(t, err)
			r = recs[0]
			assert.Equal(t, []string{r.VMCID}, c.vms(t), "one VM, the instance's: none leaked")
			assert.Empty(t, r.NextVMCID+r.NextAgentID+r.OldVMCID+r.OldAgentID)
			assert.Empty(t, r.NextIPs)
			assert.Empty(t, r.OldIPs)
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			v, err := f.client.Call(pctx, r.AgentID, "get_state")
			pcancel()
			require.NoError(t, err)
			var st struct {
				JobState string `json:"job_state"`
			}
			require.NoError(t, json.Unmarshal(v, &st))
			assert.Equal(t, "running", st.JobState)
			starts := 0
			for _, id := range c.fleet.Agents() {
				if a, ok := c.fleet.Agent(id); ok && a.ID() == r.AgentID {
					b, err := os.ReadFile(a.Layout().Path("/var/vcap/store/server/starts"))
					require.NoError(t, err)
					starts = strings.Count(string(b), "started")
				}
			}
			assert.Equal(t, 2, starts, "the data is on the disk, on the new VM")

			_, err = f.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
			require.NoError(t, err)
			assert.Empty(t, c.vms(t), "no VM is left")
		})
	}
}
