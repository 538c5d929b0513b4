package director_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/mo"
	"go.uber.org/zap/zaptest"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agentsim"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/blobstore"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/health"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/template"
	"github.com/kubefoundry/kubefoundry/bosh/variables"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

// appMain is the program both jobs run: it reads its config file, fails
// at once when the config says so, and otherwise says what it read and
// runs until told to stop.
const appMain = `package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if bytes.Contains(b, []byte("fail: true")) {
		fmt.Fprintln(os.Stderr, "told to fail")
		os.Exit(1)
	}
	if data := os.Getenv("DATA"); data != "" {
		// Count the starts on the persistent disk.
		if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		f, err := os.OpenFile(data, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(f, "started")
		f.Close()
	}
	fmt.Printf("started with %q\n", b)
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`

// testRelease writes a release directory with two jobs: server, which
// provides the link conn with its port, and client, which consumes it
// and lists the servers' addresses; both run the app package's program,
// and server has a drain script. It returns the release tarball, made by
// release.Create and then compiled for stemcell as a director's compile
// VMs would (the packaging script run on this machine).
func testRelease(t *testing.T, version, stemcell string) string {
	t.Helper()
	return testReleaseWith(t, version, stemcell, nil)
}

// testReleaseWith is testRelease with change applied to its directory
// before the release is made.
func testReleaseWith(t *testing.T, version, stemcell string, change func(dir string)) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), mode))
	}
	write("config/final.yml", "---\nfinal_name: kf-e2e\nblobstore:\n  provider: local\n", 0o644)
	write("src/app/main.go", appMain, 0o644)
	write("src/app/go.mod", "module app\n\ngo 1.22\n", 0o644)
	write("packages/app/spec", "---\nname: app\nfiles:\n- app/**/*\n", 0o644)
	// The "compilation" builds the program with this machine's Go.
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	write("packages/app/packaging", "set -e\ncd app\nCGO_ENABLED=0 "+goBin+" build -o ${BOSH_INSTALL_TARGET}/bin/app .\n", 0o644)
	bpm := func(job string) string {
		return "processes:\n- name: " + job + "\n  executable: /var/vcap/packages/app/bin/app\n  args: [/var/vcap/jobs/" + job + "/config/config.yml]\n"
	}
	write("jobs/server/spec", `---
name: server
templates:
  bpm.yml.erb: config/bpm.yml
  config.yml.erb: config/config.yml
  drain.erb: bin/drain
  run.erb: bin/run
packages: [app]
provides:
- name: conn
  type: conn
  properties: [server.port]
properties:
  server.port:
    description: the port
    default: 8080
  server.fail:
    description: fail to start
    default: false
  server.secret:
    description: a secret
    default: none
`, 0o644)
	write("jobs/server/monit", "", 0o644)
	write("jobs/server/templates/bpm.yml.erb", bpm("server")+"  env: {DATA: /var/vcap/store/server/starts}\n", 0o644)
	write("jobs/server/templates/config.yml.erb", "port: <%= p(\"server.port\") %>\nindex: <%= spec.index %>\nbootstrap: <%= spec.bootstrap %>\nfail: <%= p(\"server.fail\") %>\nsecret: <%= p(\"server.secret\") %>\n", 0o644)
	write("jobs/server/templates/drain.erb", "#!/bin/sh\necho 0\n", 0o644)
	write("jobs/server/templates/run.erb", "#!/bin/sh\necho \"server <%= spec.index %> ok\"\n", 0o644)
	write("jobs/smoke/spec", `---
name: smoke
templates:
  run.erb: bin/run
consumes:
- name: conn
  type: conn
properties:
  smoke.exit:
    description: the exit code
    default: 0
`, 0o644)
	write("jobs/smoke/monit", "", 0o644)
	write("jobs/sidecar/spec", `---
name: sidecar
templates:
  bpm.yml.erb: config/bpm.yml
  config.yml.erb: config/config.yml
packages: [app]
properties:
  sidecar.tag:
    description: a tag
    default: none
`, 0o644)
	write("jobs/sidecar/monit", "", 0o644)
	write("jobs/sidecar/templates/bpm.yml.erb", bpm("sidecar"), 0o644)
	write("jobs/sidecar/templates/config.yml.erb", "group: <%= spec.name %>\ntag: <%= p(\"sidecar.tag\") %>\n", 0o644)
	write("jobs/smoke/templates/run.erb", "#!/bin/sh\necho \"servers <%= link(\"conn\").instances.map { |i| i.address }.join(\",\") %>\"\necho oops >&2\nexit <%= p(\"smoke.exit\") %>\n", 0o644)
	write("jobs/client/spec", `---
name: client
templates:
  bpm.yml.erb: config/bpm.yml
  config.yml.erb: config/config.yml
packages: [app]
consumes:
- name: conn
  type: conn
properties: {}
`, 0o644)
	write("jobs/client/monit", "", 0o644)
	write("jobs/client/templates/bpm.yml.erb", bpm("client"), 0o644)
	write("jobs/client/templates/config.yml.erb",
		"servers: <%= link(\"conn\").instances.map { |i| i.address }.join(\",\") %>\nport: <%= link(\"conn\").p(\"server.port\") %>\n", 0o644)

	if change != nil {
		change(dir)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	src := filepath.Join(t.TempDir(), "source.tgz")
	f, err := os.Create(src)
	require.NoError(t, err)
	_, err = release.Create(ctx, dir, f, release.WithVersion(version))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return compile(t, src, stemcell)
}

// compile turns a source release into a compiled one for stemcell, as
// bosh export-release gives it: each package's packaging script run with
// BOSH_COMPILE_TARGET and BOSH_INSTALL_TARGET, the install target as
// compiled_packages/<name>.tgz, and release.MF saying so.
func compile(t *testing.T, src, stemcell string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rel, err := release.Open(ctx, src)
	require.NoError(t, err)
	entries := map[string][]byte{}
	outer := readTGZ(t, src)
	for name, b := range outer {
		if strings.HasPrefix(name, "jobs/") {
			entries[name] = b
		}
	}
	m := rel.Manifest
	for _, ref := range m.Packages {
		work := t.TempDir()
		install := t.TempDir()
		require.NoError(t, rel.ExtractPackage(ctx, ref.Name, work))
		cmd := exec.CommandContext(ctx, "bash", "-e", "packaging")
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "BOSH_COMPILE_TARGET="+work, "BOSH_INSTALL_TARGET="+install, "BOSH_PACKAGE_NAME="+ref.Name,
			"BOSH_PACKAGE_VERSION="+ref.Version, "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "packaging %s: %s", ref.Name, out)
		files := map[string]agenttest.File{}
		require.NoError(t, filepath.WalkDir(install, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			st, _ := d.Info()
			rel, _ := filepath.Rel(install, p)
			files[filepath.ToSlash(rel)] = agenttest.File{Mode: int64(st.Mode().Perm()), Body: string(b)}
			return nil
		}))
		tgz := agenttest.TGZ(t, files)
		sum := sha1.Sum(tgz)
		entries["compiled_packages/"+ref.Name+".tgz"] = tgz
		m.CompiledPackages = append(m.CompiledPackages, release.CompiledPackageRef{Name: ref.Name, Version: ref.Version,
			Fingerprint: ref.Fingerprint, SHA1: hex.EncodeToString(sum[:]), Stemcell: stemcell, Dependencies: ref.Dependencies})
	}
	m.Packages = nil
	mf, err := m.Marshal()
	require.NoError(t, err)
	entries["release.MF"] = mf
	files := map[string]agenttest.File{}
	for name, b := range entries {
		files[name] = agenttest.File{Mode: 0o644, Body: string(b)}
	}
	out := filepath.Join(t.TempDir(), "compiled.tgz")
	require.NoError(t, os.WriteFile(out, agenttest.TGZ(t, files), 0o644))
	return out
}

func readTGZ(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[strings.TrimPrefix(h.Name, "./")] = b
	}
}

// stemcellTarball is a vSphere stemcell of vcsim's image.
func stemcellTarball(t *testing.T, version string) string {
	t.Helper()
	image, err := os.ReadFile(vspheretest.StemcellImage(t))
	require.NoError(t, err)
	return stemcellOf(t, version, image)
}

func stemcellOf(t *testing.T, version string, image []byte) string {
	t.Helper()
	sum := sha1.Sum(image)
	mf := fmt.Sprintf("---\nname: bosh-vsphere-esxi-ubuntu-jammy-go_agent\nversion: %q\noperating_system: ubuntu-jammy\nsha1: %s\nstemcell_formats: [vsphere-ovf]\napi_version: 3\ncloud_properties: {}\n",
		version, hex.EncodeToString(sum[:]))
	out := filepath.Join(t.TempDir(), "stemcell.tgz")
	require.NoError(t, os.WriteFile(out, agenttest.TGZ(t, map[string]agenttest.File{
		"stemcell.MF": {Mode: 0o644, Body: mf}, "image": {Mode: 0o644, Body: string(image)}}), 0o644))
	return out
}

const cloudConfig = `
azs:
- name: z1
- name: z2
vm_types:
- name: small
  cloud_properties: {cpu: 1, ram: 512, disk: 1024}
networks:
- name: default
  type: manual
  subnets:
  - range: 10.0.0.0/24
    gateway: 10.0.0.1
    dns: [10.0.0.2]
    reserved: [10.0.0.2 - 10.0.0.9]
    azs: [z1, z2]
    cloud_properties: {name: VM Network}
compilation:
  workers: 1
  az: z1
  vm_type: small
  network: default
`

