package cloudconfig

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// valid returns a small valid cloud config built in Go: two AZs, a
// manual network with a subnet in each, compilation in z1.
func valid() *CloudConfig {
	return &CloudConfig{
		AZs:          []AZ{{Name: "z1"}, {Name: "z2"}},
		VMTypes:      []VMType{{Name: "small"}, {Name: "large"}},
		VMExtensions: []VMExtension{{Name: "lb"}},
		DiskTypes:    []DiskType{{Name: "ssd", DiskSize: 10240}},
		Networks: []Network{{
			Name: "default",
			Subnets: []Subnet{
				{Range: "10.0.1.0/24", Gateway: "10.0.1.1", Reserved: []string{"10.0.1.2 - 10.0.1.9"}, Static: []string{"10.0.1.10 - 10.0.1.19"}, AZ: "z1"},
				{Range: "10.0.2.0/24", Gateway: "10.0.2.1", AZs: []string{"z2"}},
			},
		}},
		Compilation: &Compilation{Workers: 2, AZ: "z1", VMType: "large", Network: "default"},
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, valid().Validate())

	for _, tc := range []struct {
		name   string
		change func(c *CloudConfig)
		want   []string
	}{
		{"empty", func(c *CloudConfig) { *c = CloudConfig{} }, []string{
			"/networks: at least one network is required",
			"/compilation: is required",
		}},
		{"names", func(c *CloudConfig) {
			c.AZs = append(c.AZs, AZ{Name: "z1"}, AZ{})
			c.VMTypes = append(c.VMTypes, VMType{Name: "small"}, VMType{Name: " "})
			c.VMExtensions = append(c.VMExtensions, VMExtension{Name: "lb"}, VMExtension{})
			c.DiskTypes = append(c.DiskTypes, DiskType{Name: "ssd", DiskSize: 1}, DiskType{DiskSize: 1})
			c.Networks = append(c.Networks, Network{Name: "default", Type: Dynamic}, Network{Type: Dynamic})
		}, []string{
			"/azs/2/name: the AZ is defined more than once",
			"/azs/3/name: is required",
			"/vm_types/2/name: the VM type is defined more than once",
			"/vm_types/3/name: is required",
			"/vm_extensions/1/name: the VM extension is defined more than once",
			"/vm_extensions/2/name: is required",
			"/disk_types/1/name: the disk type is defined more than once",
			"/disk_types/2/name: is required",
			"/networks/1/name: the network is defined more than once",
			"/networks/2/name: is required",
		}},
		{"disk sizes", func(c *CloudConfig) {
			c.DiskTypes = append(c.DiskTypes, DiskType{Name: "none"}, DiskType{Name: "minus", DiskSize: -5})
		}, []string{
			"/disk_types/name=none/disk_size: is required (the size in MB)",
			"/disk_types/name=minus/disk_size: must be a positive number of MB",
		}},
		{"manual network keys", func(c *CloudConfig) {
			c.Networks[0].DNS = []string{"10.0.0.2"}
			c.Networks[0].CloudProperties = manifest.Map{}
			c.Networks = append(c.Networks, Network{Name: "bare", Type: Manual})
		}, []string{
			"/networks/name=default/dns: a manual network's dns goes on its subnets",
			"/networks/name=default/cloud_properties: a manual network's cloud_properties go on its subnets",
			"/networks/name=bare/subnets: a manual network needs at least one subnet",
		}},
		{"range and gateway required", func(c *CloudConfig) {
			c.Networks[0].Subnets[1] = Subnet{AZ: "z2"}
		}, []string{
			"/networks/name=default/subnets/1/range: is required (a CIDR)",
			"/networks/name=default/subnets/1/gateway: is required",
		}},
		{"gateway required with a range", func(c *CloudConfig) {
			c.Networks[0].Subnets[1].Gateway = ""
		}, []string{"/networks/name=default/subnets/1/gateway: is required"}},
		{"ranges", func(c *CloudConfig) {
			c.Networks[0].Subnets = []Subnet{
				{Range: "10.0.1.0", Gateway: "10.0.1.1", AZ: "z1"},
				{Range: "10.0.2.7/24", Gateway: "10.0.2.1", AZ: "z1"},
				{Range: "10.0.3.1/32", Gateway: "10.0.3.1", AZ: "z1"},
				{Range: "::ffff:10.0.4.0/120", Gateway: "10.0.4.1", AZ: "z1"},
			}
		}, []string{
			"/networks/name=default/subnets/0/range: is not a CIDR (10.0.1.0/24)",
			"/networks/name=default/subnets/1/range: has host bits set: the network is 10.0.2.0/24",
			"/networks/name=default/subnets/2/range: holds one address: a range needs at least two",
			"/networks/name=default/subnets/3/range: is an IPv4-mapped IPv6 CIDR: write it as IPv4",
		}},
		{"gateways", func(c *CloudConfig) {
			c.Networks[0].Subnets = []Subnet{
				{Range: "10.0.1.0/24", Gateway: "gw", AZ: "z1"},
				{Range: "10.0.2.0/24", Gateway: "10.0.3.1", AZ: "z1"},
				{Range: "10.0.3.0/24", Gateway: "10.0.3.0", AZ: "z1"},
				{Range: "10.0.4.0/24", Gateway: "10.0.4.255", AZ: "z1"},
				{Range: "fd00::/64", Gateway: "fd00::1", AZ: "z2"},
			}
		}, []string{
			"/networks/name=default/subnets/0/gateway: is not an IP address",
			"/networks/name=default/subnets/1/gateway: is not inside the range 10.0.2.0/24",
			"/networks/name=default/subnets/2/gateway: is the range's network address",
			"/networks/name=default/subnets/3/gateway: is the range's last (broadcast) address",
		}},
		{"dns, reserved and static entries", func(c *CloudConfig) {
			s := &c.Networks[0].Subnets[0]
			s.DNS = []string{"10.0.0.2", "ns1", "fe80::1%eth0"}
			s.Reserved = []string{"10.0.1.2-10.0.1.9", "10.0.1.9 - x", "10.0.1.0/33", "10.0.0.0/23", "10.0.1.20 - ::1", "10.0.1.30 - 10.0.1.29"}
			s.Static = []string{"10.0.1.10 - 10.0.1.19", "static", "10.0.2.5", "10.0.1.250 - 10.0.2.5"}
		}, []string{
			"/networks/name=default/subnets/0/dns/1: is not an IP address",
			"/networks/name=default/subnets/0/dns/2: is not an IP address",
			"/networks/name=default/subnets/0/reserved/1: is not a range of two addresses (a - b)",
			"/networks/name=default/subnets/0/reserved/2: is not an address, a range (a - b) or a CIDR",
			"/networks/name=default/subnets/0/reserved/3: is not inside the range 10.0.1.0/24",
			"/networks/name=default/subnets/0/reserved/4: mixes IPv4 and IPv6",
			"/networks/name=default/subnets/0/reserved/5: ends before it starts",
			"/networks/name=default/subnets/0/static/1: is not an address, a range (a - b) or a CIDR",
			"/networks/name=default/subnets/0/static/2: is not inside the range 10.0.1.0/24",
			"/networks/name=default/subnets/0/static/3: is not inside the range 10.0.1.0/24",
		}},
		{"static holds what is never assigned", func(c *CloudConfig) {
			s := &c.Networks[0].Subnets[0]
			s.Static = []string{"10.0.1.0", "10.0.1.1", "10.0.1.5", "10.0.1.8/29", "10.0.1.255", "10.0.1.16/28"}
		}, []string{
			"/networks/name=default/subnets/0/static/0: holds the network's first address 10.0.1.0, which BOSH never assigns",
			"/networks/name=default/subnets/0/static/1: holds the gateway, which BOSH never assigns",
			"/networks/name=default/subnets/0/static/2: holds reserved 10.0.1.2 - 10.0.1.9, which BOSH never assigns",
			"/networks/name=default/subnets/0/static/3: holds reserved 10.0.1.2 - 10.0.1.9, which BOSH never assigns",
			"/networks/name=default/subnets/0/static/4: holds the network's last address 10.0.1.255, which BOSH never assigns",
		}},
		{"static inside a long reserved range", func(c *CloudConfig) {
			s := &c.Networks[0].Subnets[0]
			s.Reserved = []string{"10.0.1.2 - 10.0.1.50", "10.0.1.20", "10.0.1.30 - 10.0.1.31"}
			s.Static = []string{"10.0.1.40", "10.0.1.60"}
		}, []string{
			"/networks/name=default/subnets/0/static/0: holds reserved 10.0.1.2 - 10.0.1.50, which BOSH never assigns",
		}},
		{"overlapping subnets", func(c *CloudConfig) {
			c.Networks[0].Subnets = append(c.Networks[0].Subnets,
				Subnet{Range: "10.0.1.128/25", Gateway: "10.0.1.129", AZ: "z2"},
				Subnet{Range: "10.0.0.0/16", Gateway: "10.0.0.1", AZ: "z2"},
				Subnet{Range: "fd00::/64", Gateway: "fd00::1", AZ: "z2"})
			c.Networks = append(c.Networks, Network{Name: "other", Subnets: []Subnet{{Range: "10.0.1.0/24", Gateway: "10.0.1.1"}}})
		}, []string{
			"/networks/name=default/subnets/2/range: overlaps subnet 0 (10.0.1.0/24) of this network",
			"/networks/name=default/subnets/3/range: overlaps subnet 0 (10.0.1.0/24) of this network",
		}},
		{"subnet AZs", func(c *CloudConfig) {
			c.Networks[0].Subnets[0].AZs = []string{"z1"}
			c.Networks[0].Subnets[1].AZs = []string{"z2", "z3", ""}
			c.Networks[0].Subnets = append(c.Networks[0].Subnets,
				Subnet{Range: "10.0.3.0/24", Gateway: "10.0.3.1", AZ: "z4"},
				Subnet{Range: "10.0.4.0/24", Gateway: "10.0.4.1", AZs: []string{}},
				Subnet{Range: "10.0.5.0/24", Gateway: "10.0.5.1"})
		}, []string{
			"/networks/name=default/subnets/0/azs: az and azs are both set: choose one",
			"/networks/name=default/subnets/1/azs/1: is not an AZ in azs",
			"/networks/name=default/subnets/2/az: is not an AZ in azs",
			"/networks/name=default/subnets/3/azs: names no AZ: name one, or leave azs out",
			"/networks/name=default/subnets/4: has no az while subnet 0 has: a network's subnets all have AZs or none has",
		}},
		{"dynamic network", func(c *CloudConfig) {
			c.Networks = append(c.Networks,
				Network{Name: "dhcp", Type: Dynamic, DNS: []string{"10.0.0.2", "x"}, CloudProperties: manifest.Map{"name": "pg"}},
				Network{Name: "dhcp-azs", Type: Dynamic, DNS: []string{"10.0.0.2"}, CloudProperties: manifest.Map{},
					Subnets: []Subnet{
						{AZ: "z1", DNS: []string{"y"}, CloudProperties: manifest.Map{"name": "pg-z1"}},
						{AZ: "z2", Range: "10.0.2.0/24", Gateway: "10.0.2.1", Reserved: []string{"10.0.2.2"}, Static: []string{"10.0.2.3"}},
					}})
		}, []string{
			"/networks/name=dhcp/dns/1: is not an IP address",
			"/networks/name=dhcp-azs/dns: with subnets, a dynamic network's dns goes on its subnets",
			"/networks/name=dhcp-azs/cloud_properties: with subnets, a dynamic network's cloud_properties go on its subnets",
			"/networks/name=dhcp-azs/subnets/0/dns/0: is not an IP address",
			"/networks/name=dhcp-azs/subnets/1/range: a dynamic network's subnets have no range: the IaaS assigns the addresses",
			"/networks/name=dhcp-azs/subnets/1/gateway: a dynamic network's subnets have no gateway: the IaaS assigns the addresses",
			"/networks/name=dhcp-azs/subnets/1/reserved: a dynamic network's subnets have no reserved: the IaaS assigns the addresses",
			"/networks/name=dhcp-azs/subnets/1/static: a dynamic network's subnets have no static: the IaaS assigns the addresses",
		}},
		{"vip network", func(c *CloudConfig) {
			c.Networks = append(c.Networks,
				Network{Name: "vip", Type: VIP, DNS: []string{"8.8.8.8"}, Subnets: []Subnet{
					{Static: []string{"203.0.113.10", "203.0.113.x"}, AZs: []string{"z1", "z9"}},
					{Range: "203.0.113.0/24", Gateway: "203.0.113.1", DNS: []string{"8.8.8.8"}, Reserved: []string{"203.0.113.2"}},
				}})
		}, []string{
			"/networks/name=vip/dns: a vip network has no dns",
			"/networks/name=vip/subnets/0/static/1: is not an address, a range (a - b) or a CIDR",
			"/networks/name=vip/subnets/1/range: a vip network's subnets have no range: only static addresses",
			"/networks/name=vip/subnets/1/gateway: a vip network's subnets have no gateway: only static addresses",
			"/networks/name=vip/subnets/1/dns: a vip network's subnets have no dns: only static addresses",
			"/networks/name=vip/subnets/1/reserved: a vip network's subnets have no reserved: only static addresses",
			"/networks/name=vip/subnets/0/azs/1: is not an AZ in azs",
			"/networks/name=vip/subnets/1: has no az while subnet 0 has: a network's subnets all have AZs or none has",
		}},
		{"network type", func(c *CloudConfig) { c.Networks[0].Type = "bridged" }, []string{
			"/networks/name=default/type: must be manual, dynamic or vip",
		}},
		{"compilation workers and references", func(c *CloudConfig) {
			c.Compilation = &Compilation{AZ: "z3", VMType: "huge", Network: "nowhere", VMExtensions: []string{"lb", "gpu"}}
		}, []string{
			"/compilation/workers: is required (at least 1)",
			"/compilation/az: is not an AZ in azs",
			"/compilation/network: is not a network in networks",
			"/compilation/vm_type: is not a VM type in vm_types",
			"/compilation/vm_extensions/1: is not a VM extension in vm_extensions",
		}},
		{"compilation sizing", func(c *CloudConfig) {
			c.Compilation.Workers = -1
			c.Compilation.Network = ""
			c.Compilation.VMResources = &manifest.VMResources{CPU: 2, RAM: -1}
		}, []string{
			"/compilation/workers: must be at least 1",
			"/compilation/network: is required",
			"/compilation/vm_resources: vm_type and vm_resources are both set: choose one",
			"/compilation/vm_resources/ram: must be a positive integer",
			"/compilation/vm_resources/ephemeral_disk_size: is required (a positive integer)",
		}},
		{"compilation cloud_properties and extensions", func(c *CloudConfig) {
			c.Compilation.CloudProperties = manifest.Map{"cpu": 8}
			c.Compilation = &Compilation{Workers: 1, AZ: "z1", Network: "default", VMExtensions: []string{"lb"}}
		}, []string{
			"/compilation/vm_extensions/0: VM extensions need a vm_type",
		}},
		{"compilation cloud_properties with a vm_type", func(c *CloudConfig) {
			c.Compilation.CloudProperties = manifest.Map{"cpu": 8}
		}, []string{
			"/compilation/cloud_properties: with a vm_type, the VM's cloud_properties come from the VM type",
		}},
		{"compilation az on the network", func(c *CloudConfig) {
			c.Networks = append(c.Networks,
				Network{Name: "flat", Subnets: []Subnet{{Range: "10.1.0.0/24", Gateway: "10.1.0.1"}}},
				Network{Name: "elastic", Type: VIP})
			c.AZs = append(c.AZs, AZ{Name: "z3"})
			c.Compilation.AZ = "z3"
		}, []string{
			"/compilation/az: network default has no subnet in this AZ",
		}},
		{"compilation az required", func(c *CloudConfig) { c.Compilation.AZ = "" }, []string{
			"/compilation/az: is required: network default has its subnets in azs z1, z2",
		}},
		{"compilation az on a network without AZs", func(c *CloudConfig) {
			c.Networks = append(c.Networks, Network{Name: "flat", Subnets: []Subnet{{Range: "10.1.0.0/24", Gateway: "10.1.0.1"}}})
			c.Compilation.Network = "flat"
		}, []string{
			"/compilation/az: network flat has no subnet with azs: leave az out, or give its subnets azs",
		}},
		{"compilation on a vip network", func(c *CloudConfig) {
			c.Networks = append(c.Networks, Network{Name: "elastic", Type: VIP})
			c.Compilation.Network = "elastic"
		}, []string{
			"/compilation/network: is a vip network: compilation VMs need a manual or dynamic one",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(c)
			err := c.Validate()
			for _, p := range problems(t, err) {
				assert.Zero(t, p.Line, "Validate has no lines")
			}
			assert.Equal(t, tc.want, reasons(t, err))
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *CloudConfig)
	}{
		{"no AZs anywhere", func(c *CloudConfig) {
			c.AZs = nil
			c.Networks[0].Subnets = []Subnet{{Range: "10.0.1.0/24", Gateway: "10.0.1.1"}}
			c.Compilation.AZ = ""
		}},
		{"IPv6", func(c *CloudConfig) {
			c.Networks[0].Subnets[1] = Subnet{Range: "fd00:0:0:2::/64", Gateway: "fd00:0:0:2::1", Reserved: []string{"fd00:0:0:2::2 - fd00:0:0:2::ff"},
				Static: []string{"fd00:0:0:2::100/120"}, AZ: "z2"}
		}},
		{"a subnet in two AZs", func(c *CloudConfig) {
			c.Networks[0].Subnets[1].AZs = []string{"z1", "z2"}
		}},
		{"dynamic compilation network", func(c *CloudConfig) {
			c.Networks = append(c.Networks, Network{Name: "dhcp", Type: Dynamic, Subnets: []Subnet{{AZ: "z1"}, {AZ: "z2"}}})
			c.Compilation.Network = "dhcp"
		}},
		{"compilation by vm_resources", func(c *CloudConfig) {
			c.Compilation.VMType = ""
			c.Compilation.VMResources = &manifest.VMResources{CPU: 4, RAM: 8192, EphemeralDiskSize: 20480}
		}},
		{"compilation by cloud_properties", func(c *CloudConfig) {
			c.Compilation.VMType = ""
			c.Compilation.CloudProperties = manifest.Map{"cpu": 4, "ram": 8192, "disk": 20480}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(c)
			assert.NoError(t, c.Validate())
		})
	}
}
