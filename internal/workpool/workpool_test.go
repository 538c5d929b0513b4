package workpool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRunBoundsConcurrency(t *testing.T) {
	var running, peak, done atomic.Int32
	Run(context.Background(), 3, 20, func(int) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		done.Add(1)
	}, func(int, error) { t.Error("nothing is skipped") })
	assert.Equal(t, int32(20), done.Load())
	assert.LessOrEqual(t, peak.Load(), int32(3))
}

func TestRunSkipsAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ran, skipped atomic.Int32
	Run(ctx, 1, 10, func(i int) {
		ran.Add(1)
		if i == 2 {
			cancel()
		}
	}, func(_ int, err error) {
		assert.ErrorIs(t, err, context.Canceled)
		skipped.Add(1)
	})
	assert.Equal(t, int32(10), ran.Load()+skipped.Load(), "every item is either run or skipped")
	assert.Positive(t, skipped.Load())
}
