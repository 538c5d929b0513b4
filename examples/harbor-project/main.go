// Command harbor-project sets Harbor up for a cluster: a private project
// scanned on push, and a pull-only robot account, printed as the
// kubernetes.io/dockerconfigjson Secret the cluster's namespaces use.
//
// With no -url it starts an in-process Harbor simulator:
//
//	go run ./examples/harbor-project -cluster c1 -namespace default
//
// Against a real Harbor (credentials from HARBOR_USERNAME and
// HARBOR_PASSWORD by default):
//
//	go run ./examples/harbor-project -url https://harbor.example.com -cluster c1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"sigs.k8s.io/yaml"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/harbor"
	"github.com/kubefoundry/kubefoundry/harbor/simulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "harbor-project:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("harbor-project", flag.ContinueOnError)
	url := fs.String("url", "", "Harbor URL; empty starts the in-process simulator")
	username := fs.String("username", os.Getenv("HARBOR_USERNAME"), "Harbor administrator (default $HARBOR_USERNAME)")
	password := fs.String("password", "", "password (default $HARBOR_PASSWORD)")
	caFile := fs.String("ca-file", "", "PEM CA bundle to trust")
	insecure := fs.Bool("insecure", false, "skip TLS verification")
	cluster := fs.String("cluster", "demo", "cluster the project and robot are for")
	namespace := fs.String("namespace", "default", "namespace of the pull Secret")
	days := fs.Int("robot-days", 90, "robot lifetime in days; 0 never expires")
	severity := fs.String("prevent-vulnerable", "critical", "refuse images with a vulnerability this severe or worse; empty allows all")
	verbose := fs.Bool("v", false, "log to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := kubefoundry.ClusterID(*cluster).Validate(); err != nil {
		return fmt.Errorf("-cluster: %w", err)
	}
	if *password == "" {
		*password = os.Getenv("HARBOR_PASSWORD")
	}
	log := zap.NewNop()
	if *verbose {
		log, _ = zap.NewDevelopment()
	}
	cfg := harbor.Config{URL: *url, Username: *username, Password: *password, Insecure: *insecure}
	if *url == "" {
		sim, err := simulator.New(simulator.Config{})
		if err != nil {
			return err
		}
		defer sim.Close()
		cfg = harbor.Config{URL: sim.URL, Username: "admin", Password: "Harbor12345"}
		fmt.Fprintf(out, "# Harbor simulator at %s\n", sim.URL)
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		cfg.CACert = string(pem)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := harbor.New(ctx, cfg, harbor.WithLogger(log))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	p, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: *cluster, ClusterID: *cluster, AutoScan: true, PreventVulnerable: *severity})
	if err != nil {
		return err
	}
	r, err := c.EnsureRobot(ctx, harbor.RobotSpec{Project: p.Name, Name: "cluster-pull", ClusterID: *cluster,
		Description: "image pulls for cluster " + *cluster, Pull: true, ExpiresIn: time.Duration(*days) * 24 * time.Hour})
	if err != nil {
		return err
	}
	if r.Secret == "" {
		// The robot existed: its secret is not readable, so give it a new one.
		if r.Secret, err = c.RefreshRobotSecret(ctx, r.ID, ""); err != nil {
			return err
		}
		fmt.Fprintf(out, "# robot %s existed; its secret was refreshed\n", r.Name)
	}
	access, err := verify(ctx, cfg, r, p.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "# project %s (id %d), robot %s may %v %s/*\n", p.Name, p.ID, r.Name, access, p.Name)
	sec, err := c.PullSecret(r, *namespace, "harbor-pull-"+*cluster)
	if err != nil {
		return err
	}
	y, err := yaml.Marshal(sec)
	if err != nil {
		return err
	}
	_, err = out.Write(y)
	return err
}

// verify logs in as the robot and asks the registry what it may do.
func verify(ctx context.Context, cfg harbor.Config, r *harbor.Robot, project string) ([]string, error) {
	cfg.Username, cfg.Password = r.Name, r.Secret
	rc, err := harbor.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("logging in as the robot: %w", err)
	}
	defer rc.Close(context.Background())
	return rc.RegistryAccess(ctx, project+"/any")
}