// deployment is the test's manifest: servers and clients, the servers'
// port and whether they fail.
func deployment(servers, clients, port int, fail bool, relVersion string) []byte {
	return fmt.Appendf(nil, `
name: e2e
releases:
- {name: kf-e2e, version: %q}
stemcells:
- {alias: default, os: ubuntu-jammy, version: latest}
update:
  canaries: 1
  max_in_flight: 2
  canary_watch_time: 200-5000
  update_watch_time: 200-5000
instance_groups:
- name: server
  instances: %d
  azs: [z1, z2]
  vm_type: small
  stemcell: default
  networks: [{name: default}]
  jobs:
  - name: server
    release: kf-e2e
    properties: {server: {port: %d, fail: %t}}
- name: client
  instances: %d
  azs: [z1]
  vm_type: small
  stemcell: default
  networks: [{name: default}]
  jobs:
  - name: client
    release: kf-e2e
    properties: {}
`, relVersion, servers, port, fail, clients)
}

// withDisk gives the servers a persistent disk of size MB.
func withDisk(m []byte, size int) []byte {
	return []byte(strings.Replace(string(m), "  vm_type: small\n  stemcell: default\n  networks: [{name: default}]\n  jobs:\n  - name: server",
		fmt.Sprintf("  vm_type: small\n  stemcell: default\n  persistent_disk: %d\n  networks: [{name: default}]\n  jobs:\n  - name: server", size), 1))
}

// withErrand adds the errand group smoke, whose errand exits with exit.
func withErrand(m []byte, exit int) []byte {
	return fmt.Appendf(m, `- name: smoke
  lifecycle: errand
  instances: 1
  azs: [z1]
  vm_type: small
  stemcell: default
  networks: [{name: default}]
  jobs:
  - name: smoke
    release: kf-e2e
    properties: {smoke: {exit: %d}}
`, exit)
}

// serialCPI makes one VM at a time, and deletes one VM or disk at a
// time: vcsim v0.56.0 races with itself on concurrent clones and destroys
// in one folder and datastore (its CloneVM reads the folder's children,
// and its Destroy the datastore's files, without their locks), which the
// race detector reports. A Destroy also deletes the VM's files in a task
// of its own that it does not wait for: with vmDir set, DeleteVM waits
// until the VM's directory is gone. The director still runs its
// instances' updates, drains and agents concurrently; only the calls
// into vcsim wait.
type serialCPI struct {
	cpi.CPI
	mu sync.Mutex
	// vmDir is the datastore's directory, where vcsim keeps a VM's files
	// in a directory named for it.
	vmDir string
	// failDelete, failDeleteDisk and failCreate make DeleteVM, DeleteDisk
	// and CreateVM fail, as a vCenter that refuses would; failDisk holds
	// disk cids and the method ("detach_disk" or "delete_disk") that
	// fails for each.
	failDelete, failDeleteDisk, failCreate atomic.Bool
	failDisk                               sync.Map
	// before and after, when set, are told of each create_vm (with its
	// agent id), delete_vm, attach_disk and detach_disk (with the VM's
	// cid) before it is made and once it returned without error.
	before, after atomic.Pointer[func(method, arg string)]
	// meta is the metadata the director set on each VM, by cid.
	meta sync.Map
}

func (c *serialCPI) SetVMMetadata(ctx context.Context, cid string, md cpi.Metadata) error {
	c.meta.Store(cid, md)
	return c.CPI.SetVMMetadata(ctx, cid, md)
}

func (c *serialCPI) tell(hook *atomic.Pointer[func(method, arg string)], method, arg string) {
	if f := hook.Load(); f != nil {
		(*f)(method, arg)
	}
}

func (c *serialCPI) fails(method, cid string) bool {
	m, ok := c.failDisk.Load(cid)
	return ok && m == method
}

func (c *serialCPI) DeleteDisk(ctx context.Context, cid string) error {
	if c.fails("delete_disk", cid) || c.failDeleteDisk.Load() {
		return errors.New("delete_disk refused")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.DeleteDisk(ctx, cid)
}

func (c *serialCPI) CreateVM(ctx context.Context, agentID, stemcellCID string, props cpi.CloudProps, nets cpi.Networks, disks []string, env cpi.Env) (string, cpi.Networks, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tell(&c.before, "create_vm", agentID)
	if c.failCreate.Load() {
		return "", nil, errors.New("create_vm refused")
	}
	cid, out, err := c.CPI.CreateVM(ctx, agentID, stemcellCID, props, nets, disks, env)
	if err == nil {
		c.tell(&c.after, "create_vm", agentID)
	}
	return cid, out, err
}

func (c *serialCPI) DeleteVM(ctx context.Context, cid string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tell(&c.before, "delete_vm", cid)
	if c.failDelete.Load() {
		return errors.New("delete_vm refused")
	}
	if err := c.CPI.DeleteVM(ctx, cid); err != nil {
		return err
	}
	if c.vmDir != "" {
		dir := filepath.Join(c.vmDir, cid)
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			_, err := os.Stat(dir)
			return errors.Is(err, os.ErrNotExist), nil
		})
		if err != nil {
			return fmt.Errorf("vcsim did not delete the files of %s: %w", cid, err)
		}
	}
	c.tell(&c.after, "delete_vm", cid)
	return nil
}

func (c *serialCPI) AttachDisk(ctx context.Context, vmCID, diskCID string) (cpi.DiskHint, error) {
	c.tell(&c.before, "attach_disk", vmCID)
	hint, err := c.CPI.AttachDisk(ctx, vmCID, diskCID)
	if err == nil {
		c.tell(&c.after, "attach_disk", vmCID)
	}
	return hint, err
}

func (c *serialCPI) DetachDisk(ctx context.Context, vmCID, diskCID string) error {
	if c.fails("detach_disk", diskCID) {
		return errors.New("detach_disk refused")
	}
	c.tell(&c.before, "detach_disk", vmCID)
	err := c.CPI.DetachDisk(ctx, vmCID, diskCID)
	if err == nil {
		c.tell(&c.after, "detach_disk", vmCID)
	}
	return err
}

// rig is a director on vcsim through the vSphere CPI, with an agent per
// powered-on VM.
type rig struct {
	w     *agenttest.World
	vs    *vsphere.Client
	cpi   *vspherecpi.CPI
	vols  *csi.Client
	vmDir string // the datastore's directory on this machine
	fleet *agentsim.Fleet
	store string
	scpi  *serialCPI
	dir   *director.Director
	st    director.Store
	r     *template.Renderer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if _, err := exec.LookPath("ruby"); err != nil {
		t.Skip("ruby is needed to render templates (apt-get install ruby)")
	}
	g := &rig{w: agenttest.Start(t), store: filepath.Join(t.TempDir(), "director.db")}
	sim := vspheretest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	vs, err := vsphere.New(ctx, sim.Config, vsphere.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = vs.Close(context.Background()) })
	g.vs = vs
	vols, err := csi.New(ctx, vs.Vim25())
	require.NoError(t, err)
	g.vols = vols
	ds, err := find.NewFinder(vs.Vim25()).Datastore(ctx, "/DC0/datastore/LocalDS_0")
	require.NoError(t, err)
	var dsProps mo.Datastore
	require.NoError(t, ds.Properties(ctx, ds.Reference(), []string{"summary.url"}, &dsProps))
	g.vmDir = dsProps.Summary.Url
	tmpl := g.w.Settings(t, "template-agent")
	g.cpi, err = vspherecpi.New(vs, vols, vspherecpi.Config{ClusterID: "bosh-1", VMFolder: "bosh/vms", StemcellFolder: "bosh/stemcells",
		Cluster: "DC0_C0", Datastore: "LocalDS_0", Agent: vspherecpi.AgentConfig{MBus: tmpl.MBus, Blobstore: tmpl.Blobstore}})
	require.NoError(t, err)
	var ac agent.Config
	ac.HeartbeatInterval = 100 * time.Millisecond
	ac.Supervisor = agenttest.FastSupervisor
	g.fleet, err = agentsim.Start(context.Background(), vs.Vim25(), agentsim.Config{Root: t.TempDir(), Agent: ac}, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(g.fleet.Close)
	g.r = template.New()
	t.Cleanup(func() { _ = g.r.Close() })
	g.open(t)
	return g
}

