package simulator

import (
	"strings"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/bindings"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
)

// kind is one Policy API object type the simulator serves: its binding in
// the SDK's model package, the collection it lives in under its parent, and
// the parents it may have.
type kind struct {
	resourceType string
	binding      func() bindings.BindingType
	collection   string   // path segment under the parent: "tier-1s"
	parents      []string // resource types of allowed parents
	wrapper      string   // Child* wrapper of the hierarchical API
	realizedType string   // entity_type reported in realized state
}

var kinds = map[string]*kind{}

// wrappers maps a Child* wrapper to the resource types it may carry.
var wrappers = map[string][]string{}

func register(k *kind) {
	kinds[k.resourceType] = k
	if k.wrapper != "" {
		wrappers[k.wrapper] = append(wrappers[k.wrapper], k.resourceType)
	}
}

func init() {
	for _, k := range []*kind{
		{"Infra", model.InfraBindingType, "", nil, "", ""},
		{"Tier0", model.Tier0BindingType, "tier-0s", []string{"Infra"}, "ChildTier0", "RealizedLogicalRouter"},
		{"Tier1", model.Tier1BindingType, "tier-1s", []string{"Infra"}, "ChildTier1", "RealizedLogicalRouter"},
		{"LocaleServices", model.LocaleServicesBindingType, "locale-services", []string{"Tier0", "Tier1"}, "ChildLocaleServices", "RealizedLogicalRouterLocaleServices"},
		{"Segment", model.SegmentBindingType, "segments", []string{"Infra", "Tier1"}, "ChildSegment", "RealizedLogicalSwitch"},
		// A segment's ports: what a CNI (NCP, antrea-nsx) or vCenter makes
		// for each pod or VM NIC attached to it.
		{"SegmentPort", model.SegmentPortBindingType, "ports", []string{"Segment"}, "ChildSegmentPort", "RealizedLogicalPort"},
		{"PolicyNat", model.PolicyNatBindingType, "nat", []string{"Tier0", "Tier1"}, "ChildPolicyNat", "RealizedNatSection"},
		{"PolicyNatRule", model.PolicyNatRuleBindingType, "nat-rules", []string{"PolicyNat"}, "ChildPolicyNatRule", "RealizedNatRule"},
		{"LBService", model.LBServiceBindingType, "lb-services", []string{"Infra"}, "ChildLBService", "RealizedLoadBalancerService"},
		{"LBPool", model.LBPoolBindingType, "lb-pools", []string{"Infra"}, "ChildLBPool", "RealizedLoadBalancerPool"},
		{"LBVirtualServer", model.LBVirtualServerBindingType, "lb-virtual-servers", []string{"Infra"}, "ChildLBVirtualServer", "RealizedLoadBalancerVirtualServer"},
		{"LBTcpMonitorProfile", model.LBTcpMonitorProfileBindingType, "lb-monitor-profiles", []string{"Infra"}, "ChildLBMonitorProfile", "RealizedLoadBalancerMonitor"},
		{"LBHttpMonitorProfile", model.LBHttpMonitorProfileBindingType, "lb-monitor-profiles", []string{"Infra"}, "ChildLBMonitorProfile", "RealizedLoadBalancerMonitor"},
		{"LBHttpsMonitorProfile", model.LBHttpsMonitorProfileBindingType, "lb-monitor-profiles", []string{"Infra"}, "ChildLBMonitorProfile", "RealizedLoadBalancerMonitor"},
		{"LBFastTcpProfile", model.LBFastTcpProfileBindingType, "lb-app-profiles", []string{"Infra"}, "ChildLBAppProfile", "RealizedLoadBalancerApplicationProfile"},
		{"Domain", model.DomainBindingType, "domains", []string{"Infra"}, "ChildDomain", "RealizedDomain"},
		{"Group", model.GroupBindingType, "groups", []string{"Domain"}, "ChildGroup", "RealizedGroup"},
		{"SecurityPolicy", model.SecurityPolicyBindingType, "security-policies", []string{"Domain"}, "ChildSecurityPolicy", "RealizedFirewallSection"},
		{"Rule", model.RuleBindingType, "rules", []string{"SecurityPolicy"}, "ChildRule", "RealizedFirewallRule"},
		{"IpAddressBlock", model.IpAddressBlockBindingType, "ip-blocks", []string{"Infra"}, "ChildIpAddressBlock", "IpBlock"},
		{"IpAddressPool", model.IpAddressPoolBindingType, "ip-pools", []string{"Infra"}, "ChildIpAddressPool", "IpPool"},
		{"IpAddressPoolBlockSubnet", model.IpAddressPoolBlockSubnetBindingType, "ip-subnets", []string{"IpAddressPool"}, "ChildIpAddressPoolSubnet", "IpBlockSubnet"},
		{"IpAddressPoolStaticSubnet", model.IpAddressPoolStaticSubnetBindingType, "ip-subnets", []string{"IpAddressPool"}, "ChildIpAddressPoolSubnet", "IpPoolStaticSubnet"},
		{"IpAddressAllocation", model.IpAddressAllocationBindingType, "ip-allocations", []string{"IpAddressPool"}, "ChildIpAddressAllocation", "IpAllocation"},
		// Read-only inventory under the default enforcement point, seeded by
		// the simulator as NSX reports it.
		{"Site", model.SiteBindingType, "sites", []string{"Infra"}, "", ""},
		{"EnforcementPoint", model.EnforcementPointBindingType, "enforcement-points", []string{"Site"}, "", ""},
		{"PolicyEdgeCluster", model.PolicyEdgeClusterBindingType, "edge-clusters", []string{"EnforcementPoint"}, "", ""},
		{"PolicyTransportZone", model.PolicyTransportZoneBindingType, "transport-zones", []string{"EnforcementPoint"}, "", ""},
	} {
		register(k)
	}
}

// cascades are the collections NSX deletes together with their parent,
// which a delete of the parent does not refuse: a security policy goes
// with its rules ("Deletes the security policy along with all the rules",
// DELETE /infra/domains/{domain}/security-policies/{policy}; the same in a
// hierarchical PATCH marking it marked_for_delete). Any other parent is
// refused while it has children (a tier-1 with locale services, a segment
// with ports), as NSX refuses it.
var cascades = map[string][]string{"SecurityPolicy": {"rules"}}

// kindFor returns the kind of an object of resourceType stored in
// collection under a parent of parentType, or nil.
func kindFor(parentType, collection, resourceType string) *kind {
	for _, k := range kinds {
		if k.collection != collection || !k.hasParent(parentType) {
			continue
		}
		if resourceType == "" || resourceType == k.resourceType {
			return k
		}
	}
	return nil
}

// collectionKinds reports whether collection names a collection under a
// parent of parentType.
func collectionKinds(parentType, collection string) bool {
	return kindFor(parentType, collection, "") != nil
}

func (k *kind) hasParent(t string) bool {
	for _, p := range k.parents {
		if p == t {
			return true
		}
	}
	return false
}

// childKey is the field of a Child* wrapper that holds the object:
// "ChildTier1" carries it as "Tier1".
func childKey(wrapper string) string { return strings.TrimPrefix(wrapper, "Child") }
