// Command provision-vms provisions N VMs with kubefoundry's vsphere package
// and prints a table of their names and IPs.
//
// With no -url it starts an in-process vCenter simulator (govmomi's vcsim)
// and clones its VM DC0_C0_RP0_VM0, so it runs anywhere:
//
//	go run ./examples/provision-vms -n 20
//
// Against a real vCenter, give -url or the GOVC_* variables govc users
// already have (GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD, GOVC_INSECURE,
// GOVC_DATACENTER):
//
//	go run ./examples/provision-vms -url https://vc/sdk -template stemcell -cluster C1 -network VM\ Network -n 3
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmware/govmomi/simulator"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "provision-vms:", err)
		os.Exit(1)
	}
}

type flags struct {
	url, user, password, datacenter   string
	insecure                          bool
	n, concurrency                    int
	template, cluster, pool, folder   string
	datastore, network, prefix, owner string
	linked, quiet, asJSON, verbose    bool
	ipTimeout, simClone               time.Duration
}

func parse(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("provision-vms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.url, "url", os.Getenv("GOVC_URL"), "vCenter URL; empty starts an in-process simulator (env GOVC_URL)")
	fs.StringVar(&f.user, "username", os.Getenv("GOVC_USERNAME"), "user name (env GOVC_USERNAME)")
	fs.StringVar(&f.password, "password", os.Getenv("GOVC_PASSWORD"), "password (env GOVC_PASSWORD)")
	fs.StringVar(&f.datacenter, "datacenter", os.Getenv("GOVC_DATACENTER"), "datacenter (env GOVC_DATACENTER)")
	insecure, _ := strconv.ParseBool(os.Getenv("GOVC_INSECURE"))
	fs.BoolVar(&f.insecure, "insecure", insecure, "skip TLS verification (env GOVC_INSECURE)")
	fs.IntVar(&f.n, "n", 10, "number of VMs")
	fs.IntVar(&f.concurrency, "concurrency", 16, "VMs provisioned at once")
	fs.StringVar(&f.template, "template", "DC0_C0_RP0_VM0", "template (stemcell) to clone")
	fs.StringVar(&f.cluster, "cluster", "DC0_C0", "compute cluster")
	fs.StringVar(&f.pool, "pool", "", "child resource pool of the cluster (default: the owner)")
	fs.StringVar(&f.folder, "folder", "", "VM folder (default: kubefoundry/<owner>)")
	fs.StringVar(&f.datastore, "datastore", "", "datastore (default: the template's)")
	fs.StringVar(&f.network, "network", "VM Network", "network for the first NIC")
	fs.StringVar(&f.prefix, "prefix", "demo", "VM name prefix")
	fs.StringVar(&f.owner, "owner", "demo", "owning cluster recorded on each VM")
	fs.BoolVar(&f.linked, "linked", false, "linked clones from the template's snapshot")
	fs.DurationVar(&f.ipTimeout, "ip-timeout", 5*time.Minute, "wait this long for each VM's IP (0: do not wait)")
	fs.DurationVar(&f.simClone, "sim-clone-delay", time.Second, "simulator only: how long each clone task takes")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar and no table")
	fs.BoolVar(&f.asJSON, "json", false, "print a JSON summary (wall_seconds, soap_calls, vms) instead of the table")
	fs.BoolVar(&f.verbose, "v", false, "log to stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f.n < 1 || f.concurrency < 1 {
		return nil, errors.New("-n and -concurrency must be at least 1")
	}
	if f.pool == "" {
		f.pool = f.owner
	}
	if f.folder == "" {
		f.folder = "kubefoundry/" + f.owner
	}
	return f, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	f, err := parse(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	simulated := f.url == ""
	if simulated {
		// A clone takes -sim-clone-delay; LockHandoff 0 lets clones of one
		// template overlap as they do on a real vCenter.
		simulator.TaskDelay.MethodDelay = map[string]int{"CloneVm": int(f.simClone.Milliseconds()), "LockHandoff": 0}
		m := simulator.VPX()
		if err := m.Create(); err != nil {
			return err
		}
		defer m.Remove()
		s := m.Service.NewServer()
		defer s.Close()
		f.url, f.insecure = s.URL.String(), true
	}

	log := zap.NewNop()
	if f.verbose {
		log, _ = zap.NewDevelopment()
	}
	c, err := vsphere.New(ctx, vsphere.Config{URL: f.url, Username: f.user, Password: f.password,
		Datacenter: f.datacenter, Insecure: f.insecure},
		vsphere.WithLogger(log), vsphere.WithConcurrency(f.concurrency))
	if err != nil {
		return err
	}
	defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()

	specs := make([]vsphere.VMSpec, f.n)
	for i := range specs {
		specs[i] = vsphere.VMSpec{
			Name:         fmt.Sprintf("%s-%03d", f.prefix, i),
			Owner:        vsphere.Owner{Cluster: f.owner, Group: "worker", Index: i},
			Template:     f.template,
			LinkedClone:  f.linked,
			Folder:       f.folder,
			Cluster:      f.cluster,
			ResourcePool: f.pool,
			Datastore:    f.datastore,
			NICs:         []vsphere.NIC{{Network: f.network}},
			IPTimeout:    f.ipTimeout,
		}
		if simulated {
			// vcsim has no guest to run DHCP; this is its way to report one.
			specs[i].ExtraConfig = map[string]string{"SET.guest.ipAddress": fmt.Sprintf("10.10.%d.%d", i/250, i%250+2)}
		}
	}

	var opts []vsphere.ProvisionOption
	showBar := !f.quiet && !f.asJSON
	if showBar {
		opts = append(opts, vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
			if ev.Phase == vsphere.PhaseReady || ev.Phase == vsphere.PhaseFailed {
				fmt.Fprintf(stderr, "\r%s", bar(ev.Done, ev.Total, 40))
			}
		}))
	}
	before := c.Stats().Calls
	start := time.Now()
	res, perr := c.ProvisionVMs(ctx, specs, opts...)
	wall := time.Since(start)
	calls := c.Stats().Calls - before
	if showBar {
		fmt.Fprintln(stderr)
	}
	if perr != nil && res == nil {
		return perr
	}

	failed := 0
	for _, r := range res {
		if r.Err != nil {
			failed++
		}
	}
	switch {
	case f.asJSON:
		out := map[string]any{"wall_seconds": wall.Seconds(), "soap_calls": calls, "vms": len(res), "failed": failed,
			"soap_calls_per_vm": float64(calls) / float64(len(res))}
		if err := json.NewEncoder(stdout).Encode(out); err != nil {
			return err
		}
	case !f.quiet:
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tREF\tIP\tCREATED\tERROR")
		for _, r := range res {
			e := ""
			if r.Err != nil {
				e = r.Err.Error()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", r.Name, r.Ref.Value, r.IP, r.Created, e)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d VMs in %s, %d SOAP calls (%.2f per VM)\n", len(res), wall.Round(time.Millisecond), calls, float64(calls)/float64(len(res)))
	}
	if perr != nil {
		return fmt.Errorf("%d of %d VMs failed", failed, len(res))
	}
	return nil
}

func bar(done, total, width int) string {
	n := width * done / max(total, 1)
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
}