// open starts a director on the rig's store (closing the one before).
func (g *rig) open(t *testing.T) {
	t.Helper()
	if g.st != nil {
		require.NoError(t, g.st.Close())
	}
	st, err := director.OpenStore(g.store)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	g.st = st
	g.scpi = &serialCPI{CPI: g.cpi, vmDir: g.vmDir}
	g.dir, err = director.New(director.Config{Store: st, CPI: g.scpi, Bus: g.w.Bus, Agents: g.w.Director, Blobs: g.w.Store,
		Signer: g.w.Blobs.Signer(), BlobstoreURL: g.w.HTTPS.URL, Renderer: g.r, AgentPing: 50 * time.Millisecond, PingTimeout: time.Second,
		AgentWait: time.Minute, TempDir: t.TempDir(), Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
}

// vms lists the VMs in the CPI's folder.
func (g *rig) vms(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	vms, err := find.NewFinder(g.vs.Vim25()).VirtualMachineList(ctx, "/DC0/vm/bosh/vms/*")
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

// disks lists the CPI's disks on vcsim, with the VMs (their managed
// object ids) they are attached to ("" for none).
func (g *rig) disks(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	vols, err := g.vols.QueryVolumes(ctx, "bosh-1")
	require.NoError(t, err)
	out := map[string]string{}
	for _, v := range vols {
		out[v.ID] = v.AttachedTo
	}
	return out
}

// state is an instance's job state and the config its agent has.
func (g *rig) state(t *testing.T, rec director.InstanceRecord) (jobState, hash string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	v, err := g.w.Director.Call(ctx, rec.AgentID, "get_state")
	require.NoError(t, err, "get_state of %s/%d", rec.Group, rec.Index)
	var st struct {
		JobState string `json:"job_state"`
		Hash     string `json:"configuration_hash"`
	}
	require.NoError(t, json.Unmarshal(v, &st))
	return st.JobState, st.Hash
}

// config is a job's rendered config.yml on an instance's VM.
func (g *rig) config(t *testing.T, rec director.InstanceRecord, job string) string {
	t.Helper()
	for _, id := range g.fleet.Agents() {
		a, ok := g.fleet.Agent(id)
		if ok && a.ID() == rec.AgentID {
			b, err := os.ReadFile(a.Layout().Path("/var/vcap/jobs/" + job + "/config/config.yml"))
			require.NoError(t, err)
			return string(b)
		}
	}
	t.Fatalf("no agent %s runs for %s/%d", rec.AgentID, rec.Group, rec.Index)
	return ""
}

// pid is the pid of the instance's job process.
func (g *rig) pid(t *testing.T, rec director.InstanceRecord) int {
	t.Helper()
	for _, id := range g.fleet.Agents() {
		a, ok := g.fleet.Agent(id)
		if ok && a.ID() == rec.AgentID {
			for _, ps := range a.Supervisor().Status() {
				return ps.PID
			}
		}
	}
	t.Fatalf("no process for %s/%d", rec.Group, rec.Index)
	return 0
}

func (g *rig) instances(t *testing.T) []director.InstanceRecord {
	t.Helper()
	recs, err := g.st.Instances("e2e")
	require.NoError(t, err)
	return recs
}

func (g *rig) upload(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, g.dir.UpdateCloudConfig([]byte(cloudConfig)))
	sc, err := g.dir.UploadStemcell(ctx, stemcellTarball(t, "1.1"))
	require.NoError(t, err)
	assert.Equal(t, "ubuntu-jammy", sc.OS)
	rel := testRelease(t, "1", "ubuntu-jammy/1.1")
	r1, err := g.dir.UploadRelease(ctx, rel)
	require.NoError(t, err)
	require.Len(t, r1.Packages, 1)
	blobs := countBlobs(t, g.w.Store)
	r2, err := g.dir.UploadRelease(ctx, rel)
	require.NoError(t, err, "uploading the same release again")
	assert.Equal(t, r1, r2)
	assert.Equal(t, blobs, countBlobs(t, g.w.Store), "a second upload of the same release stores nothing")
}

func countBlobs(t *testing.T, s *blobstore.Local) int {
	t.Helper()
	n := 0
	require.NoError(t, filepath.WalkDir(s.Dir(), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	}))
	return n
}

func actions(plan []director.InstanceChange) []string {
	out := make([]string, len(plan))
	for i, c := range plan {
		out[i] = fmt.Sprintf("%s %s/%d", c.Action, c.Group, c.Index)
	}
	return out
}

// TestDeployOnVcsim deploys a release built by the test through the
// vSphere CPI on vcsim, with real agents on the VMs: a first deploy,
// a no-change plan, a property change rolled out canary first, a canary
// that fails and stops the deploy with the rest untouched, a scale-down,
// a recreate, and a delete that leaves nothing on vcsim.
func TestDeployOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	uploaded := countBlobs(t, g.w.Store)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	var rec recorder
	res, err := g.dir.Deploy(ctx, deployment(2, 1, 8080, false, "1"), director.DeployOptions{Events: rec.sink})
	require.NoError(t, err)
	assert.Equal(t, director.TaskDone, res.Task.State)
	assert.Equal(t, []string{"create client/0", "create server/0", "create server/1"}, actions(res.Plan))
	recs := g.instances(t)
	require.Len(t, recs, 3)
	assert.Len(t, g.vms(t), 3)
	var serverIPs []string
	for _, r := range recs {
		st, hash := g.state(t, r)
		assert.Equal(t, "running", st, "%s/%d", r.Group, r.Index)
		require.NotNil(t, r.Applied)
		assert.Equal(t, r.Applied.ConfigurationHash, hash, "the agent has what the director recorded")
		if r.Group == "server" {
			ip := strings.TrimPrefix(r.IPs[0], "default=")
			serverIPs = append(serverIPs, ip)
			assert.Contains(t, g.config(t, r, "server"), fmt.Sprintf("index: %d\nbootstrap: %t\n", r.Index, r.Index == 0))
		}
	}
	assert.ElementsMatch(t, []string{"z1", "z2"}, []string{recs[1].AZ, recs[2].AZ}, "the servers are spread over the AZs")
	assert.Equal(t, "servers: "+strings.Join(serverIPs, ",")+"\nport: 8080\n", g.config(t, recs[0], "client"),
		"the client's template sees the servers through the link")
	events, err := g.st.Events(res.Task.ID, 0)
	require.NoError(t, err)
	assert.NotEmpty(t, events, "the task's events are stored")
	assert.Equal(t, len(rec.lines()), len(events))

	// Nothing changed: nothing to do.
	dry, err := g.dir.Deploy(ctx, deployment(2, 1, 8080, false, "1"), director.DeployOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"keep client/0", "keep server/0", "keep server/1"}, actions(dry.Plan))

	// A property change: the servers are updated in place, canary first,
	// and the client with them (the port reaches it through the link).
	vmsBefore := g.vms(t)
	rec = recorder{}
	res, err = g.dir.Deploy(ctx, deployment(2, 1, 9090, false, "1"), director.DeployOptions{Events: rec.sink})
	require.NoError(t, err)
	assert.Equal(t, []string{"update client/0", "update server/0", "update server/1"}, actions(res.Plan))
	assert.ElementsMatch(t, vmsBefore, g.vms(t), "an update keeps the VMs")
	var serverLines []string
	for _, l := range rec.lines() {
		if strings.Contains(l, "server/") {
			serverLines = append(serverLines, l)
		}
	}
	require.Len(t, serverLines, 4)
	assert.Contains(t, serverLines[0], "(canary)")
	assert.True(t, strings.HasPrefix(serverLines[1], "finished") && strings.Contains(serverLines[1], "(canary)"),
		"the canary finishes before the others start: %v", serverLines)
	recs = g.instances(t)
	assert.Contains(t, g.config(t, recs[0], "client"), "port: 9090")

	// A canary that fails stops the deploy; the other server and the
	// client keep what they had.
	before := map[string]string{}
	for _, r := range recs {
		_, before[r.ID] = g.state(t, r)
	}
	res, err = g.dir.Deploy(ctx, deployment(2, 1, 9090, true, "1"), director.DeployOptions{})
	var ue *director.UpdateError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, director.TaskError, res.Task.State)
	require.Len(t, ue.Failed, 1)
	assert.True(t, ue.Failed[0].Canary)
	assert.Equal(t, 1, ue.Untouched)
	for _, r := range g.instances(t) {
		if r.ID == ue.Failed[0].Instance.ID {
			continue
		}
		_, hash := g.state(t, r)
		assert.Equal(t, before[r.ID], hash, "%s/%d was left as it was", r.Group, r.Index)
	}
	locks, err := g.st.Locks()
	require.NoError(t, err)
	assert.Empty(t, locks, "a failed deploy releases its lock")

	// Scale the servers down to one, fixed: server/1 goes, with its VM.
	res, err = g.dir.Deploy(ctx, deployment(1, 1, 9090, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	assert.Contains(t, actions(res.Plan), "delete server/1")
	assert.Contains(t, actions(res.Plan), "update server/0", "the failed canary is updated back")
	for _, r := range g.instances(t) {
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st, "%s/%d", r.Group, r.Index)
		assert.False(t, r.Dirty)
	}
	assert.Len(t, g.instances(t), 2)
	assert.Len(t, g.vms(t), 2)

	// Scale up to three: two new servers, and the client's link lists
	// them (its config changes, so it is updated).
	res, err = g.dir.Deploy(ctx, deployment(3, 1, 9090, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"update client/0", "keep server/0", "create server/1", "create server/2"}, actions(res.Plan))
	recs = g.instances(t)
	require.Len(t, recs, 4)
	assert.Len(t, g.vms(t), 4)
	assert.Equal(t, 3, strings.Count(strings.SplitN(g.config(t, recs[0], "client"), "\n", 2)[0], "10.0.0."))

	// And down to one again, the highest indexes first.
	res, err = g.dir.Deploy(ctx, deployment(1, 1, 9090, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"update client/0", "keep server/0", "delete server/2", "delete server/1"}, actions(res.Plan))
	assert.Len(t, g.vms(t), 2)

	// Recreate: new VMs, the old ones gone.
	vmsBefore = g.vms(t)
	res, err = g.dir.Deploy(ctx, deployment(1, 1, 9090, false, "1"), director.DeployOptions{Recreate: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"recreate client/0", "recreate server/0"}, actions(res.Plan))
	after := g.vms(t)
	assert.Len(t, after, 2)
	for _, vm := range vmsBefore {
		assert.NotContains(t, after, vm, "the old VM is gone")
	}
	for _, r := range g.instances(t) {
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st)
	}

	// Recreate one group's instance by selector; a selector that matches
	// nothing is refused before anything changes.
	_, err = g.dir.Recreate(ctx, "e2e", director.RecreateOptions{Instances: []string{"server/7", "nope"}})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	assert.Contains(t, err.Error(), "server/7")
	assert.Contains(t, err.Error(), "nope")
	assert.ElementsMatch(t, after, g.vms(t))
	recs = g.instances(t)
	_, err = g.dir.Recreate(ctx, "e2e", director.RecreateOptions{Instances: []string{"client/0"}})
	require.NoError(t, err)
	now := g.instances(t)
	assert.NotEqual(t, recs[0].VMCID, now[0].VMCID, "client/0 has a new VM")
	assert.Equal(t, recs[1].VMCID, now[1].VMCID, "server/0 keeps its VM")
	st, _ := g.state(t, now[0])
	assert.Equal(t, "running", st)

	// Delete: nothing left.
	task, err := g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
	require.NoError(t, err)
	assert.Equal(t, director.TaskDone, task.State)
	assert.Empty(t, g.vms(t))
	_, err = g.st.Deployment("e2e")
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)
	agenttest.Eventually(t, func() bool { return len(g.fleet.Agents()) == 0 }, "agents still run: %v", g.fleet.Agents())
	assert.Equal(t, uploaded, countBlobs(t, g.w.Store), "no rendered templates blob is left, only the releases' packages")
}

