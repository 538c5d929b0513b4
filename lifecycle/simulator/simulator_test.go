package simulator_test

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/harbor"
	"github.com/kubefoundry/kubefoundry/lifecycle/simulator"
	"github.com/kubefoundry/kubefoundry/nsxt"
)

// listener is a release with one job and no packages: its process is
// Ruby, listening on the instance's own address and answering its name.
func listenerRelease(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	write("config/final.yml", "---\nfinal_name: listener\n")
	write("jobs/listener/spec", `---
name: listener
templates:
  bpm.yml.erb: config/bpm.yml
packages: []
properties:
  ruby: {description: the Ruby interpreter}
  port: {description: the port, default: 7000}
`)
	write("jobs/listener/monit", "")
	write("jobs/listener/templates/bpm.yml.erb", `processes:
- name: listener
  executable: <%= p("ruby") %>
  args:
  - -rsocket
  - -e
  - 's = TCPServer.new("<%= spec.ip %>", <%= p("port") %>); loop { c = s.accept; c.puts("<%= spec.name %>/<%= spec.index %>"); c.close }'
`)
	out := filepath.Join(t.TempDir(), "listener.tgz")
	f, err := os.Create(out)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = release.Create(ctx, dir, f, release.WithVersion("1"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return out
}

// cloudConfig is the test's cloud config, its node network on subnet.
func cloudConfig(subnet netip.Prefix) string {
	a := subnet.Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{a[0], a[1], a[2], last}).String() }
	return strings.NewReplacer("SUBNET", subnet.String(), "GW", ip(1), "R1", ip(2), "R2", ip(9)).Replace(cloudConfigTemplate)
}

const cloudConfigTemplate = `
azs:
- {name: z1, cloud_properties: {datacenters: [{name: DC0, clusters: [{DC0_C0: {}}]}]}}
- {name: z2, cloud_properties: {datacenters: [{name: DC0, clusters: [{DC0_C1: {}}]}]}}
vm_types:
- {name: small, cloud_properties: {cpu: 1, ram: 512, disk: 1024}}
networks:
- name: nodes
  type: manual
  subnets:
  - {range: SUBNET, gateway: GW, reserved: [R1 - R2], azs: [z1, z2], cloud_properties: {name: VM Network}}
compilation: {workers: 1, az: z1, vm_type: small, network: nodes}
`

func manifest(ruby string) []byte {
	return []byte(`
name: listeners
releases: [{name: listener, version: "1"}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 2, canary_watch_time: 200-10000, update_watch_time: 200-10000}
instance_groups:
- name: listener
  instances: 2
  azs: [z1, z2]
  vm_type: small
  stemcell: default
  networks: [{name: nodes}]
  jobs:
  - name: listener
    release: listener
    properties: {ruby: ` + ruby + `}
`)
}

