package cloudconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

// small is a cloud config of small networks, for exhaustion, spilling,
// IPv6, dynamic and vip networks.
const small = `azs: [{name: z1}, {name: z2}, {name: z4}]
networks:
- name: tiny
  subnets:
  - {range: 10.5.0.0/29, gateway: 10.5.0.1, reserved: [10.5.0.2 - 10.5.0.3], az: z1}
- name: spill
  subnets:
  - {range: 10.6.0.0/29, gateway: 10.6.0.1, azs: [z1, z2]}
  - {range: 10.6.1.0/29, gateway: 10.6.1.1, az: z1}
- name: v6
  subnets:
  - {range: "fd00::/120", gateway: "fd00::1", reserved: ["fd00::2 - fd00::9"], static: ["fd00::f0/125"], az: z1}
- name: flat
  subnets:
  - {range: 10.7.0.0/24, gateway: 10.7.0.1}
- name: shared
  subnets:
  - {range: 10.8.0.0/24, gateway: 10.8.0.1, azs: [z1, z2, z4], static: [10.8.0.10 - 10.8.0.14]}
- name: dhcp
  type: dynamic
  subnets: [{az: z1, cloud_properties: {name: pg-z1}}, {az: z2, cloud_properties: {name: pg-z2}}]
- name: elastic
  type: vip
- name: floating
  type: vip
  subnets:
  - {azs: [z1], static: [203.0.113.10 - 203.0.113.12]}
  - {azs: [z1, z2], static: [203.0.113.20]}
compilation: {workers: 1, az: z1, network: tiny}
`

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// placed lists instances as "id az".
func placed(spec ...string) []Instance {
	var out []Instance
	for _, s := range spec {
		f := append(strings.Fields(s), "") // "" is an instance without an ID
		in := Instance{ID: f[0]}
		if len(f) > 2 && f[1] != "-" {
			in.AZ = f[1]
		}
		if len(f) > 3 {
			in.IP = ip(f[2])
		}
		out = append(out, in)
	}
	return out
}

// show lists addresses as "id az ip [static] subnet-index".
func show(t *testing.T, c *CloudConfig, network string, addrs []Address) []string {
	t.Helper()
	var out []string
	for _, a := range addrs {
		s := a.ID + " " + a.AZ + " "
		if a.IP.IsValid() {
			s += a.IP.String()
		} else {
			s += "-"
		}
		if a.Static {
			s += " static"
		}
		sub := "-"
		for i := range c.Network(network).Subnets {
			if a.Subnet == &c.Network(network).Subnets[i] {
				sub = fmt.Sprint(i)
			}
		}
		out = append(out, s+" "+sub)
	}
	return out
}

