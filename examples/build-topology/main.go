// Command build-topology builds the NSX-T network of one Kubernetes cluster
// with kubefoundry's nsxt package: a tier-1 gateway, a node segment with
// SNAT, the Kubernetes API load balancer and a segment, subnet and SNAT
// address per namespace. It prints the plan, applies it and prints what
// NSX realized.
//
// With no -url it starts an in-process NSX-T simulator, so it runs anywhere:
//
//	go run ./examples/build-topology -cluster demo -namespaces default,kube-system,web
//	go run ./examples/build-topology -dry-run
//
// Against a real NSX manager give -url and the inventory the platform team
// provides (ids or policy paths); the credentials default to NSXT_USERNAME
// and NSXT_PASSWORD. -pod-block and -floating-pool take several, tried in
// order (TKGI's pod_ip_block_ids and fip_pool_ids); -pod-routable and
// -max-l4-lb-services are TKGI's pod_routable and max_l4_lb_service:
//
//	go run ./examples/build-topology -url https://nsx-1.example.com -ca-file nsx-ca.pem \
//		-tier0 t0 -edge-cluster edge-cluster-1 -transport-zone overlay-tz \
//		-node-block nodes-block -pod-block pods-block,pods-block-2 -floating-pool floating-pool
//
// examples/nsxt-simulator serves the same simulator on its own and prints
// these flags for it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "build-topology:", err)
		os.Exit(1)
	}
}

// listFlag is a flag that may be repeated, each value a comma list. The
// first value given replaces the default.
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }

func (l *listFlag) Set(v string) error {
	if !l.set {
		l.vals, l.set = nil, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.vals = append(l.vals, s)
		}
	}
	return nil
}

// inventory flags: the objects NSX holds before the cluster exists.
type inventory struct {
	tier0, edgeCluster, transportZone, nodeBlock string
	podBlocks, floatingPools                     listFlag
}

type flags struct {
	cluster                      string
	namespaces                   listFlag
	singleTier, dryRun, teardown bool
	podRoutable                  bool
	maxL4LBServices              int
	urls                         listFlag
	user, password               string
	caFile, thumbprint           string
	clientCert, clientKey        string
	insecure, verbose, noSession bool
	timeout                      time.Duration
	inv                          inventory
}