// One call starts the whole foundation: the clients it gives reach
// vCenter, CNS, NSX and Harbor, and the director deploys through the
// vSphere CPI onto VMs whose agents run their jobs on each VM's own
// loopback address. Close leaves no goroutine, port, process or file.
func TestFoundation(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ruby, err := exec.LookPath("ruby")
	if err != nil {
		t.Skip("ruby is needed (apt-get install ruby)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	f, err := simulator.Start(ctx, simulator.Config{Clusters: 2, Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			_ = f.Close()
		}
	}()

	// Each client a caller would make from the endpoints works.
	_, err = f.VSphere.FindCluster(ctx, "DC0_C1")
	require.NoError(t, err, "a second vSphere cluster, for a second AZ")
	nc, err := nsxt.New(ctx, f.NSX)
	require.NoError(t, err)
	defer nc.Close(context.Background())
	owned, err := nc.ListOwned(ctx, "nobody")
	require.NoError(t, err)
	assert.Empty(t, owned)
	require.NotNil(t, f.NSXSim.Object("/infra/tier-0s/"+f.NSXInventory.Tier0), "the seeded tier-0")
	hc, err := harbor.New(ctx, f.Harbor)
	require.NoError(t, err)
	defer hc.Close(context.Background())
	_, err = hc.GetProject(ctx, "absent")
	require.ErrorIs(t, err, kubefoundry.ErrNotFound, "Harbor answers, and the admin's password is good")
	assert.NotContains(t, f.VCenter.URL, f.VCenter.Password, "the password is not in the URL")
	assert.False(t, f.VCenter.Insecure, "TLS is verified against the simulator's certificate")

	// A deployment: two VMs in two AZs, each job listening on its VM's IP.
	subnet := f.Subnet(0)
	require.NoError(t, f.Director.UpdateCloudConfig([]byte(cloudConfig(subnet))))
	sc, err := f.Stemcell("1.1")
	require.NoError(t, err)
	_, err = f.Director.UploadStemcell(ctx, sc)
	require.NoError(t, err)
	_, err = f.Director.UploadRelease(ctx, listenerRelease(t))
	require.NoError(t, err)
	res, err := f.Director.Deploy(ctx, manifest(ruby), director.DeployOptions{})
	require.NoError(t, err)
	require.Equal(t, director.TaskDone, res.Task.State, "%+v", res.Task)
	recs, err := f.DirectorStore.Instances("listeners")
	require.NoError(t, err)
	require.Len(t, recs, 2)
	var pids []int
	var ips []string
	for _, r := range recs {
		require.Len(t, r.IPs, 1)
		ip, ok := strings.CutPrefix(r.IPs[0], "nodes=")
		require.True(t, ok, "an address on network nodes: %s", r.IPs[0])
		ips = append(ips, ip)
		assert.True(t, subnet.Contains(netip.MustParseAddr(ip)), "a loopback address of the node network %s: %s", subnet, ip)
		got := dial(t, net.JoinHostPort(ip, "7000"))
		assert.Equal(t, "listener/"+strconv.Itoa(r.Index), got, "the job on %s answers as its instance", ip)
		for _, id := range f.Agents.Agents() {
			if a, ok := f.Agents.Agent(id); ok && a.ID() == r.AgentID {
				for _, p := range a.Supervisor().Status() {
					pids = append(pids, p.PID)
				}
			}
		}
	}
	require.Len(t, pids, 2, "one job process per instance")

	endpoints := []string{f.VCenter.URL, f.NSX.URLs[0], f.Harbor.URL, f.Bus.URL()}
	dir := f.Dir()
	closed = true
	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "a second Close is harmless")
	for _, e := range endpoints {
		u, err := url.Parse(e)
		require.NoError(t, err)
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
		}
		assert.Error(t, err, "%s still listens", e)
	}
	for _, ip := range ips {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "7000"), time.Second)
		if err == nil {
			c.Close()
		}
		assert.Error(t, err, "the job on %s still listens", ip)
	}
	for _, pid := range pids {
		assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "job process %d still runs", pid)
	}
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "the foundation's directory %s is removed: %v", dir, err)
}

// A Dir given is kept; a foundation without Ruby says what to install.
func TestFoundationDir(t *testing.T) {
	if _, err := exec.LookPath("ruby"); err != nil {
		t.Setenv("PATH", "")
		_, err := simulator.Start(t.Context(), simulator.Config{})
		require.ErrorContains(t, err, "apt-get install ruby")
		return
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	f, err := simulator.Start(ctx, simulator.Config{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = os.Stat(filepath.Join(dir, "director.db"))
	require.NoError(t, err, "the director's store stays in the Dir given")

	t.Setenv("PATH", "")
	_, err = simulator.Start(ctx, simulator.Config{})
	require.ErrorContains(t, err, "apt-get install ruby")
	_, err = simulator.Start(ctx, simulator.Config{Clusters: -1})
	require.Error(t, err)
}

func dial(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err, "dial %s", addr)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSpace(line)
}

// Foundations running at once get addresses of their own: the node
// blocks and floating pools of two never overlap, and a closed one's
// slot is taken again.
func TestFoundationsDoNotShareAddresses(t *testing.T) {
	if _, err := exec.LookPath("ruby"); err != nil {
		t.Skip("ruby is needed (apt-get install ruby)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a, err := simulator.Start(ctx, simulator.Config{})
	require.NoError(t, err)
	defer a.Close()
	b, err := simulator.Start(ctx, simulator.Config{})
	require.NoError(t, err)
	pa, pb := netip.MustParsePrefix(a.NSXInventory.NodeBlock.CIDR), netip.MustParsePrefix(b.NSXInventory.NodeBlock.CIDR)
	assert.False(t, pa.Overlaps(pb), "node blocks %s and %s", pa, pb)
	fa, fb := netip.MustParsePrefix(a.NSXInventory.FloatingCIDR), netip.MustParsePrefix(b.NSXInventory.FloatingCIDR)
	assert.False(t, fa.Overlaps(fb), "floating pools %s and %s", fa, fb)
	assert.False(t, fa.Overlaps(pb) || fb.Overlaps(pa))
	assert.True(t, pa.Contains(a.Subnet(0).Addr()) && pb.Contains(b.Subnet(3).Addr()), "Subnet is of the foundation's node block")
	require.NoError(t, b.Close())
	c, err := simulator.Start(ctx, simulator.Config{})
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, b.NSXInventory.NodeBlock.CIDR, c.NSXInventory.NodeBlock.CIDR, "the slot b let go is taken again")
}