// TestDeployResumesAfterTheDirectorStops stops a deploy half-way (its ctx
// ends once the first VM exists, as when the director's process dies),
// starts a new director on the same store, and deploys again: the old
// task is reported, and the deploy converges with no VM leaked.
func TestDeployResumesAfterTheDirectorStops(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var once sync.Once
	_, err := g.dir.Deploy(ctx, deployment(3, 1, 8080, false, "1"), director.DeployOptions{Events: func(e director.Event) {
		if e.State == director.EventStarted {
			once.Do(func() {
				// The first instance is being updated: stop once its VM is made.
				go func() {
					agenttest.Eventually(t, func() bool { return len(g.vms(t)) > 0 }, "no VM was made")
					cancel()
				}()
			})
		}
	}})
	require.Error(t, err)
	made := g.vms(t)
	require.NotEmpty(t, made)

	// What a director that died would leave: a task still processing and
	// its lock. A new director on the store ends the task and frees the
	// deployment.
	dead, err := g.st.NewTask("deploy", "e2e", "create deployment")
	require.NoError(t, err)
	dead.State = director.TaskProcessing
	require.NoError(t, g.st.PutTask(dead))
	require.NoError(t, g.st.Lock("e2e", dead.ID))
	g.open(t)
	got, err := g.st.Task(dead.ID)
	require.NoError(t, err)
	assert.Equal(t, director.TaskError, got.State)
	assert.Contains(t, got.Result, "the director stopped during this task")

	dctx, dcancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer dcancel()
	// serial: false: the groups are updated at once.
	parallel := strings.Replace(string(deployment(3, 1, 8080, false, "1")), "update:\n", "update:\n  serial: false\n", 1)
	res, err := g.dir.Deploy(dctx, []byte(parallel), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, director.TaskDone, res.Task.State)
	recs := g.instances(t)
	require.Len(t, recs, 4)
	vms := g.vms(t)
	assert.Len(t, vms, 4, "one VM per instance, none leaked: %v", vms)
	for _, r := range recs {
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st)
	}
	_, err = g.dir.DeleteDeployment(dctx, "e2e", director.DeleteOptions{})
	require.NoError(t, err)
	assert.Empty(t, g.vms(t))
}

// TestDeployRefusesWhatItCannotDo: every problem of a manifest is
// reported at once, at its path, and nothing is made or locked.
func TestDeployRefusesWhatItCannotDo(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bad := strings.NewReplacer(`version: "2"`, `version: "2"`, "vm_type: small\n  stemcell: default\n  networks: [{name: default}]\n  jobs:\n  - name: client",
		"vm_type: large\n  stemcell: default\n  persistent_disk_type: huge\n  networks: [{name: default}]\n  jobs:\n  - name: client").
		Replace(string(deployment(1, 1, 8080, false, "2")))
	_, err := g.dir.Deploy(ctx, []byte(bad), director.DeployOptions{})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	msg := err.Error()
	for _, want := range []string{"/releases/name=kf-e2e/version", "release kf-e2e/2 is not uploaded (uploaded versions: [1])",
		"/instance_groups/name=client/persistent_disk_type", "disk_type huge is not in the cloud config", "/instance_groups/name=client/vm_type", "vm_type large is not in the cloud config"} {
		assert.Contains(t, msg, want)
	}
	tasks, err := g.st.Tasks(0)
	require.NoError(t, err)
	require.Len(t, tasks, 1, "the refused deploy is one task")
	assert.Equal(t, director.TaskError, tasks[0].State)
	assert.Empty(t, g.vms(t))
	assert.Empty(t, g.instances(t))

	// Another task holds the deployment: refused, naming it.
	require.NoError(t, g.st.PutDeployment(director.Deployment{Name: "e2e"}))
	require.NoError(t, g.st.Lock("e2e", 4242))
	_, err = g.dir.Deploy(ctx, deployment(1, 1, 8080, false, "1"), director.DeployOptions{})
	require.ErrorIs(t, err, kubefoundry.ErrConflict)
	assert.Contains(t, err.Error(), "locked by task 4242")
	assert.Empty(t, g.vms(t))
}

// TestUploadsRefuseAnotherContentUnderOneVersion: a stemcell or release
// uploaded again with the same version and other content is a conflict,
// and the first stays.
func TestUploadsRefuseAnotherContentUnderOneVersion(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	image, err := os.ReadFile(vspheretest.StemcellImage(t))
	require.NoError(t, err)
	// Another image under the same version.
	_, err = g.dir.UploadStemcell(ctx, stemcellOf(t, "1.1", append(image, 0)))
	require.ErrorIs(t, err, kubefoundry.ErrConflict)
	scs, err := g.st.Stemcells()
	require.NoError(t, err)
	assert.Len(t, scs, 1)

	// The release of version 1 again, with another job template.
	blobs := countBlobs(t, g.w.Store)
	rel := testReleaseWith(t, "1", "ubuntu-jammy/1.1", func(dir string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs/server/templates/drain.erb"), []byte("#!/bin/sh\necho 1\n"), 0o644))
	})
	_, err = g.dir.UploadRelease(ctx, rel)
	require.ErrorIs(t, err, kubefoundry.ErrConflict)
	assert.Equal(t, blobs, countBlobs(t, g.w.Store), "a refused upload leaves no blob")
}

// TestResurrectionOnVcsim: a VM powered off in vcsim is found by the
// health monitor from its agent's silence and recreated through the
// director; when more go down than the meltdown guard allows, resurrection
// pauses and says so.
func TestResurrectionOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, deployment(2, 1, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)

	alerts := make(chan health.Alert, 64)
	// A time-out of a second, not the default 1.5 intervals (150 ms): under
	// -race on a loaded machine a live agent's heartbeat can be that late,
	// and a healthy instance timed out starts the meltdown early. BOSH's
	// window: the first death still counts when the second comes, however
	// long the first resurrection took.
	mon, err := health.Start(ctx, g.w.Director, health.Config{Interval: 100 * time.Millisecond, Timeout: time.Second, Resurrect: g.dir.Resurrector(),
		Meltdown: health.MeltdownGuard{Count: 2, Percent: 50, Window: 10 * time.Minute},
		Alerts:   func(a health.Alert) { alerts <- a }}, zaptest.NewLogger(t))
	require.NoError(t, err)
	defer mon.Close()
	require.NoError(t, g.dir.Watch(mon))
	await := func(kind, id string) health.Alert {
		t.Helper()
		timer := time.NewTimer(2 * time.Minute)
		defer timer.Stop()
		for {
			select {
			case a := <-alerts:
				if a.Kind == kind && a.Instance.ID == id {
					return a
				}
				if a.Kind == health.KindResurrectionFailed {
					t.Fatalf("resurrection failed: %s: %s", a.Title, a.Summary)
				}
			case <-timer.C:
				t.Fatalf("no %s alert for %s within 2 minutes", kind, id)
			}
		}
	}
	powerOff := func(r director.InstanceRecord) {
		t.Helper()
		vm, err := g.vs.FindVM(ctx, "/DC0/vm/bosh/vms/"+r.VMCID)
		require.NoError(t, err)
		require.NoError(t, g.vs.PowerOff(ctx, vm.Reference()))
	}

	recs := g.instances(t)
	victim := recs[1]
	powerOff(victim)
	await(health.KindTimeout, victim.ID)
	a := await(health.KindResurrected, victim.ID)
	assert.NotEqual(t, victim.AgentID, a.Instance.AgentID, "a new VM has a new agent")
	var now director.InstanceRecord
	for _, r := range g.instances(t) {
		if r.ID == victim.ID {
			now = r
		}
	}
	assert.NotEqual(t, victim.VMCID, now.VMCID)
	st, _ := g.state(t, now)
	assert.Equal(t, "running", st)
	vms := g.vms(t)
	assert.Len(t, vms, 3)
	assert.NotContains(t, vms, victim.VMCID, "the dead VM is deleted")

	// A second instance down within the window: 2 of 3 is past the
	// guard, so it is not recreated.
	second := recs[2]
	powerOff(second)
	m := await(health.KindMeltdown, second.ID)
	assert.Contains(t, m.Title, "resurrection paused")
	for _, r := range g.instances(t) {
		if r.ID == second.ID {
			assert.Equal(t, second.VMCID, r.VMCID, "no resurrection during a meltdown")
		}
	}
}

