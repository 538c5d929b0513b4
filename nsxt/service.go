package nsxt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
)

// LoadBalancer is a Kubernetes Service of type LoadBalancer as the
// cluster's NSX load balancer serves it: one address from a floating
// pool, and per port a virtual server whose pool is the nodes' NodePort.
type LoadBalancer struct {
	ClusterID string
	Namespace string
	Name      string
	Ports     []ServicePort
	// Nodes are the addresses of the nodes that serve the NodePorts.
	Nodes []string
	// FloatingIPPoolPaths are the pools the address may come from, at
	// least one, tried in order as Topology.FloatingIPPoolPaths (usually
	// the same list). IP asks for a particular address of one of them
	// (spec.loadBalancerIP), empty for any: it is asked of the first pool
	// with a range that holds it.
	FloatingIPPoolPaths []string
	IP                  string
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

// Validate checks lb and returns a *kubefoundry.ValidationError naming
// every wrong field ("LoadBalancer.Ports[0].Port"), or nil.
func (lb LoadBalancer) Validate() error {
	p := newProblems("LoadBalancer")
	p.clusterID(lb.ClusterID)
	p.namespace("Namespace", lb.Namespace)
	if !dnsLabelRe.MatchString(lb.Name) {
		p.add("Name", lb.Name, "is not a Kubernetes Service name")
	}
	p.paths("FloatingIPPoolPaths", lb.FloatingIPPoolPaths, "/infra/ip-pools/", "IP pool")
	if lb.IP != "" {
		if _, err := netip.ParseAddr(lb.IP); err != nil {
			p.add("IP", lb.IP, "is not an IP address")
		}
	}
	if len(lb.Ports) == 0 {
		p.add("Ports", "", "a LoadBalancer Service needs at least one port")
	}
	seen := map[string]bool{}
	for i, port := range lb.Ports {
		f := fmt.Sprintf("Ports[%d]", i)
		switch port.protocol() {
		case "TCP", "UDP":
		default:
			p.add(f+".Protocol", port.Protocol, "must be TCP or UDP (the NSX load balancer has no SCTP)")
		}
		if port.Port < 1 || port.Port > 65535 {
			p.add(f+".Port", strconv.Itoa(port.Port), "must be 1-65535")
		}
		if port.NodePort < 1 || port.NodePort > 65535 {
			p.add(f+".NodePort", strconv.Itoa(port.NodePort), "must be 1-65535")
		}
		key := port.protocol() + strconv.Itoa(port.Port)
		if seen[key] {
			p.add(f, key, "is listed twice")
		}
		seen[key] = true
	}
	for i, n := range lb.Nodes {
		if _, err := netip.ParseAddr(n); err != nil {
			p.add(fmt.Sprintf("Nodes[%d]", i), n, "is not an IP address")
		}
	}
	return p.err()
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

// lbServicePath is the cluster's load balancer, which serves the Service.
func (lb LoadBalancer) lbServicePath() string { return "/infra/lb-services/kf_" + lb.ClusterID }

func (lb LoadBalancer) base() string {
	return objectID("kf_"+lb.ClusterID, "svc", lb.Namespace, lb.Name)
}

func (lb LoadBalancer) tags() []model.Tag {
	return []model.Tag{
		{Scope: ptr(TagCluster), Tag: ptr(lb.ClusterID)},
		{Scope: ptr(TagNamespace), Tag: ptr(lb.Namespace)},
		{Scope: ptr(TagService), Tag: ptr(lb.key())},
	}
}

func (lb LoadBalancer) desired() desiredSet {
	return desiredSet{
		cluster: lb.ClusterID,
		reach:   reach{service: lb.key()},
		member:  func(m map[string]any) bool { return hasTag(m, TagService, lb.key()) },
		admit:   lb.admit,
		ipam:    []allocation{poolAddress("LoadBalancer", "FloatingIPPoolPaths", lb.base(), lb.FloatingIPPoolPaths, lb.IP, lb.tags())},
		config: func(a addresses) []intent {
			var out []intent
			vip := ipOrPending(a.ips[lb.base()])
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
						PoolPath:               ptr("/infra/lb-pools/" + id), LbServicePath: ptr(lb.lbServicePath()),
						ApplicationProfilePath: ptr(profile), Enabled: ptr(true), Tags: lb.tags()}, false},
				)
			}
			return out
		},
	}
}

