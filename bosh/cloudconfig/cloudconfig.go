package cloudconfig

import "github.com/kubefoundry/kubefoundry/bosh/manifest"

// CloudConfig is a BOSH cloud config: the IaaS side of every deployment
// on a director. Deployment manifests name its AZs, VM types, VM
// extensions, disk types and networks; the director compiles packages as
// its compilation block says. The fields are in the order BOSH documents
// the keys.
type CloudConfig struct {
	AZs          []AZ          `json:"azs,omitempty" yaml:"azs,omitempty"`
	VMTypes      []VMType      `json:"vm_types,omitempty" yaml:"vm_types,omitempty"`
	VMExtensions []VMExtension `json:"vm_extensions,omitempty" yaml:"vm_extensions,omitempty"`
	DiskTypes    []DiskType    `json:"disk_types,omitempty" yaml:"disk_types,omitempty"`
	Networks     []Network     `json:"networks" yaml:"networks"`
	Compilation  *Compilation  `json:"compilation,omitempty" yaml:"compilation,omitempty"`
}

// AZ is an availability zone. On vSphere its cloud_properties name the
// datacenter and the clusters (and resource pools) its VMs go to.
type AZ struct {
	Name string `json:"name" yaml:"name"`
	// CPI names the CPI (from the director's CPI config) that serves
	// this AZ, when the director has several.
	CPI             string       `json:"cpi,omitempty" yaml:"cpi,omitempty"`
	CloudProperties manifest.Map `json:"cloud_properties,omitzero" yaml:"cloud_properties,omitempty"`
}

// VMType is a named VM size; on vSphere cloud_properties holds cpu, ram
// and disk (MB).
type VMType struct {
	Name            string       `json:"name" yaml:"name"`
	CloudProperties manifest.Map `json:"cloud_properties,omitzero" yaml:"cloud_properties,omitempty"`
}

// VMExtension is a named set of cloud_properties an instance group adds
// to its VMs (a load balancer pool, a DRS rule, anything IaaS-specific).
type VMExtension struct {
	Name            string       `json:"name" yaml:"name"`
	CloudProperties manifest.Map `json:"cloud_properties,omitzero" yaml:"cloud_properties,omitempty"`
}

// DiskType is a named persistent disk size and kind.
type DiskType struct {
	Name string `json:"name" yaml:"name"`
	// DiskSize is the size in MB, a positive integer.
	DiskSize        int          `json:"disk_size" yaml:"disk_size"`
	CloudProperties manifest.Map `json:"cloud_properties,omitzero" yaml:"cloud_properties,omitempty"`
}

// NetworkType is how a network gives out addresses.
type NetworkType string

// The network types BOSH knows; the empty NetworkType is Manual.
const (
	// Manual: the director assigns each instance an address from the
	// subnets' ranges (static ones from the static lists).
	Manual NetworkType = "manual"
	// Dynamic: the IaaS assigns addresses (DHCP); BOSH does not.
	Dynamic NetworkType = "dynamic"
	// VIP: addresses not backed by a NIC (elastic or floating IPs), from
	// the manifest's static_ips, or from the subnets' static lists.
	VIP NetworkType = "vip"
)

// Network is one entry of networks.
type Network struct {
	Name string      `json:"name" yaml:"name"`
	Type NetworkType `json:"type,omitempty" yaml:"type,omitempty"`
	// Subnets are required on a manual network and optional on dynamic
	// and vip ones.
	Subnets []Subnet `json:"subnets,omitempty" yaml:"subnets,omitempty"`
	// DNS is a dynamic network's DNS servers when it has no subnets.
	DNS []string `json:"dns,omitempty" yaml:"dns,omitempty"`
	// CloudProperties belong to a vip network, or to a dynamic network
	// without subnets.
	CloudProperties manifest.Map `json:"cloud_properties,omitzero" yaml:"cloud_properties,omitempty"`
}

