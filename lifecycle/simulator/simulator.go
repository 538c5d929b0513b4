package simulator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	_ "github.com/vmware/govmomi/cns/simulator" // the CNS endpoint
	_ "github.com/vmware/govmomi/pbm/simulator" // the SPBM endpoint
	vcsim "github.com/vmware/govmomi/simulator"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agentsim"
	"github.com/kubefoundry/kubefoundry/bosh/blobstore"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
	"github.com/kubefoundry/kubefoundry/bosh/stemcell"
	"github.com/kubefoundry/kubefoundry/bosh/template"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/harbor"
	harborsim "github.com/kubefoundry/kubefoundry/harbor/simulator"
	"github.com/kubefoundry/kubefoundry/lifecycle"
	"github.com/kubefoundry/kubefoundry/lifecycle/kuberelease"
	"github.com/kubefoundry/kubefoundry/nsxt"
	nsxsim "github.com/kubefoundry/kubefoundry/nsxt/simulator"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// The simulated vCenter's inventory, as vcsim's VPX model makes it.
const (
	Datacenter = "DC0"
	Datastore  = "LocalDS_0"
	Network    = "VM Network"
)

// The director's own names: the CPI owns every VM and disk it makes as
// DirectorID (the BOSH director's vSphere CPI owns a foundation's VMs, and
// each VM's metadata says its deployment), in these folders.
const (
	DirectorID     = "bosh"
	VMFolder       = "bosh/vms"
	StemcellFolder = "bosh/stemcells"
)

// Config configures a Foundation. The zero Config is a working one.
type Config struct {
	// Dir holds the foundation's files: the director's store, its
	// blobstore, every VM's disk (/var/vcap) and stemcells. When empty a
	// temporary directory is made and Close removes it; a Dir given is
	// left in place.
	Dir string
	// Clusters is how many vSphere clusters the datacenter has, DC0_C0,
	// DC0_C1, ... (one per availability zone, as TKGI maps them); 1 when
	// 0. Each has 3 hosts.
	Clusters int
	// NSX is the NSX inventory the simulator starts with. When nil it is
	// nsxt/simulator's default with the node IP block and the floating
	// IP pool on loopback addresses of this foundation's own, so the VMs
	// of a cluster's node segment and its load balancers' virtual servers
	// have addresses this machine can listen on, and foundations running
	// at once (tests in parallel, in several processes) do not meet.
	NSX *nsxsim.Inventory
	// HeartbeatInterval is how often each VM's agent sends a heartbeat;
	// 1s when 0.
	HeartbeatInterval time.Duration
	// Log receives every part's log; nothing when nil.
	Log *zap.Logger
}

// slots is how many foundations may run at once on one machine: each
// claims a slot, and with it its own loopback addresses.
const slots = 64

// inventory is the NSX inventory of the foundation in slot n: the node
// IP block 127.(16+n).0.0/16 and the floating IP pool 127.(128+n).0.0/20.
func inventory(n int) nsxsim.Inventory {
	inv := nsxsim.DefaultInventory()
	inv.NodeBlock.CIDR = fmt.Sprintf("127.%d.0.0/16", 16+n)
	inv.FloatingCIDR = fmt.Sprintf("127.%d.0.0/20", 128+n)
	inv.FloatingRange = [2]string{fmt.Sprintf("127.%d.0.10", 128+n), fmt.Sprintf("127.%d.15.250", 128+n)}
	return inv
}

// claimSlot takes the first free slot: an exclusive lock on a file of
// the system's temporary directory, held until release (and let go by
// the kernel if the process dies).
func claimSlot() (int, func(), error) {
	for n := range slots {
		p := filepath.Join(os.TempDir(), fmt.Sprintf("kubefoundry-foundation-slot-%d.lock", n))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return n, func() { _ = f.Close() }, nil
	}
	return 0, nil, fmt.Errorf("all %d foundation address slots are taken on this machine", slots)
}

// Subnet is the i-th /24 (0 to 127) from the top of this foundation's
// node block, which NSX hands out from the bottom: for a caller's own
// cloud config, in tests that deploy without lifecycle.
func (f *Foundation) Subnet(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(16 + f.slot), byte(255 - i), 0}), 24)
}