// admit refuses a new Service when the cluster has as many LoadBalancer
// Services as its Topology.MaxL4LBServices, which BuildTopology recorded
// on the cluster's load balancer. The search index trails writes, so
// neither the limit nor the count comes from it alone: the limit is read
// from the load balancer itself (a GET: its path follows from the cluster
// id), and, when there is one, the Services are counted in NSX's store by
// their virtual servers tagged with the cluster (a listing), joined with
// the Services all (the search) shows whose address NSX still holds (a
// GET of each such address): one whose virtual servers are not made yet
// counts, one deleted a moment ago does not. A Service counts once
// whatever its ports, as TKGI counts "1 TCP layer 4 virtual server for
// each Kubernetes service of type LoadBalancer". One with a virtual
// server in the store exists and may always change. The limit holds
// across clients, processes and bursts, though Services created at the
// same moment may pass it together.
func (lb LoadBalancer) admit(ctx context.Context, c *Client, all current) error {
	m, err := c.getObject(ctx, lb.lbServicePath())
	if errors.Is(err, ErrNotFound) {
		return nil // no topology: no limit, and nothing to serve the Service
	}
	if err != nil {
		return err
	}
	limit, _ := strconv.Atoi(tagValue(m, TagMaxL4LBServices))
	if limit <= 0 {
		return nil
	}
	servers, err := c.list(ctx, "/infra/lb-virtual-servers")
	if err != nil {
		return err
	}
	services := map[string]bool{}
	for _, vs := range servers {
		if s := tagValue(vs, TagService); s != "" && hasTag(vs, TagCluster, lb.ClusterID) {
			services[s] = true
		}
	}
	if services[lb.key()] {
		return nil
	}
	var addrs []string // of the Services only the search shows
	for path, m := range all {
		if s := tagValue(m, TagService); s != "" && s != lb.key() && !services[s] && m["resource_type"] == "IpAddressAllocation" {
			addrs = append(addrs, path)
		}
	}
	sort.Strings(addrs)
	for _, path := range addrs {
		s := tagValue(all[path], TagService)
		if services[s] {
			continue
		}
		_, err := c.getObject(ctx, path)
		switch {
		case err == nil:
			services[s] = true
		case !errors.Is(err, ErrNotFound):
			return err
		}
	}
	if len(services) >= limit {
		return &LimitError{ClusterID: lb.ClusterID, Field: "MaxL4LBServices", Limit: limit, Count: len(services),
			Object: "LoadBalancer Service " + lb.key()}
	}
	return nil
}

