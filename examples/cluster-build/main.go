// Command cluster-build builds a Kubernetes cluster with kubefoundry's
// lifecycle package on a whole simulated vSphere foundation started in
// this process (lifecycle/simulator: vCenter with CNS, NSX-T, Harbor, a
// BOSH director with its agents), prints what it made and a kubeconfig
// with which kubectl reaches the cluster through its NSX load balancer,
// resizes its workers (a worker that goes is drained first), upgrades it
// to a newer stemcell while a Deployment with a PodDisruptionBudget runs
// (each node drained before its VM is replaced, the budget held), then
// deletes the cluster and shows that nothing of it is left, nor anything
// the orphan scan finds.
//
//	make demo                         # builds the tools when needed, then:
//	go run ./examples/cluster-build   # 3 control-plane nodes, 3 workers
//	go run ./examples/cluster-build -keep   # leave it running; Ctrl-C ends it
//
// The control plane runs the real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler that `make tools` builds
// into bin/, each VM's jobs on its own loopback address; the nodes'
// kubelets are kwok's simulated ones, so pods run nowhere. Logs of every
// part go to <state>/foundation.log.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vmware/govmomi/find"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/lifecycle"
	"github.com/kubefoundry/kubefoundry/lifecycle/kuberelease"
	"github.com/kubefoundry/kubefoundry/lifecycle/simulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "cluster-build:", err)
		os.Exit(1)
	}
}

type flags struct {
	name, bin, state           string
	controlPlane, work, resize int
	keep, upgrade              bool
}

