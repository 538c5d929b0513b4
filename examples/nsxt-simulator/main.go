// Command nsxt-simulator serves kubefoundry's NSX-T Policy API simulator
// (nsxt/simulator) on loopback until it is interrupted, for trying clients
// such as examples/build-topology or curl against something that answers
// like an NSX manager.
//
//	go run ./examples/nsxt-simulator -addr 127.0.0.1:8443 -cert-out /tmp/nsx.pem
//
// It prints its URL, the user name and the inventory as build-topology
// flags. The credentials default to NSXT_USERNAME and NSXT_PASSWORD, or to
// the simulator's own (see nsxt/simulator.Config) when those are unset:
//
//	curl --cacert /tmp/nsx.pem -u "admin:$NSXT_PASSWORD" https://127.0.0.1:8443/policy/api/v1/infra/tier-0s/t0
//
// -search-lag and -purge-after make it trail its writes in the search API
// and delete asynchronously, as a real NSX manager does (seconds, and
// minutes: NSX purges every 5).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "nsxt-simulator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nsxt-simulator", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on; port 0 picks a free one")
	user := fs.String("username", os.Getenv("NSXT_USERNAME"), "user name accepted (env NSXT_USERNAME; default the simulator's, admin)")
	password := fs.String("password", "", "password accepted (default from env NSXT_PASSWORD, else the simulator's)")
	realizeAfter := fs.Int("realize-after-reads", 0, "a written intent reports IN_PROGRESS to this many realized-state reads before REALIZED")
	searchLag := fs.Duration("search-lag", 0, "the search API answers from the state as it was this long ago, as NSX's index trails its writes")
	purgeAfter := fs.Duration("purge-after", 0, "deletes are asynchronous, as NSX's are: a deleted object stays marked for delete this long (NSX purges every 5m)")
	certOut := fs.String("cert-out", "", "write the server certificate (PEM) to this file, for clients to trust")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *password == "" {
		*password = os.Getenv("NSXT_PASSWORD")
	}
	if err := loopback(*addr); err != nil {
		return err
	}
	if *realizeAfter < 0 {
		return errors.New("-realize-after-reads must not be negative")
	}
	if *searchLag < 0 || *purgeAfter < 0 {
		return errors.New("-search-lag and -purge-after must not be negative")
	}
	cfg := simulator.Config{Addr: *addr, RealizeAfterReads: *realizeAfter, SearchLag: *searchLag, PurgeAfter: *purgeAfter}
	switch {
	case *user != "" && *password != "":
		cfg.Username, cfg.Password = *user, *password
	case *user != "" || *password != "":
		return errors.New("give both -username and -password (or NSXT_USERNAME and NSXT_PASSWORD), or neither for the simulator's own")
	}

	sim, err := simulator.New(cfg)
	if err != nil {
		return err
	}
	defer sim.Close()
	if *certOut != "" {
		// A certificate is public; 0644 so any client may read it.
		if err := os.WriteFile(*certOut, sim.CertificatePEM(), 0o644); err != nil {
			return err
		}
	}

	inv := sim.Inventory()
	fmt.Fprintf(stdout, "NSX-T simulator listening on %s\n", sim.URL)
	fmt.Fprintf(stdout, "user name: %s\n", sim.Username())
	caFlag := "-insecure"
	if *certOut != "" {
		fmt.Fprintf(stdout, "certificate: %s\n", *certOut)
		caFlag = "-ca-file " + *certOut
	}
	fmt.Fprintf(stdout, "inventory, as build-topology flags (password in NSXT_PASSWORD):\n")
	fmt.Fprintf(stdout, "  -url %s %s -username %s \\\n", sim.URL, caFlag, sim.Username())
	fmt.Fprintf(stdout, "  -tier0 /infra/tier-0s/%s \\\n", inv.Tier0)
	fmt.Fprintf(stdout, "  -edge-cluster %s \\\n", inv.EdgeClusterPath())
	fmt.Fprintf(stdout, "  -transport-zone %s \\\n", inv.TransportZonePath())
	fmt.Fprintf(stdout, "  -node-block /infra/ip-blocks/%s -pod-block /infra/ip-blocks/%s \\\n", inv.NodeBlock.ID, inv.PodBlock.ID)
	fmt.Fprintf(stdout, "  -floating-pool /infra/ip-pools/%s\n", inv.FloatingPool)

	<-ctx.Done()
	return nil
}

// loopback refuses an address that is not on loopback: the simulator
// accepts a well-known password and has no business on a network.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: the simulator listens on loopback only, such as 127.0.0.1 or [::1]", addr)
	}
	return nil
}