// TestCloudCheckRecreatesVMs: a VM deleted behind the director's back
// and a VM whose agent is silent are found by cloud-check, which offers
// recreate_vm for both; resolving them gives each instance a running VM.
func TestCloudCheckRecreatesVMs(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, deployment(2, 1, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	recs := g.instances(t)
	require.NoError(t, g.cpi.DeleteVM(ctx, recs[1].VMCID))
	vm, err := g.vs.FindVM(ctx, "/DC0/vm/bosh/vms/"+recs[2].VMCID)
	require.NoError(t, err)
	require.NoError(t, g.vs.PowerOff(ctx, vm.Reference()))
	agenttest.Eventually(t, func() bool { return len(g.fleet.Agents()) == 1 }, "the agents of the VMs gone and off still run")

	cc := g.dir.CloudCheck()
	cc.PingTimeout = time.Second
	problems, err := cc.Scan(ctx, "e2e")
	require.NoError(t, err)
	require.Len(t, problems, 2)
	byType := map[string]director.Problem{}
	for _, p := range problems {
		byType[p.Type] = p
		assert.Contains(t, p.Resolutions, director.ResolutionRecreateVM)
	}
	assert.Equal(t, recs[1].ID, byType[director.ProblemMissingVM].Instance.ID)
	assert.Equal(t, recs[2].ID, byType[director.ProblemUnresponsiveAgent].Instance.ID)

	// Resolutions hold the lock: refused while another task runs.
	require.NoError(t, g.st.Lock("e2e", 4242))
	err = cc.Resolve(ctx, byType[director.ProblemMissingVM], director.ResolutionDeleteVMReference)
	require.ErrorIs(t, err, kubefoundry.ErrConflict)
	require.NoError(t, g.st.Unlock("e2e", 4242))

	for _, p := range problems {
		require.NoError(t, cc.Resolve(ctx, p, director.ResolutionRecreateVM), p.Type)
	}
	for _, r := range g.instances(t) {
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st, "%s/%d", r.Group, r.Index)
	}
	assert.Len(t, g.vms(t), 3)
	problems, err = cc.Scan(ctx, "e2e")
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// TestStopStartRestartOnVcsim: a soft stop keeps the VM with its jobs
// stopped, and is idempotent; start brings the jobs back; a hard stop
// deletes the VMs and keeps the instances (detached, with their
// addresses), and start makes them new VMs; restart keeps the VM.
func TestStopStartRestartOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, deployment(2, 1, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	find := func(id string) director.InstanceRecord {
		for _, r := range g.instances(t) {
			if r.ID == id {
				return r
			}
		}
		t.Fatalf("no instance %s", id)
		return director.InstanceRecord{}
	}
	server0 := g.instances(t)[1]
	require.Equal(t, "server", server0.Group)

	for range 2 {
		_, err = g.dir.Stop(ctx, "e2e", director.StateOptions{Instances: []string{"server/0"}})
		require.NoError(t, err)
		r := find(server0.ID)
		assert.Equal(t, director.StateStopped, r.State)
		assert.Equal(t, server0.VMCID, r.VMCID, "a soft stop keeps the VM")
		st, _ := g.state(t, r)
		assert.Equal(t, "stopped", st)
	}
	// A deploy gives the stopped instance its new configuration and
	// leaves it stopped.
	res, err := g.dir.Deploy(ctx, deployment(2, 1, 8181, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	assert.Contains(t, actions(res.Plan), "update server/0")
	r0 := find(server0.ID)
	assert.Equal(t, director.StateStopped, r0.State, "stopped on purpose, it stays stopped")
	st0, hash0 := g.state(t, r0)
	assert.Equal(t, "stopped", st0)
	assert.Equal(t, r0.Applied.ConfigurationHash, hash0, "with the new configuration")
	assert.Contains(t, g.config(t, r0, "server"), "port: 8181")

	_, err = g.dir.Start(ctx, "e2e", director.StateOptions{Instances: []string{"server/0"}})
	require.NoError(t, err)
	r := find(server0.ID)
	assert.Equal(t, director.StateStarted, r.State)
	st, _ := g.state(t, r)
	assert.Equal(t, "running", st)

	before := g.instances(t)
	_, err = g.dir.Stop(ctx, "e2e", director.StateOptions{Instances: []string{"server"}, Hard: true})
	require.NoError(t, err)
	assert.Len(t, g.vms(t), 1, "a hard stop deletes the VMs")
	for _, r := range g.instances(t) {
		if r.Group == "server" {
			assert.Equal(t, director.StateDetached, r.State)
			assert.Empty(t, r.VMCID)
		}
	}
	// Detached instances stay so through a deploy.
	res, err = g.dir.Deploy(ctx, deployment(2, 1, 9191, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"update client/0", "keep server/0", "keep server/1"}, actions(res.Plan))
	assert.Len(t, g.vms(t), 1, "no VM for a detached instance")
	_, err = g.dir.Start(ctx, "e2e", director.StateOptions{})
	require.NoError(t, err)
	assert.Len(t, g.vms(t), 3)
	assert.Contains(t, g.config(t, find(server0.ID), "server"), "port: 9191", "started with what the deployment says now")
	for i, r := range g.instances(t) {
		assert.Equal(t, before[i].IPs, r.IPs, "%s/%d keeps its address", r.Group, r.Index)
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st)
	}

	client := g.instances(t)[0]
	pid := g.pid(t, client)
	_, err = g.dir.Restart(ctx, "e2e", director.StateOptions{Instances: []string{"client"}})
	require.NoError(t, err)
	r = find(client.ID)
	assert.Equal(t, client.VMCID, r.VMCID, "a soft restart keeps the VM")
	assert.NotEqual(t, pid, g.pid(t, r), "the job was started again")

	_, err = g.dir.Restart(ctx, "e2e", director.StateOptions{Instances: []string{"client"}, Hard: true})
	require.NoError(t, err)
	r = find(client.ID)
	assert.NotEqual(t, client.VMCID, r.VMCID, "a hard restart makes a new VM")
	assert.Len(t, g.vms(t), 3)
	st, _ = g.state(t, r)
	assert.Equal(t, "running", st)
	st, _ = g.state(t, r)
	assert.Equal(t, "running", st)
}

// TestPersistentDiskOnVcsim: a server's persistent disk is made, attached
// and mounted before its job starts; its data survives a recreate and a
// hard stop (the disk moves to the new VM), moves to a new disk when the
// size changes (the old one orphaned, as BOSH orphans it, with its data),
// and the disk goes with the deployment; the orphan stays until it is
// cleaned up.
func TestPersistentDiskOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	server := func() director.InstanceRecord {
		for _, r := range g.instances(t) {
			if r.Group == "server" {
				return r
			}
		}
		t.Fatal("no server")
		return director.InstanceRecord{}
	}
	starts := func() int {
		t.Helper()
		r := server()
		for _, id := range g.fleet.Agents() {
			if a, ok := g.fleet.Agent(id); ok && a.ID() == r.AgentID {
				b, err := os.ReadFile(a.Layout().Path("/var/vcap/store/server/starts"))
				require.NoError(t, err)
				return strings.Count(string(b), "started")
			}
		}
		t.Fatalf("no agent for the server")
		return 0
	}
	hasDisk := func(cid string) bool {
		t.Helper()
		ok, err := g.cpi.HasDisk(ctx, cid)
		require.NoError(t, err)
		return ok
	}

	_, err := g.dir.Deploy(ctx, withDisk(deployment(1, 1, 8080, false, "1"), 1024), director.DeployOptions{})
	require.NoError(t, err)
	first := server()
	require.NotEmpty(t, first.DiskCID)
	assert.Equal(t, 1024, first.DiskSize)
	assert.True(t, hasDisk(first.DiskCID))
	assert.Equal(t, 1, starts(), "the job started with its disk mounted")

	_, err = g.dir.Recreate(ctx, "e2e", director.RecreateOptions{Instances: []string{"server"}})
	require.NoError(t, err)
	r := server()
	assert.NotEqual(t, first.VMCID, r.VMCID)
	assert.Equal(t, first.DiskCID, r.DiskCID, "the disk moves to the new VM")
	assert.Equal(t, 2, starts(), "its data with it")

	_, err = g.dir.Stop(ctx, "e2e", director.StateOptions{Instances: []string{"server"}, Hard: true})
	require.NoError(t, err)
	assert.True(t, hasDisk(first.DiskCID), "a hard stop keeps the disk")
	_, err = g.dir.Start(ctx, "e2e", director.StateOptions{})
	require.NoError(t, err)
	assert.Equal(t, first.DiskCID, server().DiskCID)
	assert.Equal(t, 3, starts())

	res, err := g.dir.Deploy(ctx, withDisk(deployment(1, 1, 8080, false, "1"), 2048), director.DeployOptions{})
	require.NoError(t, err)
	assert.Contains(t, actions(res.Plan), "update server/0")
	r = server()
	assert.NotEqual(t, first.DiskCID, r.DiskCID, "a new disk of the new size")
	assert.Equal(t, 2048, r.DiskSize)
	assert.Empty(t, r.NewDiskCID)
	assert.Equal(t, 4, starts(), "the data moved to the new disk")
	orphans, err := g.dir.OrphanedDisks()
	require.NoError(t, err)
	require.Len(t, orphans, 1, "the old disk is orphaned once its data moved")
	assert.Equal(t, first.DiskCID, orphans[0].CID)
	assert.Equal(t, 1024, orphans[0].Size)
	assert.Equal(t, "server", orphans[0].Group)
	assert.Equal(t, first.ID, orphans[0].InstanceID)
	disks := g.disks(t)
	assert.Contains(t, disks, first.DiskCID, "an orphan stays on the cloud")
	assert.Empty(t, disks[first.DiskCID], "detached")
	assert.NotEmpty(t, disks[r.DiskCID], "the new disk is attached")

	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
	require.NoError(t, err)
	assert.False(t, hasDisk(r.DiskCID), "the disk goes with the deployment")
	assert.Empty(t, g.vms(t))
	assert.Equal(t, map[string]string{first.DiskCID: ""}, g.disks(t), "the orphan does not go with the deployment")
	_, err = g.dir.CleanUpOrphanedDisks(ctx, 0, director.OrphanedDiskOptions{})
	require.NoError(t, err)
	assert.Empty(t, g.disks(t))
}

// TestErrandsOnVcsim: an errand group gets VMs only while it runs (a
// deploy makes none), its errand sees the servers through its link, a
// non-zero exit is an ErrandError with the output, and keep-alive keeps
// the VM; a job errand runs on every instance that has the job.
func TestErrandsOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	res, err := g.dir.Deploy(ctx, withErrand(deployment(2, 1, 8080, false, "1"), 0), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"create client/0", "create server/0", "create server/1"}, actions(res.Plan), "no VM for the errand")
	assert.Len(t, g.vms(t), 3)
	var servers []string
	for _, r := range g.instances(t) {
		if r.Group == "server" {
			servers = append(servers, strings.TrimPrefix(r.IPs[0], "default="))
		}
	}

	results, task, err := g.dir.RunErrand(ctx, "e2e", "smoke", director.ErrandOptions{})
	require.NoError(t, err)
	assert.Equal(t, director.TaskDone, task.State)
	require.Len(t, results, 1)
	assert.Equal(t, 0, results[0].ExitCode)
	assert.Equal(t, "servers "+strings.Join(servers, ",")+"\n", results[0].Stdout)
	assert.Equal(t, "oops\n", results[0].Stderr)
	assert.Len(t, g.vms(t), 3, "the errand's VM is deleted after the run")

	// The deploy again: the errand's instance is not the plan's.
	res, err = g.dir.Deploy(ctx, withErrand(deployment(2, 1, 8080, false, "1"), 3), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"keep client/0", "keep server/0", "keep server/1"}, actions(res.Plan))
	results, _, err = g.dir.RunErrand(ctx, "e2e", "smoke", director.ErrandOptions{KeepAlive: true})
	var ee *director.ErrandError
	require.ErrorAs(t, err, &ee)
	require.Len(t, results, 1)
	assert.Equal(t, 3, results[0].ExitCode)
	assert.Contains(t, err.Error(), "exited 3")
	assert.Len(t, g.vms(t), 4, "keep-alive keeps the errand's VM")

	results, _, err = g.dir.RunErrand(ctx, "e2e", "server", director.ErrandOptions{})
	require.NoError(t, err)
	require.Len(t, results, 2)
	assert.Equal(t, "server 0 ok\n", results[0].Stdout)
	assert.Equal(t, "server 1 ok\n", results[1].Stdout)

	_, _, err = g.dir.RunErrand(ctx, "e2e", "nope", director.ErrandOptions{})
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)

	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
	require.NoError(t, err)
	assert.Empty(t, g.vms(t), "the kept errand VM goes with the deployment")
}

