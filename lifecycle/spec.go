package lifecycle

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubefoundry/kubefoundry"
)

// NodeSize is the size of a node's VM, as a TKGI plan gives it.
type NodeSize struct {
	CPU      int `json:"cpu"`
	MemoryMB int `json:"memoryMB"`
	// DiskGB is the VM's ephemeral disk.
	DiskGB int `json:"diskGB"`
	// PersistentDiskGB is a persistent disk that outlives the VM (etcd's
	// data on a control-plane node); 0 for none.
	PersistentDiskGB int `json:"persistentDiskGB,omitempty"`
}

// Plan is a cluster's shape, as TKGI's plans are: data the platform team
// defines and its users pick by name. DefaultPlans gives TKGI-like small,
// medium and large ones.
type Plan struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// ControlPlaneNodes is 1, 3 or 5 (etcd's quorum), of ControlPlane size.
	ControlPlaneNodes int      `json:"controlPlaneNodes"`
	ControlPlane      NodeSize `json:"controlPlane"`
	// Workers of Worker size, unless the cluster's compute profile says
	// otherwise.
	Workers int      `json:"workers"`
	Worker  NodeSize `json:"worker"`
}

// DefaultPlans are TKGI-like plans: small (1 control-plane node, 3
// workers), medium (3 and 5) and large (3 and 10), each a map entry under
// its name.
func DefaultPlans() map[string]Plan {
	return map[string]Plan{
		"small": {Name: "small", Description: "1 control-plane node, 3 workers: development",
			ControlPlaneNodes: 1, ControlPlane: NodeSize{CPU: 2, MemoryMB: 4096, DiskGB: 32, PersistentDiskGB: 10},
			Workers: 3, Worker: NodeSize{CPU: 2, MemoryMB: 8192, DiskGB: 50}},
		"medium": {Name: "medium", Description: "3 control-plane nodes, 5 workers: production",
			ControlPlaneNodes: 3, ControlPlane: NodeSize{CPU: 4, MemoryMB: 8192, DiskGB: 64, PersistentDiskGB: 20},
			Workers: 5, Worker: NodeSize{CPU: 4, MemoryMB: 16384, DiskGB: 100}},
		"large": {Name: "large", Description: "3 control-plane nodes, 10 workers: large production",
			ControlPlaneNodes: 3, ControlPlane: NodeSize{CPU: 8, MemoryMB: 32768, DiskGB: 64, PersistentDiskGB: 50},
			Workers: 10, Worker: NodeSize{CPU: 8, MemoryMB: 32768, DiskGB: 200}},
	}
}

// Validate checks a plan: every problem at once, at its field's path.
func (p *Plan) Validate() error {
	v := &kubefoundry.ValidationError{Object: "plan " + p.Name}
	p.check(v, "")
	return v.Err()
}

func (p *Plan) check(v *kubefoundry.ValidationError, at string) {
	if !nameRe.MatchString(p.Name) {
		v.Add(at+"name", p.Name, "a plan needs a name of lower-case letters, digits and '-'")
	}
	if !slices.Contains([]int{1, 3, 5}, p.ControlPlaneNodes) {
		v.Add(at+"controlPlaneNodes", fmt.Sprint(p.ControlPlaneNodes), "must be 1, 3 or 5 (etcd's quorum)")
	}
	p.ControlPlane.check(v, at+"controlPlane.")
	if p.ControlPlane.PersistentDiskGB <= 0 {
		v.Add(at+"controlPlane.persistentDiskGB", fmt.Sprint(p.ControlPlane.PersistentDiskGB), "etcd's data needs a persistent disk of at least 1 GB")
	}
	if p.Workers < 0 {
		v.Add(at+"workers", fmt.Sprint(p.Workers), "must not be negative")
	}
	p.Worker.check(v, at+"worker.")
}

func (s NodeSize) check(v *kubefoundry.ValidationError, at string) {
	for _, f := range []struct {
		name string
		val  int
		min  int
	}{{"cpu", s.CPU, 1}, {"memoryMB", s.MemoryMB, 1024}, {"diskGB", s.DiskGB, 8}} {
		if f.val < f.min {
			v.Add(at+f.name, fmt.Sprint(f.val), "must be at least %d", f.min)
		}
	}
	if s.PersistentDiskGB < 0 {
		v.Add(at+"persistentDiskGB", fmt.Sprint(s.PersistentDiskGB), "must not be negative")
	}
}

