package nsxt_test

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// BenchmarkBuildTopology builds a cluster's topology with 1, 10 and 100
// namespaces on the simulator, rebuilds it unchanged, and tears it down.
// It reports the write requests of the build (one hierarchical PATCH per
// stage whatever the number of namespaces), of the unchanged rebuild and
// of the teardown, the objects in the plan, and the read requests of the
// whole cycle (search pages, realized-state reads, and the GETs and
// listings of NSX's store: a teardown makes 25 plus four per namespace
// here, a GET of its segment and of its group and listings of its
// policy's rules and of its segment's ports; a build or rebuild, what it
// may delete, 12 plus four per namespace once the cluster exists).
func BenchmarkBuildTopology(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("namespaces=%d", n), func(b *testing.B) {
			e := newEnv(b, simulator.Config{}, nsxt.WithLogger(zap.NewNop()), nsxt.WithRateLimit(0, 0))
			ctx := context.Background()
			var ns []string
			for i := range n {
				ns = append(ns, fmt.Sprintf("ns-%03d", i))
			}
			var writes, rewrites, tdWrites, objects int
			r0, _ := e.c.Calls()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				topo := topology(e.sim, "bench", ns...)
				net, err := e.c.BuildTopology(ctx, topo)
				if err != nil {
					b.Fatal(err)
				}
				again, err := e.c.BuildTopology(ctx, topo)
				if err != nil {
					b.Fatal(err)
				}
				td, err := e.c.TeardownTopology(ctx, "bench")
				if err != nil {
					b.Fatal(err)
				}
				writes += net.Writes
				rewrites += again.Writes
				tdWrites += td.Writes
				objects += len(net.Plan.Changes())
			}
			r1, _ := e.c.Calls()
			b.ReportMetric(float64(r1-r0)/float64(b.N), "reads/cycle")
			b.ReportMetric(float64(writes)/float64(b.N), "writes/build")
			b.ReportMetric(float64(rewrites)/float64(b.N), "writes/rebuild")
			b.ReportMetric(float64(tdWrites)/float64(b.N), "writes/teardown")
			b.ReportMetric(float64(objects)/float64(b.N), "objects/plan")
		})
	}
}