// Foundation is a whole simulated vSphere foundation running in this
// process: vCenter with CNS (govmomi's vcsim), NSX-T (nsxt/simulator),
// Harbor (harbor/simulator), and a BOSH director on them with its
// message bus (embedded NATS), its blobstore on HTTPS, the vSphere CPI
// and an agent for every powered-on VM. Its fields are the endpoints,
// as a caller would configure real ones, and clients already connected.
type Foundation struct {
	// VCenter, NSX and Harbor reach the simulators as an administrator,
	// with TLS verified against their certificates (Harbor's simulator
	// serves plain HTTP on loopback).
	VCenter vsphere.Config
	NSX     nsxt.Config
	Harbor  harbor.Config
	// NSXInventory is what NSX was seeded with: tier-0, edge cluster,
	// transport zone, IP blocks and the floating pool.
	NSXInventory nsxsim.Inventory

	// VSphere and CNS are connected to VCenter (one session).
	VSphere *vsphere.Client
	CNS     *csi.Client
	// Director is the BOSH director, its CPI the vSphere CPI on VSphere
	// and CNS; DirectorStore its state.
	Director      *director.Director
	DirectorStore director.Store
	CPI           *vspherecpi.CPI
	// Agents runs the agent of every powered-on VM the CPI made.
	Agents *agentsim.Fleet
	// Bus is the agents' message bus; Blobstore holds releases' packages
	// and rendered jobs.
	Bus       *mbus.Bus
	Blobstore *blobstore.Local

	// VCSim, NSXSim and HarborSim are the simulators themselves, for a
	// test that injects faults or looks behind the API.
	VCSim     *vcsim.Model
	NSXSim    *nsxsim.Server
	HarborSim *harborsim.Server

	dir, tmp  string
	clusters  int
	slot      int
	closers   []func() error
	closeOnce sync.Once
	closeErr  error
	log       *zap.Logger
}

// Start starts a Foundation; Close stops every part of it. ctx bounds the
// start only. Ruby must be installed: the director renders job templates
// as bosh-cli does, with Ruby's ERB.
func Start(ctx context.Context, cfg Config) (_ *Foundation, err error) {
	if _, err := exec.LookPath("ruby"); err != nil {
		return nil, errors.New("lifecycle/simulator: ruby is needed to render BOSH job templates (apt-get install ruby)")
	}
	if cfg.Clusters < 0 {
		return nil, fmt.Errorf("lifecycle/simulator: Config.Clusters %d is negative", cfg.Clusters)
	}
	f := &Foundation{log: cfg.Log, dir: cfg.Dir}
	if f.log == nil {
		f.log = zap.NewNop()
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("lifecycle/simulator: %w", err), f.Close())
		}
	}()
	if f.dir == "" {
		if f.dir, err = os.MkdirTemp("", "kubefoundry-foundation-"); err != nil {
			return nil, err
		}
		f.tmp = f.dir
	}
	for _, d := range []string{"blobstore", "vms", "tmp", "stemcells"} {
		if err := os.MkdirAll(filepath.Join(f.dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	slot, release, err := claimSlot()
	if err != nil {
		return nil, err
	}
	f.slot = slot
	f.onClose(func() error { release(); return nil })
	if err := f.startVCenter(ctx, cfg); err != nil {
		return nil, fmt.Errorf("vCenter: %w", err)
	}
	if err := f.startNSX(cfg); err != nil {
		return nil, fmt.Errorf("NSX: %w", err)
	}
	if err := f.startHarbor(); err != nil {
		return nil, fmt.Errorf("harbor: %w", err)
	}
	if err := f.startDirector(ctx, cfg); err != nil {
		return nil, fmt.Errorf("director: %w", err)
	}
	return f, nil
}

// onClose adds a part to stop, in reverse order of starting.
func (f *Foundation) onClose(c func() error) { f.closers = append(f.closers, c) }

func (f *Foundation) startVCenter(ctx context.Context, cfg Config) error {
	m := vcsim.VPX()
	if cfg.Clusters > 0 {
		m.Cluster = cfg.Clusters
	}
	f.clusters = m.Cluster
	if err := m.Create(); err != nil {
		return err
	}
	f.VCSim = m
	password, err := secret()
	if err != nil {
		m.Remove()
		return err
	}
	m.Service.TLS = new(tls.Config)    // a self-signed certificate, as vCenter has
	m.Service.RegisterEndpoints = true // CNS and SPBM
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword("administrator@vsphere.local", password)}
	s := m.Service.NewServer()
	f.onClose(func() error { s.Close(); m.Remove(); return nil })
	u := *s.URL
	u.User = nil
	f.VCenter = vsphere.Config{URL: u.String(), Username: "administrator@vsphere.local", Password: password,
		Datacenter: Datacenter, CACert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}))}
	f.VSphere, err = vsphere.New(ctx, f.VCenter, vsphere.WithLogger(f.log.Named("vsphere")))
	if err != nil {
		return err
	}
	vs := f.VSphere
	f.onClose(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return vs.Close(ctx)
	})
	f.CNS, err = csi.New(ctx, f.VSphere.Vim25(), csi.WithLogger(f.log.Named("cns")))
	return err
}

