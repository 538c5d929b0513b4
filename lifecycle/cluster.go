package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/lifecycle/kuberelease"
	"github.com/kubefoundry/kubefoundry/nsxt"
)

// Foundation is what a Manager builds clusters on: a BOSH director with
// the vSphere CPI, NSX-T, and the platform team's choices of what every
// cluster shares.
type Foundation struct {
	Director *director.Director
	NSX      *nsxt.Client
	// The NSX objects every cluster's network hangs from; a cluster's
	// NetworkProfile may name its own tier-0, pod IP blocks and floating
	// pools.
	Tier0Path, EdgeClusterPath, TransportZonePath, NodeIPBlockPath string
	PodIPBlockPaths, FloatingIPPoolPaths                           []string
	// AZs are the availability zones of a cluster whose spec has no
	// compute profile: each a vSphere cluster (and resource pool).
	AZs []AZ
	// Datacenter is the vSphere datacenter of the AZs' clusters.
	Datacenter string
	// VMNetwork is the vSphere network every cluster's VMs attach to;
	// when empty, a cluster's VMs attach to its NSX node segment (by the
	// segment's name, as vCenter shows NSX segments).
	VMNetwork string
	// Stemcell is the stemcell tarball the clusters' VMs are cloned from,
	// uploaded when the director does not have it;
	// StemcellOS/StemcellVersion name it.
	Stemcell                    string
	StemcellOS, StemcellVersion string
	// Kubernetes is the Kubernetes the clusters run: the binaries the
	// release is built from, and their version (a spec's
	// KubernetesVersion must be it).
	Kubernetes        kuberelease.Binaries
	KubernetesVersion string
	// CacheDir keeps built releases, so that the same binaries are built
	// once (the user's cache directory when empty).
	CacheDir string
}

// Config configures a Manager.
type Config struct {
	Foundation
	// Store keeps the clusters' records (OpenStore).
	Store Store
	// Events receives the progress of every operation, one stream for all
	// the layers: the operation's stages (Op "create cluster" or "delete
	// cluster", Object the stage, Phase started, done or failed, Step of
	// Steps, Message the cluster) and, within the deploy and deployment
	// stages, the director's steps (Op "deploy" or "delete deployment",
	// Object the instance or step, Phase
	// started, done or failed, Step of Steps, Message the director's
	// stage).
	Events kubefoundry.Sink
	// Plans are the plans clusters are made from; DefaultPlans when nil.
	Plans map[string]Plan
	// Log logs; nothing when nil.
	Log *zap.Logger
	// DrainTimeout bounds the eviction of one pod from a node being
	// drained, its budget's refusals retried meanwhile (kube.DrainOptions
	// PodTimeout): 5 minutes when 0. A pod still there then fails the
	// node's drain (*DrainError).
	DrainTimeout time.Duration
	// Context is what the tasks Start and Resume run in the background
	// run under: when it ends they stop, as Close stops them, and stay
	// running in the Store, to be resumed. context.Background() when nil.
	Context context.Context
}

// Manager creates, reads and deletes clusters on a Foundation.
type Manager struct {
	cfg   Config
	log   *zap.Logger
	tasks *runner
}

// New returns a Manager on cfg.
func New(cfg Config) (*Manager, error) {
	ve := kubefoundry.ValidationError{Object: "lifecycle.Config"}
	if cfg.Director == nil {
		ve.Add("Director", "", "required")
	}
	if cfg.NSX == nil {
		ve.Add("NSX", "", "required")
	}
	if cfg.Store == nil {
		ve.Add("Store", "", "required")
	}
	for _, f := range []struct{ name, v string }{{"Tier0Path", cfg.Tier0Path}, {"EdgeClusterPath", cfg.EdgeClusterPath},
		{"TransportZonePath", cfg.TransportZonePath}, {"NodeIPBlockPath", cfg.NodeIPBlockPath}, {"Stemcell", cfg.Stemcell},
		{"StemcellOS", cfg.StemcellOS}, {"StemcellVersion", cfg.StemcellVersion}, {"KubernetesVersion", cfg.KubernetesVersion}} {
		if f.v == "" {
			ve.Add(f.name, "", "required")
		}
	}
	if len(cfg.AZs) == 0 {
		ve.Add("AZs", "", "at least one AZ is required")
	}
	ve.Merge("Kubernetes", cfg.Kubernetes.Validate())
	if err := ve.Err(); err != nil {
		return nil, err
	}
	if cfg.Plans == nil {
		cfg.Plans = DefaultPlans()
	}
	if cfg.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("lifecycle: no cache directory (set Config.CacheDir): %w", err)
		}
		cfg.CacheDir = filepath.Join(dir, "kubefoundry")
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	parent := cfg.Context
	if parent == nil {
		parent = context.Background()
	}
	return &Manager{cfg: cfg, log: log, tasks: newRunner(parent)}, nil
}

