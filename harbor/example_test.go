package harbor_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/harbor"
	"github.com/kubefoundry/kubefoundry/harbor/simulator"
)

// A cluster's project and its pull robot, turned into the Secret its
// namespaces pull with; then what the cluster owns in Harbor.
func Example() {
	sim, err := simulator.New(simulator.Config{}) // Harbor in this process; admin / Harbor12345
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	ctx := context.Background()
	c, err := harbor.New(ctx, harbor.Config{URL: sim.URL, Username: "admin", Password: "Harbor12345"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(context.Background())

	p, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "c1", ClusterID: "c1", AutoScan: true, PreventVulnerable: "high"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("project %s of cluster %s: scan on push %t, refuse %s or worse\n", p.Name, p.ClusterID, p.AutoScan, p.PreventVulnerable)

	r, err := c.EnsureRobot(ctx, harbor.RobotSpec{Project: p.Name, Name: "pull", Pull: true, ClusterID: "c1"})
	if err != nil {
		log.Fatal(err)
	}
	robot, err := harbor.New(ctx, harbor.Config{URL: sim.URL, Username: r.Name, Password: r.Secret})
	if err != nil {
		log.Fatal(err)
	}
	defer robot.Close(context.Background())
	mine, err := robot.RegistryAccess(ctx, "c1/app")
	if err != nil {
		log.Fatal(err)
	}
	theirs, err := robot.RegistryAccess(ctx, "library/app")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("robot %s may %v c1/app, %v library/app\n", r.Name, mine, theirs)

	secret, err := c.PullSecret(r, "default", "harbor-pull")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("secret %s/%s of type %s\n", secret.Namespace, secret.Name, secret.Type)

	owned, err := c.ListOwned(ctx, "c1")
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range owned {
		fmt.Println("cluster c1 owns", o.Kind, o.Name)
	}
	// Output:
	// project c1 of cluster c1: scan on push true, refuse high or worse
	// robot robot$c1+pull may [pull] c1/app, [] library/app
	// secret default/harbor-pull of type kubernetes.io/dockerconfigjson
	// cluster c1 owns robot robot$c1+pull
	// cluster c1 owns project c1
}

// A replication reports its execution before it waits for it; the
// execution's id, journalled, resumes the wait after a crash without
// starting another run.
func ExampleClient_Replicate() {
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	ctx := context.Background()
	c, err := harbor.New(ctx, harbor.Config{URL: sim.URL, Username: "admin", Password: "Harbor12345"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "apps"}); err != nil {
		log.Fatal(err)
	}
	if _, err := sim.AddArtifact("apps", "web", "v1"); err != nil { // as a push would
		log.Fatal(err)
	}
	if _, err := c.EnsureRegistry(ctx, harbor.RegistrySpec{Name: "dr", Type: "harbor", URL: "https://harbor-dr.example.com"}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: "to-dr", Direction: harbor.Push, Registry: "dr",
		NameFilter: "apps/**"}); err != nil {
		log.Fatal(err)
	}

	var journal string // where a caller keeps the handle to resume with
	progress := kubefoundry.SinkFunc(func(e kubefoundry.Event) {
		if e.Phase == harbor.PhaseStarted {
			journal = e.Handle
		}
		fmt.Printf("%s %s: %s, %d of %d tasks ended\n", e.Op, e.Object, e.Phase, e.Step, e.Steps)
	})
	run, err := c.Replicate(ctx, "to-dr", harbor.WithSink(progress))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.Status)

	again, err := c.Replicate(ctx, "to-dr", harbor.WithExecution(journal))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the same run:", again.ID == run.ID)
	// Output:
	// replicate to-dr: started, 0 of 0 tasks ended
	// replicate to-dr: running, 0 of 1 tasks ended
	// replicate to-dr: done, 1 of 1 tasks ended
	// Succeed
	// the same run: true
}
