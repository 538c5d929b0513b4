// Package workpool runs indexed work with bounded concurrency, for the
// SDK's calls that act on many objects and report each one's outcome.
package workpool

import (
	"context"
	"sync"
)

// Run calls do(i) for every i in [0, n), at most limit at a time, and
// returns when all have returned. An item that has not started when ctx
// ends is given to skipped with ctx's error instead.
func Run(ctx context.Context, limit, n int, do func(i int), skipped func(i int, err error)) {
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			skipped(i, ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			do(i)
		}()
	}
	wg.Wait()
}