func parse(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("build-topology", flag.ContinueOnError)
	fs.StringVar(&f.cluster, "cluster", "demo", "cluster id: lower-case letters, digits and '-'")
	f.namespaces.vals = []string{"default", "kube-system"}
	fs.Var(&f.namespaces, "namespaces", "namespaces that get a network each, repeatable or a comma list")
	fs.BoolVar(&f.singleTier, "single-tier", false, "attach the segments and SNAT to the tier-0; the tier-1 only hosts the load balancer")
	fs.BoolVar(&f.podRoutable, "pod-routable", false, "routable namespace subnets: no SNAT address or rule per namespace")
	fs.IntVar(&f.maxL4LBServices, "max-l4-lb-services", 0, "most LoadBalancer Services the cluster may have (0: no limit)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan and write nothing")
	fs.BoolVar(&f.teardown, "teardown", false, "tear the topology down again after building it")
	fs.Var(&f.urls, "url", "NSX manager URL, repeatable or a comma list; none starts an in-process simulator")
	fs.StringVar(&f.user, "username", os.Getenv("NSXT_USERNAME"), "user name (env NSXT_USERNAME)")
	fs.StringVar(&f.password, "password", "", "password (default from env NSXT_PASSWORD)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM bundle of the certificate authorities to trust")
	fs.StringVar(&f.thumbprint, "thumbprint", "", "SHA-256 thumbprint of the managers' certificate, trusted instead of a CA")
	fs.StringVar(&f.clientCert, "client-cert", "", "PEM file of a principal identity's certificate, instead of a password")
	fs.StringVar(&f.clientKey, "client-key", "", "PEM file of the principal identity's key")
	fs.BoolVar(&f.insecure, "insecure", false, "skip TLS verification")
	fs.BoolVar(&f.noSession, "no-session", false, "send the user and password with every request instead of opening an NSX session")
	fs.StringVar(&f.inv.tier0, "tier0", "", "tier-0 gateway: id or /infra/tier-0s/<id> (required with -url)")
	fs.StringVar(&f.inv.edgeCluster, "edge-cluster", "", "edge cluster: id or policy path (required with -url)")
	fs.StringVar(&f.inv.transportZone, "transport-zone", "", "overlay transport zone: id or policy path (required with -url)")
	fs.StringVar(&f.inv.nodeBlock, "node-block", "", "IP block of the node subnet: id or /infra/ip-blocks/<id> (required with -url)")
	fs.Var(&f.inv.podBlocks, "pod-block", "IP blocks of the namespace subnets, tried in order: ids or /infra/ip-blocks/<id>, repeatable or a comma list (required with -url)")
	fs.Var(&f.inv.floatingPools, "floating-pool", "IP pools of SNAT and load balancer addresses, tried in order: ids or /infra/ip-pools/<id>, repeatable or a comma list (required with -url)")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Minute, "give up after this long (0: never)")
	fs.BoolVar(&f.verbose, "v", false, "log to stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if f.password == "" {
		f.password = os.Getenv("NSXT_PASSWORD")
	}
	if len(f.urls.vals) > 0 {
		var missing []string
		for _, x := range []struct{ name, val string }{
			{"-tier0", f.inv.tier0}, {"-edge-cluster", f.inv.edgeCluster}, {"-transport-zone", f.inv.transportZone},
			{"-node-block", f.inv.nodeBlock}, {"-pod-block", f.inv.podBlocks.String()}, {"-floating-pool", f.inv.floatingPools.String()},
		} {
			if x.val == "" {
				missing = append(missing, x.name)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("-url needs the inventory NSX already holds; missing %s", strings.Join(missing, ", "))
		}
	}
	return f, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	f, err := parse(args)
	if err != nil {
		return err
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	log := zap.NewNop()
	if f.verbose {
		if log, err = zap.NewDevelopment(); err != nil { // writes to stderr
			return err
		}
		defer func() { _ = log.Sync() }()
	}

	cfg := nsxt.Config{URLs: f.urls.vals, Username: f.user, Password: f.password, Thumbprint: f.thumbprint, Insecure: f.insecure,
		NoSession: f.noSession}
	for _, x := range []struct {
		file string
		dst  *string
	}{{f.caFile, &cfg.CACert}, {f.clientCert, &cfg.ClientCert}, {f.clientKey, &cfg.ClientKey}} {
		if x.file == "" {
			continue
		}
		b, err := os.ReadFile(x.file)
		if err != nil {
			return err
		}
		*x.dst = string(b)
	}
	if len(cfg.URLs) == 0 {
		sim, err := simulator.New(simulator.Config{})
		if err != nil {
			return err
		}
		defer sim.Close()
		cfg.URLs, cfg.Username, cfg.Password = []string{sim.URL}, sim.Username(), sim.Password()
		cfg.CACert = string(sim.CertificatePEM())
		// The simulator's inventory, unless a flag names something else.
		inv := sim.Inventory()
		for _, x := range []struct {
			dst *string
			val string
		}{
			{&f.inv.tier0, inv.Tier0}, {&f.inv.edgeCluster, inv.EdgeCluster}, {&f.inv.transportZone, inv.TransportZone},
			{&f.inv.nodeBlock, inv.NodeBlock.ID},
		} {
			if *x.dst == "" {
				*x.dst = x.val
			}
		}
		if len(f.inv.podBlocks.vals) == 0 {
			f.inv.podBlocks.vals = []string{inv.PodBlock.ID}
		}
		if len(f.inv.floatingPools.vals) == 0 {
			f.inv.floatingPools.vals = []string{inv.FloatingPool}
		}
	}
	log.Info("connecting", zap.Stringer("config", cfg))
	c, err := nsxt.New(ctx, cfg, nsxt.WithLogger(log))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())

	const ep = "/infra/sites/default/enforcement-points/default/"
	topo := nsxt.Topology{
		ClusterID:           f.cluster,
		Tier0Path:           policyPath(f.inv.tier0, "/infra/tier-0s/"),
		EdgeClusterPath:     policyPath(f.inv.edgeCluster, ep+"edge-clusters/"),
		TransportZonePath:   policyPath(f.inv.transportZone, ep+"transport-zones/"),
		NodeIPBlockPath:     policyPath(f.inv.nodeBlock, "/infra/ip-blocks/"),
		PodIPBlockPaths:     policyPaths(f.inv.podBlocks.vals, "/infra/ip-blocks/"),
		FloatingIPPoolPaths: policyPaths(f.inv.floatingPools.vals, "/infra/ip-pools/"),
		SingleTier:          f.singleTier,
		PodRoutable:         f.podRoutable,
		MaxL4LBServices:     f.maxL4LBServices,
		Namespaces:          f.namespaces.vals,
	}

	plan, err := c.PlanTopology(ctx, topo)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "plan for cluster %s: %d changes\n%s", topo.ClusterID, len(plan.Changes()), plan)
	if f.dryRun {
		fmt.Fprintln(stdout, "dry run: nothing written")
		return nil
	}

	built, err := c.BuildTopology(ctx, topo)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nrealized with %d writes:\n", built.Writes)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "tier-1\t%s\n", built.Tier1Path)
	fmt.Fprintf(tw, "node segment\t%s\n", built.NodeSegmentPath)
	fmt.Fprintf(tw, "node subnet\t%s\n", built.NodeSubnet)
	fmt.Fprintf(tw, "SNAT address\t%s\n", built.SNATAddress)
	fmt.Fprintf(tw, "API VIP\t%s:%d\n", built.APIAddress, built.APIPort)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(topo.Namespaces) > 0 {
		fmt.Fprintln(stdout)
		fmt.Fprintln(tw, "NAMESPACE\tSEGMENT\tSUBNET\tSNAT ADDRESS")
		for _, ns := range topo.Namespaces {
			nn := built.Namespaces[ns]
			snat := nn.SNATAddress
			if snat == "" {
				snat = "- (routable)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ns, nn.SegmentPath, nn.Subnet, snat)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if f.teardown {
		td, err := c.TeardownTopology(ctx, topo.ClusterID)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\ntorn down: %d objects deleted with %d writes\n", len(td.Deleted), td.Writes)
	}
	return nil
}

// policyPaths is policyPath of each.
func policyPaths(vs []string, prefix string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = policyPath(v, prefix)
	}
	return out
}

// policyPath takes an id or a policy path; an id goes under prefix.
func policyPath(v, prefix string) string {
	if strings.HasPrefix(v, "/") {
		return v
	}
	return prefix + v
}