// Cluster is a cluster as it stands.
type Cluster struct {
	Name  string
	State ClusterState
	// Error is why its last operation failed.
	Error string
	// Deployment is its BOSH deployment.
	Deployment string
	// APIAddress and APIPort are where its API answers: its load
	// balancer's virtual server.
	APIAddress string
	APIPort    int
	// NodeSubnet is its node network, carved from the node IP block.
	NodeSubnet netip.Prefix
	Nodes      []Node
	// Stemcell ("os/version") and Release (the Kubernetes release's
	// version) are what it runs; UpgradeAvailable says the Manager's
	// Foundation has another of either, which Upgrade moves it to.
	Stemcell, Release string
	UpgradeAvailable  bool
}

// Node is one of a cluster's VMs: a control-plane node or a worker.
type Node struct {
	// Name is the Kubernetes node's name: its address.
	Name string
	// Group is its instance group ("master", or the worker pool's name)
	// and Index its index in the group.
	Group string
	Index int
	IP    string
	// VM is the VM's id with the CPI.
	VM string
	AZ string
}

// names the cluster's objects are known by.
func deploymentName(cluster string) string { return "kubefoundry-" + cluster }
func configName(cluster string) string     { return "kubefoundry-" + cluster }

// create is Create without its task: the work itself.
func (m *Manager) create(ctx context.Context, spec ClusterSpec) (*Cluster, error) {
	spec = m.withDefaults(spec)
	if err := m.validate(spec); err != nil {
		return nil, err
	}
	name := string(spec.Name)
	now := time.Now().UTC()
	rec, err := m.cfg.Store.Cluster(name)
	switch {
	case errors.Is(err, kubefoundry.ErrNotFound):
		rec = ClusterRecord{Spec: spec, Deployment: deploymentName(name), Created: now}
	case err != nil:
		return nil, err
	case rec.State == StateDeleting:
		return nil, fmt.Errorf("cluster %s is being deleted: %w", name, kubefoundry.ErrConflict)
	case !sameSpec(rec.Spec, spec):
		return nil, fmt.Errorf("cluster %s exists with another spec (change it with Update): %w", name, kubefoundry.ErrConflict)
	}
	return m.convergeRecorded(ctx, "create cluster", spec, rec, StateCreating, false)
}

// convergeRecorded records the cluster with spec in state, converges it
// (op as its events name it), and records how that ended: running, or
// failed with the error.
func (m *Manager) convergeRecorded(ctx context.Context, op string, spec ClusterSpec, rec ClusterRecord, state ClusterState,
	upgrade bool) (*Cluster, error) {
	rec.Spec, rec.State, rec.Error, rec.Updated = spec, state, "", time.Now().UTC()
	if err := m.cfg.Store.PutCluster(rec); err != nil {
		return nil, err
	}
	c, err := m.converge(ctx, op, spec, &rec, upgrade)
	if err != nil {
		rec.State, rec.Error, rec.Updated = StateFailed, err.Error(), time.Now().UTC()
		return nil, errors.Join(err, m.cfg.Store.PutCluster(rec))
	}
	rec.State, rec.Updated = StateRunning, time.Now().UTC()
	c.State = rec.State
	return c, m.cfg.Store.PutCluster(rec)
}

// validate checks a spec (with its defaults) for a create: against the
// plans, what is not supported yet, and the Foundation's Kubernetes.
func (m *Manager) validate(spec ClusterSpec) error {
	if err := spec.Validate(m.cfg.Plans); err != nil {
		return err
	}
	if err := unsupported(spec); err != nil {
		return err
	}
	if spec.KubernetesVersion != m.cfg.KubernetesVersion {
		return &kubefoundry.ValidationError{Object: "cluster " + string(spec.Name), Problems: []kubefoundry.FieldError{{
			Field: "kubernetesVersion", Value: spec.KubernetesVersion, Reason: "this foundation runs " + m.cfg.KubernetesVersion}}}
	}
	return nil
}

