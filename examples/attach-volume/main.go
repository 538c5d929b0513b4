// Command attach-volume creates CNS volumes for a cluster and attaches them
// to VMs with kubefoundry's csi package, then prints them.
//
// With no -url it starts an in-process vCenter simulator with CNS, so it
// runs anywhere:
//
//	go run ./examples/attach-volume -n 4
//
// Against a real vCenter, give -url (or GOVC_URL with GOVC_USERNAME,
// GOVC_PASSWORD, GOVC_INSECURE) and -datastore, -vm-pattern.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"text/tabwriter"

	"github.com/vmware/govmomi"
	_ "github.com/vmware/govmomi/cns/simulator" // CNS in the embedded simulator
	"github.com/vmware/govmomi/find"
	_ "github.com/vmware/govmomi/pbm/simulator" // SPBM in the embedded simulator
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/soap"

	"github.com/kubefoundry/kubefoundry/csi"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "attach-volume:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("attach-volume", flag.ContinueOnError)
	rawURL := fs.String("url", os.Getenv("GOVC_URL"), "vCenter URL; empty starts an in-process simulator (env GOVC_URL)")
	insecureDefault, _ := strconv.ParseBool(os.Getenv("GOVC_INSECURE"))
	insecure := fs.Bool("insecure", insecureDefault, "skip TLS verification (env GOVC_INSECURE)")
	n := fs.Int("n", 4, "volumes to create")
	sizeMB := fs.Int64("size-mb", 1024, "size of each volume")
	datastore := fs.String("datastore", "LocalDS_0", "datastore")
	cluster := fs.String("cluster-id", "demo", "owning Kubernetes cluster recorded in CNS")
	pattern := fs.String("vm-pattern", "DC0_C0_RP0_VM*", "VMs to attach to, round robin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return errors.New("-n must be at least 1")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	u := *rawURL
	if u == "" {
		m := simulator.VPX()
		if err := m.Create(); err != nil {
			return err
		}
		defer m.Remove()
		m.Service.TLS = new(tls.Config)
		m.Service.RegisterEndpoints = true
		s := m.Service.NewServer()
		defer s.Close()
		u, *insecure = s.URL.String(), true
	}
	parsed, err := soap.ParseURL(u)
	if err != nil {
		return err
	}
	if user := os.Getenv("GOVC_USERNAME"); user != "" && parsed.User == nil {
		parsed.User = url.UserPassword(user, os.Getenv("GOVC_PASSWORD"))
	}
	gc, err := govmomi.NewClient(ctx, parsed, *insecure)
	if err != nil {
		return err
	}
	defer func() { _ = gc.Logout(context.WithoutCancel(ctx)) }()
	c, err := csi.New(ctx, gc.Client)
	if err != nil {
		return err
	}
	f := find.NewFinder(gc.Client, true)
	dc, err := f.DefaultDatacenter(ctx)
	if err != nil {
		return err
	}
	f.SetDatacenter(dc)
	vms, err := f.VirtualMachineList(ctx, *pattern)
	if err != nil {
		return err
	}

	for i := range *n {
		vol, err := c.CreateVolume(ctx, csi.VolumeSpec{Name: fmt.Sprintf("%s-pv-%d", *cluster, i), SizeMB: *sizeMB, Datastore: *datastore, ClusterID: *cluster})
		if err != nil {
			return err
		}
		if err := c.AttachVolume(ctx, vol.ID, vms[i%len(vms)].Reference()); err != nil {
			return err
		}
	}
	vols, err := c.QueryVolumes(ctx, *cluster)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSIZE (MB)\tATTACHED TO")
	for _, v := range vols {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", v.Name, v.ID, v.SizeMB, v.AttachedTo)
	}
	return tw.Flush()
}