func (f *Foundation) startNSX(cfg Config) error {
	inv := inventory(f.slot)
	if cfg.NSX != nil {
		inv = *cfg.NSX
	}
	password, err := secret()
	if err != nil {
		return err
	}
	s, err := nsxsim.New(nsxsim.Config{Inventory: &inv, Username: "admin", Password: password, ForwardLoadBalancers: true})
	if err != nil {
		return err
	}
	f.onClose(func() error { s.Close(); return nil })
	f.NSXSim, f.NSXInventory = s, inv
	f.NSX = nsxt.Config{URLs: []string{s.URL}, Username: s.Username(), Password: s.Password(), CACert: string(s.CertificatePEM())}
	return nil
}

func (f *Foundation) startHarbor() error {
	password, err := secret()
	if err != nil {
		return err
	}
	s, err := harborsim.New(harborsim.Config{AdminPassword: password})
	if err != nil {
		return err
	}
	f.onClose(func() error { s.Close(); return nil })
	f.HarborSim = s
	f.Harbor = harbor.Config{URL: s.URL, Username: "admin", Password: password}
	return nil
}

func (f *Foundation) startDirector(ctx context.Context, cfg Config) error {
	bus, err := mbus.StartBus(ctx, mbus.BusConfig{}, mbus.WithLogger(f.log.Named("mbus")))
	if err != nil {
		return err
	}
	f.onClose(func() error { bus.Close(); return nil })
	f.Bus = bus
	agents, err := mbus.Dial(ctx, mbus.Config{URL: bus.URL(), Credentials: bus.DirectorCredentials(), CallTimeout: time.Minute},
		mbus.WithLogger(f.log.Named("director-mbus")))
	if err != nil {
		return err
	}
	f.onClose(func() error { agents.Close(); return nil })

	if f.Blobstore, err = blobstore.NewLocal(filepath.Join(f.dir, "blobstore")); err != nil {
		return err
	}
	blobPassword, err := secret()
	if err != nil {
		return err
	}
	signing, err := secret()
	if err != nil {
		return err
	}
	blobs, err := blobstore.NewServer(f.Blobstore, blobstore.ServerConfig{Username: "director", Password: blobPassword, Secret: signing},
		blobstore.WithLogger(f.log.Named("blobstore")))
	if err != nil {
		return err
	}
	// The blobstore on HTTPS with a certificate for 127.0.0.1, which the
	// agents are told to trust.
	https := httptest.NewTLSServer(blobs)
	f.onClose(func() error { https.Close(); return nil })
	blobCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: https.Certificate().Raw}))

	f.CPI, err = vspherecpi.New(f.VSphere, f.CNS, vspherecpi.Config{ClusterID: DirectorID, VMFolder: VMFolder, StemcellFolder: StemcellFolder,
		Cluster: "DC0_C0", Datastore: Datastore, Agent: vspherecpi.AgentConfig{MBus: bus.URL(),
			Blobstore: map[string]any{"provider": "dav", "options": map[string]any{"endpoint": https.URL,
				"tls": map[string]any{"cert": map[string]any{"ca": blobCA}}}}}},
		vspherecpi.WithLogger(f.log.Named("cpi")))
	if err != nil {
		return err
	}

	hb := cfg.HeartbeatInterval
	if hb <= 0 {
		hb = time.Second
	}
	f.Agents, err = agentsim.Start(ctx, f.VSphere.Vim25(), agentsim.Config{Root: filepath.Join(f.dir, "vms"),
		Agent: agent.Config{HeartbeatInterval: hb, Supervisor: agent.SupervisorConfig{StopTimeout: 10 * time.Second,
			StableAfter: 500 * time.Millisecond, RestartInitial: 100 * time.Millisecond, RestartMax: 5 * time.Second,
			DieWithSupervisor: true}}},
		f.log.Named("agents"))
	if err != nil {
		return err
	}
	fleet := f.Agents
	f.onClose(func() error { fleet.Close(); return nil })

	r := template.New()
	f.onClose(r.Close)
	if f.DirectorStore, err = director.OpenStore(filepath.Join(f.dir, "director.db")); err != nil {
		return err
	}
	st := f.DirectorStore
	f.onClose(st.Close)
	f.Director, err = director.New(director.Config{Store: st, CPI: &vcsimCPI{CPI: f.CPI}, Bus: bus, Agents: agents, Blobs: f.Blobstore,
		Signer: blobs.Signer(), BlobstoreURL: https.URL, Renderer: r, AgentPing: 200 * time.Millisecond, PingTimeout: 5 * time.Second,
		AgentWait: 5 * time.Minute, TempDir: filepath.Join(f.dir, "tmp"), Log: f.log.Named("director")})
	if err != nil {
		return err
	}
	// The platform team's part of the cloud config: compilation (the
	// clusters' named cloud configs bring the rest).
	return f.Director.UpdateCloudConfig(fmt.Appendf(nil, defaultCloudConfig, 80+f.slot, 80+f.slot))
}

