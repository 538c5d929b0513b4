package cloudconfig_test

import (
	"errors"
	"fmt"
	"log"
	"net/netip"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cloudconfig"
)

const cloud = `azs:
- {name: z1, cloud_properties: {datacenters: [{name: dc1, clusters: [{cluster-a: {}}]}]}}
- {name: z2, cloud_properties: {datacenters: [{name: dc1, clusters: [{cluster-b: {}}]}]}}
vm_types:
- {name: large, cloud_properties: {cpu: 8, ram: 16384, disk: 65536}}
networks:
- name: nodes
  subnets:
  - {range: 10.0.1.0/24, gateway: 10.0.1.1, reserved: [10.0.1.2 - 10.0.1.9], static: [10.0.1.10 - 10.0.1.19], az: z1,
     cloud_properties: {name: nodes-z1}}
  - {range: 10.0.2.0/24, gateway: 10.0.2.1, reserved: [10.0.2.2 - 10.0.2.9], static: [10.0.2.10 - 10.0.2.19], az: z2,
     cloud_properties: {name: nodes-z2}}
compilation: {workers: 4, az: z1, vm_type: large, network: nodes}
`

func ExampleCloudConfig_Allocate() {
	c, err := cloudconfig.Parse([]byte(cloud))
	if err != nil {
		log.Fatal(err)
	}
	// Three masters on static IPs: each takes its address's AZ.
	masters, err := c.Allocate(cloudconfig.Request{
		Network:   "nodes",
		AZs:       []string{"z1", "z2"},
		StaticIPs: []string{"10.0.1.10", "10.0.2.10 - 10.0.2.11"},
		Instances: []cloudconfig.Instance{{ID: "master-0"}, {ID: "master-1"}, {ID: "master-2"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Workers from the dynamic range; worker-1 keeps its address of the
	// last deploy.
	workers, err := c.Allocate(cloudconfig.Request{
		Network: "nodes",
		AZs:     []string{"z1", "z2"},
		Instances: []cloudconfig.Instance{
			{ID: "worker-0", AZ: "z1"},
			{ID: "worker-1", AZ: "z2", IP: netip.MustParseAddr("10.0.2.42")},
			{ID: "worker-2", AZ: "z1"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range append(masters, workers...) {
		fmt.Println(a.ID, a.AZ, a.IP, a.Subnet.CloudProperties["name"], a.Static)
	}
	// Output:
	// master-0 z1 10.0.1.10 nodes-z1 true
	// master-1 z2 10.0.2.10 nodes-z2 true
	// master-2 z2 10.0.2.11 nodes-z2 true
	// worker-0 z1 10.0.1.20 nodes-z1 false
	// worker-1 z2 10.0.2.42 nodes-z2 false
	// worker-2 z1 10.0.1.21 nodes-z1 false
}

func ExampleParse_problems() {
	_, err := cloudconfig.Parse([]byte(`azs: [{name: z1}]
networks:
- name: nodes
  subnets:
  - range: 10.0.1.0/24
    gateway: 10.0.2.1
    static: [10.0.1.10 - 10.0.1.300]
    az: z2
compilation: {workers: 2, az: z1, network: nodes, vm_type: large}
`))
	var verr *kubefoundry.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			fmt.Printf("line %d: %s: %s\n", p.Line, p.Field, p.Reason)
		}
	}
	// Output:
	// line 6: /networks/name=nodes/subnets/0/gateway: is not inside the range 10.0.1.0/24
	// line 7: /networks/name=nodes/subnets/0/static/0: is not a range of two addresses (a - b)
	// line 8: /networks/name=nodes/subnets/0/az: is not an AZ in azs
	// line 9: /compilation/az: network nodes has no subnet in this AZ
	// line 9: /compilation/vm_type: is not a VM type in vm_types
}
