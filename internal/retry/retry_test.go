package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoffCapped(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, w := range want {
		d := b.Next()
		w *= time.Millisecond
		assert.GreaterOrEqual(t, d, w/2, "attempt %d", i)
		assert.LessOrEqual(t, d, w, "attempt %d", i)
	}
}

func TestSleepStopsAtDeadline(t *testing.T) {
	b := Backoff{Initial: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	assert.False(t, b.Sleep(ctx), "a delay past the deadline must not be slept")
}

func TestDo(t *testing.T) {
	transient := errors.New("transient")
	fatal := errors.New("fatal")
	tests := []struct {
		name  string
		errs  []error
		want  error
		calls int
	}{
		{"succeeds at once", []error{nil}, nil, 1},
		{"retries transient", []error{transient, transient, nil}, nil, 3},
		{"stops on fatal", []error{transient, fatal, nil}, fatal, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := Do(context.Background(), Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
				func(err error) bool { return errors.Is(err, transient) },
				func(context.Context) error { n++; return tt.errs[n-1] })
			require.ErrorIs(t, err, tt.want)
			if tt.want == nil {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.calls, n)
		})
	}
}