// TestVariablesOnVcsim: a variable the manifest declares is generated
// once, interpolated into the properties the templates see, never stored
// in the deployment's record or shown in its task; deploying again keeps
// it, and an undeclared one is refused naming it.
func TestVariablesOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	m := []byte(strings.Replace(string(deployment(1, 1, 8080, false, "1")), "fail: false}}", "fail: false, secret: ((token))}}", 1) +
		"variables:\n- {name: token, type: password}\n")
	var rec recorder
	res, err := g.dir.Deploy(ctx, m, director.DeployOptions{Events: rec.sink})
	require.NoError(t, err)
	vars, err := variables.OpenBackend(storeVars{g.st, "e2e"})
	require.NoError(t, err, "without VariablesDir the variables are in the director's store")
	token, ok, err := vars.Get("token")
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, token, 20)
	var server director.InstanceRecord
	for _, r := range g.instances(t) {
		if r.Group == "server" {
			server = r
		}
	}
	assert.Contains(t, g.config(t, server, "server"), fmt.Sprintf("secret: %s\n", token))
	dep, err := g.st.Deployment("e2e")
	require.NoError(t, err)
	assert.Contains(t, string(dep.Manifest), "((token))", "the manifest is recorded as given")
	assert.NotContains(t, string(dep.Manifest), token.(string))
	assert.NotContains(t, res.Task.Result, token.(string))
	assert.NotContains(t, strings.Join(rec.lines(), "\n"), token.(string))

	g.open(t) // a director restarted on the same store
	res, err = g.dir.Deploy(ctx, m, director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"keep client/0", "keep server/0"}, actions(res.Plan), "the variable keeps its value")
	_, err = g.dir.Recreate(ctx, "e2e", director.RecreateOptions{Instances: []string{"server"}})
	require.NoError(t, err, "a recreate interpolates the recorded manifest again")
	for _, r := range g.instances(t) {
		if r.Group == "server" {
			assert.Contains(t, g.config(t, r, "server"), fmt.Sprintf("secret: %s\n", token))
		}
	}

	_, err = g.dir.Deploy(ctx, []byte(strings.Replace(string(m), "((token))", "((nope))", 1)), director.DeployOptions{})
	require.ErrorContains(t, err, "nope")
}

// storeVars reads a deployment's variables from the director's store.
type storeVars struct {
	st         director.Store
	deployment string
}

func (s storeVars) Load() ([]byte, error)     { return s.st.Variables(s.deployment) }
func (s storeVars) Save(content []byte) error { return s.st.PutVariables(s.deployment, content) }
func (s storeVars) String() string            { return s.deployment }