// ClusterSpec is what a user asks for: a cluster of a plan, with the
// profiles TKGI lets them set.
type ClusterSpec struct {
	// Name is the cluster's id in every system (kubefoundry.ClusterID).
	Name kubefoundry.ClusterID `json:"name"`
	// Plan names one of the plans the cluster is checked against.
	Plan string `json:"plan"`
	// KubernetesVersion is the version the nodes run: "1.36.3".
	KubernetesVersion string `json:"kubernetesVersion"`
	// Workers overrides the plan's worker count (tkgi resize
	// --num-nodes); 0 keeps the plan's. A cluster with a compute profile
	// sizes its node pools instead.
	Workers    int               `json:"workers,omitempty"`
	Network    NetworkProfile    `json:"network"`
	Compute    *ComputeProfile   `json:"compute,omitempty"`
	Kubernetes KubernetesProfile `json:"kubernetes,omitzero"`
	Harbor     HarborSettings    `json:"harbor,omitzero"`
}

// NetworkProfile is what TKGI's network profiles set: the nsxt.Topology
// fields a user may choose. The foundation gives the rest (edge cluster,
// transport zone, node IP block).
type NetworkProfile struct {
	// Tier0Path is the tier-0 gateway (t0_router_id): /infra/tier-0s/<id>.
	Tier0Path string `json:"tier0Path"`
	// PodIPBlockPaths (pod_ip_block_ids) and FloatingIPPoolPaths
	// (fip_pool_ids): at least one each, /infra/ip-blocks/<id> and
	// /infra/ip-pools/<id>.
	PodIPBlockPaths     []string `json:"podIPBlockPaths"`
	FloatingIPPoolPaths []string `json:"floatingIPPoolPaths"`
	// LBSize (lb_size) is SMALL (the default), MEDIUM, LARGE or XLARGE.
	LBSize string `json:"lbSize,omitempty"`
	// SingleTier (single_tier_topology) and PodRoutable (pod_routable).
	SingleTier  bool `json:"singleTier,omitempty"`
	PodRoutable bool `json:"podRoutable,omitempty"`
	// MaxL4LBServices (max_l4_lb_service) caps the Services of type
	// LoadBalancer; 0 means no cap of the cluster's own.
	MaxL4LBServices int `json:"maxL4LBServices,omitempty"`
}

// ComputeProfile is what TKGI's compute profiles set: the cluster's AZs
// and its worker node pools, in place of the plan's workers.
type ComputeProfile struct {
	AZs       []AZ       `json:"azs"`
	NodePools []NodePool `json:"nodePools"`
}

// AZ maps an availability zone to where its VMs go on vSphere.
type AZ struct {
	Name string `json:"name"`
	// Cluster is the vSphere cluster (its inventory path or name).
	Cluster string `json:"cluster"`
	// ResourcePool and HostGroup narrow it down; a host group places the
	// AZ's VMs by a DRS VM-host rule.
	ResourcePool string `json:"resourcePool,omitempty"`
	HostGroup    string `json:"hostGroup,omitempty"`
}

// NodePool is a set of alike workers.
type NodePool struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Size  NodeSize `json:"size"`
	// AZs the pool's nodes are spread over, from ComputeProfile.AZs; all
	// of them when empty.
	AZs    []string          `json:"azs,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Taints []corev1.Taint    `json:"taints,omitempty"`
}

// KubernetesProfile is what TKGI's Kubernetes profiles set.
type KubernetesProfile struct {
	// APIServerArgs and KubeletArgs are extra flags, without "--". Flags
	// the SDK sets itself (certificates, etcd, addresses) are refused.
	APIServerArgs map[string]string `json:"apiServerArgs,omitempty"`
	KubeletArgs   map[string]string `json:"kubeletArgs,omitempty"`
	OIDC          *OIDC             `json:"oidc,omitempty"`
	// EncryptionAtRest encrypts Secrets in etcd (TKGI's etcd encryption).
	EncryptionAtRest bool `json:"encryptionAtRest,omitempty"`
}

// OIDC is the API server's OpenID Connect sign-in.
type OIDC struct {
	IssuerURL     string `json:"issuerURL"`
	ClientID      string `json:"clientID"`
	UsernameClaim string `json:"usernameClaim,omitempty"`
	GroupsClaim   string `json:"groupsClaim,omitempty"`
	// CAPEM is the issuer's CA, when the system's does not sign it.
	CAPEM string `json:"caPEM,omitempty"`
}

// HarborSettings is the cluster's Harbor project.
type HarborSettings struct {
	// Project is its name; the cluster's name when empty.
	Project string `json:"project,omitempty"`
	Public  bool   `json:"public,omitempty"`
	// StorageLimitGB caps the project's storage; 0 for no cap.
	StorageLimitGB int `json:"storageLimitGB,omitempty"`
}

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	versionRe = regexp.MustCompile(`^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
	lbSizes   = []string{"SMALL", "MEDIUM", "LARGE", "XLARGE"}
)

