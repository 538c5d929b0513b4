package nsxt

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/bindings"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"

	"github.com/kubefoundry/kubefoundry"
)

// Ownership tag scopes on every object kubefoundry creates.
const (
	TagCluster   = "kubefoundry/cluster"
	TagNamespace = "kubefoundry/namespace"
	// TagService marks the objects of a LoadBalancer Service, "<ns>/<name>".
	TagService = "kubefoundry/service"
	// TagNetworkPolicy marks the objects of a NetworkPolicy, "<ns>/<name>".
	TagNetworkPolicy = "kubefoundry/network-policy"
	// TagMaxL4LBServices on the cluster's load balancer holds
	// Topology.MaxL4LBServices, for EnsureLoadBalancer to enforce.
	TagMaxL4LBServices = "kubefoundry/max-l4-lb-services"
	// TagFloatingPool on the cluster's IP pool names a floating pool of
	// Topology.FloatingIPPoolPaths, one tag each: where a teardown looks
	// for the cluster's addresses.
	TagFloatingPool = "kubefoundry/floating-pool"
)

// Topology is the NSX network of one Kubernetes cluster, as TKGI builds it:
// per cluster a tier-1 gateway on the tier-0, a node segment, SNAT, a load
// balancer with the Kubernetes API virtual server and a DFW policy; per
// namespace a segment with a subnet from a pod IP block, an SNAT address
// (unless PodRoutable) and a DFW policy.
type Topology struct {
	// ClusterID names the cluster, by the SDK's one rule
	// (kubefoundry.ClusterID): 1 to 40 lower-case letters, digits and
	// '-', beginning and ending with a letter or digit. Every object's id starts with "kf_<ClusterID>";
	// the parts of an id are joined with "_", which no cluster id or
	// Kubernetes name holds, so ids of different clusters never collide.
	ClusterID string `json:"clusterID"`
	// Tier0Path is the existing tier-0 gateway, /infra/tier-0s/<id>.
	Tier0Path string `json:"tier0Path"`
	// EdgeClusterPath is the edge cluster for the tier-1 and the load
	// balancer: /infra/sites/default/enforcement-points/default/edge-clusters/<id>.
	EdgeClusterPath string `json:"edgeClusterPath"`
	// TransportZonePath is the overlay transport zone of the segments.
	TransportZonePath string `json:"transportZonePath"`
	// NodeIPBlockPath is the IP block the node subnet is carved from,
	// /infra/ip-blocks/<id>.
	NodeIPBlockPath string `json:"nodeIPBlockPath"`
	// PodIPBlockPaths are the IP blocks the namespace subnets are carved
	// from (TKGI's pod_ip_block_ids), at least one, tried in order: a new
	// subnet comes from the first block NSX can carve it from. A subnet
	// never moves once allocated, so a block may be added or the list
	// reordered at any time, but a block that holds a subnet of the
	// cluster cannot be taken off the list.
	PodIPBlockPaths []string `json:"podIPBlockPaths"`
	// FloatingIPPoolPaths are the pools the SNAT addresses and the API
	// virtual server's address are allocated from (TKGI's fip_pool_ids),
	// at least one, tried in order like PodIPBlockPaths, with the same
	// rules.
	FloatingIPPoolPaths []string `json:"floatingIPPoolPaths"`
	// LBSize is SMALL (the default), MEDIUM, LARGE or XLARGE.
	LBSize string `json:"lbSize,omitempty"`
	// SingleTier attaches the segments and SNAT to the tier-0; the tier-1
	// then only hosts the load balancer.
	SingleTier bool `json:"singleTier,omitempty"`
	// PodRoutable makes the namespace subnets routable (TKGI's
	// pod_routable): all it changes is that the namespaces get no SNAT
	// address and no SNAT rule, so their traffic leaves with the pods'
	// own addresses. The tier-1 advertises its connected segments
	// (TIER1_CONNECTED) to the tier-0 in any case, namespace segments
	// among them; in single-tier they are the tier-0's own. Routing them
	// beyond the tier-0 is the tier-0's route redistribution, which
	// belongs to the platform team. The nodes keep their SNAT. Changing it
	// on a built cluster adds or removes the namespaces' SNAT rules and
	// addresses.
	PodRoutable bool `json:"podRoutable,omitempty"`
	// MaxL4LBServices caps the Kubernetes Services of type LoadBalancer
	// of the cluster (TKGI's max_l4_lb_service); 0 is no limit. A Service
	// counts once however many ports (virtual servers) it has, as TKGI
	// counts "1 TCP layer 4 virtual server for each Kubernetes service of
	// type LoadBalancer"; the cluster's own API virtual server does not
	// count. BuildTopology records it on the cluster's load balancer (tag
	// TagMaxL4LBServices), where EnsureLoadBalancer reads it, so every
	// client and process enforces the same limit.
	MaxL4LBServices int `json:"maxL4LBServices,omitempty"`
	// APIPort is the Kubernetes API virtual server's port; 8443 as TKGI
	// when zero. APIMemberPort is the port on the control-plane nodes;
	// APIPort when zero.
	APIPort       int `json:"apiPort,omitempty"`
	APIMemberPort int `json:"apiMemberPort,omitempty"`
	// APIMembers are the control-plane node addresses behind the API
	// virtual server. It may be empty until the nodes exist.
	APIMembers []string `json:"apiMembers,omitempty"`
	// NodeSubnetSize and NamespaceSubnetSize are the number of addresses
	// in the node subnet and in each namespace subnet (a power of two);
	// 256 (a /24) when zero.
	NodeSubnetSize      int `json:"nodeSubnetSize,omitempty"`
	NamespaceSubnetSize int `json:"namespaceSubnetSize,omitempty"`
	// DefaultDeny adds a last rule dropping any other traffic to the nodes
	// and to each namespace.
	DefaultDeny bool `json:"defaultDeny,omitempty"`
	// Namespaces get a network each.
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespacesManagedElsewhere leaves namespace networks to
	// EnsureNamespace and TeardownNamespace (a namespace controller):
	// BuildTopology then neither creates nor deletes any, and Namespaces
	// is ignored.
	NamespacesManagedElsewhere bool `json:"namespacesManagedElsewhere,omitempty"`
}

var dnsLabelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// FieldError names the field of a spec that is wrong, by its path from
// the spec ("Topology.PodIPBlockPaths[1]", "LoadBalancer.Ports[0].Port",
// "NetworkPolicy.Ingress[0].Peers[0]"). It wraps ErrInvalid. It is the
// SDK's one field error; a spec's validation returns a
// *kubefoundry.ValidationError holding one for every problem, which
// errors.As finds.
type FieldError = kubefoundry.FieldError

// problems collects what is wrong with one spec (Topology, LoadBalancer,
// NetworkPolicy), each field named from it: "Topology.ClusterID".
type problems struct {
	object string
	v      *kubefoundry.ValidationError
}

func newProblems(object string) problems {
	return problems{object: object, v: &kubefoundry.ValidationError{Object: "nsxt." + object}}
}

// add records that field (a path from the spec) with value is wrong.
func (p problems) add(field, value, reason string) {
	p.v.Add(p.object+"."+field, value, "%s", reason)
}

// err returns the *kubefoundry.ValidationError, or nil when there is no
// problem.
func (p problems) err() error { return p.v.Err() }

// clusterID checks a cluster id with the SDK's one rule
// (kubefoundry.ClusterID), as field ClusterID.
func (p problems) clusterID(id string) {
	var fe *FieldError
	if errors.As(kubefoundry.ClusterID(id).Validate(), &fe) {
		p.add("ClusterID", fe.Value, fe.Reason)
	}
}

