package mbus

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
)

// natsOptions adds NATS connection options (tests: fast reconnects).
func natsOptions(opts ...nats.Option) Option {
	return optionFunc(func(o *options) { o.natsOpts = append(o.natsOpts, opts...) })
}

// fastReconnect makes a dropped connection try again every 10 ms, so that
// 60 attempts (the limit this package once had) pass in well under a
// second.
var fastReconnect = natsOptions(nats.ReconnectWait(10*time.Millisecond), nats.ReconnectJitter(0, 0))

// TestDirectorReconnectsMidCall drops the director's connection while it
// polls a task: the call rides out the reconnection and returns the task's
// result.
func TestDirectorReconnectsMidCall(t *testing.T) {
	b := startBus(t, BusConfig{})
	started := make(chan struct{})
	release := make(chan struct{})
	startAgent(t, b, "agent-1", Methods{
		"apply": {LongRunning: true, Func: func(ctx context.Context, _ json.RawMessage) (any, error) {
			close(started)
			select {
			case <-release:
				return "applied", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}},
	})
	c, err := Dial(testCtx(t), Config{URL: b.URL(), Credentials: b.DirectorCredentials(),
		PollInterval: 10 * time.Millisecond, CallTimeout: 2 * time.Second},
		WithLogger(zaptest.NewLogger(t)), fastReconnect)
	require.NoError(t, err)
	t.Cleanup(c.Close)

	type result struct {
		v   json.RawMessage
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := c.Call(testCtx(t), "agent-1", "apply")
		done <- result{v, err}
	}()
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("apply did not start")
	}
	// Once the director has the task id (the first answer) and a get_task
	// answer, it is polling. (An answer sent while the director is away is
	// lost, as on any NATS: the first one would make the call time out.)
	require.Eventually(t, func() bool { return c.nc.Stats().InMsgs >= 2 }, wait, time.Millisecond)
	cid, err := c.nc.GetClientID()
	require.NoError(t, err)
	require.NoError(t, b.srv.DisconnectClientByID(cid)) // the bus drops the director
	require.Eventually(t, func() bool { return c.nc.Stats().Reconnects > 0 && c.nc.IsConnected() }, wait, 5*time.Millisecond)
	close(release)
	select {
	case r := <-done:
		require.NoError(t, r.err)
		assert.JSONEq(t, `"applied"`, string(r.v))
	case <-time.After(wait):
		t.Fatal("the call did not survive the reconnection")
	}
}

// TestBusOutage takes the bus away for longer than 60 reconnect attempts
// and brings it back on the same address. A call made meanwhile fails
// within CallTimeout naming the bus, and never reaches the agent later;
// the agent and the director reconnect by themselves and talk again.
func TestBusOutage(t *testing.T) {
	ca, err := NewCA("outage CA")
	require.NoError(t, err)
	b1, err := StartBus(testCtx(t), BusConfig{CA: ca}, WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	u, err := url.Parse(b1.URL())
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)

	var calls atomic.Int32
	creds, err := b1.AddAgent("agent-1")
	require.NoError(t, err)
	// The new bus learns of agent-1 just after it starts listening; an
	// external NATS has its users before, so an early attempt's
	// authorization error must not end the test's reconnection.
	opts := []Option{WithLogger(zaptest.NewLogger(t)), fastReconnect, natsOptions(nats.IgnoreAuthErrorAbort())}
	s, err := StartServer(testCtx(t), ServerConfig{URL: b1.URL(), AgentID: "agent-1", Credentials: creds},
		Methods{"count": {Func: func(context.Context, json.RawMessage) (any, error) { return calls.Add(1), nil }}}, opts...)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	c, err := Dial(testCtx(t), Config{URL: b1.URL(), Credentials: b1.DirectorCredentials(), CallTimeout: 500 * time.Millisecond}, opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	v, err := c.Call(testCtx(t), "agent-1", "count")
	require.NoError(t, err)
	require.JSONEq(t, `1`, string(v))

	c2, err := Dial(testCtx(t), Config{URL: b1.URL(), Credentials: b1.DirectorCredentials()}, opts...)
	require.NoError(t, err)

	b1.Close()
	require.Eventually(t, func() bool { return !c.nc.IsConnected() && !s.nc.IsConnected() }, wait, 5*time.Millisecond)
	// While it waits for the connection, a call ends with its ctx or with
	// the Client.
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c2.CancelTask(ctx, "agent-1", "t1"), context.DeadlineExceeded)
	go func() {
		time.Sleep(50 * time.Millisecond)
		c2.Close()
	}()
	_, err = c2.Call(testCtx(t), "agent-1", "count")
	require.ErrorIs(t, err, nats.ErrConnectionClosed)

	start := time.Now()
	_, err = c.Call(testCtx(t), "agent-1", "count")
	require.ErrorIs(t, err, kubefoundry.ErrTimeout)
	require.ErrorIs(t, err, kubefoundry.ErrUnavailable)
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, kubefoundry.StageConnect, te.Stage)
	assert.Equal(t, u.Host, te.Host)
	assert.Equal(t, "count", te.Op)
	assert.Less(t, time.Since(start), wait)

	time.Sleep(1500 * time.Millisecond) // well over 60 attempts 10 ms apart
	// The bus comes back allowing the agent from the start, as a restarted
	// director's does (allowing it by a reload just after the start raced,
	// inside NATS, with the agent's reconnection failing authentication).
	b2, err := StartBus(testCtx(t), BusConfig{CA: ca, Port: port, Agents: []string{"agent-1"}}, WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(b2.Close)
	require.Eventually(t, func() bool {
		v, err = c.Call(testCtx(t), "agent-1", "count")
		return err == nil
	}, wait, 10*time.Millisecond, "the agent and the director did not come back")
	assert.JSONEq(t, `2`, string(v), "the call made during the outage reached the agent")
	assert.EqualValues(t, 2, calls.Load())
}

// TestContextsWithoutDeadline: a ctx with no deadline (context.Background,
// a cancel-only ctx for a subscription) works wherever a ctx is taken.
func TestContextsWithoutDeadline(t *testing.T) {
	b := startBus(t, BusConfig{})
	creds, err := b.AddAgent("agent-1")
	require.NoError(t, err)
	s, err := StartServer(context.Background(), ServerConfig{URL: b.URL(), AgentID: "agent-1", Credentials: creds}, echo)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	c, err := Dial(context.Background(), Config{URL: b.URL(), Credentials: b.DirectorCredentials()})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alerts := make(chan Alert, 1)
	require.NoError(t, c.Alerts(ctx, func(_ string, a Alert) { alerts <- a }))
	require.NoError(t, c.Heartbeats(ctx, func(string, Heartbeat) {}))
	require.NoError(t, s.PublishAlert(context.Background(), Alert{ID: "a1"}))
	select {
	case a := <-alerts:
		assert.Equal(t, "a1", a.ID)
	case <-time.After(wait):
		t.Fatal("no alert")
	}
	v, err := c.Call(context.Background(), "agent-1", "echo", 1)
	require.NoError(t, err)
	assert.JSONEq(t, `{"got":[1]}`, string(v))
}
