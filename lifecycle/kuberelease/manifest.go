package kuberelease

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
)

// Deployment is a Kubernetes cluster's BOSH deployment: what Manifest
// writes for Director.Deploy.
type Deployment struct {
	// Name is the BOSH deployment's name.
	Name string
	// ReleaseVersion is the version of this release to deploy.
	ReleaseVersion string
	// StemcellOS and StemcellVersion pick the stemcell ("latest" for the
	// highest uploaded).
	StemcellOS, StemcellVersion string
	// Network is the cloud config's network the VMs are on.
	Network string
	// ControlPlane is the etcd and control-plane instances.
	ControlPlane ControlPlane
	// Workers are the worker node pools, an instance group each.
	Workers []WorkerPool
	// APIAddress is where clients reach the API server: the cluster's
	// load-balancer address; it is in the API server's certificate and
	// is the service-account issuer's host. APIPort is the API server's
	// port (8443, as TKGI's, when 0).
	APIAddress string
	APIPort    int
	// ServiceCIDR and PodCIDR are the Services' and the pods' ranges
	// (10.100.200.0/24 and 10.200.0.0/16, TKGI's defaults, when empty).
	ServiceCIDR, PodCIDR string
	// APIServerArgs, ControllerManagerArgs and SchedulerArgs are more
	// flags for those programs, name (without --) to value; a flag the
	// release sets itself is refused when the job is rendered.
	APIServerArgs, ControllerManagerArgs, SchedulerArgs map[string]string
	// EncryptionConfig is an EncryptionConfiguration (YAML) for Secrets
	// at rest; none when empty.
	EncryptionConfig string
	// NodeMonitorGracePeriod is how long a node may stop reporting before
	// it is NotReady ("40s" when empty).
	NodeMonitorGracePeriod string
	// MaxInFlight is how many instances are updated at once after the
	// canary; 1 when 0.
	MaxInFlight int
}

// ControlPlane is the control-plane instance group: every instance runs
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler.
type ControlPlane struct {
	// StaticIPs are the instances' addresses, one per instance (1, 3 or
	// 5): they are in etcd's and the API server's certificates, which
	// are made before the VMs are.
	StaticIPs []string
	AZs       []string
	VMType    string
	// DiskType is the cloud config's disk type of etcd's persistent disk;
	// none when empty.
	DiskType string
	// Rolling updates the members one at a time, each a canary, as an
	// upgrade of a running control plane must: the others keep etcd's
	// quorum and the API answering. Otherwise they are updated all at
	// once, in every AZ at once (initial_deploy_az_update_strategy
	// parallel), as a new control plane must be: a new etcd of 3 or 5
	// members has no quorum, and its API servers do not start, until most
	// of them run, so a lone canary, or one AZ's members, would never
	// become healthy.
	Rolling bool
}

// WorkerPool is a group of worker nodes: an instance group whose VMs run
// the kubelet job.
type WorkerPool struct {
	// Name is the instance group's name (a DNS label).
	Name      string
	Instances int
	AZs       []string
	VMType    string
	// Labels and Taints are the Nodes'.
	Labels map[string]string
	Taints []Taint
}

// Taint is a Node's taint.
type Taint struct {
	Key    string `yaml:"key"`
	Value  string `yaml:"value,omitempty"`
	Effect string `yaml:"effect"`
}

// Certificates and keys the manifest declares as BOSH variables, which
// the director generates unless a value was put first (a caller that
// keeps its own PKI, as lifecycle does with package kube's, puts them
// under these names).
const (
	VarClusterCA         = "kubo_ca"
	VarEtcdCA            = "etcd_ca"
	VarAPIServer         = "tls-kubernetes"
	VarEtcd              = "tls-etcd"
	VarEtcdClient        = "tls-etcd-client"
	VarControllerManager = "tls-kube-controller-manager"
	VarScheduler         = "tls-kube-scheduler"
	VarServiceAccountKey = "service-account-key"
	VarAdmin             = "tls-admin"
	VarKubelet           = "tls-kubelet"
)

func (d Deployment) withDefaults() Deployment {
	if d.APIPort == 0 {
		d.APIPort = 8443
	}
	if d.ServiceCIDR == "" {
		d.ServiceCIDR = "10.100.200.0/24"
	}
	if d.PodCIDR == "" {
		d.PodCIDR = "10.200.0.0/16"
	}
	if d.NodeMonitorGracePeriod == "" {
		d.NodeMonitorGracePeriod = "40s"
	}
	if d.MaxInFlight == 0 {
		d.MaxInFlight = 1
	}
	return d
}

