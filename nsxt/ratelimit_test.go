package nsxt_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// TestSharedRateLimiter: Clients on one token bucket keep to it together.
// The bucket holds what one New costs and does not refill within the
// test: the second Client's New is refused by the limit, not by NSX.
func TestSharedRateLimiter(t *testing.T) {
	_, cfg := simulator.Start(t, simulator.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l := rate.NewLimiter(rate.Every(time.Hour), 100)
	c1, err := nsxt.New(ctx, cfg, nsxt.WithRateLimiter(l))
	require.NoError(t, err)
	defer c1.Close(ctx)
	cost := 100 - int(l.Tokens())
	require.Positive(t, cost, "New waits for the bucket")
	// Leave one token less than a New costs.
	require.True(t, l.AllowN(time.Now(), int(l.Tokens())-(cost-1)))
	_, err = nsxt.New(ctx, cfg, nsxt.WithRateLimiter(l))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rate limit")
	assert.NotContains(t, err.Error(), "no manager answered", "the limit is not a manager's failure")
}
