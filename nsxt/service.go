package nsxt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
)

// LoadBalancer is a Kubernetes Service of type LoadBalancer as the
// cluster's NSX load balancer serves it: one address from the floating
// pool, and per port a virtual server whose pool is the nodes' NodePort.
type LoadBalancer struct {
	ClusterID string
	Namespace string
	Name      string
	Ports     []ServicePort
	// Nodes are the addresses of the nodes that serve the NodePorts.
	Nodes []string
	// FloatingIPPoolPath is the pool the address comes from; IP asks for a
	// particular address of it (spec.loadBalancerIP), empty for any.
	FloatingIPPoolPath string
	IP                 string
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name     string
	Protocol string // TCP (the default) or UDP
	Port     int
	NodePort int
}

// LoadBalancerStatus is what EnsureLoadBalancer built.
type LoadBalancerStatus struct {
	IP             string   // the virtual servers' address: status.loadBalancer.ingress[].ip
	VirtualServers []string // policy paths, one per port
	Plan           *Plan
	Writes         int
}

// Validate checks lb and returns a *FieldError naming the first wrong
// field.
func (lb LoadBalancer) Validate() error {
	if err := checkClusterID("LoadBalancer", lb.ClusterID); err != nil {
		return err
	}
	if !dnsLabelRe.MatchString(lb.Namespace) {
		return &FieldError{"LoadBalancer", "Namespace", lb.Namespace, "is not a Kubernetes namespace name"}
	}
	if !dnsLabelRe.MatchString(lb.Name) {
		return &FieldError{"LoadBalancer", "Name", lb.Name, "is not a Kubernetes Service name"}
	}
	if !strings.HasPrefix(lb.FloatingIPPoolPath, "/infra/ip-pools/") {
		return &FieldError{"LoadBalancer", "FloatingIPPoolPath", lb.FloatingIPPoolPath, "must be a policy path starting with /infra/ip-pools/"}
	}
	if lb.IP != "" {
		if _, err := netip.ParseAddr(lb.IP); err != nil {
			return &FieldError{"LoadBalancer", "IP", lb.IP, "is not an IP address"}
		}
	}
	if len(lb.Ports) == 0 {
		return &FieldError{"LoadBalancer", "Ports", "", "a LoadBalancer Service needs at least one port"}
	}
	seen := map[string]bool{}
	for i, p := range lb.Ports {
		f := fmt.Sprintf("Ports[%d]", i)
		switch p.protocol() {
		case "TCP", "UDP":
		default:
			return &FieldError{"LoadBalancer", f + ".Protocol", p.Protocol, "must be TCP or UDP (the NSX load balancer has no SCTP)"}
		}
		if p.Port < 1 || p.Port > 65535 {
			return &FieldError{"LoadBalancer", f + ".Port", strconv.Itoa(p.Port), "must be 1-65535"}
		}
		if p.NodePort < 1 || p.NodePort > 65535 {
			return &FieldError{"LoadBalancer", f + ".NodePort", strconv.Itoa(p.NodePort), "must be 1-65535"}
		}
		key := p.protocol() + strconv.Itoa(p.Port)
		if seen[key] {
			return &FieldError{"LoadBalancer", f, key, "is listed twice"}
		}
		seen[key] = true
	}
	for i, n := range lb.Nodes {
		if _, err := netip.ParseAddr(n); err != nil {
			return &FieldError{"LoadBalancer", fmt.Sprintf("Nodes[%d]", i), n, "is not an IP address"}
		}
	}
	return nil
}

func (p ServicePort) protocol() string { return strings.ToUpper(orDefaultS(p.Protocol, "TCP")) }

// objectID joins the parts of an NSX id with "_", which neither cluster
// ids nor Kubernetes names contain, so two objects' ids never collide
// ("a-ns"+"nodes" and "a"+"ns-nodes" stay apart). At most 200 characters:
// long Kubernetes names are cut and keep a hash so they stay unique.
func objectID(parts ...string) string {
	id := strings.Join(parts, "_")
	if len(id) <= 200 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return id[:183] + "-" + hex.EncodeToString(sum[:])[:16]
}

func (lb LoadBalancer) key() string { return lb.Namespace + "/" + lb.Name }

func (lb LoadBalancer) base() string {
	return objectID("kf_"+lb.ClusterID, "svc", lb.Namespace, lb.Name)
}

func (lb LoadBalancer) vipPath() string {
	return lb.FloatingIPPoolPath + "/ip-allocations/" + lb.base()
}