// unsupported refuses what a spec may say that Create does not do yet,
// rather than leave it undone in silence.
func unsupported(spec ClusterSpec) error {
	ve := kubefoundry.ValidationError{Object: "cluster " + string(spec.Name)}
	const why = "not supported yet: the cluster would be made without it"
	if spec.Kubernetes.OIDC != nil {
		ve.Add("kubernetes.oidc", spec.Kubernetes.OIDC.IssuerURL, why)
	}
	if spec.Kubernetes.EncryptionAtRest {
		ve.Add("kubernetes.encryptionAtRest", "true", why)
	}
	if len(spec.Kubernetes.KubeletArgs) > 0 {
		ve.Add("kubernetes.kubeletArgs", "", "%s (the simulated kubelet takes no kubelet flags)", why)
	}
	if spec.Harbor != (HarborSettings{}) {
		ve.Add("harbor", spec.Harbor.Project, why)
	}
	if spec.Compute != nil {
		for i, az := range spec.Compute.AZs {
			if az.HostGroup != "" {
				ve.Add(fmt.Sprintf("compute.azs[%d].hostGroup", i), az.HostGroup, why)
			}
		}
	}
	return ve.Err()
}

// withDefaults fills what a spec leaves to the foundation: the network
// profile's tier-0, pod IP blocks and floating pools.
func (m *Manager) withDefaults(spec ClusterSpec) ClusterSpec {
	n := &spec.Network
	if n.Tier0Path == "" {
		n.Tier0Path = m.cfg.Tier0Path
	}
	if len(n.PodIPBlockPaths) == 0 {
		n.PodIPBlockPaths = slices.Clone(m.cfg.PodIPBlockPaths)
	}
	if len(n.FloatingIPPoolPaths) == 0 {
		n.FloatingIPPoolPaths = slices.Clone(m.cfg.FloatingIPPoolPaths)
	}
	return spec
}