// namespace checks a Kubernetes namespace name given as field.
func (p problems) namespace(field, ns string) {
	if !dnsLabelRe.MatchString(ns) {
		p.add(field, ns, "is not a Kubernetes namespace name")
	}
}

// paths checks a list of policy paths of one kind, such as the pod IP
// blocks: at least one, each prefix+<id>, none twice.
func (p problems) paths(field string, paths []string, prefix, kind string) {
	if len(paths) == 0 {
		p.add(field, "", "needs at least one "+kind)
	}
	seen := map[string]bool{}
	for i, path := range paths {
		f := fmt.Sprintf("%s[%d]", field, i)
		if id, ok := strings.CutPrefix(path, prefix); !ok || id == "" || strings.Contains(id, "/") {
			p.add(f, path, "must be the policy path of an "+kind+", "+prefix+"<id>")
			continue
		}
		if seen[path] {
			p.add(f, path, "is listed twice")
		}
		seen[path] = true
	}
}

// Validate checks t and returns a *kubefoundry.ValidationError naming
// every wrong field ("Topology.Tier0Path"), or nil.
func (t Topology) Validate() error {
	p := newProblems("Topology")
	t.validate(p)
	return p.err()
}

func (t Topology) validate(p problems) {
	p.clusterID(t.ClusterID)
	for _, f := range []struct{ name, val, prefix string }{
		{"Tier0Path", t.Tier0Path, "/infra/tier-0s/"},
		{"EdgeClusterPath", t.EdgeClusterPath, "/infra/sites/"},
		{"TransportZonePath", t.TransportZonePath, "/infra/sites/"},
		{"NodeIPBlockPath", t.NodeIPBlockPath, "/infra/ip-blocks/"},
	} {
		if len(f.val) <= len(f.prefix) || f.val[:len(f.prefix)] != f.prefix {
			p.add(f.name, f.val, "must be a policy path starting with "+f.prefix)
		}
	}
	p.paths("PodIPBlockPaths", t.PodIPBlockPaths, "/infra/ip-blocks/", "IP block")
	p.paths("FloatingIPPoolPaths", t.FloatingIPPoolPaths, "/infra/ip-pools/", "IP pool")
	if t.MaxL4LBServices < 0 {
		p.add("MaxL4LBServices", strconv.Itoa(t.MaxL4LBServices), "must be 0 (no limit) or more")
	}
	switch t.LBSize {
	case "", "SMALL", "MEDIUM", "LARGE", "XLARGE":
	default:
		p.add("LBSize", t.LBSize, "must be SMALL, MEDIUM, LARGE or XLARGE")
	}
	for _, port := range []struct {
		name string
		v    int
	}{{"APIPort", t.APIPort}, {"APIMemberPort", t.APIMemberPort}} {
		if port.v < 0 || port.v > 65535 {
			p.add(port.name, strconv.Itoa(port.v), "must be a TCP port")
		}
	}
	for i, m := range t.APIMembers {
		if _, err := netip.ParseAddr(m); err != nil {
			p.add(fmt.Sprintf("APIMembers[%d]", i), m, "is not an IP address")
		}
	}
	for _, s := range []struct {
		name string
		v    int
	}{{"NodeSubnetSize", t.NodeSubnetSize}, {"NamespaceSubnetSize", t.NamespaceSubnetSize}} {
		if s.v != 0 && (s.v < 4 || s.v&(s.v-1) != 0) {
			p.add(s.name, strconv.Itoa(s.v), "must be a power of two of at least 4")
		}
	}
	seen := map[string]bool{}
	for i, ns := range t.Namespaces {
		f := fmt.Sprintf("Namespaces[%d]", i)
		switch {
		case !dnsLabelRe.MatchString(ns):
			p.namespace(f, ns)
		case seen[ns]:
			p.add(f, ns, "is listed twice")
		}
		seen[ns] = true
	}
}