// EnsureLoadBalancer makes the cluster's load balancer serve a Service:
// it allocates the address (one PATCH, only the first time; from the next
// pool when one is exhausted, as BuildTopology does) and creates, updates
// or deletes the virtual servers and pools of its ports (one PATCH when
// anything changed). Calling it again with the same Service writes
// nothing; with changed ports or nodes it changes only those. The
// cluster's topology must exist (BuildTopology). A new Service beyond the
// cluster's Topology.MaxL4LBServices is refused with a *LimitError
// (errors.Is(err, ErrLimitExceeded)), before anything is written; the
// limit is read from the cluster's load balancer, and the Services
// counted in NSX's store, so it holds right after a build and in a burst
// of new Services, while the search index does not show them yet.
// WithSink reports its progress (OpEnsureLoadBalancer).
func (c *Client) EnsureLoadBalancer(ctx context.Context, lb LoadBalancer, opts ...CallOption) (_ *LoadBalancerStatus, err error) {
	pr := newProgress(opts, OpEnsureLoadBalancer, lb.ClusterID+"/"+lb.key())
	defer func() { pr.end(err) }()
	if err := lb.Validate(); err != nil {
		return nil, err
	}
	pools, err := c.poolsFor(ctx, lb)
	if err != nil {
		return nil, err
	}
	lb.FloatingIPPoolPaths = pools
	p, addr, writes, err := c.converge(ctx, lb.desired(), pr)
	if err != nil {
		return nil, err
	}
	st := &LoadBalancerStatus{IP: addr.ips[lb.base()], Plan: p, Writes: writes}
	for _, in := range lb.desired().config(addr) {
		if in.rtype == "LBVirtualServer" {
			st.VirtualServers = append(st.VirtualServers, in.path)
		}
	}
	return st, nil
}

// poolsFor orders the pools of lb for an address asked for by value: a
// pool with a range that holds it goes first, since NSX refuses an
// address outside the pool it is asked of. The others stay, in order, so
// an allocation already made from one of them is still found.
func (c *Client) poolsFor(ctx context.Context, lb LoadBalancer) ([]string, error) {
	pools := lb.FloatingIPPoolPaths
	if lb.IP == "" || len(pools) < 2 {
		return pools, nil
	}
	ip := netip.MustParseAddr(lb.IP) // Validate checked it
	alts := make([]string, len(pools))
	for i, p := range pools {
		alts[i] = escape(p)
	}
	res, err := searchAll(ctx, c, "resource_type:IpAddressPoolStaticSubnet AND parent_path:("+strings.Join(alts, " OR ")+")")
	if err != nil {
		return nil, err
	}
	holds := map[string]bool{}
	for _, m := range res {
		if parent, _ := m["parent_path"].(string); subnetHolds(m, ip) {
			holds[parent] = true
		}
	}
	for i, p := range pools {
		if holds[p] {
			return append(append([]string{p}, pools[:i]...), pools[i+1:]...), nil
		}
	}
	return pools, nil
}

// subnetHolds reports whether a pool's static subnet hands out ip: one of
// its allocation ranges holds it.
func subnetHolds(m map[string]any, ip netip.Addr) bool {
	ranges, _ := m["allocation_ranges"].([]any)
	for _, r := range ranges {
		rm, _ := r.(map[string]any)
		start, err1 := netip.ParseAddr(fmt.Sprint(rm["start"]))
		end, err2 := netip.ParseAddr(fmt.Sprint(rm["end"]))
		if err1 == nil && err2 == nil && !ip.Less(start) && !end.Less(ip) {
			return true
		}
	}
	return false
}

// DeleteLoadBalancer removes a Service's virtual servers and pools and
// releases its address, found by tag and, as a teardown does, in NSX's
// store (the load balancer pools and virtual servers, and the addresses
// of the floating pools the cluster's IP pool records), so one made a
// moment before goes too. Deleting one that is gone writes nothing.
// WithSink reports its progress (OpDeleteLoadBalancer).
func (c *Client) DeleteLoadBalancer(ctx context.Context, clusterID, namespace, name string, opts ...CallOption) (_ *Teardown, err error) {
	lb := LoadBalancer{ClusterID: clusterID, Namespace: namespace, Name: name}
	pr := newProgress(opts, OpDeleteLoadBalancer, clusterID+"/"+lb.key())
	defer func() { pr.end(err) }()
	p := newProblems("LoadBalancer")
	p.clusterID(clusterID)
	p.namespace("Namespace", namespace)
	if !dnsLabelRe.MatchString(name) {
		p.add("Name", name, "is not a Kubernetes Service name")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c.teardown(ctx, clusterID, namespace, func(m map[string]any) bool { return hasTag(m, TagService, lb.key()) }, reach{services: true}, pr)
}
