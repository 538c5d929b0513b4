package vsphere_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

// waitForIPsThatNeverCome provisions n VMs whose guests never report an
// IP and waits wait for them; it returns the SOAP calls the wait made.
func waitForIPsThatNeverCome(t testing.TB, c *vsphere.Client, cluster string, n int, wait time.Duration) int64 {
	t.Helper()
	sp := specs(cluster, n)
	for i := range sp {
		sp[i].ExtraConfig = nil // no guest: no IP
		sp[i].IPTimeout = time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait+time.Minute)
	defer cancel()
	// Clone and power on first (an IP wait of 1ms fails at once), so that
	// the second call is the wait alone.
	_, _ = c.ProvisionVMs(ctx, sp)
	for i := range sp {
		sp[i].IPTimeout = wait
	}
	before := c.Stats().ByMethod["RetrievePropertiesEx"]
	res, err := c.ProvisionVMs(ctx, sp)
	require.Error(t, err)
	for _, r := range res {
		require.ErrorIs(t, r.Err, vsphere.ErrIPTimeout, "%s", r.Name)
	}
	return c.Stats().ByMethod["RetrievePropertiesEx"] - before
}

// TestIPWaitBacksOff: VMs that wait for an IP are read less and less often
// while nothing changes. Polling every 100 ms made about 80 reads in 8 s
// (2985 SOAP calls for 3 VMs in 5 minutes); backing off to 10 s makes
// about 7.
func TestIPWaitBacksOff(t *testing.T) {
	t.Parallel()
	c := newSim(t).client(t)
	reads := waitForIPsThatNeverCome(t, c, "ipwait", 3, 8*time.Second)
	assert.Less(t, reads, int64(25), "reads of 3 VMs over an 8 s IP wait")
	assert.Positive(t, reads)
}

// BenchmarkIPWait reports the SOAP calls of 3 VMs waiting for an IP that
// never comes: 5 minutes as a real guest might take, or the wait in
// KUBEFOUNDRY_BENCH_IP_WAIT (such as 30s).
func BenchmarkIPWait(b *testing.B) {
	wait := 5 * time.Minute
	if v := os.Getenv("KUBEFOUNDRY_BENCH_IP_WAIT"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(b, err)
		wait = d
	}
	s := newSim(b)
	c, err := vsphere.New(context.Background(), vsphere.Config{URL: s.url, Insecure: true}, vsphere.WithLogger(zap.NewNop()))
	require.NoError(b, err)
	defer c.Close(context.Background())
	var reads int64
	for i := 0; b.Loop(); i++ {
		reads = waitForIPsThatNeverCome(b, c, "bench-ipwait", 3, wait)
	}
	b.ReportMetric(float64(reads), "reads/wait")
	b.ReportMetric(float64(reads)/wait.Minutes(), "reads/min")
}
