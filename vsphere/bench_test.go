package vsphere_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

// BenchmarkProvisionVMs measures how well ProvisionVMs overlaps clones on
// vcsim with a real vCenter's pace: a clone takes 2 s, a reconfigure and a
// power-on 0.5 s each. LockHandoff 0 keeps vcsim from holding the template's
// lock through each delay, which would serialise every clone whatever the
// client does. Each iteration provisions 1 VM, then 100 VMs at concurrency
// 100, and reports:
//
//   - wall100/wall1: 1.0 is perfect overlap (target <= 1.2);
//   - soap-calls/vm: SOAP calls of the 100-VM call per VM (target <= 3).
func BenchmarkProvisionVMs(b *testing.B) {
	withTaskDelays(b, map[string]int{"CloneVm": 2000, "ReconfigVm": 500, "PowerOnVm": 500, "LockHandoff": 0})
	s := newSim(b)
	ctx := context.Background()
	c, err := vsphere.New(ctx, vsphere.Config{URL: s.url, Insecure: true}, vsphere.WithLogger(zap.NewNop()),
		vsphere.WithConcurrency(100), vsphere.WithRateLimit(0, 0))
	require.NoError(b, err)
	defer c.Close(ctx)

	var ratio, perVM, wall100 float64
	for i := 0; b.Loop(); i++ {
		one := specs(fmt.Sprintf("bench%d-one", i), 1)
		start := time.Now()
		_, err := c.ProvisionVMs(ctx, one)
		require.NoError(b, err)
		w1 := time.Since(start)

		many := specs(fmt.Sprintf("bench%d-many", i), 100)
		calls := c.Stats().Calls
		start = time.Now()
		_, err = c.ProvisionVMs(ctx, many)
		require.NoError(b, err)
		w100 := time.Since(start)

		ratio = w100.Seconds() / w1.Seconds()
		perVM = float64(c.Stats().Calls-calls) / 100
		wall100 = w100.Seconds()
	}
	b.ReportMetric(ratio, "wall100/wall1")
	b.ReportMetric(perVM, "soap-calls/vm")
	b.ReportMetric(wall100, "wall100-s")
}