// Subnet is one subnet of a network. A manual network's subnets have a
// Range and a Gateway; a dynamic network's only DNS, AZs and
// CloudProperties; a vip network's only AZs, Static and CloudProperties.
type Subnet struct {
	// Range is the subnet as a CIDR (10.0.1.0/24).
	Range   string   `json:"range,omitempty" yaml:"range,omitempty"`
	Gateway string   `json:"gateway,omitempty" yaml:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty" yaml:"dns,omitempty"`
	// Reserved lists what the director never assigns: addresses, ranges
	// ("10.0.1.2 - 10.0.1.9") and CIDRs.
	Reserved []string `json:"reserved,omitempty" yaml:"reserved,omitempty"`
	// Static lists, in the same forms, the addresses instance groups may
	// ask for as static_ips; the director assigns them to no one else.
	Static []string `json:"static,omitempty" yaml:"static,omitempty"`
	// AZ and AZs: at most one is set. A network's subnets all have AZs
	// or none has.
	AZ              string       `json:"az,omitempty" yaml:"az,omitempty"`
	AZs             []string     `json:"azs,omitempty" yaml:"azs,omitempty"`
	CloudProperties manifest.Map `json:"cloud_properties,omitzero" yaml:"cloud_properties,omitempty"`
}

// Zones returns the AZs the subnet serves: AZs, or AZ, or none.
func (s *Subnet) Zones() []string {
	if s.AZ != "" {
		return []string{s.AZ}
	}
	return s.AZs
}

// Compilation says how the director compiles packages.
type Compilation struct {
	// Workers is the most compilation VMs at once, at least 1.
	Workers int    `json:"workers" yaml:"workers"`
	AZ      string `json:"az,omitempty" yaml:"az,omitempty"`
	// VMType, VMResources or CloudProperties size the VMs: VMType and
	// VMResources are exclusive, and CloudProperties go without VMType.
	VMType      string                `json:"vm_type,omitempty" yaml:"vm_type,omitempty"`
	VMResources *manifest.VMResources `json:"vm_resources,omitempty" yaml:"vm_resources,omitempty"`
	// VMExtensions need a VMType.
	VMExtensions    []string     `json:"vm_extensions,omitempty" yaml:"vm_extensions,omitempty"`
	CloudProperties manifest.Map `json:"cloud_properties,omitzero" yaml:"cloud_properties,omitempty"`
	Network         string       `json:"network" yaml:"network"`
	// ReuseCompilationVMs keeps a compilation VM for the next package.
	ReuseCompilationVMs bool `json:"reuse_compilation_vms,omitempty" yaml:"reuse_compilation_vms,omitempty"`
	// OrphanWorkers lets the director delete compilation VMs after the
	// deploy rather than during it.
	OrphanWorkers bool `json:"orphan_workers,omitempty" yaml:"orphan_workers,omitempty"`
	// Env is the agent's env, as an instance group's.
	Env manifest.Map `json:"env,omitzero" yaml:"env,omitempty"`
}

// AZ returns the AZ of that name, or nil.
func (c *CloudConfig) AZ(name string) *AZ {
	return find(c.AZs, name, func(a *AZ) string { return a.Name })
}

// VMType returns the VM type of that name, or nil.
func (c *CloudConfig) VMType(name string) *VMType {
	return find(c.VMTypes, name, func(v *VMType) string { return v.Name })
}

// VMExtension returns the VM extension of that name, or nil.
func (c *CloudConfig) VMExtension(name string) *VMExtension {
	return find(c.VMExtensions, name, func(v *VMExtension) string { return v.Name })
}

// DiskType returns the disk type of that name, or nil.
func (c *CloudConfig) DiskType(name string) *DiskType {
	return find(c.DiskTypes, name, func(v *DiskType) string { return v.Name })
}

// Network returns the network of that name, or nil.
func (c *CloudConfig) Network(name string) *Network {
	return find(c.Networks, name, func(n *Network) string { return n.Name })
}

// find returns the first element of s named name, or nil.
func find[T any](s []T, name string, nameOf func(*T) string) *T {
	for i := range s {
		if nameOf(&s[i]) == name {
			return &s[i]
		}
	}
	return nil
}

// kindOf is the network's type, Manual when it is not set.
func (n *Network) kindOf() NetworkType {
	if n.Type == "" {
		return Manual
	}
	return n.Type
}
