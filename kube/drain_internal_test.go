package kube

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/flowcontrol"
)

// TestDeadlineError: a pod refused by its budget whose timeout strikes
// while client-go's rate limiter holds the retry stays "refused"; the
// limiter's error is recognised as the deadline, and API errors are not.
func TestDeadlineError(t *testing.T) {
	limiter := flowcontrol.NewTokenBucketRateLimiter(0.001, 1)
	limiter.Accept() // the one token
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := limiter.Wait(ctx)
	require.Error(t, err, "the next token is far past the deadline")
	require.NotErrorIs(t, err, context.DeadlineExceeded, "x/time/rate refuses at once, without the context's error: %v", err)
	wrapped := fmt.Errorf("client rate limiter Wait returned an error: %w", err) // as client-go's request.go says it
	assert.True(t, deadlineError(wrapped), "%v", wrapped)
	assert.True(t, deadlineError(fmt.Errorf("post: %w", context.DeadlineExceeded)))
	assert.False(t, deadlineError(apierrors.NewTooManyRequests("budget", 1)))
	assert.False(t, deadlineError(apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", errors.New("no"))))
}