func TestAllocate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cloud string // "" for testdata/vsphere.yml
		req   Request
		want  []string // "id az ip [static] subnet", or problems "field: reason"
		// exhausted is the ExhaustedError's message, when one is expected.
		exhausted string
	}{
		{name: "dynamic: the lowest free address of each instance's AZ",
			req: Request{Network: "infrastructure", AZs: []string{"z1", "z2", "z3"},
				Instances: placed("w0 z1", "w1 z2", "w2 z3", "w3 z3", "w4 z1", "w5 z3", "w6 z3", "w7 z3", "w8 z3", "w9 z3")},
			want: []string{"w0 z1 10.0.1.20 0", "w1 z2 10.0.2.20 1", "w2 z3 10.0.3.8 2", "w3 z3 10.0.3.9 2", "w4 z1 10.0.1.21 0",
				"w5 z3 10.0.3.12 2", "w6 z3 10.0.3.13 2", "w7 z3 10.0.3.14 2", "w8 z3 10.0.3.15 2", "w9 z3 10.0.3.20 2"}},
		{name: "dynamic: instances keep their addresses, held before new ones are given",
			req: Request{Network: "infrastructure", AZs: []string{"z1"},
				Instances: placed("w0 z1 10.0.1.57", "w1 z1", "w2 z1 10.0.1.20", "w3 z1")},
			want: []string{"w0 z1 10.0.1.57 0", "w1 z1 10.0.1.21 0", "w2 z1 10.0.1.20 0", "w3 z1 10.0.1.22 0"}},
		{name: "dynamic: an address that may no longer be kept is replaced",
			req: Request{Network: "infrastructure", AZs: []string{"z1", "z2"},
				Instances: placed(
					"reserved z1 10.0.1.5",    // now reserved
					"moved z2 10.0.1.30",      // its AZ changed
					"static z1 10.0.1.12",     // in the static list
					"taken z1 10.0.1.40",      // held by another deployment
					"gone z1 10.9.9.9",        // in no subnet
					"first z1 10.0.1.60",      // keeps it
					"second z1 10.0.1.60",     // the same address: the first keeps it
					"gateway z1 10.0.1.1",     // the gateway
					"broadcast z1 10.0.1.255", // the last address
				),
				Taken: map[netip.Addr]string{ip("::ffff:10.0.1.40"): "other/0"}}, // written IPv4-mapped
			want: []string{"reserved z1 10.0.1.20 0", "moved z2 10.0.2.20 1", "static z1 10.0.1.21 0", "taken z1 10.0.1.22 0",
				"gone z1 10.0.1.23 0", "first z1 10.0.1.60 0", "second z1 10.0.1.24 0", "gateway z1 10.0.1.25 0", "broadcast z1 10.0.1.26 0"}},
		{name: "dynamic: taken addresses are skipped, an instance's own are not",
			req: Request{Network: "infrastructure", AZs: []string{"z1", "z2"},
				Instances: placed("w0 z1", "w1 z1 10.0.1.21", "w2 z1", "w3 z2 10.0.1.23"),
				Taken: map[netip.Addr]string{ip("10.0.1.20"): "api/0", ip("10.0.1.21"): "w1", ip("10.0.1.22"): "compilation-1",
					ip("10.0.1.23"): "w3", ip("::ffff:10.0.1.24"): "mapped"}},
			want: []string{"w0 z1 10.0.1.23 0", "w1 z1 10.0.1.21 0", "w2 z1 10.0.1.25 0", "w3 z2 10.0.2.20 1"}},
		{name: "dynamic: one subnet for three AZs",
			req:  Request{Network: "services", AZs: []string{"z1", "z2", "z3"}, Instances: placed("a z1", "b z2", "c z3")},
			want: []string{"a z1 172.16.0.100 0", "b z2 172.16.0.101 0", "c z3 172.16.0.102 0"}},
		{name: "dynamic: a full subnet spills into the AZ's next one", cloud: small,
			req: Request{Network: "spill", AZs: []string{"z1", "z2"},
				Instances: placed("a z1", "b z1", "c z1", "d z1", "e z1", "f z1", "g z1")},
			want: []string{"a z1 10.6.0.2 0", "b z1 10.6.0.3 0", "c z1 10.6.0.4 0", "d z1 10.6.0.5 0", "e z1 10.6.0.6 0",
				"f z1 10.6.1.2 1", "g z1 10.6.1.3 1"}},
		{name: "dynamic: exhausted", cloud: small,
			req: Request{Network: "tiny", AZs: []string{"z1"}, Instances: placed("a z1", "b z1", "c z1", "d z1")},
			exhausted: "network tiny has no free address in az z1 for instance d: " +
				"subnet 10.5.0.0/29 is full (8 addresses: 5 never assigned, 0 static, 3 taken)"},
		{name: "dynamic: exhausted by other holders", cloud: small,
			req: Request{Network: "spill", AZs: []string{"z2"}, Instances: placed("a z2", "b z2"),
				Taken: map[netip.Addr]string{ip("10.6.0.2"): "x", ip("10.6.0.3"): "x", ip("10.6.0.4"): "x", ip("10.6.0.5"): "x", ip("10.7.0.9"): "x"}},
			exhausted: "network spill has no free address in az z2 for instance b: " +
				"subnet 10.6.0.0/29 is full (8 addresses: 3 never assigned, 0 static, 5 taken)"},
		{name: "dynamic: no AZs", cloud: small,
			req:  Request{Network: "flat", Instances: placed("a", "b - 10.7.0.200")},
			want: []string{"a  10.7.0.2 0", "b  10.7.0.200 0"}},
		{name: "dynamic: IPv6", cloud: small,
			req:  Request{Network: "v6", AZs: []string{"z1"}, Instances: placed("a z1", "b z1")},
			want: []string{"a z1 fd00::a 0", "b z1 fd00::b 0"}},
		{name: "static: as listed, each instance in its address's AZ",
			req: Request{Network: "infrastructure", AZs: []string{"z1", "z2"}, StaticIPs: []string{"10.0.1.10 - 10.0.1.11", "10.0.2.10"},
				Instances: placed("m0", "m1", "m2")},
			want: []string{"m0 z1 10.0.1.10 static 0", "m1 z1 10.0.1.11 static 0", "m2 z2 10.0.2.10 static 1"}},
		{name: "static: one subnet of several AZs spreads the instances over them", cloud: small,
			req: Request{Network: "shared", AZs: []string{"z1", "z2", "z4"}, StaticIPs: []string{"10.8.0.10 - 10.8.0.14"},
				Instances: placed("m0", "m1", "m2", "m3", "m4")},
			want: []string{"m0 z1 10.8.0.10 static 0", "m1 z2 10.8.0.11 static 0", "m2 z4 10.8.0.12 static 0",
				"m3 z1 10.8.0.13 static 0", "m4 z2 10.8.0.14 static 0"}},
		{name: "static: spread around the AZs instances have", cloud: small,
			req: Request{Network: "shared", AZs: []string{"z1", "z2", "z4"}, StaticIPs: []string{"10.8.0.10 - 10.8.0.12"},
				Instances: placed("m0 z2 10.8.0.10", "m1", "m2")},
			want: []string{"m0 z2 10.8.0.10 static 0", "m1 z1 10.8.0.11 static 0", "m2 z4 10.8.0.12 static 0"}},
		{name: "static: instances placed in an AZ take that AZ's addresses first",
			req: Request{Network: "infrastructure", AZs: []string{"z1", "z2"}, StaticIPs: []string{"10.0.1.10", "10.0.1.11", "10.0.2.10"},
				Instances: placed("m0 -", "m1 z2", "m2 z1")},
			want: []string{"m0 z1 10.0.1.11 static 0", "m1 z2 10.0.2.10 static 1", "m2 z1 10.0.1.10 static 0"}},
		{name: "static: instances keep their addresses",
			req: Request{Network: "infrastructure", AZs: []string{"z1", "z3"}, StaticIPs: []string{"10.0.1.10-10.0.1.11", "10.0.3.16/30"},
				Instances: placed("m0 z1 10.0.1.11", "m1 z1", "m2 - 10.0.3.18", "m3 z3", "m4 z3 10.0.1.10", "m5 z3")},
			want: []string{"m0 z1 10.0.1.11 static 0", "m1 z1 10.0.1.10 static 0", "m2 z3 10.0.3.18 static 2",
				"m3 z3 10.0.3.16 static 2", "m4 z3 10.0.3.17 static 2", "m5 z3 10.0.3.19 static 2"}},
		{name: "static: an instance's own address is not taken",
			req: Request{Network: "infrastructure", AZs: []string{"z1"}, StaticIPs: []string{"10.0.1.10", "10.0.1.11"},
				Instances: placed("m0 z1", "m1 z1"), Taken: map[netip.Addr]string{ip("10.0.1.10"): "m1"}},
			want: []string{"m0 z1 10.0.1.10 static 0", "m1 z1 10.0.1.11 static 0"}},
		{name: "static: outside the subnet's static list",
			req: Request{Network: "infrastructure", AZs: []string{"z1"}, StaticIPs: []string{"10.0.1.10", "10.0.1.30", "10.0.1.5"},
				Instances: placed("m0 z1", "m1 z1", "m2 z1")},
			want: []string{
				"StaticIPs[1]: 10.0.1.30 is not in the static list of its subnet (10.0.1.0/24): a static IP must be listed there",
				"StaticIPs[2]: 10.0.1.5 is not in the static list of its subnet (10.0.1.0/24): a static IP must be listed there",
			}},
		{name: "static: outside every subnet, in another AZ, taken",
			req: Request{Network: "infrastructure", AZs: []string{"z1"}, StaticIPs: []string{"192.168.0.5", "10.0.2.10", "10.0.1.10"},
				Instances: placed("m0 z1", "m1 z1", "m2 z1"), Taken: map[netip.Addr]string{ip("10.0.1.10"): "other-deployment/db/0"}},
			want: []string{
				"StaticIPs[0]: 192.168.0.5 is in no subnet of network infrastructure",
				"StaticIPs[1]: 10.0.2.10 is in a subnet of az z2, not of the instance group's azs",
				"StaticIPs[2]: 10.0.1.10 is taken by other-deployment/db/0",
			}},
		{name: "static: one per instance",
			req: Request{Network: "infrastructure", AZs: []string{"z1"}, StaticIPs: []string{"10.0.1.10 - 10.0.1.11"},
				Instances: placed("m0 z1", "m1 z1", "m2 z1")},
			want: []string{"StaticIPs: name 2 addresses for 3 instances: BOSH needs exactly one static IP per instance"}},
		{name: "static: a huge entry is counted, not expanded",
			req:  Request{Network: "infrastructure", AZs: []string{"z1"}, StaticIPs: []string{"::/0"}, Instances: placed("m0 z1")},
			want: []string{"StaticIPs: name 2^64 or more addresses for 1 instances: BOSH needs exactly one static IP per instance"}},
		{name: "static: an address twice",
			req: Request{Network: "infrastructure", AZs: []string{"z1"}, StaticIPs: []string{"10.0.1.10 - 10.0.1.11", "10.0.1.11"},
				Instances: placed("m0 z1", "m1 z1", "m2 z1")},
			want: []string{"StaticIPs[1]: names 10.0.1.11, which an earlier entry names too"}},
		{name: "static: not an address",
			req: Request{Network: "infrastructure", AZs: []string{"z1"}, StaticIPs: []string{"10.0.1.10", "10.0.1.x"},
				Instances: placed("m0 z1", "m1 z1")},
			want: []string{"StaticIPs[1]: is not an address, a range (a - b) or a CIDR"}},
		{name: "static: no address left in an instance's AZ",
			req: Request{Network: "infrastructure", AZs: []string{"z1", "z2"}, StaticIPs: []string{"10.0.1.10", "10.0.1.11"},
				Instances: placed("m0 z1", "m1 z2")},
			want: []string{"Instances[1].AZ: no static IP is left in this AZ: the group's static_ips are one per instance, each in the subnet of its instance's AZ"}},
		{name: "request: unknown network",
			req:  Request{Network: "nodes", Instances: placed("a")},
			want: []string{"Network: is not a network in the cloud config"}},
		{name: "request: AZs", cloud: small,
			req: Request{Network: "tiny", AZs: []string{"z1", "z3", "z4"}, Instances: placed("a z1", "b z2", "c", "", "a z1")},
			want: []string{
				"AZs[1]: is not an AZ in the cloud config",
				"AZs[2]: network tiny has no subnet in this AZ",
				"Instances[1].AZ: is not one of the instance group's azs",
				"Instances[2].AZ: is required: the instance group is in azs z1, z3, z4",
				"Instances[3].ID: is required",
				"Instances[3].AZ: is required: the instance group is in azs z1, z3, z4",
				"Instances[4].ID: is the ID of an earlier instance too",
			}},
		{name: "request: a network in AZs needs a group in AZs",
			req:  Request{Network: "infrastructure", Instances: placed("a z1")},
			want: []string{"AZs: are required: network infrastructure has its subnets in azs z1, z2, z3", "Instances[0].AZ: the instance group has no azs"}},
		{name: "dynamic network: each instance its AZ's subnet", cloud: small,
			req:  Request{Network: "dhcp", AZs: []string{"z1", "z2"}, Instances: placed("a z2", "b z1 10.9.0.4")},
			want: []string{"a z2 - 1", "b z1 - 0"}},
		{name: "dynamic network: no static_ips", cloud: small,
			req:  Request{Network: "dhcp", AZs: []string{"z1"}, Instances: placed("a z1"), StaticIPs: []string{"10.9.0.4"}},
			want: []string{"StaticIPs: dynamic network dhcp takes no static_ips: the IaaS assigns the addresses"}},
		{name: "vip network: the group's static_ips", cloud: small,
			req: Request{Network: "elastic", AZs: []string{"z1", "z2"}, StaticIPs: []string{"198.51.100.7", "198.51.100.8"},
				Instances: placed("lb0 z2", "lb1 z1 198.51.100.7")},
			want: []string{"lb0 z2 198.51.100.8 static -", "lb1 z1 198.51.100.7 static -"}},
		{name: "vip network: static_ips required", cloud: small,
			req:  Request{Network: "elastic", AZs: []string{"z1"}, Instances: placed("lb0 z1")},
			want: []string{"StaticIPs: are required: vip network elastic has no subnets to take addresses from"}},
		{name: "vip network: taken static_ips", cloud: small,
			req: Request{Network: "elastic", StaticIPs: []string{"198.51.100.7"}, Instances: placed("lb0"),
				Taken: map[netip.Addr]string{ip("198.51.100.7"): "other/lb/0"}},
			want: []string{"StaticIPs[0]: 198.51.100.7 is taken by other/lb/0"}},
		{name: "vip network with subnets: the first free static address of the AZ", cloud: small,
			req: Request{Network: "floating", AZs: []string{"z1", "z2"}, Instances: placed("a z2", "b z1", "c z1 203.0.113.10"),
				Taken: map[netip.Addr]string{ip("203.0.113.11"): "x"}},
			want: []string{"a z2 203.0.113.20 1", "b z1 203.0.113.12 0", "c z1 203.0.113.10 0"}},
		{name: "vip network with subnets: exhausted", cloud: small,
			req: Request{Network: "floating", AZs: []string{"z2"}, Instances: placed("a z2", "b z2")},
			exhausted: "network floating has no free address in az z2 for instance b: " +
				"every static address of its subnet (203.0.113.20) is taken"},
		{name: "vip network with subnets: no static_ips", cloud: small,
			req:  Request{Network: "floating", AZs: []string{"z1"}, Instances: placed("a z1"), StaticIPs: []string{"203.0.113.10"}},
			want: []string{"StaticIPs: vip network floating gives out the static addresses of its subnets: leave static_ips out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *CloudConfig
			if tc.cloud == "" {
				c = vsphere(t)
			} else {
				var err error
				c, err = Parse([]byte(tc.cloud))
				require.NoError(t, err)
			}
			addrs, err := c.Allocate(tc.req)
			switch {
			case tc.exhausted != "":
				require.Error(t, err)
				assert.ErrorIs(t, err, kubefoundry.ErrLimitExceeded)
				var ex *ExhaustedError
				require.ErrorAs(t, err, &ex)
				assert.Equal(t, tc.exhausted, err.Error())
				assert.Nil(t, addrs)
			case strings.Contains(tc.want[0], ": "):
				assert.Equal(t, tc.want, reasons(t, err))
				assert.Nil(t, addrs)
			default:
				require.NoError(t, err)
				assert.Equal(t, tc.want, show(t, c, tc.req.Network, addrs))
			}
		})
	}
}