// managedAPIServerFlags and managedKubeletFlags are the flags the SDK
// sets itself; a profile may not change them.
var (
	managedAPIServerFlags = []string{"advertise-address", "bind-address", "client-ca-file", "etcd-cafile", "etcd-certfile",
		"etcd-keyfile", "etcd-servers", "encryption-provider-config", "kubelet-client-certificate", "kubelet-client-key",
		"secure-port", "service-account-issuer", "service-account-key-file", "service-account-signing-key-file",
		"tls-cert-file", "tls-private-key-file", "oidc-issuer-url", "oidc-client-id", "oidc-ca-file"}
	managedKubeletFlags = []string{"kubeconfig", "bootstrap-kubeconfig", "config", "node-ip", "hostname-override",
		"tls-cert-file", "tls-private-key-file"}
)

// Validate checks a spec against the plans it may name: every problem at
// once as a *kubefoundry.ValidationError, each at its field's path
// ("network.podIPBlockPaths", "compute.nodePools[1].taints[0].effect").
// Nothing is looked up on the foundation: that a tier-0 or an IP block
// exists is checked when the cluster is planned.
func (s *ClusterSpec) Validate(plans map[string]Plan) error {
	v := &kubefoundry.ValidationError{Object: "cluster " + string(s.Name)}
	if err := s.Name.Validate(); err != nil {
		v.Add("name", string(s.Name), "%s", err.(*kubefoundry.FieldError).Reason)
	}
	plan, ok := plans[s.Plan]
	switch {
	case s.Plan == "":
		v.Add("plan", "", "required: one of %s", strings.Join(slices.Sorted(maps.Keys(plans)), ", "))
	case !ok:
		v.Add("plan", s.Plan, "no such plan: one of %s", strings.Join(slices.Sorted(maps.Keys(plans)), ", "))
	default:
		pv := &kubefoundry.ValidationError{}
		plan.check(pv, "")
		v.Merge("plan("+s.Plan+")", pv.Err())
	}
	if !versionRe.MatchString(s.KubernetesVersion) {
		v.Add("kubernetesVersion", s.KubernetesVersion, "must be a version such as 1.36.3")
	}
	if s.Workers < 0 {
		v.Add("workers", fmt.Sprint(s.Workers), "must not be negative (0 keeps the plan's)")
	} else if s.Workers > 0 && s.Compute != nil && len(s.Compute.NodePools) > 0 {
		v.Add("workers", fmt.Sprint(s.Workers), "a cluster with node pools sizes them (compute.nodePools[].count)")
	}
	s.Network.check(v)
	if s.Compute != nil {
		s.Compute.check(v)
	} else if ok && plan.Workers < 1 {
		v.Add("plan", s.Plan, "has no workers, and the cluster no compute profile")
	}
	s.Kubernetes.check(v)
	if p := s.Harbor.Project; p != "" && !nameRe.MatchString(p) {
		v.Add("harbor.project", p, "a Harbor project name is lower-case letters, digits and '-'")
	}
	if s.Harbor.StorageLimitGB < 0 {
		v.Add("harbor.storageLimitGB", fmt.Sprint(s.Harbor.StorageLimitGB), "must not be negative")
	}
	return v.Err()
}

func (n *NetworkProfile) check(v *kubefoundry.ValidationError) {
	path := func(field, value, prefix string) {
		if !strings.HasPrefix(value, prefix) || len(value) == len(prefix) || strings.Contains(value[len(prefix):], "/") {
			v.Add(field, value, "must be a policy path %s<id>", prefix)
		}
	}
	path("network.tier0Path", n.Tier0Path, "/infra/tier-0s/")
	for name, paths := range map[string][]string{"podIPBlockPaths": n.PodIPBlockPaths, "floatingIPPoolPaths": n.FloatingIPPoolPaths} {
		if len(paths) == 0 {
			v.Add("network."+name, "", "at least one is required")
		}
		prefix := "/infra/ip-blocks/"
		if name == "floatingIPPoolPaths" {
			prefix = "/infra/ip-pools/"
		}
		seen := map[string]bool{}
		for i, p := range paths {
			field := fmt.Sprintf("network.%s[%d]", name, i)
			path(field, p, prefix)
			if seen[p] {
				v.Add(field, p, "listed twice")
			}
			seen[p] = true
		}
	}
	if n.LBSize != "" && !slices.Contains(lbSizes, n.LBSize) {
		v.Add("network.lbSize", n.LBSize, "must be one of %s", strings.Join(lbSizes, ", "))
	}
	if n.MaxL4LBServices < 0 {
		v.Add("network.maxL4LBServices", fmt.Sprint(n.MaxL4LBServices), "must not be negative")
	}
}