func parse(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("cluster-build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.name, "name", "demo", "the cluster's name")
	fs.IntVar(&f.controlPlane, "control-plane", 3, "control-plane nodes: 1, 3 or 5")
	fs.IntVar(&f.work, "workers", 3, "worker nodes")
	fs.IntVar(&f.resize, "resize", 5, "then resize the workers to this many (0: no resize)")
	fs.StringVar(&f.bin, "bin", "bin", "where `make tools` put etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok")
	fs.StringVar(&f.state, "state", "", "directory for the log, the kubeconfig and the clusters' records (default: a new temporary one)")
	fs.BoolVar(&f.upgrade, "upgrade", true, "then upgrade the cluster to a newer stemcell, with a Deployment and its PodDisruptionBudget running")
	fs.BoolVar(&f.keep, "keep", false, "leave the cluster running until interrupted, and say how to reach it")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := kubefoundry.ClusterID(f.name).Validate(); err != nil {
		return nil, fmt.Errorf("-name: %w", err)
	}
	if f.work < 0 || f.resize < 0 {
		return nil, errors.New("-workers and -resize must not be negative")
	}
	return f, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parse(args, stderr)
	if err != nil {
		return err
	}
	bins, version, err := binaries(ctx, f.bin)
	if err != nil {
		return err
	}
	if f.state == "" {
		if f.state, err = os.MkdirTemp("", "cluster-build-"); err != nil {
			return err
		}
	}
	logFile, err := os.Create(filepath.Join(f.state, "foundation.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logFile), zap.InfoLevel))
	defer func() { _ = log.Sync() }()
	// vcsim reports some faults through the standard logger: into the log
	// file too, not onto the terminal.
	stdlog.SetOutput(logFile)

	fmt.Fprintf(stdout, "Starting a simulated foundation (vCenter, NSX-T, Harbor, BOSH director); logs in %s\n", logFile.Name())
	// The foundation's own files (the VMs' disks, the blobstore) go with
	// it when it closes; the state directory keeps the log, the
	// kubeconfig and the clusters' records.
	sim, err := simulator.Start(ctx, simulator.Config{Clusters: 3, Log: log})
	if err != nil {
		return err
	}
	defer sim.Close()
	lf, err := sim.Lifecycle(ctx, bins, version)
	if err != nil {
		return err
	}
	st, err := lifecycle.OpenStore(filepath.Join(f.state, "clusters.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	plans := lifecycle.DefaultPlans()
	plan := plans["medium"]
	plan.Name, plan.ControlPlaneNodes, plan.Workers = "demo", f.controlPlane, f.work
	plans["demo"] = plan
	p := &progress{w: stdout, start: time.Now()}
	m, err := lifecycle.New(lifecycle.Config{Foundation: lf, Store: st, Plans: plans, Events: p, Log: log})
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\nCreating cluster %s: %d control-plane nodes, %d workers, Kubernetes %s\n", f.name, f.controlPlane, f.work, version)
	start := time.Now()
	c, err := m.Create(ctx, lifecycle.ClusterSpec{Name: kubefoundry.ClusterID(f.name), Plan: "demo", KubernetesVersion: version})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Cluster %s created in %s\n\n", c.Name, time.Since(start).Round(time.Second))

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGROUP\tAZ\tVM")
	for _, n := range c.Nodes {
		fmt.Fprintf(tw, "%s\t%s/%d\t%s\t%s\n", n.IP, n.Group, n.Index, n.AZ, n.VM)
	}
	_ = tw.Flush()
	owned, err := lf.NSX.ListOwned(ctx, f.name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nNSX: %d objects (tier-1, node segment %s, SNAT, load balancer); API at https://%s:%d through the load balancer\n",
		len(owned), c.NodeSubnet, c.APIAddress, c.APIPort)

	kc, err := m.Credentials(ctx, f.name)
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(f.state, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Admin kubeconfig: %s\n\n$ kubectl get nodes -o wide\n", kubeconfig)
	cmd := exec.CommandContext(ctx, bins.Kubectl, "--kubeconfig", kubeconfig, "get", "nodes", "-o", "wide")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl get nodes: %w", err)
	}

	if f.resize > 0 && f.resize != f.work {
		fmt.Fprintf(stdout, "\nResizing cluster %s to %d workers (a worker that goes is drained first)\n", f.name, f.resize)
		start = time.Now()
		p.reset(start)
		if c, err = m.Resize(ctx, f.name, map[string]int{"worker": f.resize}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Cluster %s resized in %s: %d nodes\n\n$ kubectl get nodes\n", f.name, time.Since(start).Round(time.Second), len(c.Nodes))
		cmd := exec.CommandContext(ctx, bins.Kubectl, "--kubeconfig", kubeconfig, "get", "nodes")
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("kubectl get nodes: %w", err)
		}
	}

	if f.upgrade {
		newer := lifecycle.Config{Foundation: lf, Store: st, Plans: plans, Events: p, Log: log}
		if m, err = upgrade(ctx, f.name, sim, newer, kubeconfig, bins.Kubectl, p, stdout, stderr); err != nil {
			return err
		}
	}

	if f.keep {
		fmt.Fprintf(stdout, "\nThe cluster runs until you interrupt this program (Ctrl-C). From another shell:\n  %s --kubeconfig %s get nodes\n",
			bins.Kubectl, kubeconfig)
		<-ctx.Done()
		fmt.Fprintln(stdout, "\nStopping the foundation (the cluster goes with it)")
		return nil
	}

	fmt.Fprintf(stdout, "\nDeleting cluster %s\n", f.name)
	start = time.Now()
	p.reset(start)
	if err := m.Delete(ctx, f.name); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Cluster %s deleted in %s\n", f.name, time.Since(start).Round(time.Second))
	owned, err = lf.NSX.ListOwned(ctx, f.name)
	if err != nil {
		return err
	}
	vms, err := find.NewFinder(sim.VSphere.Vim25()).VirtualMachineList(ctx, "/DC0/vm/"+simulator.VMFolder+"/*")
	var nf *find.NotFoundError
	if err != nil && !errors.As(err, &nf) {
		return err
	}
	fmt.Fprintf(stdout, "Left behind: %d VMs, %d NSX objects\n", len(vms), len(owned))
	if len(vms)+len(owned) > 0 {
		return fmt.Errorf("the deleted cluster left %d VMs and %d NSX objects", len(vms), len(owned))
	}
	orphans, err := m.Orphans(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Orphan scan (BOSH deployments and cloud configs, NSX objects, of clusters no record knows): %d found\n", len(orphans))
	for _, o := range orphans {
		fmt.Fprintf(stdout, "  %s: %s %s %s\n", o.Cluster, o.System, o.Kind, o.Name)
	}
	if len(orphans) > 0 {
		return fmt.Errorf("the orphan scan found %d objects", len(orphans))
	}
	return nil
}

// binaries finds the Kubernetes programs in dir, and their version.
func binaries(ctx context.Context, dir string) (kuberelease.Binaries, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return kuberelease.Binaries{}, "", err
	}
	b := kuberelease.BinariesIn(abs)
	if err := b.Validate(); err != nil {
		return b, "", fmt.Errorf("%w\n(make tools builds them into bin/; make demo runs it first)", err)
	}
	out, err := exec.CommandContext(ctx, b.KubeAPIServer, "--version").Output()
	if err != nil {
		return b, "", fmt.Errorf("%s --version: %w", b.KubeAPIServer, err)
	}
	v := regexp.MustCompile(`v(\d+\.\d+\.\d+)`).FindStringSubmatch(string(out))
	if v == nil {
		return b, "", fmt.Errorf("%s --version said %q", b.KubeAPIServer, strings.TrimSpace(string(out)))
	}
	return b, v[1], nil
}

// progress prints the operation's stages, one line each, and the
// director's steps beneath the deploy stage.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	began time.Time
}

// reset starts the clock again, for the next operation.
func (p *progress) reset(start time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start = start
}

func (p *progress) Event(e kubefoundry.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := time.Since(p.start).Round(time.Second)
	switch {
	case e.Op == "drain" && e.Phase == "evicted":
		fmt.Fprintf(p.w, "%6s         drain: evicted %s\n", at, e.Object)
	case e.Op == "drain" && e.Phase == "waiting":
		fmt.Fprintf(p.w, "%6s         drain: %s: %s\n", at, e.Object, e.Message)
	case e.Op == "drain" || e.Op == "task":
	case strings.HasSuffix(e.Op, " cluster") && e.Phase == "started":
		p.began = time.Now()
		fmt.Fprintf(p.w, "%6s  [%d/%d] %s\n", at, e.Step+1, e.Steps, e.Object)
	case strings.HasSuffix(e.Op, " cluster") && e.Phase == "done":
		fmt.Fprintf(p.w, "%6s  [%d/%d] %s done (%s)\n", at, e.Step, e.Steps, e.Object, time.Since(p.began).Round(100*time.Millisecond))
	case strings.HasSuffix(e.Op, " cluster") && e.Phase == "failed":
		fmt.Fprintf(p.w, "%6s  [%d/%d] %s FAILED: %v\n", at, e.Step, e.Steps, e.Object, e.Err)
	case e.Phase == "done" || e.Phase == "failed":
		state := e.Phase
		if e.Err != nil {
			state += ": " + e.Err.Error()
		}
		fmt.Fprintf(p.w, "%6s         %s %d/%d: %s %s\n", at, strings.ToLower(e.Message), e.Step, e.Steps, e.Object, state)
	}
}