func sameSpec(a, b ClusterSpec) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// converge makes the cluster what spec says, the stages reported as op:
// the network, cloud config, stemcell and release as Create makes them,
// then the deployment, where a node about to be stopped (a worker removed
// by a resize) is drained first, then the API, the Nodes of instances no
// longer there removed, and every node Ready.
func (m *Manager) converge(ctx context.Context, op string, spec ClusterSpec, rec *ClusterRecord, upgrade bool) (*Cluster, error) {
	name := string(spec.Name)
	plan := m.cfg.Plans[spec.Plan]
	log := m.log.With(zap.String("cluster", name))
	st := &stages{sink: m.cfg.Events, op: op, obj: name, n: len(createStages)}

	var net *nsxt.Network
	var masters []string
	err := st.run("network", func() error {
		topo := m.topology(spec)
		var err error
		if net, err = m.cfg.NSX.BuildTopology(ctx, topo); err != nil {
			return err
		}
		if masters, err = staticIPs(net.NodeSubnet, plan.ControlPlaneNodes); err != nil {
			return err
		}
		// Again, now that the control plane's addresses are known: the API
		// virtual server's members.
		topo.APIMembers, topo.APIMemberPort = masters, apiPort
		if net, err = m.cfg.NSX.BuildTopology(ctx, topo); err != nil {
			return err
		}
		rec.APIAddress, rec.APIPort, rec.NodeSubnet, rec.ControlPlaneIPs = net.APIAddress, net.APIPort, net.NodeSubnet, masters
		return m.cfg.Store.PutCluster(*rec)
	})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: network: %w", name, err)
	}
	log.Info("network built", zap.String("nodeSubnet", net.NodeSubnet.String()), zap.String("api", net.APIAddress))

	cc, azs, pools := m.cloudConfig(spec, plan, net)
	if err := st.run("cloud config", func() error {
		b, err := yaml.Marshal(cc)
		if err == nil {
			_, err = m.cfg.Director.UpdateConfig("cloud", configName(name), b)
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("cluster %s: cloud config: %w", name, err)
	}
	// What the cluster runs stays what it runs until an upgrade: the
	// Foundation's stemcell and release only for a new cluster or an
	// upgrade. One it runs already is on the director.
	stemcell := m.stemcell()
	if !upgrade && rec.Stemcell != "" {
		stemcell = rec.Stemcell
	}
	if err := st.run("stemcell", func() error {
		if stemcell != m.stemcell() {
			return nil
		}
		_, err := m.cfg.Director.UploadStemcell(ctx, m.cfg.Stemcell)
		return err
	}); err != nil {
		return nil, fmt.Errorf("cluster %s: stemcell: %w", name, err)
	}
	var version string
	if err := st.run("release", func() (err error) {
		if !upgrade && rec.Release != "" {
			if current, err := m.releaseVersion(); err == nil && current != rec.Release {
				version = rec.Release
				return nil
			}
		}
		version, err = m.uploadRelease(ctx, stemcell)
		return err
	}); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	if rec.Stemcell != stemcell || rec.Release != version {
		rec.Stemcell, rec.Release = stemcell, version
		if err := m.cfg.Store.PutCluster(*rec); err != nil {
			return nil, err
		}
	}
	stemOS, stemVersion, _ := strings.Cut(stemcell, "/")
	// A control plane that runs already is updated one member at a time.
	recs, err := m.cfg.Director.Instances(rec.Deployment)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	running := 0
	for _, r := range recs {
		if r.Group == "master" && r.VMCID != "" && r.Applied != nil && r.State == director.StateStarted {
			running++
		}
	}

	d := kuberelease.Deployment{Name: deploymentName(name), ReleaseVersion: version, StemcellOS: stemOS,
		StemcellVersion: stemVersion, Network: name + "-nodes", APIAddress: net.APIAddress, APIPort: net.APIPort,
		APIServerArgs: spec.Kubernetes.APIServerArgs,
		ControlPlane: kuberelease.ControlPlane{StaticIPs: masters, AZs: azs, VMType: name + "-master",
			Rolling: running == len(masters)}}
	if plan.ControlPlane.PersistentDiskGB > 0 {
		d.ControlPlane.DiskType = name + "-etcd"
	}
	d.Workers = pools
	if err := st.run("deploy", func() error {
		manifest, err := d.Manifest()
		if err != nil {
			return err
		}
		// Only an instance this deploy drained has a node to bring back: a
		// new one's control plane may not even answer yet.
		var drained sync.Map
		res, err := m.cfg.Director.Deploy(ctx, manifest, director.DeployOptions{Events: directorEvents(m.cfg.Events, "deploy"),
			BeforeStop: func(ctx context.Context, inst director.Instance) error {
				err := m.drain(ctx, name, rec, inst)
				if err == nil {
					drained.Store(inst.ID, true)
				}
				return err
			},
			AfterStart: func(ctx context.Context, inst director.Instance) error {
				if _, ok := drained.Load(inst.ID); !ok {
					return nil
				}
				return m.rejoin(ctx, name, rec, inst)
			}})
		if err == nil {
			log.Info("deployed", zap.Int64("task", res.Task.ID))
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("cluster %s: deploy: %w", name, err)
	}

	c, err := m.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	kc, err := m.client(name, c)
	if err != nil {
		return nil, err
	}
	if err := st.run("api", func() error { return kc.WaitReady(ctx, 5*time.Minute) }); err != nil {
		return nil, fmt.Errorf("cluster %s: the API at %s: %w", name, net.APIAddress, err)
	}
	var nodes []string
	for _, n := range c.Nodes {
		nodes = append(nodes, n.Name)
	}
	if err := st.run("nodes", func() error {
		if err := m.pruneNodes(ctx, kc, nodes); err != nil {
			return err
		}
		if err := kc.WaitNodesReady(ctx, nodes, 5*time.Minute); err != nil {
			return err
		}
		// A node drained by an operation that stopped before it was back
		// (a crash between the two) is schedulable again.
		for _, n := range nodes {
			if err := uncordonDrained(ctx, kc, n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	log.Info("cluster ready", zap.Int("nodes", len(c.Nodes)))
	return c, nil
}

// resize is Resize without its task: the work itself.
func (m *Manager) resize(ctx context.Context, name string, workers map[string]int) (*Cluster, error) {
	rec, err := m.cfg.Store.Cluster(name)
	if err != nil {
		return nil, err
	}
	if rec.State == StateDeleting {
		return nil, fmt.Errorf("cluster %s is being deleted: %w", name, kubefoundry.ErrConflict)
	}
	spec := rec.Spec
	if spec.Compute != nil && len(spec.Compute.NodePools) > 0 {
		c := *spec.Compute
		c.NodePools = slices.Clone(c.NodePools)
		spec.Compute = &c
	}
	ve := kubefoundry.ValidationError{Object: "resize of cluster " + name}
	for pool, n := range workers {
		switch {
		case spec.Compute != nil && len(spec.Compute.NodePools) > 0:
			i := slices.IndexFunc(spec.Compute.NodePools, func(p NodePool) bool { return p.Name == pool })
			if i < 0 {
				ve.Add("workers["+pool+"]", "", "the cluster has no node pool %q", pool)
				continue
			}
			spec.Compute.NodePools[i].Count = n
		case pool == "worker":
			spec.Workers = n
		default:
			ve.Add("workers["+pool+"]", "", "the cluster has one pool, worker")
		}
		if n < 1 {
			ve.Add("workers["+pool+"]", strconv.Itoa(n), "must be at least 1")
		}
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	if err := spec.Validate(m.cfg.Plans); err != nil {
		return nil, err
	}
	return m.convergeRecorded(ctx, "resize cluster", spec, rec, StateUpdating, false)
}

// pruneNodes deletes the Nodes of the cluster's VMs that are gone (a
// resize removed them): Nodes its kubelets registered (they carry the
// instance-group label) whose names are not among nodes.
func (m *Manager) pruneNodes(ctx context.Context, kc *kube.Client, nodes []string) error {
	list, err := kc.Clientset().CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "bosh.io/instance-group"})
	if err != nil {
		return err
	}
	for _, n := range list.Items {
		if slices.Contains(nodes, n.Name) {
			continue
		}
		err := kc.Clientset().CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &n.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove node %s: %w", n.Name, err)
		}
		m.log.Info("node removed", zap.String("node", n.Name))
	}
	return nil
}

// stages reports an operation's stages as events: run runs one, between
// its started and its done (or failed) event.
type stages struct {
	sink    kubefoundry.Sink
	op, obj string
	n, i    int
}

// The stages of Create and of Delete, in order.
var (
	createStages = []string{"network", "cloud config", "stemcell", "release", "deploy", "api", "nodes"}
	deleteStages = []string{"deployment", "network", "cloud config"}
)

func (s *stages) run(stage string, f func() error) error {
	s.i++
	kubefoundry.Emit(s.sink, kubefoundry.Event{Op: s.op, Object: stage, Phase: "started", Step: s.i - 1, Steps: s.n, Message: s.obj})
	err := f()
	phase := "done"
	if err != nil {
		phase = "failed"
	}
	kubefoundry.Emit(s.sink, kubefoundry.Event{Op: s.op, Object: stage, Phase: phase, Step: s.i, Steps: s.n, Err: err, Message: s.obj})
	return err
}

// directorEvents turns the director's task events into the SDK's.
func directorEvents(sink kubefoundry.Sink, op string) director.EventSink {
	if sink == nil {
		return nil
	}
	return func(e director.Event) {
		ev := kubefoundry.Event{Time: time.Unix(e.Time, 0), Op: op, Object: e.Task, Phase: e.State, Steps: e.Total, Message: e.Stage}
		switch e.State {
		case director.EventFinished:
			ev.Phase, ev.Step = "done", e.Index
		case director.EventFailed:
			ev.Step = e.Index
			if e.Data != nil {
				ev.Err = errors.New(e.Data.Error)
			}
		default:
			ev.Step = e.Index - 1
		}
		sink.Event(ev)
	}
}

// apiPort is the API server's port on the control-plane nodes and on the
// load balancer, as TKGI's.
const apiPort = 8443

// staticIPs are the control-plane nodes' addresses: the 10th address of
// the node subnet on (the 1st is the gateway; 2 to 9 are reserved).
func staticIPs(subnet netip.Prefix, n int) ([]string, error) {
	a := subnet.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	var out []string
	for range n {
		if !subnet.Contains(a) {
			return nil, fmt.Errorf("node subnet %s has no room for %d control-plane nodes", subnet, n)
		}
		out = append(out, a.String())
		a = a.Next()
	}
	return out, nil
}

func (m *Manager) topology(spec ClusterSpec) nsxt.Topology {
	t := nsxt.Topology{ClusterID: string(spec.Name), Tier0Path: m.cfg.Tier0Path, EdgeClusterPath: m.cfg.EdgeClusterPath,
		TransportZonePath: m.cfg.TransportZonePath, NodeIPBlockPath: m.cfg.NodeIPBlockPath, PodIPBlockPaths: m.cfg.PodIPBlockPaths,
		FloatingIPPoolPaths: m.cfg.FloatingIPPoolPaths, APIPort: apiPort, NamespacesManagedElsewhere: true,
		LBSize: spec.Network.LBSize, SingleTier: spec.Network.SingleTier, PodRoutable: spec.Network.PodRoutable,
		MaxL4LBServices: spec.Network.MaxL4LBServices}
	if spec.Network.Tier0Path != "" {
		t.Tier0Path = spec.Network.Tier0Path
	}
	if len(spec.Network.PodIPBlockPaths) > 0 {
		t.PodIPBlockPaths = spec.Network.PodIPBlockPaths
	}
	if len(spec.Network.FloatingIPPoolPaths) > 0 {
		t.FloatingIPPoolPaths = spec.Network.FloatingIPPoolPaths
	}
	return t
}

// cloudConfig is the cluster's named cloud config, every name in it
// prefixed with the cluster's (named cloud configs share one namespace),
// the AZs of its control plane and its worker pools.
func (m *Manager) cloudConfig(spec ClusterSpec, plan Plan, net *nsxt.Network) (map[string]any, []string, []kuberelease.WorkerPool) {
	name := string(spec.Name)
	type mp = map[string]any
	azs := m.cfg.AZs
	if spec.Compute != nil && len(spec.Compute.AZs) > 0 {
		azs = spec.Compute.AZs
	}
	var ccAZs []mp
	var azNames []string
	for _, az := range azs {
		cl := mp{}
		if az.ResourcePool != "" {
			cl["resource_pool"] = az.ResourcePool
		}
		dc := mp{"clusters": []mp{{az.Cluster: cl}}}
		if m.cfg.Datacenter != "" {
			dc["name"] = m.cfg.Datacenter
		}
		ccAZs = append(ccAZs, mp{"name": name + "-" + az.Name, "cloud_properties": mp{"datacenters": []mp{dc}}})
		azNames = append(azNames, name+"-"+az.Name)
	}
	vmType := func(n string, s NodeSize) mp {
		return mp{"name": n, "cloud_properties": mp{"cpu": s.CPU, "ram": s.MemoryMB, "disk": s.DiskGB * 1024}}
	}
	vmTypes := []mp{vmType(name+"-master", plan.ControlPlane)}
	var pools []kuberelease.WorkerPool
	if spec.Compute != nil && len(spec.Compute.NodePools) > 0 {
		for _, p := range spec.Compute.NodePools {
			vmTypes = append(vmTypes, vmType(name+"-"+p.Name, p.Size))
			pool := kuberelease.WorkerPool{Name: p.Name, Instances: p.Count, AZs: azNames, VMType: name + "-" + p.Name, Labels: p.Labels}
			if len(p.AZs) > 0 {
				pool.AZs = nil
				for _, a := range p.AZs {
					pool.AZs = append(pool.AZs, name+"-"+a)
				}
			}
			for _, t := range p.Taints {
				pool.Taints = append(pool.Taints, kuberelease.Taint{Key: t.Key, Value: t.Value, Effect: string(t.Effect)})
			}
			pools = append(pools, pool)
		}
	} else {
		vmTypes = append(vmTypes, vmType(name+"-worker", plan.Worker))
		n := plan.Workers
		if spec.Workers > 0 {
			n = spec.Workers
		}
		pools = []kuberelease.WorkerPool{{Name: "worker", Instances: n, AZs: azNames, VMType: name + "-worker"}}
	}
	cc := mp{"azs": ccAZs, "vm_types": vmTypes}
	if plan.ControlPlane.PersistentDiskGB > 0 {
		cc["disk_types"] = []mp{{"name": name + "-etcd", "disk_size": plan.ControlPlane.PersistentDiskGB * 1024}}
	}
	subnet := net.NodeSubnet.Masked()
	first := subnet.Addr()
	gw := first.Next()
	static, _ := staticIPs(subnet, 5) // room for the largest control plane
	vmNetwork := m.cfg.VMNetwork
	if vmNetwork == "" {
		vmNetwork = "kf_" + name + "_nodes" // the node segment's display name
	}
	cc["networks"] = []mp{{"name": name + "-nodes", "type": "manual", "subnets": []mp{{
		"range": subnet.String(), "gateway": gw.String(), "azs": azNames,
		"reserved":         []string{gw.Next().String() + " - " + nth(first, 9).String()},
		"static":           []string{static[0] + " - " + static[len(static)-1]},
		"cloud_properties": mp{"name": vmNetwork},
	}}}}
	return cc, azNames, pools
}

func nth(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}

// uploadRelease builds the Kubernetes release from the Foundation's
// binaries (once: it is kept in CacheDir under a name that changes with
// them) and uploads it, returning its version.
func (m *Manager) uploadRelease(ctx context.Context, stemcell string) (string, error) {
	version, err := m.releaseVersion()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(m.cfg.CacheDir, "releases")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, kuberelease.Name+"-"+version+"-"+strings.ReplaceAll(stemcell, "/", "-")+".tgz")
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		tmp, err := os.CreateTemp(dir, ".building-")
		if err != nil {
			return "", err
		}
		defer os.Remove(tmp.Name())
		_, err = kuberelease.Build(ctx, m.cfg.Kubernetes, version, stemcell, dir, tmp)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return "", err
		}
		m.log.Info("release built", zap.String("version", version), zap.Duration("took", time.Since(start)))
		pruneReleases(dir, keepReleases, m.log)
	}
	if _, err := m.cfg.Director.UploadRelease(ctx, path); err != nil {
		return "", fmt.Errorf("release %s: %w", version, err)
	}
	return version, nil
}

// keepReleases is how many built releases CacheDir keeps: the newest,
// enough for a release and its upgrade's on two stemcells each.
const keepReleases = 4

// pruneReleases removes the built releases in dir but the keep newest: a
// release is built again for each version of the binaries or of the
// SDK's jobs and each stemcell, half a gigabyte each, and the cache would
// otherwise only grow.
func pruneReleases(dir string, keep int, log *zap.Logger) {
	paths, err := filepath.Glob(filepath.Join(dir, kuberelease.Name+"-*.tgz"))
	if err != nil || len(paths) <= keep {
		return
	}
	mod := map[string]time.Time{}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			mod[p] = st.ModTime()
		}
	}
	slices.SortFunc(paths, func(a, b string) int { return mod[b].Compare(mod[a]) })
	for _, p := range paths[keep:] {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("release cache", zap.String("path", p), zap.Error(err))
		}
	}
}

