// Command attach-volume creates CNS volumes for a cluster and attaches them
// to VMs with kubefoundry's csi package, then prints them.
//
// With no -url it starts an in-process vCenter simulator with CNS, so it
// runs anywhere:
//
//	go run ./examples/attach-volume -n 4
//
// Against a real vCenter, give -url (or GOVC_URL with GOVC_USERNAME,
// GOVC_PASSWORD and GOVC_INSECURE, GOVC_TLS_CA_CERTS or
// GOVC_TLS_KNOWN_HOSTS) and -datastore, -vm-pattern.
//
// VMs and volumes share one vCenter session: the csi client is made on the
// vsphere client's, so a session vCenter ends is logged in again once for
// both, and the call count printed at the end is theirs together.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	_ "github.com/vmware/govmomi/cns/simulator" // CNS in the embedded simulator
	"github.com/vmware/govmomi/find"
	_ "github.com/vmware/govmomi/pbm/simulator" // SPBM in the embedded simulator
	"github.com/vmware/govmomi/simulator"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/examples/internal/vcflags"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "attach-volume:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("attach-volume", flag.ContinueOnError)
	vc := vcflags.Register(fs)
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
	if err := kubefoundry.ClusterID(*cluster).Validate(); err != nil {
		return fmt.Errorf("-cluster-id: %w", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	if vc.URL == "" {
		m := simulator.VPX()
		if err := m.Create(); err != nil {
			return err
		}
		defer m.Remove()
		m.Service.TLS = new(tls.Config)
		m.Service.RegisterEndpoints = true
		s := m.Service.NewServer()
		defer s.Close()
		vc.URL, vc.Insecure = s.URL.String(), true
	}
	cfg, err := vc.Config()
	if err != nil {
		return err
	}
	vs, err := vsphere.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = vs.Close(context.WithoutCancel(ctx)) }()
	c, err := csi.New(ctx, vs.Vim25())
	if err != nil {
		return err
	}
	f := find.NewFinder(vs.Vim25(), true)
	f.SetDatacenter(vs.Datacenter())
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
	if err := tw.Flush(); err != nil {
		return err
	}
	st := vs.Stats()
	_, err = fmt.Fprintf(stdout, "%d SOAP calls on one session (%d CNS), %d re-logins\n", st.Calls, cnsCalls(st.ByMethod), st.Relogins)
	return err
}

func cnsCalls(by map[string]int64) (n int64) {
	for m, c := range by {
		if strings.HasPrefix(m, "Cns") {
			n += c
		}
	}
	return n
}
