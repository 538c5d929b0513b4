package vspherecpi

import (
	"context"

	"github.com/kubefoundry/kubefoundry/nsxt"
)

// NSXTPolicy is the NSXT of an NSX-T Policy API client, for WithNSXT:
//
//	cpi, err := vspherecpi.New(vs, vols, cfg, vspherecpi.WithNSXT(vspherecpi.NSXTPolicy(nsxClient)))
//
// Groups are found in the domain "default" by display name, or else by
// id; server pools under /infra/lb-pools by display name, or else by id
// (see nsxt.Client.AddVMToGroups and AddPoolMembers for what each call
// writes). A name that matches nothing fails the call, naming it, before
// anything is written. NSX takes at most 5 criteria in a group, so a
// group that already has them refuses one more VM.
func NSXTPolicy(c *nsxt.Client) NSXT { return nsxtPolicy{c} }

type nsxtPolicy struct{ c *nsxt.Client }

func (n nsxtPolicy) AddVMToGroups(ctx context.Context, vmName string, groups []string) error {
	return n.c.AddVMToGroups(ctx, vmName, groups)
}

func (n nsxtPolicy) RemoveVMFromGroups(ctx context.Context, vmName string) error {
	return n.c.RemoveVMFromGroups(ctx, vmName)
}

func (n nsxtPolicy) AddToServerPools(ctx context.Context, vmName, ip string, pools []ServerPool) error {
	pp := make([]nsxt.PoolPort, len(pools))
	for i, p := range pools {
		pp[i] = nsxt.PoolPort{Pool: p.Name, Port: p.Port}
	}
	return n.c.AddPoolMembers(ctx, vmName, ip, pp)
}

func (n nsxtPolicy) RemoveFromServerPools(ctx context.Context, ip string) error {
	return n.c.RemovePoolMembers(ctx, ip)
}