func (c *ComputeProfile) check(v *kubefoundry.ValidationError) {
	azs := map[string]bool{}
	for i, az := range c.AZs {
		at := fmt.Sprintf("compute.azs[%d].", i)
		switch {
		case !nameRe.MatchString(az.Name):
			v.Add(at+"name", az.Name, "an AZ needs a name of lower-case letters, digits and '-'")
		case azs[az.Name]:
			v.Add(at+"name", az.Name, "defined twice")
		}
		azs[az.Name] = true
		if az.Cluster == "" {
			v.Add(at+"cluster", "", "required: the vSphere cluster its VMs go to")
		}
	}
	if len(c.AZs) == 0 {
		v.Add("compute.azs", "", "at least one AZ is required")
	}
	workers := 0
	pools := map[string]bool{}
	for i, p := range c.NodePools {
		at := fmt.Sprintf("compute.nodePools[%d].", i)
		switch {
		case !nameRe.MatchString(p.Name):
			v.Add(at+"name", p.Name, "a node pool needs a name of lower-case letters, digits and '-'")
		case pools[p.Name]:
			v.Add(at+"name", p.Name, "defined twice")
		}
		pools[p.Name] = true
		if p.Count < 0 {
			v.Add(at+"count", fmt.Sprint(p.Count), "must not be negative")
		}
		workers += max(p.Count, 0)
		p.Size.check(v, at+"size.")
		for j, az := range p.AZs {
			if !azs[az] {
				v.Add(fmt.Sprintf("%sazs[%d]", at, j), az, "not an AZ of compute.azs")
			}
		}
		for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
			for _, msg := range validation.IsQualifiedName(k) {
				v.Add(at+"labels", k, "not a label key: %s", msg)
			}
			for _, msg := range validation.IsValidLabelValue(p.Labels[k]) {
				v.Add(at+"labels."+k, p.Labels[k], "not a label value: %s", msg)
			}
		}
		for j, t := range p.Taints {
			tat := fmt.Sprintf("%staints[%d].", at, j)
			for _, msg := range validation.IsQualifiedName(t.Key) {
				v.Add(tat+"key", t.Key, "not a taint key: %s", msg)
			}
			if t.Value != "" {
				for _, msg := range validation.IsValidLabelValue(t.Value) {
					v.Add(tat+"value", t.Value, "not a taint value: %s", msg)
				}
			}
			if !slices.Contains([]corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}, t.Effect) {
				v.Add(tat+"effect", string(t.Effect), "must be NoSchedule, PreferNoSchedule or NoExecute")
			}
		}
	}
	if len(c.NodePools) > 0 && workers == 0 {
		v.Add("compute.nodePools", "", "the pools have no worker between them")
	}
	if len(c.NodePools) == 0 {
		v.Add("compute.nodePools", "", "at least one node pool is required")
	}
}

func (k *KubernetesProfile) check(v *kubefoundry.ValidationError) {
	for field, set := range map[string]struct {
		args    map[string]string
		managed []string
	}{"kubernetes.apiServerArgs": {k.APIServerArgs, managedAPIServerFlags}, "kubernetes.kubeletArgs": {k.KubeletArgs, managedKubeletFlags}} {
		for _, flag := range slices.Sorted(maps.Keys(set.args)) {
			switch {
			case strings.HasPrefix(flag, "-") || flag == "":
				v.Add(field, flag, "name the flag without its dashes")
			case slices.Contains(set.managed, flag):
				v.Add(field+"."+flag, "", "set by kubefoundry itself; it cannot be changed by a profile")
			}
		}
	}
	if o := k.OIDC; o != nil {
		u, err := url.Parse(o.IssuerURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			v.Add("kubernetes.oidc.issuerURL", o.IssuerURL, "must be an https URL")
		}
		if o.ClientID == "" {
			v.Add("kubernetes.oidc.clientID", "", "required")
		}
	}
}