func (m *Manager) stemcell() string { return m.cfg.StemcellOS + "/" + m.cfg.StemcellVersion }

// releaseVersion is the version of the release the Foundation's binaries
// make: the Kubernetes version and the release key.
func (m *Manager) releaseVersion() (string, error) {
	key, err := m.releaseKey()
	if err != nil {
		return "", err
	}
	return m.cfg.KubernetesVersion + "+kf." + key, nil
}

// releaseKey changes with the binaries (their paths, sizes and times)
// and the SDK's own release jobs: 8 hex digits.
func (m *Manager) releaseKey() (string, error) {
	h := sha256.New()
	b := m.cfg.Kubernetes
	for _, p := range []string{b.Etcd, b.KubeAPIServer, b.KubeControllerManager, b.KubeScheduler, b.Kubectl, b.Kubelet} {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
	}
	if err := kuberelease.Digest(h); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:8], nil
}

// Get reads a cluster: its record, and its nodes as the director has
// them.
func (m *Manager) Get(ctx context.Context, name string) (*Cluster, error) {
	rec, err := m.cfg.Store.Cluster(name)
	if err != nil {
		return nil, err
	}
	recs, err := m.cfg.Director.Instances(rec.Deployment)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	c := &Cluster{Name: name, Deployment: rec.Deployment, State: rec.State, Error: rec.Error, APIAddress: rec.APIAddress,
		APIPort: rec.APIPort, NodeSubnet: rec.NodeSubnet, Stemcell: rec.Stemcell, Release: rec.Release}
	if current, err := m.releaseVersion(); err == nil && rec.Release != "" {
		c.UpgradeAvailable = rec.Stemcell != m.stemcell() || rec.Release != current
	}
	for _, r := range recs {
		ip := ""
		if len(r.IPs) > 0 {
			_, ip, _ = strings.Cut(r.IPs[0], "=")
		}
		c.Nodes = append(c.Nodes, Node{Name: ip, Group: r.Group, Index: r.Index, IP: ip, VM: r.VMCID, AZ: strings.TrimPrefix(r.AZ, name+"-")})
	}
	slices.SortFunc(c.Nodes, func(a, b Node) int {
		if a.Group != b.Group {
			if a.Group == "master" {
				return -1
			}
			if b.Group == "master" {
				return 1
			}
			return strings.Compare(a.Group, b.Group)
		}
		return a.Index - b.Index
	})
	return c, nil
}

