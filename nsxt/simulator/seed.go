package simulator

import (
	"encoding/json"
	"fmt"
)

// nsxOwned are the seeded kinds NSX creates by itself: the default domain,
// the default load-balancer profiles and a tier-0's NAT sections.
var nsxOwned = map[string]bool{"Domain": true, "LBFastTcpProfile": true, "LBTcpMonitorProfile": true, "PolicyNat": true}

// seed builds the store an NSX manager has before kubefoundry touches it.
func seed(inv Inventory) (*store, error) {
	st := &store{objs: map[string]*object{}, user: "system", now: nowMillis}
	root := &object{kind: kinds["Infra"], path: "/infra", body: map[string]any{
		"id": "infra", "resource_type": "Infra", "path": "/infra", "_revision": json.Number("0"),
		"_create_user": "system",
	}, realized: realization{state: "REALIZED"}}
	st.objs["/infra"] = root
	var err error
	add := func(parent, rt, id string, body map[string]any) {
		if err != nil {
			return
		}
		p := st.objs[parent]
		if p == nil {
			err = fmt.Errorf("simulator seed: no parent %s", parent)
			return
		}
		k := kinds[rt]
		body, cerr := canonical(k, body)
		if cerr != nil {
			err = fmt.Errorf("simulator seed %s %s: %w", rt, id, cerr)
			return
		}
		o := st.system(p, k, id, body)
		// What NSX makes itself stays NSX's: a client cannot delete it.
		// The rest stands for what the platform team configured: a
		// client may delete it, and it is not deleted with its parent.
		o.system = nsxOwned[rt]
		o.body["_system_owned"] = o.system || k.wrapper == ""
		o.body["_create_user"] = "system"
		if ipErr := st.ipam(o, nil); ipErr != nil {
			err = ipErr
		}
	}
	ep := "/infra/sites/default/enforcement-points/default"
	add("/infra", "Site", "default", map[string]any{})
	add("/infra/sites/default", "EnforcementPoint", "default", map[string]any{})
	add(ep, "PolicyEdgeCluster", inv.EdgeCluster, map[string]any{"member_node_type": "EDGE_NODE"})
	add(ep, "PolicyTransportZone", inv.TransportZone, map[string]any{"tz_type": "OVERLAY_STANDARD"})
	add("/infra", "Tier0", inv.Tier0, map[string]any{"ha_mode": "ACTIVE_STANDBY"})
	add("/infra/tier-0s/"+inv.Tier0, "LocaleServices", "default", map[string]any{"edge_cluster_path": inv.EdgeClusterPath()})
	for _, id := range []string{"USER", "DEFAULT", "INTERNAL"} {
		add("/infra/tier-0s/"+inv.Tier0, "PolicyNat", id, map[string]any{"nat_type": id})
	}
	add("/infra", "Domain", "default", map[string]any{})
	add("/infra", "IpAddressBlock", inv.NodeBlock.ID, map[string]any{"cidr": inv.NodeBlock.CIDR})
	for _, b := range append([]Block{inv.PodBlock}, inv.MorePodBlocks...) {
		add("/infra", "IpAddressBlock", b.ID, map[string]any{"cidr": b.CIDR})
	}
	pools := append([]Pool{{inv.FloatingPool, inv.FloatingCIDR, inv.FloatingRange}}, inv.MoreFloatingPools...)
	for _, p := range pools {
		add("/infra", "IpAddressPool", p.ID, map[string]any{})
		add("/infra/ip-pools/"+p.ID, "IpAddressPoolStaticSubnet", "floating", map[string]any{
			"resource_type": "IpAddressPoolStaticSubnet", "cidr": p.CIDR,
			"allocation_ranges": []any{map[string]any{"start": p.Range[0], "end": p.Range[1]}},
		})
	}
	add("/infra", "LBFastTcpProfile", "default-tcp-lb-app-profile", map[string]any{"resource_type": "LBFastTcpProfile"})
	add("/infra", "LBTcpMonitorProfile", "default-tcp-lb-monitor", map[string]any{"resource_type": "LBTcpMonitorProfile", "interval": json.Number("5"), "timeout": json.Number("15")})
	if err != nil {
		return nil, err
	}
	st.user = ""
	return st, nil
}
