package mbus

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait in these tests.
const wait = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startBus(t *testing.T, cfg BusConfig) *Bus {
	t.Helper()
	b, err := StartBus(testCtx(t), cfg, WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

func dial(t *testing.T, b *Bus, cfg Config) *Client {
	t.Helper()
	cfg.URL = b.URL()
	cfg.Credentials = b.DirectorCredentials()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	c, err := Dial(testCtx(t), cfg, WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func startAgent(t *testing.T, b *Bus, id string, h Handler) *Server {
	t.Helper()
	creds, err := b.AddAgent(id)
	require.NoError(t, err)
	s, err := StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: id, Credentials: creds}, h,
		WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// rawConn is a plain NATS connection with creds; async errors (permission
// violations) arrive on the returned channel.
func rawConn(t *testing.T, url string, creds Credentials) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	o := newOptions([]Option{WithLogger(zaptest.NewLogger(t))})
	o.natsOpts = []nats.Option{nats.NoReconnect(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	})}
	nc, err := connect(testCtx(t), url, "raw", creds, o)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc, errs
}

var echo = Methods{
	"echo": {Func: func(_ context.Context, args json.RawMessage) (any, error) {
		var a []any
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		return map[string]any{"got": a}, nil
	}},
	"fail": {Func: func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("boom") }},
}

func TestCallRoundTrip(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{})
	startAgent(t, b, "agent-1", echo)

	v, err := c.Call(testCtx(t), "agent-1", "echo", "a", 2, map[string]string{"k": "v"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"got":["a",2,{"k":"v"}]}`, string(v))

	v, err = c.Call(testCtx(t), "agent-1", "echo") // no arguments: an empty array, not null
	require.NoError(t, err)
	assert.JSONEq(t, `{"got":[]}`, string(v))
}

// TestWireShape plays a foreign agent on a plain NATS connection: the
// director's request must be BOSH's, and a hand-written BOSH answer must
// come back as the call's value.
func TestWireShape(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{DirectorID: "d1"})
	creds, err := b.AddAgent("raw-agent")
	require.NoError(t, err)
	nc, _ := rawConn(t, b.URL(), creds)
	got := make(chan map[string]any, 1)
	_, err = nc.Subscribe("agent.raw-agent", func(m *nats.Msg) {
		var req map[string]any
		if json.Unmarshal(m.Data, &req) == nil {
			got <- req
			_ = nc.Publish(req["reply_to"].(string), []byte(`{"value":{"agent_id":"raw-agent"}}`))
		}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	v, err := c.Call(testCtx(t), "raw-agent", "get_state", "full")
	require.NoError(t, err)
	assert.JSONEq(t, `{"agent_id":"raw-agent"}`, string(v))
	req := <-got
	assert.EqualValues(t, 3, req["protocol"])
	assert.Equal(t, "get_state", req["method"])
	assert.Equal(t, []any{"full"}, req["arguments"])
	assert.Regexp(t, `^director\.d1\.raw-agent\.[0-9a-f-]{36}$`, req["reply_to"])
}

func TestException(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{})
	startAgent(t, b, "agent-1", echo)
	for _, tc := range []struct{ method, msg string }{
		{"fail", "Action Failed fail: boom"},
		{"nope", "unknown message nope"},
		{"get_task", "Task with id no-such-task could not be found"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			args := []any{}
			if tc.method == "get_task" {
				args = []any{"no-such-task"}
			}
			_, err := c.Call(testCtx(t), "agent-1", tc.method, args...)
			var ae *AgentError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.msg, ae.Message)
			assert.Equal(t, "agent-1", ae.AgentID)
			assert.Equal(t, tc.method, ae.Method)
		})
	}
}

func TestLongRunning(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{PollInterval: 10 * time.Millisecond})
	release := make(chan struct{})
	startAgent(t, b, "agent-1", Methods{
		"apply": {LongRunning: true, Func: func(ctx context.Context, _ json.RawMessage) (any, error) {
			select {
			case <-release:
				return map[string]string{"applied": "yes"}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}},
		"compile": {LongRunning: true, Func: func(context.Context, json.RawMessage) (any, error) {
			return nil, errors.New("compiler exploded")
		}},
	})
	go func() {
		time.Sleep(150 * time.Millisecond) // several polls at 10 ms
		close(release)
	}()
	start := time.Now()
	v, err := c.Call(testCtx(t), "agent-1", "apply", map[string]any{"spec": 1})
	require.NoError(t, err)
	assert.JSONEq(t, `{"applied":"yes"}`, string(v))
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)

	_, err = c.Call(testCtx(t), "agent-1", "compile")
	var ae *AgentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "compile", ae.Method)
	assert.Regexp(t, `^Task [0-9a-f-]{36} result: compiler exploded$`, ae.Message)
}

func TestCancelledTask(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{})
	started := make(chan struct{}, 4)
	cancelled := make(chan struct{}, 4)
	startAgent(t, b, "agent-1", Methods{
		"drain": {LongRunning: true, Func: func(ctx context.Context, _ json.RawMessage) (any, error) {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- struct{}{}
			return nil, ctx.Err()
		}},
	})

	t.Run("director gives up", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		go func() {
			<-started
			cancel()
		}()
		_, err := c.Call(ctx, "agent-1", "drain")
		require.ErrorIs(t, err, context.Canceled)
		select {
		case <-cancelled: // the director sent cancel_task
		case <-time.After(wait):
			t.Fatal("the agent's task was not cancelled")
		}
	})

	t.Run("cancel_task", func(t *testing.T) {
		v, err := c.call(testCtx(t), "agent-1", "drain", []any{})
		require.NoError(t, err)
		task, ok := runningTask(v)
		require.True(t, ok, "%s", v)
		<-started
		require.NoError(t, c.CancelTask(testCtx(t), "agent-1", task.AgentTaskID))
		select {
		case <-cancelled:
		case <-time.After(wait):
			t.Fatal("the agent's task was not cancelled")
		}
		require.Eventually(t, func() bool {
			_, err := c.call(testCtx(t), "agent-1", "get_task", []any{task.AgentTaskID})
			var ae *AgentError
			return errors.As(err, &ae) && strings.HasSuffix(ae.Message, "result: context canceled")
		}, wait, 10*time.Millisecond)
	})
}

func TestTimeoutNamesAgent(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{CallTimeout: 200 * time.Millisecond})
	_, err := b.AddAgent("silent-agent") // allowed, but nobody serves it
	require.NoError(t, err)
	start := time.Now()
	_, err = c.Call(testCtx(t), "silent-agent", "get_state")
	require.ErrorIs(t, err, kubefoundry.ErrTimeout)
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "get_state", te.Op)
	assert.Contains(t, err.Error(), "silent-agent")
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestAnswerTooLarge(t *testing.T) {
	b := startBus(t, BusConfig{MaxPayload: 64 * 1024})
	c := dial(t, b, Config{})
	big := strings.Repeat("x", 100*1024)
	startAgent(t, b, "agent-1", Methods{
		"logs": {Func: func(context.Context, json.RawMessage) (any, error) { return big, nil }},
		"fail": {Func: func(context.Context, json.RawMessage) (any, error) {
			return nil, errors.New("start " + big + " root cause")
		}},
		"fits": {Func: func(context.Context, json.RawMessage) (any, error) { return big[:60*1024], nil }},
	})
	_, err := c.Call(testCtx(t), "agent-1", "logs")
	var ae *AgentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ResponseTooLargeMessage, ae.Message)

	_, err = c.Call(testCtx(t), "agent-1", "fail")
	require.ErrorAs(t, err, &ae)
	assert.True(t, strings.HasPrefix(ae.Message, "Action Failed fail: start xxx"), ae.Message[:40])
	assert.Contains(t, ae.Message, "...[truncated]...")
	assert.True(t, strings.HasSuffix(ae.Message, "root cause"))
	assert.LessOrEqual(t, len(ae.Message), 64*1024)

	v, err := c.Call(testCtx(t), "agent-1", "fits")
	require.NoError(t, err)
	assert.Len(t, v, 60*1024+2)
}

func TestHeartbeatsAndAlerts(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{})
	s := startAgent(t, b, "agent-1", Methods{})
	hbs := make(chan Heartbeat, 1)
	ids := make(chan string, 2)
	alerts := make(chan Alert, 1)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	require.NoError(t, c.Heartbeats(ctx, func(id string, hb Heartbeat) { ids <- id; hbs <- hb }))
	require.NoError(t, c.Alerts(ctx, func(id string, a Alert) { ids <- id; alerts <- a }))

	job, index := "master", 0
	hb := Heartbeat{Deployment: "cluster-1", Job: &job, Index: &index, JobState: "running", NodeID: "node-uuid",
		NumberOfProcesses: 4,
		Vitals: Vitals{
			CPU: CPUVitals{Sys: "1.2", User: "3.4", Wait: "0.1"}, Load: []string{"0.09", "0.04", "0.01"},
			Mem: MemVitals{KB: "145996", Percent: "3.5"}, Swap: MemVitals{KB: "0", Percent: "0.0"},
			Disk: DiskVitals{"system": {Percent: "82", InodePercent: "10"}, "ephemeral": {Percent: "5", InodePercent: "1"},
				"persistent": {Percent: "94", InodePercent: "2"}},
			Uptime: UptimeVitals{Secs: 3600},
		}}
	require.NoError(t, s.PublishHeartbeat(testCtx(t), hb))
	select {
	case got := <-hbs:
		assert.Equal(t, hb, got)
		assert.Equal(t, "agent-1", <-ids)
	case <-time.After(wait):
		t.Fatal("no heartbeat")
	}
	// The wire shape is the real agent's: strings for vitals, null job on a fresh VM.
	raw, err := json.Marshal(Heartbeat{JobState: "running", Vitals: Vitals{CPU: CPUVitals{User: "0.5"}, Load: []string{"1", "2", "3"}}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"deployment":"","job":null,"index":null,"job_state":"running","node_id":"","number_of_processes":0,
		"vitals":{"cpu":{"user":"0.5"},"load":["1","2","3"],"mem":{},"swap":{},"uptime":{}}}`, string(raw))

	a := Alert{ID: "a1", Severity: 2, Title: "nginx (10.0.0.5) - pid failed - restart", Summary: "process is not running", CreatedAt: 1700000000}
	require.NoError(t, s.PublishAlert(testCtx(t), a))
	select {
	case got := <-alerts:
		assert.Equal(t, a, got)
		assert.Equal(t, "agent-1", <-ids)
	case <-time.After(wait):
		t.Fatal("no alert")
	}
	raw, err = json.Marshal(a)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"a1","severity":2,"title":"nginx (10.0.0.5) - pid failed - restart","summary":"process is not running","created_at":1700000000}`, string(raw))
}

// permissionViolation waits for a permission violation on errs that names
// subject.
func permissionViolation(t *testing.T, errs <-chan error, subject string) {
	t.Helper()
	select {
	case err := <-errs:
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.Contains(t, err.Error(), `"`+subject+`"`)
	case <-time.After(wait):
		t.Fatalf("no permission violation for %s", subject)
	}
}

func TestAgentIsConfinedToItsSubjects(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{DirectorID: "d1"})
	credsA, err := b.AddAgent("agent-a")
	require.NoError(t, err)
	startAgent(t, b, "agent-b", echo)

	t.Run("subscribe agent.B", func(t *testing.T) {
		nc, errs := rawConn(t, b.URL(), credsA)
		stolen := make(chan *nats.Msg, 1)
		_, err := nc.Subscribe("agent.agent-b", func(m *nats.Msg) { stolen <- m })
		require.NoError(t, err) // refused asynchronously by the server
		permissionViolation(t, errs, "agent.agent-b")
		own := make(chan *nats.Msg, 1)
		_, err = nc.Subscribe("agent.agent-a", func(m *nats.Msg) { own <- m })
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
		// The director sends to B, then to A: once A has its own message,
		// B's would have arrived before it, in order.
		v, err := c.Call(testCtx(t), "agent-b", "echo", "secret")
		require.NoError(t, err)
		assert.JSONEq(t, `{"got":["secret"]}`, string(v))
		dnc, _ := rawConn(t, b.URL(), b.DirectorCredentials())
		require.NoError(t, dnc.Publish("agent.agent-b", []byte(`{}`)))
		require.NoError(t, dnc.Publish("agent.agent-a", []byte(`{}`)))
		select {
		case <-own:
		case <-time.After(wait):
			t.Fatal("agent A did not get its own message")
		}
		assert.Empty(t, stolen)
	})

	for _, tc := range []struct{ name, subject string }{
		{"publish heartbeat as B", "hm.agent.heartbeat.agent-b"},
		{"publish alert as B", "hm.agent.alert.agent-b"},
		{"publish to agent.B", "agent.agent-b"},
		{"answer for B", "director.d1.agent-b.some-request"},
		{"publish to hm.director", "hm.director.alert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, errs := rawConn(t, b.URL(), credsA)
			seen := make(chan string, 4)
			dnc, _ := rawConn(t, b.URL(), b.DirectorCredentials())
			_, err := dnc.Subscribe("hm.>", func(m *nats.Msg) { seen <- m.Subject })
			require.NoError(t, err)
			_, err = dnc.Subscribe("director.>", func(m *nats.Msg) { seen <- m.Subject })
			require.NoError(t, err)
			require.NoError(t, dnc.Flush())
			require.NoError(t, nc.Publish(tc.subject, []byte(`{}`)))
			permissionViolation(t, errs, tc.subject)
			// A's own heartbeat passes, and nothing before it did.
			require.NoError(t, nc.Publish("hm.agent.heartbeat.agent-a", []byte(`{}`)))
			require.NoError(t, nc.Flush())
			select {
			case s := <-seen:
				assert.Equal(t, "hm.agent.heartbeat.agent-a", s)
			case <-time.After(wait):
				t.Fatal("agent A's own heartbeat did not arrive")
			}
		})
	}
}

func TestClientsWithoutTheRightCertificateCannotConnect(t *testing.T) {
	b := startBus(t, BusConfig{})
	other, err := NewCA("another CA")
	require.NoError(t, err)
	foreign, err := other.Issue(AgentName("agent-a"))
	require.NoError(t, err)
	_, err = b.AddAgent("agent-a")
	require.NoError(t, err)
	unknown, err := b.CA().Issue(AgentName("not-added")) // our CA, but no such user
	require.NoError(t, err)

	for name, creds := range map[string]Credentials{
		"no certificate":            {CAPEM: b.CA().CertPEM()},
		"certificate of another CA": {CAPEM: b.CA().CertPEM(), CertPEM: foreign.CertPEM, KeyPEM: foreign.KeyPEM},
		"agent not added":           unknown,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-a", Credentials: creds}, echo)
			require.Error(t, err)
		})
	}
}

func TestRemovedAgentIsDisconnected(t *testing.T) {
	b := startBus(t, BusConfig{})
	creds, err := b.AddAgent("agent-a")
	require.NoError(t, err)
	closed := make(chan struct{})
	o := newOptions(nil)
	o.natsOpts = []nats.Option{nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) })}
	nc, err := connect(testCtx(t), b.URL(), "a", creds, o)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.NoError(t, b.RemoveAgent("agent-a"))
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("removed agent still connected")
	}
	_, err = StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-a", Credentials: creds}, echo)
	require.Error(t, err)
}

func TestAgentAddedWhileRunning(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{})
	startAgent(t, b, "agent-1", echo)
	_, err := c.Call(testCtx(t), "agent-1", "echo", 1)
	require.NoError(t, err)

	startAgent(t, b, "agent-2", echo) // AddAgent reloads the running server
	v, err := c.Call(testCtx(t), "agent-2", "echo", 2)
	require.NoError(t, err)
	assert.JSONEq(t, `{"got":[2]}`, string(v))
	_, err = c.Call(testCtx(t), "agent-1", "echo", 1)
	require.NoError(t, err, "the first agent keeps working")
	assert.Zero(t, c.nc.Stats().Reconnects, "the director was not disconnected")
}

func TestValidation(t *testing.T) {
	for _, id := range []string{"", "a.b", "a*", ">", "a b", strings.Repeat("a", 64)} {
		assert.ErrorIs(t, ValidateAgentID(id), kubefoundry.ErrInvalid, "%q", id)
	}
	require.NoError(t, ValidateAgentID("3f2c1a6e-0b1d-4c4e-9f6a-2d1b7c9e8a10"))

	_, err := StartBus(testCtx(t), BusConfig{Host: "10.0.0.1", Port: 70000})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 2)

	_, err = Dial(testCtx(t), Config{DirectorID: "a.b", CallTimeout: -1})
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 3) // URL, DirectorID, CallTimeout

	b := startBus(t, BusConfig{})
	_, err = b.AddAgent("x.>")
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
}

func TestStringsRedactKeys(t *testing.T) {
	ca, err := NewCA("t")
	require.NoError(t, err)
	creds, err := ca.Issue(DirectorName)
	require.NoError(t, err)
	key := strings.TrimSpace(string(creds.KeyPEM))
	for _, s := range []string{
		fmt.Sprint(creds), fmt.Sprintf("%#v", creds), fmt.Sprint(Config{URL: "tls://x:1", Credentials: creds}),
		fmt.Sprint(ServerConfig{AgentID: "a", Credentials: creds}),
	} {
		assert.NotContains(t, s, "PRIVATE KEY")
		assert.NotContains(t, s, key[40:80])
		assert.Contains(t, s, "[redacted]")
	}
}

func TestLoadCA(t *testing.T) {
	ca, err := NewCA("t")
	require.NoError(t, err)
	creds, err := ca.Issue(DirectorName)
	require.NoError(t, err)

	keyPEM := pemBlock("EC PRIVATE KEY", mustMarshalEC(t, ca))
	loaded, err := LoadCA(ca.CertPEM(), keyPEM)
	require.NoError(t, err)
	assert.Equal(t, ca.CertPEM(), loaded.CertPEM())

	// A leaf is not a CA, and its key does not match the CA's certificate.
	_, err = LoadCA(creds.CertPEM, creds.KeyPEM)
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	_, err = LoadCA(ca.CertPEM(), creds.KeyPEM)
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, err.Error(), "does not match")
	_, err = LoadCA(nil, nil)
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 2)
}

func mustMarshalEC(t *testing.T, ca *CA) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(ca.key)
	require.NoError(t, err)
	return der
}
