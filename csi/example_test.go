package csi_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"

	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

func Example() {
	s, stop := vcsimWithCNS()
	defer stop()

	ctx := context.Background()
	gc, err := govmomi.NewClient(ctx, s.URL, true)
	if err != nil {
		log.Fatal(err)
	}
	defer gc.Logout(ctx)
	c, err := csi.New(ctx, gc.Client)
	if err != nil {
		log.Fatal(err)
	}
	vol, err := c.CreateVolume(ctx, csi.VolumeSpec{Name: "pvc-data", SizeMB: 2048, Datastore: "LocalDS_0", ClusterID: "c1"})
	if err != nil {
		log.Fatal(err)
	}
	node0, err := find.NewFinder(gc.Client).VirtualMachine(ctx, "DC0_C0_RP0_VM0")
	if err != nil {
		log.Fatal(err)
	}
	if err := c.AttachVolume(ctx, vol.ID, node0.Reference()); err != nil {
		log.Fatal(err)
	}
	err = c.DeleteVolume(ctx, vol.ID, false)
	var attached *csi.AttachedError
	fmt.Println("delete while attached refused:", errors.As(err, &attached))
	fmt.Println("force delete:", c.DeleteVolume(ctx, vol.ID, true))
	vols, _ := c.QueryVolumes(ctx, "c1")
	fmt.Println("volumes left:", len(vols))
	// Output:
	// delete while attached refused: true
	// force delete: <nil>
	// volumes left: 0
}

// VMs and volumes on one vCenter session: csi.New on a vsphere.Client's
// Vim25 shares its re-login, rate limit, timeouts and call counts.
func Example_sharedSession() {
	s, stop := vcsimWithCNS()
	defer stop()

	ctx := context.Background()
	vs, err := vsphere.New(ctx, vsphere.Config{URL: s.URL.String(), Insecure: true})
	if err != nil {
		log.Fatal(err)
	}
	defer vs.Close(ctx)
	c, err := csi.New(ctx, vs.Vim25())
	if err != nil {
		log.Fatal(err)
	}
	vm, err := vs.CreateVM(ctx, vsphere.VMSpec{Name: "c1-worker-0", Owner: vsphere.Owner{Cluster: "c1", Group: "worker"},
		Template: "DC0_C0_RP0_VM0", Folder: "kubefoundry/c1", Cluster: "DC0_C0"})
	if err != nil {
		log.Fatal(err)
	}
	vol, err := c.CreateVolume(ctx, csi.VolumeSpec{Name: "pvc-data", SizeMB: 2048, Datastore: "LocalDS_0", ClusterID: "c1"})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.AttachVolume(ctx, vol.ID, vm.Ref); err != nil {
		log.Fatal(err)
	}
	got, _ := c.Get(ctx, vol.ID)
	fmt.Println("attached to the new VM:", got.AttachedTo == vm.Ref.Value)
	st := vs.Stats()
	fmt.Println("CNS calls counted by the vsphere session:", st.ByMethod["CnsCreateVolume"], st.ByMethod["CnsAttachVolume"])
	// Output:
	// attached to the new VM: true
	// CNS calls counted by the vsphere session: 1 1
}

// vcsimWithCNS serves govmomi's in-process vCenter simulator with its CNS
// and SPBM endpoints, as a real vCenter would be reached.
func vcsimWithCNS() (*simulator.Server, func()) {
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		log.Fatal(err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.RegisterEndpoints = true
	s := m.Service.NewServer()
	return s, func() { s.Close(); m.Remove() }
}