// defaultCloudConfig is the director's default cloud config: what every
// named one is merged with.
const defaultCloudConfig = `
azs:
- name: compilation
  cloud_properties: {datacenters: [{name: DC0, clusters: [{DC0_C0: {}}]}]}
vm_types:
- {name: compilation, cloud_properties: {cpu: 2, ram: 2048, disk: 8192}}
networks:
- name: compilation
  type: manual
  subnets:
  - {range: 127.%[1]d.0.0/24, gateway: 127.%[2]d.0.1, azs: [compilation], cloud_properties: {name: VM Network}}
compilation: {workers: 1, az: compilation, vm_type: compilation, network: compilation}
`

// Lifecycle is the lifecycle.Foundation of this foundation, for a
// lifecycle.Manager: the director, an NSX client (connected now, closed
// by Close), the inventory Start seeded, one AZ per vSphere cluster (az1
// on DC0_C0, az2 on DC0_C1, ...), VMs on "VM Network", a stemcell of
// version 1.0 (ubuntu-jammy), and the Kubernetes binaries given, of that
// version.
func (f *Foundation) Lifecycle(ctx context.Context, k8s kuberelease.Binaries, k8sVersion string) (lifecycle.Foundation, error) {
	nc, err := nsxt.New(ctx, f.NSX, nsxt.WithLogger(f.log.Named("nsxt")))
	if err != nil {
		return lifecycle.Foundation{}, err
	}
	f.onClose(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return nc.Close(ctx)
	})
	sc, err := f.Stemcell("1.0")
	if err != nil {
		return lifecycle.Foundation{}, err
	}
	inv := f.NSXInventory
	lf := lifecycle.Foundation{Director: f.Director, NSX: nc, Tier0Path: "/infra/tier-0s/" + inv.Tier0,
		EdgeClusterPath: inv.EdgeClusterPath(), TransportZonePath: inv.TransportZonePath(),
		NodeIPBlockPath: "/infra/ip-blocks/" + inv.NodeBlock.ID, PodIPBlockPaths: []string{"/infra/ip-blocks/" + inv.PodBlock.ID},
		FloatingIPPoolPaths: []string{"/infra/ip-pools/" + inv.FloatingPool}, Datacenter: Datacenter, VMNetwork: Network,
		Stemcell: sc, StemcellOS: "ubuntu-jammy", StemcellVersion: "1.0", Kubernetes: k8s, KubernetesVersion: k8sVersion}
	for i := range f.clusters {
		lf.AZs = append(lf.AZs, lifecycle.AZ{Name: fmt.Sprintf("az%d", i+1), Cluster: fmt.Sprintf("DC0_C%d", i)})
	}
	return lf, nil
}

// Close stops every part, the agents' job processes included, and
// removes the directory Start made. It is safe to call more than once.
func (f *Foundation) Close() error {
	f.closeOnce.Do(func() {
		var errs []error
		for i := len(f.closers) - 1; i >= 0; i-- {
			errs = append(errs, f.closers[i]())
		}
		if f.tmp != "" {
			errs = append(errs, os.RemoveAll(f.tmp))
		}
		f.closeErr = errors.Join(errs...)
	})
	return f.closeErr
}

//go:embed stemcell
var stemcellFiles embed.FS

// Stemcell writes a light vSphere stemcell of the given version (an
// ubuntu-jammy stemcell whose image the vCenter simulator imports) and
// returns the tarball's path, for Director.UploadStemcell.
func (f *Foundation) Stemcell(version string) (string, error) {
	dir, err := os.MkdirTemp(filepath.Join(f.dir, "stemcells"), "image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"stemcell.ovf", "stemcell-disk1.vmdk"} {
		b, err := stemcellFiles.ReadFile("stemcell/" + name)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", err
		}
	}
	out := filepath.Join(f.dir, "stemcells", "bosh-vsphere-esxi-ubuntu-jammy-go_agent-"+version+".tgz")
	w, err := os.Create(out)
	if err != nil {
		return "", err
	}
	err = stemcell.CreateLight(w, filepath.Join(dir, "stemcell.ovf"), stemcell.Manifest{Name: "bosh-vsphere-esxi-ubuntu-jammy-go_agent",
		Version: version, OperatingSystem: "ubuntu-jammy", APIVersion: 3, StemcellFormats: []string{"vsphere-ovf"}})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out)
		return "", fmt.Errorf("stemcell %s: %w", version, err)
	}
	return out, nil
}

// Dir is the directory holding the foundation's files.
func (f *Foundation) Dir() string { return f.dir }

// secret is a random password of 32 hex digits.
func secret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
