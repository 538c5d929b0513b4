package vsphere_test

import (
	"context"
	"fmt"
	"log"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

// startSimulator starts an in-process vCenter for the examples.
func startSimulator() (url string, stop func()) {
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		log.Fatal(err)
	}
	s := m.Service.NewServer()
	return s.URL.String(), func() { s.Close(); m.Remove() }
}

func ExampleNew() {
	url, stop := startSimulator()
	defer stop()
	ctx := context.Background()

	c, err := vsphere.New(ctx, vsphere.Config{URL: url, Insecure: true}, vsphere.WithConcurrency(16))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	fmt.Println("datacenter:", c.Datacenter().Name())

	_, err = c.FindDatastore(ctx, "no-such-datastore")
	fmt.Println(err)
	// Output:
	// datacenter: DC0
	// datastore "no-such-datastore" not found in /DC0/datastore (available: LocalDS_0)
}

func ExampleClient_ProvisionVMs() {
	url, stop := startSimulator()
	defer stop()
	ctx := context.Background()
	c, err := vsphere.New(ctx, vsphere.Config{URL: url, Insecure: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)

	var specs []vsphere.VMSpec
	for i := range 3 {
		specs = append(specs, vsphere.VMSpec{
			Name:         fmt.Sprintf("c1-worker-%d", i),
			Owner:        vsphere.Owner{Cluster: "c1", Group: "worker", Index: i},
			Template:     "DC0_C0_RP0_VM0",
			Folder:       "kubefoundry/c1",
			Cluster:      "DC0_C0",
			ResourcePool: "c1",
			CPUs:         2,
			MemoryMB:     4096,
			NICs:         []vsphere.NIC{{Network: "VM Network"}},
		})
	}
	res, err := c.ProvisionVMs(ctx, specs)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		fmt.Println(r.Name, "created:", r.Created)
	}
	res, _ = c.ProvisionVMs(ctx, specs) // idempotent
	fmt.Println("second call created:", res[0].Created || res[1].Created || res[2].Created)
	// Output:
	// c1-worker-0 created: true
	// c1-worker-1 created: true
	// c1-worker-2 created: true
	// second call created: false
}

func ExampleClient_DestroyVMs() {
	url, stop := startSimulator()
	defer stop()
	ctx := context.Background()
	c, err := vsphere.New(ctx, vsphere.Config{URL: url, Insecure: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	_, err = c.ProvisionVMs(ctx, []vsphere.VMSpec{{
		Name: "c2-master-0", Owner: vsphere.Owner{Cluster: "c2", Group: "master"},
		Template: "DC0_C0_RP0_VM0", Folder: "kubefoundry/c2", Cluster: "DC0_C0",
	}})
	if err != nil {
		log.Fatal(err)
	}

	// Find every VM of cluster c2 by the ownership recorded on it, and destroy them.
	vms, err := c.ListVMs(ctx, "c2", "")
	if err != nil {
		log.Fatal(err)
	}
	var refs []types.ManagedObjectReference
	for _, vm := range vms {
		fmt.Println("owned:", vm.Name, vm.Owner)
		refs = append(refs, vm.Ref)
	}
	if _, err := c.DestroyVMs(ctx, refs); err != nil {
		log.Fatal(err)
	}
	vms, _ = c.ListVMs(ctx, "c2", "")
	fmt.Println("left:", len(vms))
	_, err = c.DestroyVMs(ctx, refs) // already gone: not an error
	fmt.Println("destroy again:", err)
	// Output:
	// owned: c2-master-0 c2/master/0
	// left: 0
	// destroy again: <nil>
}
