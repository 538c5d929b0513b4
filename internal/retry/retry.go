// Package retry holds capped exponential backoff with jitter, bounded by a
// context, for the SDK's clients.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields capped exponential delays with full jitter. The zero value
// starts at 100ms and caps at 10s. A Backoff is not safe for concurrent use;
// give each retry loop its own.
type Backoff struct {
	Initial time.Duration // first delay; 100ms when zero
	Max     time.Duration // cap; 10s when zero
	attempt int
}

// Next returns the next delay: a random duration in [d/2, d) where d doubles
// from Initial up to Max.
func (b *Backoff) Next() time.Duration {
	initial, ceiling := b.Initial, b.Max
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	if ceiling <= 0 {
		ceiling = 10 * time.Second
	}
	d := initial << min(b.attempt, 30)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	b.attempt++
	half := d / 2
	return half + rand.N(half+1)
}

// Reset starts the sequence again.
func (b *Backoff) Reset() { b.attempt = 0 }

// Sleep waits for the next delay. It returns false, at once, when ctx ends
// first or when the delay would pass ctx's deadline.
func (b *Backoff) Sleep(ctx context.Context) bool {
	d := b.Next()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Do calls fn until it succeeds, ctx ends, or retryable(err) is false. It
// returns fn's last error.
func Do(ctx context.Context, b Backoff, retryable func(error) bool, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		if err == nil || !retryable(err) {
			return err
		}
		if !b.Sleep(ctx) {
			return err
		}
	}
}