func (lb LoadBalancer) tags() []model.Tag {
	return []model.Tag{
		{Scope: ptr(TagCluster), Tag: ptr(lb.ClusterID)},
		{Scope: ptr(TagNamespace), Tag: ptr(lb.Namespace)},
		{Scope: ptr(TagService), Tag: ptr(lb.key())},
	}
}

func (lb LoadBalancer) desired() desiredSet {
	alloc := model.IpAddressAllocation{Id: ptr(lb.base()), Tags: lb.tags()}
	if lb.IP != "" {
		alloc.AllocationIp = ptr(lb.IP)
	}
	return desiredSet{
		cluster: lb.ClusterID,
		member:  func(m map[string]any) bool { return hasTag(m, TagService, lb.key()) },
		ipam:    []intent{{lb.vipPath(), "IpAddressAllocation", alloc, true}},
		config: func(a addresses) []intent {
			var out []intent
			vip := ipOrPending(a.ips[lb.vipPath()])
			for _, p := range lb.Ports {
				id := objectID(lb.base(), strings.ToLower(p.protocol()), strconv.Itoa(p.Port))
				pool := model.LBPool{Id: ptr(id), Members: members(lb.Nodes, p.NodePort), Tags: lb.tags()}
				profile := "/infra/lb-app-profiles/default-tcp-lb-app-profile"
				if p.protocol() == "UDP" {
					profile = "/infra/lb-app-profiles/default-udp-lb-app-profile"
				} else {
					//lint:ignore SA1019 the NSX load balancer is deprecated as a whole (for Avi) but it is what TKGI uses; its health monitors have no other field
					pool.ActiveMonitorPaths = []string{"/infra/lb-monitor-profiles/default-tcp-lb-monitor"}
				}
				out = append(out,
					intent{"/infra/lb-pools/" + id, "LBPool", pool, false},
					intent{"/infra/lb-virtual-servers/" + id, "LBVirtualServer", model.LBVirtualServer{Id: ptr(id),
						IpAddress: ptr(vip), Ports: []string{strconv.Itoa(p.Port)},
						DefaultPoolMemberPorts: []string{strconv.Itoa(p.NodePort)},
						PoolPath:               ptr("/infra/lb-pools/" + id), LbServicePath: ptr("/infra/lb-services/kf_" + lb.ClusterID),
						ApplicationProfilePath: ptr(profile), Enabled: ptr(true), Tags: lb.tags()}, false},
				)
			}
			return out
		},
	}
}

// EnsureLoadBalancer makes the cluster's load balancer serve a Service:
// it allocates the address (one PATCH, only the first time) and creates,
// updates or deletes the virtual servers and pools of its ports (one
// PATCH when anything changed). Calling it again with the same Service
// writes nothing; with changed ports or nodes it changes only those. The
// cluster's topology must exist (BuildTopology).
func (c *Client) EnsureLoadBalancer(ctx context.Context, lb LoadBalancer) (*LoadBalancerStatus, error) {
	if err := lb.Validate(); err != nil {
		return nil, err
	}
	p, addr, writes, err := c.converge(ctx, lb.desired())
	if err != nil {
		return nil, err
	}
	st := &LoadBalancerStatus{IP: addr.ips[lb.vipPath()], Plan: p, Writes: writes}
	for _, in := range lb.desired().config(addr) {
		if in.rtype == "LBVirtualServer" {
			st.VirtualServers = append(st.VirtualServers, in.path)
		}
	}
	return st, nil
}

// DeleteLoadBalancer removes a Service's virtual servers and pools and
// releases its address, found by tag. Deleting one that is gone writes
// nothing.
func (c *Client) DeleteLoadBalancer(ctx context.Context, clusterID, namespace, name string) (*Teardown, error) {
	lb := LoadBalancer{ClusterID: clusterID, Namespace: namespace, Name: name}
	if err := checkClusterID("LoadBalancer", clusterID); err != nil {
		return nil, err
	}
	if !dnsLabelRe.MatchString(namespace) {
		return nil, &FieldError{"LoadBalancer", "Namespace", namespace, "is not a Kubernetes namespace name"}
	}
	if !dnsLabelRe.MatchString(name) {
		return nil, &FieldError{"LoadBalancer", "Name", name, "is not a Kubernetes Service name"}
	}
	return c.teardown(ctx, clusterID, namespace, func(m map[string]any) bool { return hasTag(m, TagService, lb.key()) })
}