// TestCancelTask: a deploy cancelled by its task id ends between steps in
// state cancelled, with its lock released; a task that is not running
// cannot be cancelled.
func TestCancelTask(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var once sync.Once
	res, err := g.dir.Deploy(ctx, deployment(3, 1, 8080, false, "1"), director.DeployOptions{Events: func(e director.Event) {
		once.Do(func() {
			tasks, err := g.st.Tasks(1)
			if assert.NoError(t, err) && assert.Len(t, tasks, 1) {
				assert.NoError(t, g.dir.CancelTask(tasks[0].ID))
			}
		})
	}})
	require.ErrorIs(t, err, director.ErrTaskCancelled)
	assert.Equal(t, director.TaskCancelled, res.Task.State)
	got, err := g.st.Task(res.Task.ID)
	require.NoError(t, err)
	assert.Equal(t, director.TaskCancelled, got.State)
	locks, err := g.st.Locks()
	require.NoError(t, err)
	assert.Empty(t, locks)
	assert.Less(t, len(g.instances(t)), 4, "it stopped before the end")
	err = g.dir.CancelTask(res.Task.ID)
	require.ErrorIs(t, err, kubefoundry.ErrConflict)
	require.ErrorIs(t, g.dir.CancelTask(9999), kubefoundry.ErrNotFound)

	// Deploying again converges.
	res, err = g.dir.Deploy(ctx, deployment(3, 1, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	assert.Len(t, g.vms(t), 4)
}

// TestConcurrentDeploysGetTheirOwnAddresses: two deployments deployed at
// once are given different addresses.
func TestConcurrentDeploysGetTheirOwnAddresses(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, name := range []string{"e2e", "e2f"} {
		m := strings.Replace(string(deployment(2, 1, 8080, false, "1")), "name: e2e", "name: "+name, 1)
		wg.Go(func() {
			_, errs[i] = g.dir.Deploy(ctx, []byte(m), director.DeployOptions{})
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	seen := map[string]string{}
	for _, dep := range []string{"e2e", "e2f"} {
		recs, err := g.st.Instances(dep)
		require.NoError(t, err)
		require.Len(t, recs, 3)
		for _, r := range recs {
			for _, ip := range r.IPs {
				if other, ok := seen[ip]; ok {
					t.Errorf("%s is given to %s and %s/%s", ip, other, dep, r.ID)
				}
				seen[ip] = dep + "/" + r.ID
			}
		}
	}
	assert.Len(t, seen, 6)
}

// TestInstancesKeepTheirAddresses: an instance keeps its address when a
// lower one is freed (another deployment deleted): a deploy that changes
// a property updates the instances in place, on the addresses they had.
func TestInstancesKeepTheirAddresses(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	other := strings.Replace(string(deployment(1, 0, 8080, false, "1")), "name: e2e", "name: e2f", 1)
	_, err := g.dir.Deploy(ctx, []byte(other), director.DeployOptions{})
	require.NoError(t, err)
	_, err = g.dir.Deploy(ctx, deployment(2, 0, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	var before []string
	for _, r := range g.instances(t) {
		before = append(before, r.IPs...)
	}
	assert.Equal(t, []string{"default=10.0.0.11", "default=10.0.0.12"}, before, "10.0.0.10 is e2f's")
	_, err = g.dir.DeleteDeployment(ctx, "e2f", director.DeleteOptions{})
	require.NoError(t, err)

	res, err := g.dir.Deploy(ctx, deployment(2, 0, 9090, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"update server/0", "update server/1"}, actions(res.Plan), "no address moved: no VM is recreated")
	var after []string
	for _, r := range g.instances(t) {
		after = append(after, r.IPs...)
	}
	assert.Equal(t, before, after)
}

// TestStaticIPsPlaceInstances: with static IPs, an instance goes to the AZ
// of its address's subnet, even when both addresses are in one AZ's.
func TestStaticIPsPlaceInstances(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	require.NoError(t, g.dir.UpdateCloudConfig([]byte(`
azs: [{name: z1}, {name: z2}]
vm_types: [{name: small, cloud_properties: {cpu: 1, ram: 512, disk: 1024}}]
networks:
- name: default
  type: manual
  subnets:
  - {range: 10.0.0.0/24, gateway: 10.0.0.1, static: [10.0.0.20 - 10.0.0.30], az: z1, cloud_properties: {name: VM Network}}
  - {range: 10.0.1.0/24, gateway: 10.0.1.1, az: z2, cloud_properties: {name: VM Network}}
compilation: {workers: 1, az: z1, vm_type: small, network: default}
`)))
	m := strings.Replace(string(deployment(2, 0, 8080, false, "1")), "  networks: [{name: default}]\n  jobs:\n  - name: server",
		"  networks: [{name: default, static_ips: [10.0.0.20, 10.0.0.21]}]\n  jobs:\n  - name: server", 1)
	_, err := g.dir.Deploy(ctx, []byte(m), director.DeployOptions{})
	require.NoError(t, err)
	for _, r := range g.instances(t) {
		if r.Group == "server" {
			assert.Equal(t, "z1", r.AZ, "%s/%d", r.Group, r.Index)
			assert.Contains(t, []string{"default=10.0.0.20", "default=10.0.0.21"}, r.IPs[0])
		}
	}
}

// TestDirectorRestartsOnANewBus: a director started again on its store,
// with a new bus of the same CA, lets the agents it recorded back on, and
// updates them.
func TestDirectorRestartsOnANewBus(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, deployment(1, 1, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)

	u, err := url.Parse(g.w.Bus.URL())
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	ca := g.w.Bus.CA()
	g.w.Bus.Close()
	bus, err := mbus.StartBus(ctx, mbus.BusConfig{Port: port, CA: ca}, mbus.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	g.w.Bus = bus
	g.open(t)

	ping := func(id string) bool {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := g.w.Director.Call(pctx, id, "ping")
		return err == nil
	}
	for _, r := range g.instances(t) {
		agenttest.Eventually(t, func() bool { return ping(r.AgentID) }, "the agent of %s/%d is not back on the bus", r.Group, r.Index)
	}
	res, err := g.dir.Deploy(ctx, deployment(1, 1, 9090, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"update client/0", "update server/0"}, actions(res.Plan))
	for _, r := range g.instances(t) {
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st)
	}
}

// TestDeleteRefusesToSkipADrainUnlessForced: an instance whose VM is
// there and whose agent is silent is not deleted undrained unless forced;
// one whose VM is gone is.
func TestDeleteRefusesToSkipADrainUnlessForced(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, deployment(2, 0, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	recs := g.instances(t)
	vm, err := g.vs.FindVM(ctx, "/DC0/vm/bosh/vms/"+recs[0].VMCID)
	require.NoError(t, err)
	require.NoError(t, g.vs.PowerOff(ctx, vm.Reference()))
	require.NoError(t, g.cpi.DeleteVM(ctx, recs[1].VMCID))
	agenttest.Eventually(t, func() bool { return len(g.fleet.Agents()) == 0 }, "agents still run")

	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
	require.ErrorContains(t, err, "does not answer")
	left := g.instances(t)
	require.Len(t, left, 1, "the instance whose VM was gone is deleted")
	assert.Equal(t, recs[0].ID, left[0].ID)
	assert.Len(t, g.vms(t), 1)

	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{Force: true})
	require.NoError(t, err)
	assert.Empty(t, g.vms(t))
}

// TestAddonsOnVcsim: a manifest's add-on goes on the groups its include
// rule names, a runtime config's on those its rules select (by stemcell,
// less an excluded group; errand groups too), with the add-on's
// properties; a job a group has already is refused.
func TestAddonsOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	require.NoError(t, g.dir.UpdateRuntimeConfig([]byte(`
releases: [{name: kf-e2e, version: "1"}]
addons:
- name: client-side
  jobs: [{name: sidecar, release: kf-e2e}]
  properties: {sidecar: {tag: from-runtime}}
  include: {stemcell: [{os: ubuntu-jammy}]}
  exclude: {instance_groups: [server]}
- name: never
  jobs: [{name: sidecar, release: kf-e2e}]
  include: {stemcell: [{os: windows2019}]}
`)))
	m := append(withErrand(deployment(2, 1, 8080, false, "1"), 0), []byte(`addons:
- name: server-side
  jobs: [{name: sidecar, release: kf-e2e, properties: {sidecar: {tag: from-manifest}}}]
  include: {instance_groups: [server]}
`)...)
	_, err := g.dir.Deploy(ctx, m, director.DeployOptions{})
	require.NoError(t, err)
	for _, r := range g.instances(t) {
		want := map[string]string{"server": "from-manifest", "client": "from-runtime"}[r.Group]
		assert.Equal(t, "group: "+r.Group+"\ntag: "+want+"\n", g.config(t, r, "sidecar"), "%s/%d", r.Group, r.Index)
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st)
	}
	res, err := g.dir.Deploy(ctx, m, director.DeployOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"keep client/0", "keep server/0", "keep server/1"}, actions(res.Plan))
	_, err = g.dir.Recreate(ctx, "e2e", director.RecreateOptions{Instances: []string{"client"}})
	require.NoError(t, err, "a recreate places the add-ons recorded with the deployment")
	client := g.instances(t)[0]
	assert.Contains(t, g.config(t, client, "sidecar"), "tag: from-runtime")

	// The runtime config's add-on, whose rule names no lifecycle, is on
	// the errand group too, as BOSH places it.
	results, _, err := g.dir.RunErrand(ctx, "e2e", "smoke", director.ErrandOptions{KeepAlive: true})
	require.NoError(t, err)
	require.Len(t, results, 1)
	for _, r := range g.instances(t) {
		if r.Group != "smoke" {
			continue
		}
		for _, id := range g.fleet.Agents() {
			if a, ok := g.fleet.Agent(id); ok && a.ID() == r.AgentID {
				b, err := os.ReadFile(a.Layout().Path("/var/vcap/jobs/sidecar/config/config.yml"))
				require.NoError(t, err, "the add-on is on the errand's VM")
				assert.Equal(t, "group: smoke\ntag: from-runtime\n", string(b))
			}
		}
	}

	twice := append(m, []byte(`- name: again
  jobs: [{name: sidecar, release: kf-e2e}]
  include: {instance_groups: [server]}
`)...)
	_, err = g.dir.Deploy(ctx, twice, director.DeployOptions{})
	require.ErrorContains(t, err, "has a job sidecar already")
}

// TestBeforeStop: the deploy's BeforeStop is called for each running
// instance before it is drained and stopped, for an update and for a
// scale-down's deletion, never for one just created; its error fails the
// instance before anything of it changed, and the deploy stops there.
func TestBeforeStop(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var called []string
	hook := func(fail string) func(context.Context, director.Instance) error {
		return func(_ context.Context, inst director.Instance) error {
			mu.Lock()
			defer mu.Unlock()
			called = append(called, fmt.Sprintf("%s/%d", inst.Group, inst.Index))
			if inst.Group+"/"+strconv.Itoa(inst.Index) == fail {
				return errors.New("the node's pods cannot be evicted")
			}
			return nil
		}
	}
	_, err := g.dir.Deploy(ctx, deployment(2, 0, 8080, false, "1"), director.DeployOptions{BeforeStop: hook("")})
	require.NoError(t, err)
	assert.Empty(t, called, "nothing ran before: nothing to stop")

	before := map[string]string{}
	for _, r := range g.instances(t) {
		_, before[r.ID] = g.state(t, r)
	}
	_, err = g.dir.Deploy(ctx, deployment(2, 0, 9090, false, "1"), director.DeployOptions{BeforeStop: hook("server/0")})
	require.ErrorContains(t, err, "the node's pods cannot be evicted")
	assert.Equal(t, []string{"server/0"}, called, "the canary's hook failed: nothing else was begun")
	for _, r := range g.instances(t) {
		st, hash := g.state(t, r)
		assert.Equal(t, "running", st, "%s/%d is left running", r.Group, r.Index)
		assert.Equal(t, before[r.ID], hash, "%s/%d is left as it was", r.Group, r.Index)
		assert.False(t, r.Dirty, "%s/%d: nothing of it changed", r.Group, r.Index)
	}

	called = nil
	_, err = g.dir.Deploy(ctx, deployment(1, 0, 9090, false, "1"), director.DeployOptions{BeforeStop: hook("")})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"server/1", "server/0"}, called, "the deleted instance and the updated one")
}

// TestStemcellUpgrade: a deployment on stemcell version "latest" moves to
// a newly uploaded stemcell once the release is uploaded compiled against
// it too (the same version: its packages for the new stemcell are added to
// it); until then the deploy refuses, naming the package, and changes
// nothing. Each instance gets a new VM from the new stemcell.
func TestStemcellUpgrade(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, deployment(2, 0, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	vms := map[string]string{}
	for _, r := range g.instances(t) {
		vms[r.ID] = r.VMCID
		require.Equal(t, "ubuntu-jammy/1.1", r.Applied.Stemcell)
	}

	_, err = g.dir.UploadStemcell(ctx, stemcellTarball(t, "1.2"))
	require.NoError(t, err)
	_, err = g.dir.Deploy(ctx, deployment(2, 0, 8080, false, "1"), director.DeployOptions{})
	require.ErrorContains(t, err, "app", "the release has no package compiled for 1.2 yet")
	for _, r := range g.instances(t) {
		assert.Equal(t, vms[r.ID], r.VMCID, "a refused deploy changes nothing")
	}

	blobs := countBlobs(t, g.w.Store)
	rel := testRelease(t, "1", "ubuntu-jammy/1.2")
	rec, err := g.dir.UploadRelease(ctx, rel)
	require.NoError(t, err, "the same release, compiled against another stemcell")
	var on []string
	for _, p := range rec.Packages {
		on = append(on, p.Name+"@"+p.Stemcell)
	}
	assert.ElementsMatch(t, []string{"app@ubuntu-jammy/1.1", "app@ubuntu-jammy/1.2"}, on)
	assert.Equal(t, blobs+1, countBlobs(t, g.w.Store), "the new stemcell's package is stored")
	again, err := g.dir.UploadRelease(ctx, rel)
	require.NoError(t, err)
	assert.Equal(t, rec, again)
	assert.Equal(t, blobs+1, countBlobs(t, g.w.Store), "and once")

	other := testReleaseWith(t, "1", "ubuntu-jammy/1.3", func(dir string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "src/app/extra.go"), []byte("package main\n"), 0o644))
	})
	_, err = g.dir.UploadRelease(ctx, other)
	require.ErrorIs(t, err, kubefoundry.ErrConflict, "another package under the same release version")
	assert.Equal(t, blobs+1, countBlobs(t, g.w.Store), "a refused upload leaves no blob")

	_, err = g.dir.Deploy(ctx, deployment(2, 0, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	for _, r := range g.instances(t) {
		assert.NotEqual(t, vms[r.ID], r.VMCID, "%s/%d has a new VM", r.Group, r.Index)
		assert.Equal(t, "ubuntu-jammy/1.2", r.Applied.Stemcell)
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st)
	}
}

// TestDeleteDeploymentAtOnce: a deployment's deletion works on all its
// instances at once, as BOSH's director does: every instance's deletion
// has begun before the first ends.
func TestDeleteDeploymentAtOnce(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, deployment(2, 1, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	var mu sync.Mutex
	var seq []string
	sink := func(e director.Event) {
		if e.Stage == "Deleting instances" {
			mu.Lock()
			seq = append(seq, e.State)
			mu.Unlock()
		}
	}
	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{Events: sink})
	require.NoError(t, err)
	assert.Empty(t, g.vms(t))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seq, 6)
	first := slices.Index(seq, director.EventFinished)
	assert.Equal(t, 3, first, "the three instances' deletions began before one ended: %v", seq)
}