// Validate reports every problem with d at once.
func (d Deployment) Validate() error {
	d = d.withDefaults()
	ve := kubefoundry.ValidationError{Object: "kuberelease.Deployment"}
	for _, f := range []struct{ name, v string }{{"Name", d.Name}, {"ReleaseVersion", d.ReleaseVersion},
		{"StemcellOS", d.StemcellOS}, {"StemcellVersion", d.StemcellVersion}, {"Network", d.Network},
		{"ControlPlane.VMType", d.ControlPlane.VMType}} {
		if f.v == "" {
			ve.Add(f.name, "", "required")
		}
	}
	if _, err := netip.ParseAddr(d.APIAddress); err != nil {
		ve.Add("APIAddress", d.APIAddress, "is not an IP address")
	}
	if d.APIPort < 1 || d.APIPort > 65535 {
		ve.Add("APIPort", strconv.Itoa(d.APIPort), "must be 1 to 65535")
	}
	if n := len(d.ControlPlane.StaticIPs); n != 1 && n != 3 && n != 5 {
		ve.Add("ControlPlane.StaticIPs", strconv.Itoa(n), "must give 1, 3 or 5 addresses (etcd's quorum)")
	}
	for i, ip := range d.ControlPlane.StaticIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			ve.Add(fmt.Sprintf("ControlPlane.StaticIPs[%d]", i), ip, "is not an IP address")
		} else if slices.Index(d.ControlPlane.StaticIPs, ip) != i {
			ve.Add(fmt.Sprintf("ControlPlane.StaticIPs[%d]", i), ip, "is given twice")
		}
	}
	if len(d.ControlPlane.AZs) == 0 {
		ve.Add("ControlPlane.AZs", "", "at least one AZ is required")
	}
	if _, err := serviceIP(d.ServiceCIDR); err != nil {
		ve.Add("ServiceCIDR", d.ServiceCIDR, "%v", err)
	}
	if p, err := netip.ParsePrefix(d.PodCIDR); err != nil || p.Bits() > 24 {
		ve.Add("PodCIDR", d.PodCIDR, "is not a CIDR of a /24 or larger (each node's pod CIDR is a /24)")
	}
	groups := map[string]bool{"master": true}
	for i, w := range d.Workers {
		at := fmt.Sprintf("Workers[%d]", i)
		switch {
		case !dnsLabel.MatchString(w.Name):
			ve.Add(at+".Name", w.Name, "must be a DNS label (lower-case letters, digits and -)")
		case groups[w.Name]:
			ve.Add(at+".Name", w.Name, "is taken by another instance group")
		}
		groups[w.Name] = true
		if w.Instances < 0 {
			ve.Add(at+".Instances", strconv.Itoa(w.Instances), "must not be negative")
		}
		if len(w.AZs) == 0 {
			ve.Add(at+".AZs", "", "at least one AZ is required")
		}
		if w.VMType == "" {
			ve.Add(at+".VMType", "", "required")
		}
		for j, t := range w.Taints {
			if t.Key == "" {
				ve.Add(fmt.Sprintf("%s.Taints[%d].Key", at, j), "", "required")
			}
			if t.Effect != "NoSchedule" && t.Effect != "PreferNoSchedule" && t.Effect != "NoExecute" {
				ve.Add(fmt.Sprintf("%s.Taints[%d].Effect", at, j), t.Effect, "must be NoSchedule, PreferNoSchedule or NoExecute")
			}
		}
	}
	if d.MaxInFlight < 0 {
		ve.Add("MaxInFlight", strconv.Itoa(d.MaxInFlight), "must not be negative")
	}
	return ve.Err()
}

// serviceIP is the first address of the service range: the kubernetes
// Service's cluster IP, which the API server's certificate must name.
func serviceIP(cidr string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return netip.Addr{}, err
	}
	if p.Bits() > 28 || p.Addr().Is6() {
		return netip.Addr{}, fmt.Errorf("want an IPv4 CIDR of a /28 or larger")
	}
	return p.Masked().Addr().Next(), nil
}

