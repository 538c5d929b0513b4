package vspherecpi

import (
	"context"

	"go.uber.org/zap"
)

// NSXT is what the CPI asks of NSX-T's Policy API for the cloud_properties
// nsxt.ns_groups and nsxt.lb.server_pools, as the vSphere CPI does in its
// Policy API mode. WithNSXT wires one in. Package nsxt does not implement
// it yet; an implementation follows the vSphere CPI:
//
//   - AddVMToGroups: each group, found by display name in the domain
//     "default" (a name that matches none is an error naming it), gets a
//     Condition {member_type VirtualMachine, key Name, operator EQUALS,
//     value vmName}, ORed (a ConjunctionOperator with id
//     "conjunction-<vmName>") onto its expression; a group that has it
//     already is left alone; a write refused for a stale _revision is
//     read again and retried.
//   - RemoveVMFromGroups: that condition and its conjunction go from
//     every group of the domain "default" that has them.
//   - AddToServerPools: each load balancer pool (by id, /infra/lb-pools/<name>)
//     with a member_group (a dynamic pool) gets vmName into that group as
//     AddVMToGroups does; a static pool gets the member {ip_address: ip,
//     port} (no port: the client's).
//   - RemoveFromServerPools: every pool's members with that ip_address go.
type NSXT interface {
	AddVMToGroups(ctx context.Context, vmName string, groups []string) error
	RemoveVMFromGroups(ctx context.Context, vmName string) error
	AddToServerPools(ctx context.Context, vmName, ip string, pools []ServerPool) error
	RemoveFromServerPools(ctx context.Context, ip string) error
}

// ServerPool is one of nsxt.lb.server_pools: an NSX-T load balancer pool
// the VM joins, with the port its service listens on (0: the port the
// client connected to).
type ServerPool struct {
	Name string `json:"name"`
	Port int    `json:"port,omitempty"`
}

// An Option gives the CPI a collaborator.
type Option interface{ apply(*CPI) }

type optionFunc func(*CPI)

func (f optionFunc) apply(c *CPI) { f(c) }

// WithNSXT gives the CPI NSX-T, for the nsxt cloud_properties. Without
// it, a VM that asks for nsxt is refused (a CloudError naming the field).
func WithNSXT(n NSXT) Option { return optionFunc(func(c *CPI) { c.nsxt = n }) }

// WithLogger logs through l (zap.NewNop() by default).
func WithLogger(l *zap.Logger) Option { return optionFunc(func(c *CPI) { c.log = l }) }