func (t Topology) apiPort() int         { return orDefault(t.APIPort, 8443) }
func (t Topology) memberPort() int      { return orDefault(t.APIMemberPort, t.apiPort()) }
func (t Topology) nodeSubnet() int      { return orDefault(t.NodeSubnetSize, 256) }
func (t Topology) nsSubnet() int        { return orDefault(t.NamespaceSubnetSize, 256) }
func (t Topology) lbSize() string       { return orDefaultS(t.LBSize, "SMALL") }
func (t Topology) prefix() string       { return "kf_" + t.ClusterID }
func (t Topology) tier1Path() string    { return "/infra/tier-1s/" + t.prefix() }
func (t Topology) poolPath() string     { return "/infra/ip-pools/" + t.prefix() }
func (t Topology) policyDomain() string { return "/infra/domains/default" }

// gatewayPath is where the segments attach and the SNAT rules live.
func (t Topology) gatewayPath() string {
	if t.SingleTier {
		return t.Tier0Path
	}
	return t.tier1Path()
}

// namespaces are the namespaces BuildTopology manages: none when
// NamespacesManagedElsewhere.
func (t Topology) namespaces() []string {
	if t.NamespacesManagedElsewhere {
		return nil
	}
	return t.Namespaces
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func orDefaultS(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Keys of the cluster's subnets (the node subnet's path; a namespace's
// subnet's path is the key and its block's id: blockSubnet), and ids of
// its addresses: an address's path depends on the floating pool it comes
// from.
func (t Topology) nsSubnetPath(ns string) string { return t.poolPath() + "/ip-subnets/ns_" + ns }
func (t Topology) nodeSubnetPath() string        { return t.poolPath() + "/ip-subnets/nodes" }
func (t Topology) nsSNATID(ns string) string     { return t.prefix() + "_ns_" + ns }
func (t Topology) snatID() string                { return t.prefix() + "_snat" }
func (t Topology) vipID() string                 { return t.prefix() + "_api" }

// intent is one desired object.
type intent struct {
	path  string
	rtype string
	obj   any // a model struct value
	ipam  bool
}

func (t Topology) tags(ns string) []model.Tag {
	tags := []model.Tag{{Scope: ptr(TagCluster), Tag: ptr(t.ClusterID)}}
	if ns != "" {
		tags = append(tags, model.Tag{Scope: ptr(TagNamespace), Tag: ptr(ns)})
	}
	return tags
}

// lbTags are the load balancer's tags: it carries the cluster's limit of
// LoadBalancer Services, for EnsureLoadBalancer.
func (t Topology) lbTags() []model.Tag {
	tags := t.tags("")
	if t.MaxL4LBServices > 0 {
		tags = append(tags, model.Tag{Scope: ptr(TagMaxL4LBServices), Tag: ptr(strconv.Itoa(t.MaxL4LBServices))})
	}
	return tags
}

// poolTags are the tags of the cluster's IP pool: it records the floating
// pools, in a stable order (reordering the list changes nothing), so that
// a teardown lists the addresses of those pools only. They are written
// with the pool, in the allocation stage.
func (t Topology) poolTags() []model.Tag {
	tags := t.tags("")
	for _, p := range slices.Sorted(slices.Values(t.FloatingIPPoolPaths)) {
		tags = append(tags, model.Tag{Scope: ptr(TagFloatingPool), Tag: ptr(p)})
	}
	return tags
}

// allocations are what the allocation stage makes: the cluster's pool
// with a subnet per network, and floating addresses.
func (t Topology) allocations() []allocation {
	pool := model.IpAddressPool{Id: ptr(t.prefix()), DisplayName: ptr(t.prefix()), Tags: t.poolTags()}
	out := []allocation{
		{key: t.poolPath(), object: "Topology", from: []string{""},
			sources: []intent{{t.poolPath(), "IpAddressPool", pool, true}}},
		blockSubnet("Topology", "NodeIPBlockPath", t.nodeSubnetPath(), []string{t.NodeIPBlockPath}, false, t.nodeSubnet(), t.tags("")),
		poolAddress("Topology", "FloatingIPPoolPaths", t.snatID(), t.FloatingIPPoolPaths, "", t.tags("")),
		poolAddress("Topology", "FloatingIPPoolPaths", t.vipID(), t.FloatingIPPoolPaths, "", t.tags("")),
	}
	for _, ns := range t.namespaces() {
		out = append(out, t.nsIPAM(ns)...)
	}
	return out
}

// configIntents are the rest of the topology, given the allocations. An
// allocation not known yet (a dry run before the first apply) leaves a
// placeholder the plan names.
func (t Topology) configIntents(a addresses) []intent {
	p := t.prefix()
	gw := t.gatewayPath()
	t1 := t.tier1Path()
	natRules := gw + "/nat/USER/nat-rules/"
	nodeCIDR := a.subnets[t.nodeSubnetPath()]
	nodesGroup := t.policyDomain() + "/groups/" + p + "_nodes"
	allow, drop := "ALLOW", "DROP"
	out := []intent{
		{t1, "Tier1", model.Tier1{Id: ptr(p), DisplayName: ptr(p), Tier0Path: ptr(t.Tier0Path),
			RouteAdvertisementTypes: []string{"TIER1_CONNECTED", "TIER1_NAT", "TIER1_LB_VIP", "TIER1_LB_SNAT"},
			Tags:                    t.tags("")}, false},
		{t1 + "/locale-services/default", "LocaleServices", model.LocaleServices{Id: ptr("default"),
			EdgeClusterPath: ptr(t.EdgeClusterPath), Tags: t.tags("")}, false},
		{"/infra/segments/" + p + "_nodes", "Segment", model.Segment{Id: ptr(p + "_nodes"), DisplayName: ptr(p + "_nodes"),
			ConnectivityPath: ptr(gw), TransportZonePath: ptr(t.TransportZonePath),
			Subnets: []model.SegmentSubnet{{GatewayAddress: ptr(gatewayCIDR(nodeCIDR))}}, Tags: t.tags("")}, false},
		{natRules + p + "_nodes_snat", "PolicyNatRule", model.PolicyNatRule{Id: ptr(p + "_nodes_snat"),
			Action: ptr("SNAT"), SourceNetwork: ptr(cidrString(nodeCIDR)), TranslatedNetwork: ptr(ipOrPending(a.ips[t.snatID()])),
			Enabled: ptr(true), SequenceNumber: ptr(int64(100)), Tags: t.tags("")}, false},
		{"/infra/lb-services/" + p, "LBService", model.LBService{Id: ptr(p), ConnectivityPath: ptr(t1),
			Size: ptr(t.lbSize()), Enabled: ptr(true), Tags: t.lbTags()}, false},
		{"/infra/lb-pools/" + p + "_api", "LBPool", model.LBPool{Id: ptr(p + "_api"),
			Members: members(t.APIMembers, t.memberPort()),
			//lint:ignore SA1019 the NSX load balancer is deprecated as a whole (for Avi) but it is what TKGI uses; its health monitors have no other field
			ActiveMonitorPaths: []string{"/infra/lb-monitor-profiles/default-tcp-lb-monitor"},
			Tags:               t.tags("")}, false},
		{"/infra/lb-virtual-servers/" + p + "_api", "LBVirtualServer", model.LBVirtualServer{Id: ptr(p + "_api"),
			IpAddress: ptr(ipOrPending(a.ips[t.vipID()])), Ports: []string{strconv.Itoa(t.apiPort())},
			DefaultPoolMemberPorts: []string{strconv.Itoa(t.memberPort())},
			PoolPath:               ptr("/infra/lb-pools/" + p + "_api"), LbServicePath: ptr("/infra/lb-services/" + p),
			ApplicationProfilePath: ptr("/infra/lb-app-profiles/default-tcp-lb-app-profile"), Enabled: ptr(true),
			Tags: t.tags("")}, false},
		{nodesGroup, "Group", model.Group{Id: ptr(p + "_nodes"), Expression: segmentExpression("/infra/segments/" + p + "_nodes"), Tags: t.tags("")}, false},
		{t.policyDomain() + "/security-policies/" + p, "SecurityPolicy", model.SecurityPolicy{Id: ptr(p),
			Category: ptr("Application"), SequenceNumber: ptr(int64(100)), Scope: []string{nodesGroup}, Tags: t.tags("")}, false},
		{t.policyDomain() + "/security-policies/" + p + "/rules/nodes", "Rule", model.Rule{Id: ptr("nodes"),
			Action: &allow, SourceGroups: []string{nodesGroup}, DestinationGroups: []string{nodesGroup},
			Services: []string{"ANY"}, SequenceNumber: ptr(int64(10)), Tags: t.tags("")}, false},
		{t.policyDomain() + "/security-policies/" + p + "/rules/api", "Rule", model.Rule{Id: ptr("api"),
			Action: &allow, SourceGroups: []string{"ANY"}, DestinationGroups: []string{nodesGroup},
			ServiceEntries: tcpPorts(t.memberPort()), Services: []string{},
			SequenceNumber: ptr(int64(20)), Tags: t.tags("")}, false},
	}
	if t.DefaultDeny {
		out = append(out, intent{t.policyDomain() + "/security-policies/" + p + "/rules/default-deny", "Rule", model.Rule{
			Id: ptr("default-deny"), Action: &drop, SourceGroups: []string{"ANY"}, DestinationGroups: []string{nodesGroup},
			Services: []string{"ANY"}, SequenceNumber: ptr(int64(1000)), Tags: t.tags("")}, false})
	}
	for _, ns := range t.namespaces() {
		out = append(out, t.nsConfig(ns, a)...)
	}
	return out
}

// nsIPAM is what one namespace allocates: its subnet, and its SNAT
// address unless its subnet is routable.
func (t Topology) nsIPAM(ns string) []allocation {
	out := []allocation{blockSubnet("Topology", "PodIPBlockPaths", t.nsSubnetPath(ns), t.PodIPBlockPaths, true, t.nsSubnet(), t.tags(ns))}
	if !t.PodRoutable {
		out = append(out, poolAddress("Topology", "FloatingIPPoolPaths", t.nsSNATID(ns), t.FloatingIPPoolPaths, "", t.tags(ns)))
	}
	return out
}

// nsConfig is the segment, SNAT rule (unless routable), group and DFW
// policy of a namespace.
func (t Topology) nsConfig(ns string, a addresses) []intent {
	p := t.prefix()
	gw := t.gatewayPath()
	natRules := gw + "/nat/USER/nat-rules/"
	nodesGroup := t.policyDomain() + "/groups/" + p + "_nodes"
	allow, drop := "ALLOW", "DROP"
	var out []intent
	id := p + "_ns_" + ns
	cidr := a.subnets[t.nsSubnetPath(ns)]
	group := t.policyDomain() + "/groups/" + id
	policy := t.policyDomain() + "/security-policies/" + id
	out = append(out, intent{"/infra/segments/" + id, "Segment", model.Segment{Id: ptr(id), DisplayName: ptr(id),
		ConnectivityPath: ptr(gw), TransportZonePath: ptr(t.TransportZonePath),
		Subnets: []model.SegmentSubnet{{GatewayAddress: ptr(gatewayCIDR(cidr))}}, Tags: t.tags(ns)}, false})
	if !t.PodRoutable {
		out = append(out, intent{natRules + id + "_snat", "PolicyNatRule", model.PolicyNatRule{Id: ptr(id + "_snat"),
			Action: ptr("SNAT"), SourceNetwork: ptr(cidrString(cidr)), TranslatedNetwork: ptr(ipOrPending(a.ips[t.nsSNATID(ns)])),
			Enabled: ptr(true), SequenceNumber: ptr(int64(200)), Tags: t.tags(ns)}, false})
	}
	out = append(out,
		intent{group, "Group", model.Group{Id: ptr(id), Expression: segmentExpression("/infra/segments/" + id), Tags: t.tags(ns)}, false},
		intent{policy, "SecurityPolicy", model.SecurityPolicy{Id: ptr(id), Category: ptr("Application"),
			SequenceNumber: ptr(int64(200)), Scope: []string{group}, Tags: t.tags(ns)}, false},
		intent{policy + "/rules/intra", "Rule", model.Rule{Id: ptr("intra"), Action: &allow,
			SourceGroups: []string{group}, DestinationGroups: []string{group}, Services: []string{"ANY"},
			SequenceNumber: ptr(int64(10)), Tags: t.tags(ns)}, false},
		intent{policy + "/rules/from-nodes", "Rule", model.Rule{Id: ptr("from-nodes"), Action: &allow,
			SourceGroups: []string{nodesGroup}, DestinationGroups: []string{group}, Services: []string{"ANY"},
			SequenceNumber: ptr(int64(20)), Tags: t.tags(ns)}, false},
	)
	if t.DefaultDeny {
		out = append(out, intent{policy + "/rules/default-deny", "Rule", model.Rule{Id: ptr("default-deny"), Action: &drop,
			SourceGroups: []string{"ANY"}, DestinationGroups: []string{group}, Services: []string{"ANY"},
			SequenceNumber: ptr(int64(1000)), Tags: t.tags(ns)}, false})
	}
	return out
}

// unallocated stands for an address or subnet NSX has not allocated yet; it
// only appears in a dry run.
const unallocated = "<allocated by NSX>"

func ipOrPending(ip string) string {
	if ip == "" {
		return unallocated
	}
	return ip
}

func cidrString(p netip.Prefix) string {
	if !p.IsValid() {
		return unallocated
	}
	return p.String()
}

// gatewayCIDR is the first address of p with p's length, as a segment's
// gateway_address: 172.24.0.1/24.
func gatewayCIDR(p netip.Prefix) string {
	if !p.IsValid() {
		return unallocated
	}
	return netip.PrefixFrom(p.Addr().Next(), p.Bits()).String()
}

// members are a pool's members; an empty list is sent as [] so that
// removing the last member reaches NSX.
func members(ips []string, port int) []model.LBPoolMember {
	out := []model.LBPoolMember{}
	for _, ip := range ips {
		out = append(out, model.LBPoolMember{IpAddress: ptr(ip), Port: ptr(strconv.Itoa(port)), DisplayName: ptr(ip)})
	}
	return out
}

// segmentExpression makes a group of the ports of a segment: membership
// NSX can apply DFW rules to (Applied-To), which an IP address group is
// not.
func segmentExpression(segment string) []*data.StructValue {
	e := model.PathExpression{ResourceType: "PathExpression", Id: ptr("segment"), Paths: []string{segment}}
	return []*data.StructValue{mustStruct(e, model.PathExpressionBindingType())}
}

func tcpPorts(port int) []*data.StructValue {
	e := model.L4PortSetServiceEntry{ResourceType: "L4PortSetServiceEntry", Id: ptr("tcp-" + strconv.Itoa(port)),
		L4Protocol: ptr("TCP"), DestinationPorts: []string{strconv.Itoa(port)}}
	return []*data.StructValue{mustStruct(e, model.L4PortSetServiceEntryBindingType())}
}

// mustStruct converts a model value the package builds itself; a failure
// is a bug in the package, not bad input.
func mustStruct(v any, bt bindings.BindingType) *data.StructValue {
	dv, errs := bindings.NewTypeConverter().ConvertToVapi(v, bt)
	if len(errs) > 0 {
		panic(fmt.Sprintf("nsxt: converting %T: %v", v, bindings.VAPIerrorsToError(errs)))
	}
	return dv.(*data.StructValue)
}

func ptr[T any](v T) *T { return &v }