// Manifest writes d's deployment manifest. Every certificate is a BOSH
// variable (the Var* names), and each names exactly the addresses it
// must: the API server's the load balancer, the control-plane addresses,
// the kubernetes Service's IP and its in-cluster names.
func (d Deployment) Manifest() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	d = d.withDefaults()
	svc, _ := serviceIP(d.ServiceCIDR)
	apiURL := "https://" + netip.AddrPortFrom(netip.MustParseAddr(d.APIAddress), uint16(d.APIPort)).String()
	apiNames := append([]string{d.APIAddress}, d.ControlPlane.StaticIPs...)
	apiNames = append(apiNames, svc.String(), "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")

	type m = map[string]any
	cert := func(name, ca, cn string, alt []string, usage ...string) m {
		o := m{"ca": ca, "common_name": cn, "extended_key_usage": usage}
		if len(alt) > 0 {
			o["alternative_names"] = alt
		}
		return m{"name": name, "type": "certificate", "update_mode": "converge", "options": o}
	}
	variables := []m{
		{"name": VarClusterCA, "type": "certificate", "options": m{"is_ca": true, "common_name": d.Name + "-ca"}},
		{"name": VarEtcdCA, "type": "certificate", "options": m{"is_ca": true, "common_name": d.Name + "-etcd-ca"}},
		cert(VarAPIServer, VarClusterCA, "kube-apiserver", apiNames, "server_auth"),
		cert(VarEtcd, VarEtcdCA, "etcd", d.ControlPlane.StaticIPs, "server_auth", "client_auth"),
		cert(VarEtcdClient, VarEtcdCA, "kube-apiserver-etcd-client", nil, "client_auth"),
		cert(VarControllerManager, VarClusterCA, "system:kube-controller-manager", nil, "client_auth"),
		cert(VarScheduler, VarClusterCA, "system:kube-scheduler", nil, "client_auth"),
		{"name": VarServiceAccountKey, "type": "rsa"},
		withOrg(cert(VarAdmin, VarClusterCA, "kubefoundry:admin", nil, "client_auth"), "system:masters"),
		withOrg(cert(VarKubelet, VarClusterCA, "kubefoundry:kubelet", nil, "client_auth"), "system:nodes"),
	}
	ca := "((" + VarClusterCA + ".certificate))"
	job := func(name string, props m) m { return m{"name": name, "release": Name, "properties": props} }
	// A new control plane: every member at once, in every AZ at once.
	update := m{"canaries": 0, "max_in_flight": len(d.ControlPlane.StaticIPs), "initial_deploy_az_update_strategy": "parallel"}
	if d.ControlPlane.Rolling {
		update = m{"canaries": 1, "max_in_flight": 1}
	}
	master := m{
		"name":      "master",
		"instances": len(d.ControlPlane.StaticIPs),
		"azs":       d.ControlPlane.AZs,
		"vm_type":   d.ControlPlane.VMType,
		"stemcell":  "default",
		"networks":  []m{{"name": d.Network, "static_ips": d.ControlPlane.StaticIPs}},
		"update":    update,
		"jobs": []m{
			job("etcd", m{"tls": m{"etcd": "((" + VarEtcd + "))"}}),
			job("kube-apiserver", m{
				"kube-apiserver": m{"port": d.APIPort, "service_cluster_ip_range": d.ServiceCIDR, "service_account_issuer": apiURL,
					"extra_args": orEmpty(d.APIServerArgs), "encryption_config": d.EncryptionConfig},
				"tls":                 m{"kubernetes": "((" + VarAPIServer + "))", "etcd_client": "((" + VarEtcdClient + "))", "admin": "((" + VarAdmin + "))"},
				"service_account_key": "((" + VarServiceAccountKey + "))",
			}),
			job("kube-controller-manager", m{
				"kube-controller-manager": m{"cluster_cidr": d.PodCIDR, "node_monitor_grace_period": d.NodeMonitorGracePeriod,
					"extra_args": orEmpty(d.ControllerManagerArgs)},
				"tls":                 m{"kube_controller_manager": "((" + VarControllerManager + "))"},
				"cluster_signing":     m{"certificate": ca, "private_key": "((" + VarClusterCA + ".private_key))"},
				"service_account_key": m{"private_key": "((" + VarServiceAccountKey + ".private_key))"},
			}),
			job("kube-scheduler", m{
				"kube-scheduler": m{"extra_args": orEmpty(d.SchedulerArgs)},
				"tls":            m{"kube_scheduler": "((" + VarScheduler + "))"},
			}),
			// Control-plane VMs are Nodes too, as kubeadm's and TKGI's are:
			// labelled and tainted so that workloads stay off them.
			job("kubelet", m{
				"kubelet": m{"api_server": apiURL, "labels": map[string]string{"node-role.kubernetes.io/control-plane": ""},
					"taints": []Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: "NoSchedule"}}},
				"tls": m{"kubelet": "((" + VarKubelet + "))"},
			}),
		},
	}
	if d.ControlPlane.DiskType != "" {
		master["persistent_disk_type"] = d.ControlPlane.DiskType
	}
	groups := []m{master}
	for _, w := range d.Workers {
		taints := []Taint{}
		taints = append(taints, w.Taints...)
		groups = append(groups, m{
			"name":      w.Name,
			"instances": w.Instances,
			"azs":       w.AZs,
			"vm_type":   w.VMType,
			"stemcell":  "default",
			"networks":  []m{{"name": d.Network}},
			"jobs": []m{job("kubelet", m{
				"kubelet": m{"api_server": apiURL, "labels": orEmpty(w.Labels), "taints": taints},
				"tls":     m{"kubelet": "((" + VarKubelet + "))"},
			})},
		})
	}
	doc := m{
		"name":      d.Name,
		"releases":  []m{{"name": Name, "version": d.ReleaseVersion}},
		"stemcells": []m{{"alias": "default", "os": d.StemcellOS, "version": d.StemcellVersion}},
		"update": m{"canaries": 1, "max_in_flight": d.MaxInFlight, "canary_watch_time": "1000-300000",
			"update_watch_time": "1000-300000", "serial": true},
		"instance_groups": groups,
		"variables":       variables,
	}
	return yaml.Marshal(doc)
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func withOrg(v map[string]any, org string) map[string]any {
	v["options"].(map[string]any)["organization"] = org
	return v
}

func orEmpty(a map[string]string) map[string]string {
	if a == nil {
		return map[string]string{}
	}
	return a
}
