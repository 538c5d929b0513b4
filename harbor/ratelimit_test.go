package harbor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry/harbor"
	"github.com/kubefoundry/kubefoundry/harbor/simulator"
)

// TestSharedRateLimiter: two Clients on one token bucket keep to it
// together. The bucket holds 3 requests and does not refill within the
// test; New costs 2 (ping, current user), so the second Client's New finds
// 1 left and is refused by the limit, not by Harbor.
func TestSharedRateLimiter(t *testing.T) {
	_, cfg := simulator.Start(t, simulator.Config{})
	l := rate.NewLimiter(rate.Every(time.Hour), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c1, err := harbor.New(ctx, cfg, harbor.WithRateLimiter(l))
	require.NoError(t, err)
	defer c1.Close(ctx)
	_, err = harbor.New(ctx, cfg, harbor.WithRateLimiter(l))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rate limit")

	c3, err := harbor.New(ctx, cfg)
	require.NoError(t, err, "a Client without the shared bucket is not limited by it")
	require.NoError(t, c3.Close(ctx))
}