// TestAfterStart: the deploy's AfterStart is called for each instance it
// started, new or updated, after its post-start, with the agent it runs
// under; its error fails the instance, which is not recorded as updated,
// and the deploy stops there: the next deploy updates it again.
func TestAfterStart(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var called []string
	agents := map[string]string{}
	hook := func(fail string) func(context.Context, director.Instance) error {
		return func(_ context.Context, inst director.Instance) error {
			mu.Lock()
			defer mu.Unlock()
			name := fmt.Sprintf("%s/%d", inst.Group, inst.Index)
			called = append(called, name)
			agents[inst.ID] = inst.AgentID
			if name == fail {
				return errors.New("the node is not Ready")
			}
			return nil
		}
	}
	_, err := g.dir.Deploy(ctx, deployment(2, 0, 8080, false, "1"), director.DeployOptions{AfterStart: hook("")})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"server/0", "server/1"}, called, "each new instance, once started")
	for _, r := range g.instances(t) {
		assert.Equal(t, r.AgentID, agents[r.ID], "%s/%d: the agent it runs under", r.Group, r.Index)
		st, _ := g.state(t, r)
		assert.Equal(t, "running", st, "%s/%d runs when its hook is called", r.Group, r.Index)
	}

	called = nil
	_, err = g.dir.Deploy(ctx, deployment(2, 0, 9090, false, "1"), director.DeployOptions{AfterStart: hook("server/0")})
	require.ErrorContains(t, err, "the node is not Ready")
	require.ErrorContains(t, err, "after start")
	assert.Equal(t, []string{"server/0"}, called, "the canary's hook failed: nothing else was begun")
	for _, r := range g.instances(t) {
		if r.Index == 0 {
			assert.True(t, r.Dirty, "server/0 is not recorded as updated")
		} else {
			assert.False(t, r.Dirty, "server/1 is left as it was")
		}
	}

	called = nil
	_, err = g.dir.Deploy(ctx, deployment(2, 0, 9090, false, "1"), director.DeployOptions{AfterStart: hook("")})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"server/0", "server/1"}, called, "the failed instance is updated again, then the other")
	for _, r := range g.instances(t) {
		assert.False(t, r.Dirty, "%s/%d is updated", r.Group, r.Index)
	}
}

// TestHardStopThatFailsIsRecordedStopped: a hard stop whose VM deletion
// fails leaves the instance recorded stopped, which Start starts.
func TestHardStopThatFailsIsRecordedStopped(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, deployment(1, 0, 8080, false, "1"), director.DeployOptions{})
	require.NoError(t, err)
	g.scpi.failDelete.Store(true)
	_, err = g.dir.Stop(ctx, "e2e", director.StateOptions{Hard: true})
	require.ErrorContains(t, err, "delete_vm refused")
	r := g.instances(t)[0]
	assert.Equal(t, director.StateStopped, r.State, "its jobs are stopped, and it says so")
	assert.NotEmpty(t, r.VMCID)
	g.scpi.failDelete.Store(false)
	_, err = g.dir.Start(ctx, "e2e", director.StateOptions{})
	require.NoError(t, err)
	st, _ := g.state(t, g.instances(t)[0])
	assert.Equal(t, "running", st)
}

// TestMigratedDiskIsNotLeaked: the old disk of a migration whose detach
// fails stays recorded by its instance, and the next deploy orphans it.
func TestMigratedDiskIsNotLeaked(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	_, err := g.dir.Deploy(ctx, withDisk(deployment(1, 0, 8080, false, "1"), 1024), director.DeployOptions{})
	require.NoError(t, err)
	old := g.instances(t)[0].DiskCID
	g.scpi.failDisk.Store(old, "detach_disk")
	_, err = g.dir.Deploy(ctx, withDisk(deployment(1, 0, 8080, false, "1"), 2048), director.DeployOptions{})
	require.ErrorContains(t, err, "detach_disk refused")
	r := g.instances(t)[0]
	assert.NotEqual(t, old, r.DiskCID, "the data is on the new disk")
	assert.Equal(t, old, r.OldDiskCID, "the old disk is still named")
	assert.Equal(t, 1024, r.OldDiskSize)
	orphans, err := g.dir.OrphanedDisks()
	require.NoError(t, err)
	assert.Empty(t, orphans, "not orphaned while it is on the VM")
	g.scpi.failDisk.Delete(old)
	_, err = g.dir.Deploy(ctx, withDisk(deployment(1, 0, 8080, false, "1"), 2048), director.DeployOptions{})
	require.NoError(t, err)
	assert.Empty(t, g.instances(t)[0].OldDiskCID)
	orphans, err = g.dir.OrphanedDisks()
	require.NoError(t, err)
	require.Len(t, orphans, 1, "orphaned by the next deploy")
	assert.Equal(t, old, orphans[0].CID)
	assert.Equal(t, 1024, orphans[0].Size)
	assert.Equal(t, "", g.disks(t)[old], "detached")
}