// Credentials returns an admin kubeconfig for the cluster (group
// system:masters), valid for a day, its server the load balancer's
// address.
func (m *Manager) Credentials(ctx context.Context, name string) ([]byte, error) {
	c, err := m.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	ca, err := m.clusterCA(name)
	if err != nil {
		return nil, err
	}
	kp, err := ca.IssueClient("kubefoundry:admin", []string{"system:masters"}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return kube.Kubeconfig(name, c.server(), kube.CertPEM(ca.Cert), name+"-admin", kp)
}

func (c *Cluster) server() string {
	return "https://" + netip.AddrPortFrom(netip.MustParseAddr(c.APIAddress), uint16(c.APIPort)).String()
}

// clusterCA is the cluster's CA, as the director keeps it.
func (m *Manager) clusterCA(name string) (*kube.CA, error) {
	vars, err := m.cfg.Director.Variables(deploymentName(name))
	if err != nil {
		return nil, err
	}
	v, ok, err := vars.Get(kuberelease.VarClusterCA)
	if err != nil {
		return nil, err
	}
	val, _ := v.(map[string]any)
	certPEM, _ := val["certificate"].(string)
	keyPEM, _ := val["private_key"].(string)
	if !ok || certPEM == "" || keyPEM == "" {
		return nil, fmt.Errorf("cluster %s: its CA (%s) is not in the director's variables: %w", name, kuberelease.VarClusterCA, kubefoundry.ErrNotFound)
	}
	return kube.ParseCA([]byte(certPEM), []byte(keyPEM))
}

func (m *Manager) client(name string, c *Cluster) (*kube.Client, error) {
	ca, err := m.clusterCA(name)
	if err != nil {
		return nil, err
	}
	kp, err := ca.IssueClient("kubefoundry:lifecycle", []string{"system:masters"}, time.Hour)
	if err != nil {
		return nil, err
	}
	kc, err := kube.Kubeconfig(name, c.server(), kube.CertPEM(ca.Cert), "lifecycle", kp)
	if err != nil {
		return nil, err
	}
	rc, err := kube.RESTConfig(kc)
	if err != nil {
		return nil, err
	}
	return kube.New(rc, kube.WithLogger(m.log.Named("kube")))
}

// remove is Delete without its task: the work itself.
func (m *Manager) remove(ctx context.Context, name string) error {
	if err := kubefoundry.ClusterID(name).Validate(); err != nil {
		return err
	}
	rec, err := m.cfg.Store.Cluster(name)
	switch {
	case errors.Is(err, kubefoundry.ErrNotFound):
		// Nothing recorded: what the cluster's names find is still removed.
	case err != nil:
		return err
	default:
		rec.State, rec.Updated = StateDeleting, time.Now().UTC()
		if err := m.cfg.Store.PutCluster(rec); err != nil {
			return err
		}
	}
	st := &stages{sink: m.cfg.Events, op: "delete cluster", obj: name, n: len(deleteStages)}
	if err := st.run("deployment", func() error {
		_, err := m.cfg.Director.DeleteDeployment(ctx, deploymentName(name), director.DeleteOptions{Force: true, Events: directorEvents(m.cfg.Events, "delete deployment")})
		if errors.Is(err, kubefoundry.ErrNotFound) {
			return nil
		}
		return err
	}); err != nil {
		// The network stays while VMs may still be on it.
		return fmt.Errorf("cluster %s: deployment: %w", name, err)
	}
	var errs []error
	if err := st.run("network", func() error { _, err := m.cfg.NSX.TeardownTopology(ctx, name); return err }); err != nil {
		errs = append(errs, fmt.Errorf("cluster %s: network: %w", name, err))
	}
	if err := st.run("cloud config", func() error {
		_, err := m.cfg.Director.DeleteConfig("cloud", configName(name))
		if errors.Is(err, kubefoundry.ErrNotFound) {
			return nil
		}
		return err
	}); err != nil {
		errs = append(errs, fmt.Errorf("cluster %s: cloud config: %w", name, err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return m.cfg.Store.DeleteCluster(name)
}