// TestAllocateStable deploys a group three times, as a director would,
// feeding each deploy's addresses into the next: instances keep their
// addresses through scaling out, scaling in and a changed order, and
// the addresses scaled in are given out again.
func TestAllocateStable(t *testing.T) {
	c := vsphere(t)
	deploy := func(prev []Address, spec ...string) []Address {
		t.Helper()
		had := map[string]netip.Addr{}
		for _, a := range prev {
			had[a.ID] = a.IP
		}
		req := Request{Network: "infrastructure", AZs: []string{"z1", "z2"}}
		for _, s := range spec {
			id, az, _ := strings.Cut(s, " ")
			req.Instances = append(req.Instances, Instance{ID: id, AZ: az, IP: had[id]})
		}
		addrs, err := c.Allocate(req)
		require.NoError(t, err)
		return addrs
	}
	first := deploy(nil, "w0 z1", "w1 z2", "w2 z1", "w3 z2")
	assert.Equal(t, []string{"w0 z1 10.0.1.20 0", "w1 z2 10.0.2.20 1", "w2 z1 10.0.1.21 0", "w3 z2 10.0.2.21 1"},
		show(t, c, "infrastructure", first))

	second := deploy(first, "w3 z2", "w5 z1", "w2 z1", "w4 z2", "w1 z2")
	assert.Equal(t, []string{"w3 z2 10.0.2.21 1", "w5 z1 10.0.1.20 0", "w2 z1 10.0.1.21 0", "w4 z2 10.0.2.22 1", "w1 z2 10.0.2.20 1"},
		show(t, c, "infrastructure", second), "w0 is gone and its address is w5's; the others keep theirs")

	third := deploy(second, "w1 z2", "w2 z1", "w3 z2", "w4 z2", "w5 z1")
	assert.ElementsMatch(t, show(t, c, "infrastructure", second), show(t, c, "infrastructure", third), "nothing changes")
}

func TestAllocateInvalidCloudConfig(t *testing.T) {
	c := valid()
	c.Networks[0].Subnets[0].Gateway = "10.0.9.1"
	_, err := c.Allocate(Request{Network: "default", AZs: []string{"z1"}, Instances: placed("a z1")})
	var verr *kubefoundry.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, "cloud config", verr.Object)
	assert.Equal(t, []string{"/networks/name=default/subnets/0/gateway: is not inside the range 10.0.1.0/24"}, reasons(t, err))
}

func TestExhaustedError(t *testing.T) {
	err := error(&ExhaustedError{Network: "n", Instance: "a", Subnets: []string{"x", "y"}})
	assert.Equal(t, "network n has no free address for instance a: x; y", err.Error())
	assert.True(t, errors.Is(err, kubefoundry.ErrLimitExceeded))
}
