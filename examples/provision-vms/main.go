// Command provision-vms provisions N VMs with kubefoundry's vsphere package
// and prints a table of their names and IPs.
//
// With no -url it starts an in-process vCenter simulator (govmomi's vcsim)
// and clones its VM DC0_C0_RP0_VM0, so it runs anywhere:
//
//	go run ./examples/provision-vms -n 20
//
// Against a real vCenter, give -url or the GOVC_* variables govc users
// already have (GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD, GOVC_DATACENTER,
// and GOVC_INSECURE, GOVC_TLS_CA_CERTS or GOVC_TLS_KNOWN_HOSTS to trust
// its certificate):
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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmware/govmomi/simulator"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/examples/internal/vcflags"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "provision-vms:", err)
		os.Exit(1)
	}
}

type flags struct {
	vc                                *vcflags.VCenter
	n, concurrency                    int
	template, cluster, pool, folder   string
	datastore, network, prefix, owner string
	linked, quiet, asJSON, verbose    bool
	ipTimeout, simClone               time.Duration
	cpus, memoryMB                    int
	diskGB                            int
	userData                          string
}

func parse(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("provision-vms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.vc = vcflags.Register(fs)
	fs.IntVar(&f.cpus, "cpus", 0, "virtual CPUs of each VM (default: the template's)")
	fs.IntVar(&f.memoryMB, "memory-mb", 0, "memory of each VM in MiB (default: the template's)")
	fs.IntVar(&f.diskGB, "disk-gb", 0, "add a data disk of this many GiB to each VM (0: none)")
	fs.StringVar(&f.userData, "user-data", "", "file of cloud-init user data for each VM")
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
	if err := kubefoundry.ClusterID(f.owner).Validate(); err != nil {
		return nil, fmt.Errorf("-owner: %w", err)
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

	var userData []byte
	if f.userData != "" {
		if userData, err = os.ReadFile(f.userData); err != nil {
			return fmt.Errorf("-user-data: %w", err)
		}
	}
	simulated := f.vc.URL == ""
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
		f.vc.URL, f.vc.Insecure = s.URL.String(), true
	}

	log := zap.NewNop()
	if f.verbose {
		log, _ = zap.NewDevelopment()
	}
	cfg, err := f.vc.Config()
	if err != nil {
		return err
	}
	c, err := vsphere.New(ctx, cfg, vsphere.WithLogger(log), vsphere.WithConcurrency(f.concurrency))
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
			CPUs:         int32(f.cpus),
			MemoryMB:     int64(f.memoryMB),
			UserData:     userData,
		}
		if f.diskGB > 0 {
			specs[i].Disks = []vsphere.Disk{{SizeGB: int64(f.diskGB)}}
		}
		if simulated {
			// vcsim has no guest to run DHCP; this is its way to report one.
			specs[i].ExtraConfig = map[string]string{"SET.guest.ipAddress": fmt.Sprintf("10.10.%d.%d", i/250, i%250+2)}
		}
	}

	var opts []vsphere.ProvisionOption
	showBar := !f.quiet && !f.asJSON
	if showBar {
		// Every step moves the line, so a long wait for clones or IPs
		// shows where each VM is rather than nothing.
		phase := map[string]vsphere.Phase{}
		opts = append(opts, vsphere.WithProgress(func(ev vsphere.ProgressEvent) {
			phase[ev.VM] = ev.Phase
			fmt.Fprintf(stderr, "\r%s %s", bar(ev.Done, ev.Total, 40), phases(phase, ev.Total))
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
	causes := map[string]int{} // distinct errors, with how many VMs each
	var order []string
	for _, r := range res {
		if r.Err != nil {
			failed++
			if causes[r.Err.Error()] == 0 {
				order = append(order, r.Err.Error())
			}
			causes[r.Err.Error()]++
		}
	}
	// One error shared by every failed VM (a bad template, a missing
	// network) is printed once, not on every row.
	shared := len(order) == 1 && failed > 1
	switch {
	case f.asJSON:
		vms := make([]map[string]any, len(res))
		for i, r := range res {
			vms[i] = map[string]any{"name": r.Name, "ref": r.Ref.Value, "ip": r.IP, "created": r.Created}
			if r.Err != nil {
				vms[i]["error"] = r.Err.Error()
			}
		}
		out := map[string]any{"wall_seconds": wall.Seconds(), "soap_calls": calls, "vms": len(res), "failed": failed,
			"soap_calls_per_vm": float64(calls) / float64(len(res)), "results": vms}
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
				if shared {
					e = "(below)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", r.Name, r.Ref.Value, r.IP, r.Created, e)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d VMs in %s, %d SOAP calls (%.2f per VM)\n", len(res), wall.Round(time.Millisecond), calls, float64(calls)/float64(len(res)))
	}
	if perr != nil {
		msg := make([]string, len(order))
		for i, m := range order {
			msg[i] = m
			if len(order) > 1 {
				msg[i] = fmt.Sprintf("%d VMs: %s", causes[m], m)
			}
		}
		return fmt.Errorf("%d of %d VMs failed: %s", failed, len(res), strings.Join(msg, "; "))
	}
	return nil
}

// phases counts the VMs in each phase reached so far: "cloning 3, powered-on 2, ready 5".
func phases(by map[string]vsphere.Phase, total int) string {
	count := map[vsphere.Phase]int{}
	for _, p := range by {
		count[p]++
	}
	var parts []string
	if waiting := total - len(by); waiting > 0 {
		parts = append(parts, fmt.Sprintf("queued %d", waiting))
	}
	for _, p := range []vsphere.Phase{vsphere.PhaseCloneStarted, vsphere.PhaseCloned, vsphere.PhaseExisting, vsphere.PhasePoweredOn, vsphere.PhaseReady, vsphere.PhaseFailed} {
		if count[p] > 0 {
			name := string(p)
			switch p {
			case vsphere.PhaseCloneStarted:
				name = "cloning"
			case vsphere.PhasePoweredOn:
				name = "waiting for IP"
			}
			parts = append(parts, fmt.Sprintf("%s %d", name, count[p]))
		}
	}
	return strings.Join(parts, ", ") + "   "
}

func bar(done, total, width int) string {
	n := width * done / max(total, 1)
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
}
