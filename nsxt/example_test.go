package nsxt_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"regexp"
	"time"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// Build a cluster's network on the NSX simulator, list what the cluster
// owns, and tear it down.
func Example() {
	ctx := context.Background()
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(), Password: sim.Password(),
		CACert: string(sim.CertificatePEM())})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(context.Background())

	inv := sim.Inventory()
	net, err := c.BuildTopology(ctx, nsxt.Topology{
		ClusterID:           "c1",
		Tier0Path:           "/infra/tier-0s/" + inv.Tier0,
		EdgeClusterPath:     inv.EdgeClusterPath(),
		TransportZonePath:   inv.TransportZonePath(),
		NodeIPBlockPath:     "/infra/ip-blocks/" + inv.NodeBlock.ID,
		PodIPBlockPaths:     []string{"/infra/ip-blocks/" + inv.PodBlock.ID},
		FloatingIPPoolPaths: []string{"/infra/ip-pools/" + inv.FloatingPool},
		APIMembers:          []string{"172.23.0.10"},
		Namespaces:          []string{"web"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("API server: %s:%d\n", net.APIAddress, net.APIPort)
	fmt.Println("nodes:", net.NodeSubnet, "namespace web:", net.Namespaces["web"].Subnet)

	owned, err := c.ListOwned(ctx, "c1")
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range owned {
		fmt.Printf("%-24s %s\n", o.Type, o.Path)
	}

	td, err := c.TeardownTopology(ctx, "c1")
	if err != nil {
		log.Fatal(err)
	}
	left, err := c.ListOwned(ctx, "c1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("deleted %d objects in %d write; left %d\n", len(td.Deleted), td.Writes, len(left))

	// Output:
	// API server: 10.40.14.10:8443
	// nodes: 172.23.0.0/24 namespace web: 172.24.0.0/24
	// Group                    /infra/domains/default/groups/kf_c1_nodes
	// Group                    /infra/domains/default/groups/kf_c1_ns_web
	// SecurityPolicy           /infra/domains/default/security-policies/kf_c1
	// Rule                     /infra/domains/default/security-policies/kf_c1/rules/api
	// Rule                     /infra/domains/default/security-policies/kf_c1/rules/nodes
	// SecurityPolicy           /infra/domains/default/security-policies/kf_c1_ns_web
	// Rule                     /infra/domains/default/security-policies/kf_c1_ns_web/rules/from-nodes
	// Rule                     /infra/domains/default/security-policies/kf_c1_ns_web/rules/intra
	// IpAddressAllocation      /infra/ip-pools/floating-pool/ip-allocations/kf_c1_api
	// IpAddressAllocation      /infra/ip-pools/floating-pool/ip-allocations/kf_c1_ns_web
	// IpAddressAllocation      /infra/ip-pools/floating-pool/ip-allocations/kf_c1_snat
	// IpAddressPool            /infra/ip-pools/kf_c1
	// IpAddressPoolBlockSubnet /infra/ip-pools/kf_c1/ip-subnets/nodes
	// IpAddressPoolBlockSubnet /infra/ip-pools/kf_c1/ip-subnets/ns_web_pods-block
	// LBPool                   /infra/lb-pools/kf_c1_api
	// LBService                /infra/lb-services/kf_c1
	// LBVirtualServer          /infra/lb-virtual-servers/kf_c1_api
	// Segment                  /infra/segments/kf_c1_nodes
	// Segment                  /infra/segments/kf_c1_ns_web
	// Tier1                    /infra/tier-1s/kf_c1
	// LocaleServices           /infra/tier-1s/kf_c1/locale-services/default
	// PolicyNatRule            /infra/tier-1s/kf_c1/nat/USER/nat-rules/kf_c1_nodes_snat
	// PolicyNatRule            /infra/tier-1s/kf_c1/nat/USER/nat-rules/kf_c1_ns_web_snat
	// deleted 23 objects in 1 write; left 0
}

// Follow a long call: every call that builds or deletes reports its
// start and end, and each wait for NSX's purge in between, naming the
// path NSX has not purged yet. Here a cluster is built again right after
// its teardown, before NSX's purge cycle (every 5 minutes; the simulator
// purges when told to).
func ExampleWithSink() {
	ctx := context.Background()
	sim, err := simulator.New(simulator.Config{PurgeAfter: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(), Password: sim.Password(),
		CACert: string(sim.CertificatePEM())}, nsxt.WithPurgeWait(10*time.Millisecond, time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(context.Background())

	sink := nsxt.WithSink(kubefoundry.SinkFunc(func(e kubefoundry.Event) {
		switch e.Phase {
		case nsxt.PhaseWaiting:
			fmt.Println(e.Op, e.Object, e.Phase, "for", e.Handle)
		case nsxt.PhaseDone:
			fmt.Println(e.Op, e.Object, e.Phase, e.Message)
		case nsxt.PhaseFailed:
			fmt.Println(e.Op, e.Object, e.Phase, e.Err)
		default:
			fmt.Println(e.Op, e.Object, e.Phase)
		}
	}))
	inv := sim.Inventory()
	topo := nsxt.Topology{
		ClusterID:           "c1",
		Tier0Path:           "/infra/tier-0s/" + inv.Tier0,
		EdgeClusterPath:     inv.EdgeClusterPath(),
		TransportZonePath:   inv.TransportZonePath(),
		NodeIPBlockPath:     "/infra/ip-blocks/" + inv.NodeBlock.ID,
		PodIPBlockPaths:     []string{"/infra/ip-blocks/" + inv.PodBlock.ID},
		FloatingIPPoolPaths: []string{"/infra/ip-pools/" + inv.FloatingPool},
	}
	if _, err := c.BuildTopology(ctx, topo, sink); err != nil {
		log.Fatal(err)
	}
	if _, err := c.TeardownTopology(ctx, "c1", sink); err != nil {
		log.Fatal(err)
	}
	// The simulator's purge cycle runs before the second try.
	sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 2, Before: sim.Purge})
	if _, err := c.BuildTopology(ctx, topo, sink); err != nil {
		log.Fatal(err)
	}

	// Output:
	// apply topology c1 started
	// apply topology c1 done writes: 2
	// teardown topology c1 started
	// teardown topology c1 done writes: 1
	// apply topology c1 started
	// apply topology c1 waiting for /infra/ip-pools/floating-pool/ip-allocations/kf_c1_api
	// apply topology c1 done writes: 3
}
