package nsxt_test

import (
	"context"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// events is a Sink that keeps what it is sent.
type events struct {
	mu  sync.Mutex
	all []kubefoundry.Event
}

func (s *events) Event(e kubefoundry.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, e)
}

// take returns the events so far and forgets them.
func (s *events) take() []kubefoundry.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.all
	s.all = nil
	return out
}

func phases(evs []kubefoundry.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Phase
	}
	return out
}

// A namespace made again before NSX purges what its teardown deleted
// waits for the purge, and says so: a "waiting" event naming the path NSX
// refused, sent before the wait, then "done". Every event names the
// operation and the namespace, and has a time. Without a wait allowed,
// the refusal is a "failed" event carrying the error; a teardown reports
// its start and end too.
func TestProgressWhileNSXPurges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{PurgeAfter: time.Hour}, nsxt.WithPurgeWait(20*time.Millisecond, time.Minute), nsxt.WithRateLimit(0, 1))
	topo := topology(e.sim, "c1")
	topo.NamespacesManagedElsewhere = true
	sink := &events{}
	_, err := e.c.BuildTopology(ctx, topo, nsxt.WithSink(sink))
	require.NoError(t, err)
	evs := sink.take()
	require.Equal(t, []string{nsxt.PhaseStarted, nsxt.PhaseDone}, phases(evs))
	for _, ev := range evs {
		require.Equal(t, nsxt.OpApplyTopology, ev.Op)
		require.Equal(t, "c1", ev.Object)
	}
	require.Equal(t, "writes: 2", evs[1].Message)

	_, err = e.c.EnsureNamespace(ctx, topo, "a")
	require.NoError(t, err)
	_, err = e.c.TeardownNamespace(ctx, "c1", "a", nsxt.WithSink(sink))
	require.NoError(t, err)
	evs = sink.take()
	require.Equal(t, []string{nsxt.PhaseStarted, nsxt.PhaseDone}, phases(evs))
	require.Equal(t, nsxt.OpTeardownNamespace, evs[1].Op)
	require.Equal(t, "c1/a", evs[1].Object)
	marked := e.sim.Marked()
	require.NotEmpty(t, marked, "NSX has not purged the namespace's network yet")

	// No wait allowed: refused at once, reported as failed.
	impatient := newClient(t, e.sim, nsxt.WithPurgeWait(time.Millisecond, 0))
	_, err = impatient.EnsureNamespace(ctx, topo, "a", nsxt.WithSink(sink))
	require.ErrorIs(t, err, nsxt.ErrPendingDelete)
	evs = sink.take()
	require.Equal(t, []string{nsxt.PhaseStarted, nsxt.PhaseFailed}, phases(evs))
	require.ErrorIs(t, evs[1].Err, nsxt.ErrPendingDelete)

	// NSX purges between the first refusal and the next try.
	e.sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 2, Before: e.sim.Purge})
	start := time.Now()
	nn, err := e.c.EnsureNamespace(ctx, topo, "a", nsxt.WithSink(sink))
	require.NoError(t, err)
	require.NotNil(t, e.sim.Object(nn.SegmentPath))
	evs = sink.take()
	require.Equal(t, []string{nsxt.PhaseStarted, nsxt.PhaseWaiting, nsxt.PhaseDone}, phases(evs))
	for _, ev := range evs {
		require.Equal(t, nsxt.OpEnsureNamespace, ev.Op)
		require.Equal(t, "c1/a", ev.Object)
		require.False(t, ev.Time.Before(start), "Time is set")
	}
	w := evs[1]
	require.Contains(t, marked, w.Handle, "the waiting event names the path NSX has not purged")
	require.Contains(t, w.Message, "pending purge")
	require.NoError(t, w.Err, "waiting is not failing")
	require.NoError(t, evs[2].Err)

	_, err = e.c.TeardownTopology(ctx, "c1", nsxt.WithSink(sink))
	require.NoError(t, err)
	evs = sink.take()
	require.Equal(t, []string{nsxt.PhaseStarted, nsxt.PhaseDone}, phases(evs))
	require.Equal(t, nsxt.OpTeardownTopology, evs[0].Op)
	e.sim.Purge()
	requireNothingLeft(t, e.sim)
}
