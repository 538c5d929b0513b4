package mbus

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

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
	"panic": {Func: func(context.Context, json.RawMessage) (any, error) {
		panic("no job spec") // a bug in a method is its failure, not the agent's end
	}},
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
		{"panic", "Action Failed panic: panic: no job spec"},
		{"nope", "unknown message nope"},
		{"get_task", "Action Failed get_task: Task with id no-such-task could not be found"},
		{"cancel_task", "Action Failed cancel_task: Task with id no-such-task could not be found"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			args := []any{}
			if strings.HasSuffix(tc.method, "_task") {
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
	// The real agent's words, as BOSH users know them from failed deploys.
	assert.Regexp(t, `^Action Failed get_task: Task [0-9a-f-]{36} result: compiler exploded$`, ae.Message)
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
	for port, problems := range map[int]int{-1: 3, 0: 2, 65535: 2, 65536: 3} { // Host and MaxPayload, and Port
		_, err := StartBus(testCtx(t), BusConfig{Host: "example.com", Port: port, MaxPayload: -1})
		require.ErrorAs(t, err, &ve)
		assert.Len(t, ve.Problems, problems, "port %d", port)
	}

	_, err = StartBus(testCtx(t), BusConfig{Agents: []string{"ok-1", "a.b"}})
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 1)
	assert.Equal(t, "Agents[1]", ve.Problems[0].Field)

	_, err = Dial(testCtx(t), Config{DirectorID: "a.b", CallTimeout: -1})
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 3) // URL, DirectorID, CallTimeout

	_, err = StartServer(testCtx(t), ServerConfig{AgentID: "a.b", TaskRetention: -1}, nil)
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 4) // URL, agentID, Handler, TaskRetention

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
	const password = "s3cret-Passw0rd"
	u := "nats://nats:" + password + "@10.0.0.6:4222" // BOSH's mbus URLs carry a password
	for _, s := range []string{
		fmt.Sprint(creds), fmt.Sprintf("%#v", creds),
		fmt.Sprint(Config{URL: u, Credentials: creds}), fmt.Sprintf("%#v", Config{URL: u, Credentials: creds}),
		fmt.Sprint(ServerConfig{URL: u, AgentID: "a", Credentials: creds}),
		fmt.Sprintf("%#v", ServerConfig{URL: u, AgentID: "a", Credentials: creds}),
		fmt.Sprintf("%+v", ServerConfig{URL: u, AgentID: "a", Credentials: creds}),
	} {
		assert.NotContains(t, s, "PRIVATE KEY")
		assert.NotContains(t, s, key[40:80])
		assert.NotContains(t, s, password)
		assert.Contains(t, s, "[redacted]")
	}
	assert.Contains(t, fmt.Sprint(Config{URL: u}), "nats://nats:xxxxx@10.0.0.6:4222")
	// A URL that does not parse is hidden whole when it may hold a password.
	_, err = Dial(testCtx(t), Config{URL: "nats://nats:" + password + "@bad host:%zz"})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	assert.NotContains(t, err.Error(), password)
	_, err = Dial(testCtx(t), Config{URL: "not a url"})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	assert.Contains(t, err.Error(), "not a url")
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

	// PKCS#8 holds any key: an ECDSA one loads, an RSA one is refused.
	p8, err := x509.MarshalPKCS8PrivateKey(ca.key)
	require.NoError(t, err)
	loaded, err = LoadCA(ca.CertPEM(), pemBlock("PRIVATE KEY", p8))
	require.NoError(t, err)
	issued, err := loaded.Issue(AgentName("a"))
	require.NoError(t, err)
	_, err = issued.tlsConfig()
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p8, err = x509.MarshalPKCS8PrivateKey(rsaKey)
	require.NoError(t, err)
	_, err = LoadCA(ca.CertPEM(), pemBlock("PRIVATE KEY", p8))
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, err.Error(), "want ECDSA")
	_, err = LoadCA(pemBlock("CERTIFICATE", []byte("junk")), pemBlock("PRIVATE KEY", []byte("junk")))
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 2)
	assert.Equal(t, "certPEM", ve.Problems[0].Field)
	assert.Contains(t, ve.Problems[1].Reason, "not an EC or PKCS#8 private key")
}

func mustMarshalEC(t *testing.T, ca *CA) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(ca.key)
	require.NoError(t, err)
	return der
}

// TestAnswerOnlyFromTheAgentAsked: an agent that learnt the id of a request
// sent to another cannot answer it (the answer must come on the reply
// subject that names the agent asked).
func TestAnswerOnlyFromTheAgentAsked(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{DirectorID: "d1"})
	credsA, err := b.AddAgent("agent-a")
	require.NoError(t, err)
	credsB, err := b.AddAgent("agent-b")
	require.NoError(t, err)
	ncA, _ := rawConn(t, b.URL(), credsA)
	ncB, _ := rawConn(t, b.URL(), credsB)
	hbs := make(chan string, 4)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	require.NoError(t, c.Heartbeats(ctx, func(id string, _ Heartbeat) { hbs <- id }))
	replyTo := make(chan string, 1)
	_, err = ncB.Subscribe("agent.agent-b", func(m *nats.Msg) {
		var req Request
		if json.Unmarshal(m.Data, &req) == nil {
			replyTo <- req.ReplyTo
		}
	})
	require.NoError(t, err)
	require.NoError(t, ncB.Flush())

	done := make(chan error, 1)
	var v json.RawMessage
	go func() {
		var err error
		v, err = c.Call(testCtx(t), "agent-b", "get_state")
		done <- err
	}()
	var subject string
	select {
	case subject = <-replyTo:
	case <-time.After(wait):
		t.Fatal("agent B got no request")
	}
	reqID := subject[strings.LastIndexByte(subject, '.')+1:]
	// A answers first, on the subject its permissions allow, then sends a
	// heartbeat: once the director has the heartbeat it has A's answer too.
	require.NoError(t, ncA.Publish("director.d1.agent-a."+reqID, []byte(`{"value":"forged"}`)))
	require.NoError(t, ncA.Publish(HMSubject(TopicHeartbeat, "agent-a"), []byte(`{}`)))
	select {
	case id := <-hbs:
		require.Equal(t, "agent-a", id)
	case <-time.After(wait):
		t.Fatal("no heartbeat from A")
	}
	require.NoError(t, ncB.Publish(subject, []byte(`{"value":"real"}`)))
	select {
	case err := <-done:
		require.NoError(t, err)
		assert.JSONEq(t, `"real"`, string(v))
	case <-time.After(wait):
		t.Fatal("the call did not end")
	}
}

// TestServerCloseWhileTasksRun: Close cancels running tasks and in-flight
// requests, answers the requests, and returns; goleak (TestMain) checks
// that nothing is left running.
func TestServerCloseWhileTasksRun(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{CallTimeout: time.Second})
	running := make(chan string, 2)
	stopped := make(chan string, 2)
	block := func(name string) func(ctx context.Context, _ json.RawMessage) (any, error) {
		return func(ctx context.Context, _ json.RawMessage) (any, error) {
			running <- name
			<-ctx.Done()
			stopped <- name
			return nil, ctx.Err()
		}
	}
	s := startAgent(t, b, "agent-1", Methods{
		"drain": {LongRunning: true, Func: block("drain")},
		"ssh":   {Func: block("ssh")},
	})
	v, err := c.call(testCtx(t), "agent-1", "drain", []any{})
	require.NoError(t, err)
	_, ok := runningTask(v)
	require.True(t, ok, "%s", v)
	sshErr := make(chan error, 1)
	go func() {
		_, err := c.Call(testCtx(t), "agent-1", "ssh")
		sshErr <- err
	}()
	for range 2 {
		select {
		case <-running:
		case <-time.After(wait):
			t.Fatal("the methods did not start")
		}
	}

	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	assert.Len(t, stopped, 2, "both methods saw their ctx end")
	select {
	case err := <-sshErr: // answered before the connection closed
		var ae *AgentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "Action Failed ssh: context canceled", ae.Message)
	case <-time.After(wait):
		t.Fatal("the in-flight call was not answered")
	}
	s.Close() // again: no effect
	_, err = c.Call(testCtx(t), "agent-1", "ssh")
	require.ErrorIs(t, err, kubefoundry.ErrTimeout, "a closed agent does not answer")
}

// TestLogsHoldNoSecrets runs a session through the bus and both ends at
// debug level, with a secret in the arguments, the answer and a failing
// method's error, and a refused client: no log line, the NATS server's
// included, holds a key or the secret.
func TestLogsHoldNoSecrets(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	b, err := StartBus(testCtx(t), BusConfig{}, WithLogger(log))
	require.NoError(t, err)
	t.Cleanup(b.Close)
	creds, err := b.AddAgent("agent-1")
	require.NoError(t, err)
	const secret = "s3cret-Passw0rd"
	s, err := StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-1", Credentials: creds}, Methods{
		"echo": echo["echo"],
		"long": {LongRunning: true, Func: func(context.Context, json.RawMessage) (any, error) { return nil, nil }},
	}, WithLogger(log))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	c, err := Dial(testCtx(t), Config{URL: b.URL(), Credentials: b.DirectorCredentials(), PollInterval: 10 * time.Millisecond},
		WithLogger(log))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	_, err = c.Call(testCtx(t), "agent-1", "echo", map[string]string{"password": secret})
	require.NoError(t, err)
	_, err = c.Call(testCtx(t), "agent-1", "long", secret)
	require.NoError(t, err)
	_, err = StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-9", Credentials: creds}, echo,
		WithLogger(log)) // agent-1's certificate for agent-9: refused
	require.Error(t, err)
	_, err = Dial(testCtx(t), Config{URL: "nats://nats:" + secret + "@127.0.0.1:1", Credentials: creds}, WithLogger(log))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)

	require.NotZero(t, logs.Len())
	keys := []string{string(creds.KeyPEM), string(b.DirectorCredentials().KeyPEM)}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		assert.NotContains(t, line, secret)
		assert.NotContains(t, line, "PRIVATE KEY")
		for _, k := range keys {
			assert.NotContains(t, line, k[40:80])
		}
	}
}

// rawAgent serves agent.<id> on a plain NATS connection with answer, which
// returns the answer's JSON or "" for none; every request is also sent on
// the returned channel.
func rawAgent(t *testing.T, b *Bus, id string, answer func(req Request) string) <-chan Request {
	t.Helper()
	creds, err := b.AddAgent(id)
	require.NoError(t, err)
	nc, _ := rawConn(t, b.URL(), creds)
	reqs := make(chan Request, 64)
	_, err = nc.Subscribe(AgentSubject(id), func(m *nats.Msg) {
		var req Request
		require.NoError(t, json.Unmarshal(m.Data, &req))
		reqs <- req
		if a := answer(req); a != "" {
			_ = nc.Publish(req.ReplyTo, []byte(a))
		}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return reqs
}

const runningT1 = `{"value":{"agent_task_id":"t1","state":"running"}}`

// TestGetTaskSentAgain: a get_task that is not answered is sent again
// twice, as BOSH's director does; a third silence ends the call with a
// timeout naming the method.
func TestGetTaskSentAgain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		silences int
	}{{"answered the third time", 2}, {"never answered", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBus(t, BusConfig{})
			c := dial(t, b, Config{CallTimeout: 100 * time.Millisecond, PollInterval: 10 * time.Millisecond})
			var polls atomic.Int32
			reqs := rawAgent(t, b, "agent-1", func(req Request) string {
				switch req.Method {
				case "apply":
					return runningT1
				case "get_task":
					if int(polls.Add(1)) <= tc.silences {
						return ""
					}
					return `{"value":"applied"}`
				}
				return ""
			})
			v, err := c.Call(testCtx(t), "agent-1", "apply")
			if tc.silences < 3 {
				require.NoError(t, err)
				assert.JSONEq(t, `"applied"`, string(v))
			} else {
				var te *kubefoundry.TimeoutError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, "apply", te.Op)
				assert.Contains(t, te.Err.Error(), "get_task t1")
			}
			assert.EqualValues(t, 3, polls.Load())
			for range 4 {
				req := <-reqs
				if req.Method == "get_task" {
					assert.JSONEq(t, `["t1"]`, string(req.Arguments))
				}
			}
			assert.Empty(t, reqs, "nothing more: no cancel_task")
		})
	}
}

// TestCancelWhilePolling: ctx ends while a get_task waits for its answer;
// the director cancels the task, and logs a warning if that fails.
func TestCancelWhilePolling(t *testing.T) {
	for _, tc := range []struct{ name, cancelAnswer, warning string }{
		{"cancelled", `{"value":"canceled"}`, ""},
		{"cancel fails", `{"exception":{"message":"Action Failed cancel_task: not supported"}}`, "mbus cancel_task failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBus(t, BusConfig{})
			core, logs := observer.New(zap.WarnLevel)
			c, err := Dial(testCtx(t), Config{URL: b.URL(), Credentials: b.DirectorCredentials(),
				PollInterval: 10 * time.Millisecond}, WithLogger(zap.New(core)))
			require.NoError(t, err)
			t.Cleanup(c.Close)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			reqs := rawAgent(t, b, "agent-1", func(req Request) string {
				switch req.Method {
				case "drain":
					return runningT1
				case "get_task":
					cancel() // and never answer
				case "cancel_task":
					return tc.cancelAnswer
				}
				return ""
			})
			_, err = c.Call(ctx, "agent-1", "drain")
			require.ErrorIs(t, err, context.Canceled)
			// cancel_task was answered before Call returned: all is here.
			require.Len(t, reqs, 3)
			for _, method := range []string{"drain", "get_task", "cancel_task"} {
				req := <-reqs
				assert.Equal(t, method, req.Method)
				if method != "drain" {
					assert.JSONEq(t, `["t1"]`, string(req.Arguments))
				}
			}
			if tc.warning == "" {
				assert.Zero(t, logs.Len(), "%v", logs.All())
				return
			}
			warnings := logs.FilterMessage(tc.warning).All()
			require.Len(t, warnings, 1)
			assert.Equal(t, "t1", warnings[0].ContextMap()["task"])
			assert.Equal(t, "drain", warnings[0].ContextMap()["method"])
		})
	}
}

// TestForeignAnswers: answers a real agent may give that our Server does
// not.
func TestForeignAnswers(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{})
	rawAgent(t, b, "agent-1", func(req Request) string {
		switch req.Method {
		case "nothing":
			return `{}`
		case "state":
			return `{"value":{"state":"running"}}` // a value, not a task: no id
		case "done":
			return `{"value":{"agent_task_id":"t1","state":"done"}}`
		case "junk":
			return `not JSON`
		}
		return ""
	})
	v, err := c.Call(testCtx(t), "agent-1", "nothing")
	require.NoError(t, err)
	assert.Nil(t, v)
	v, err = c.Call(testCtx(t), "agent-1", "state")
	require.NoError(t, err)
	assert.JSONEq(t, `{"state":"running"}`, string(v))
	v, err = c.Call(testCtx(t), "agent-1", "done")
	require.NoError(t, err)
	assert.JSONEq(t, `{"agent_task_id":"t1","state":"done"}`, string(v))
	_, err = c.Call(testCtx(t), "agent-1", "junk")
	var ae *AgentError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Message, "malformed answer")
}

// TestForeignRequests: requests a real director may send that our Client
// does not: no reply_to (nothing runs, nothing answers), no or null
// arguments (an empty array), malformed JSON.
func TestForeignRequests(t *testing.T) {
	b := startBus(t, BusConfig{})
	var calls atomic.Int32
	startAgent(t, b, "agent-1", Methods{
		"echo": echo["echo"],
		"count": {Func: func(context.Context, json.RawMessage) (any, error) {
			return calls.Add(1), nil
		}},
		"nofunc": {},
		"chan":   {Func: func(context.Context, json.RawMessage) (any, error) { return make(chan int), nil }},
	})
	nc, _ := rawConn(t, b.URL(), b.DirectorCredentials())
	answers := make(chan *nats.Msg, 8)
	_, err := nc.Subscribe("director.>", func(m *nats.Msg) { answers <- m })
	require.NoError(t, err)
	send := func(body string) {
		require.NoError(t, nc.Publish("agent.agent-1", []byte(body)))
		require.NoError(t, nc.Flush())
	}
	answer := func(subject string) string {
		t.Helper()
		select {
		case m := <-answers:
			assert.Equal(t, subject, m.Subject)
			return string(m.Data)
		case <-time.After(wait):
			t.Fatalf("no answer on %s", subject)
		}
		return ""
	}

	send(`{"protocol":3,"method":"count","arguments":[]}`)
	send(`{"protocol":3,"method":"count","arguments":[],"reply_to":""}`)
	send(`{"protocol":"3","method":"count","reply_to":"director.d.agent-1.r0"}`) // malformed: protocol a string
	send(`not JSON`)
	send(`{"protocol":3,"method":"count","arguments":[],"reply_to":"director.d.agent-1.r1"}`)
	assert.JSONEq(t, `{"value":1}`, answer("director.d.agent-1.r1"))
	assert.Never(t, func() bool { return calls.Load() > 1 }, 100*time.Millisecond, 10*time.Millisecond)

	for _, args := range []string{``, `,"arguments":null`, `,"arguments":[]`} {
		send(`{"protocol":3,"method":"echo","reply_to":"director.d.agent-1.r2"` + args + `}`)
		assert.JSONEq(t, `{"value":{"got":[]}}`, answer("director.d.agent-1.r2"), args)
	}
	for method, want := range map[string]string{
		"nofunc": "unknown message nofunc",
		"chan":   "Action Failed chan: json: unsupported type: chan int",
	} {
		send(`{"protocol":3,"method":"` + method + `","arguments":[],"reply_to":"director.d.agent-1.r3"}`)
		assert.JSONEq(t, `{"exception":{"message":"`+want+`"}}`, answer("director.d.agent-1.r3"))
	}
	for _, args := range []string{`[]`, `["a","b"]`, `[1]`, `{}`} {
		send(`{"protocol":3,"method":"get_task","arguments":` + args + `,"reply_to":"director.d.agent-1.r4"}`)
		assert.JSONEq(t, `{"exception":{"message":"Action Failed get_task: want one argument, the task id"}}`,
			answer("director.d.agent-1.r4"), args)
		send(`{"protocol":3,"method":"cancel_task","arguments":` + args + `,"reply_to":"director.d.agent-1.r5"}`)
		assert.JSONEq(t, `{"exception":{"message":"Action Failed cancel_task: want one argument, the task id"}}`,
			answer("director.d.agent-1.r5"), args)
	}
}

// TestTaskRetention: a finished task answers get_task for TaskRetention
// (10 minutes by default), then is forgotten; a running one is never.
func TestTaskRetention(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{})
	release := make(chan struct{})
	defer close(release)
	methods := Methods{
		"quick": {LongRunning: true, Func: func(context.Context, json.RawMessage) (any, error) { return "quick", nil }},
		"slow": {LongRunning: true, Func: func(ctx context.Context, _ json.RawMessage) (any, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return "slow", nil
		}},
	}
	start := func(t *testing.T, agentID, method string) string {
		t.Helper()
		v, err := c.call(testCtx(t), agentID, method, []any{})
		require.NoError(t, err)
		task, ok := runningTask(v)
		require.True(t, ok, "%s", v)
		return task.AgentTaskID
	}
	getTask := func(t *testing.T, agentID, id string) (json.RawMessage, error) {
		return c.call(testCtx(t), agentID, "get_task", []any{id})
	}
	finished := func(t *testing.T, agentID, id string) {
		t.Helper()
		require.Eventually(t, func() bool {
			v, err := getTask(t, agentID, id)
			return err == nil && string(v) == `"quick"`
		}, wait, 5*time.Millisecond)
	}

	t.Run("default", func(t *testing.T) {
		startAgent(t, b, "agent-1", methods)
		slow := start(t, "agent-1", "slow")
		quick := start(t, "agent-1", "quick")
		finished(t, "agent-1", quick)
		start(t, "agent-1", "quick") // a new task forgets expired ones
		v, err := getTask(t, "agent-1", quick)
		require.NoError(t, err, "kept for 10 minutes")
		assert.JSONEq(t, `"quick"`, string(v))
		v, err = getTask(t, "agent-1", slow)
		require.NoError(t, err)
		assert.JSONEq(t, `{"agent_task_id":"`+slow+`","state":"running"}`, string(v))
	})
	t.Run("short", func(t *testing.T) {
		creds, err := b.AddAgent("agent-2")
		require.NoError(t, err)
		s, err := StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-2", Credentials: creds,
			TaskRetention: 50 * time.Millisecond}, methods, WithLogger(zaptest.NewLogger(t)))
		require.NoError(t, err)
		t.Cleanup(s.Close)
		slow := start(t, "agent-2", "slow")
		quick := start(t, "agent-2", "quick")
		finished(t, "agent-2", quick)
		time.Sleep(60 * time.Millisecond)
		start(t, "agent-2", "quick")
		_, err = getTask(t, "agent-2", quick)
		var ae *AgentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "Action Failed get_task: Task with id "+quick+" could not be found", ae.Message)
		_, err = getTask(t, "agent-2", slow)
		require.NoError(t, err, "a running task is kept however old")
	})
}

// TestAgentAnswerBound: an agent answers at most 1 MiB, as the real agent,
// even on a bus that carries more; an answer of exactly the bound passes.
func TestAgentAnswerBound(t *testing.T) {
	b := startBus(t, BusConfig{MaxPayload: 2 * MaxResponseLength})
	c := dial(t, b, Config{})
	overhead := len(`{"value":""}`)
	startAgent(t, b, "agent-1", Methods{
		"big": {Func: func(context.Context, json.RawMessage) (any, error) {
			return strings.Repeat("x", MaxResponseLength), nil
		}},
		"exact": {Func: func(context.Context, json.RawMessage) (any, error) {
			return strings.Repeat("x", MaxResponseLength-overhead), nil
		}},
		"fail": {Func: func(context.Context, json.RawMessage) (any, error) {
			return nil, errors.New("start " + strings.Repeat("x", MaxResponseLength) + " root cause")
		}},
	})
	_, err := c.Call(testCtx(t), "agent-1", "big")
	var ae *AgentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ResponseTooLargeMessage, ae.Message)
	v, err := c.Call(testCtx(t), "agent-1", "exact")
	require.NoError(t, err)
	assert.Len(t, v, MaxResponseLength-overhead+2)
	_, err = c.Call(testCtx(t), "agent-1", "fail")
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, MaxResponseLength, encodedLen(ae.Message), "the answer is exactly the bound")
	assert.True(t, strings.HasPrefix(ae.Message, "Action Failed fail: start xxx"))
	assert.True(t, strings.HasSuffix(ae.Message, "xxx root cause"))
}

// TestWrongIdentity: a certificate of the bus's CA for another user is
// refused what that user may not do, at Dial and StartServer, not later.
func TestWrongIdentity(t *testing.T) {
	b := startBus(t, BusConfig{})
	credsA, err := b.AddAgent("agent-a")
	require.NoError(t, err)
	_, err = b.AddAgent("agent-b")
	require.NoError(t, err)

	_, err = Dial(testCtx(t), Config{URL: b.URL(), Credentials: credsA}) // an agent as the director
	require.ErrorIs(t, err, nats.ErrPermissionViolation)
	_, err = StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-b", Credentials: credsA}, echo)
	require.ErrorIs(t, err, nats.ErrPermissionViolation)
	assert.Contains(t, err.Error(), "agent.agent-b")
}

// TestCallContext: a ctx that ended before the call sends nothing; one
// that ends while the first answer is awaited ends the call at once, and
// a task the answer names when it comes is cancelled, without polling.
func TestCallContext(t *testing.T) {
	b := startBus(t, BusConfig{})
	c := dial(t, b, Config{DirectorID: "d1", CallTimeout: time.Minute})
	assert.Equal(t, "d1", c.DirectorID())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	answer := make(chan struct{})
	reqs := rawAgent(t, b, "agent-1", func(req Request) string {
		switch req.Method {
		case "drain":
			cancel()
			<-answer // the director has given up before the agent answers
			return runningT1
		case "cancel_task":
			return `{"value":"canceled"}`
		}
		return ""
	})

	done, cancelDone := context.WithCancel(testCtx(t))
	cancelDone()
	_, err := c.Call(done, "agent-1", "get_state")
	require.ErrorIs(t, err, context.Canceled)
	_, err = c.Call(testCtx(t), "no.such", "get_state")
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	require.ErrorIs(t, c.CancelTask(testCtx(t), "no.such", "t1"), kubefoundry.ErrInvalid)
	assert.Empty(t, reqs)

	_, err = c.Call(ctx, "agent-1", "drain")
	require.ErrorIs(t, err, context.Canceled, "returned at ctx's end, within the minute's call timeout")
	close(answer)
	for _, want := range []string{"drain", "cancel_task"} {
		select {
		case r := <-reqs:
			assert.Equal(t, want, r.Method)
		case <-time.After(time.Minute):
			t.Fatalf("no %s request in a minute", want)
		}
	}
}

func TestClampPoll(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: DefaultPollInterval, time.Nanosecond: 10 * time.Millisecond, 10 * time.Millisecond: 10 * time.Millisecond,
		50 * time.Millisecond: 50 * time.Millisecond, time.Minute: time.Minute, time.Hour: time.Minute,
	} {
		assert.Equal(t, want, clampPoll(in), "%s", in)
	}
	_, err := Dial(testCtx(t), Config{URL: "tls://127.0.0.1:1", PollInterval: -1})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 1)
	assert.Equal(t, "PollInterval", ve.Problems[0].Field)
}

// TestHMMessages: a heartbeat that is not JSON of the right shape is
// skipped with a warning and the next one delivered; a subscription ends
// with its ctx, and none can start on a closed Client.
func TestHMMessages(t *testing.T) {
	b := startBus(t, BusConfig{})
	core, logs := observer.New(zap.WarnLevel)
	c, err := Dial(testCtx(t), Config{URL: b.URL(), Credentials: b.DirectorCredentials()}, WithLogger(zap.New(core)))
	require.NoError(t, err)
	s := startAgent(t, b, "agent-1", Methods{})
	hbs := make(chan Heartbeat, 4)
	ctx, cancel := context.WithCancel(testCtx(t))
	require.NoError(t, c.Heartbeats(ctx, func(_ string, hb Heartbeat) { hbs <- hb }))
	require.NoError(t, s.Send(testCtx(t), TopicHeartbeat, "not a heartbeat"))
	require.NoError(t, s.PublishHeartbeat(testCtx(t), Heartbeat{JobState: "running"}))
	select {
	case hb := <-hbs:
		assert.Equal(t, "running", hb.JobState)
	case <-time.After(wait):
		t.Fatal("no heartbeat")
	}
	require.Len(t, logs.FilterMessage("mbus malformed message").All(), 1)
	assert.Empty(t, hbs)

	cancel()
	require.Eventually(t, func() bool {
		_ = s.PublishHeartbeat(testCtx(t), Heartbeat{JobState: "late"})
		return c.nc.NumSubscriptions() == 1 // the replies' only
	}, wait, 5*time.Millisecond)
	require.Error(t, s.Send(testCtx(t), TopicAlert, make(chan int)), "a value that does not encode")

	c.Close()
	c.Close() // again: no effect
	require.Error(t, c.Heartbeats(testCtx(t), func(string, Heartbeat) {}))
	_, err = c.Call(testCtx(t), "agent-1", "get_state")
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	s.Close()
	require.Error(t, s.PublishAlert(testCtx(t), Alert{ID: "late"}))
}

// TestBusAgents: adding an agent again issues another certificate and both
// work; removing an unknown agent is no error; MaxPayload is the bus's.
func TestBusAgents(t *testing.T) {
	b := startBus(t, BusConfig{})
	assert.EqualValues(t, 1024*1024, b.MaxPayload())
	assert.EqualValues(t, 4096, startBus(t, BusConfig{MaxPayload: 4096}).MaxPayload())
	c := dial(t, b, Config{})
	creds1, err := b.AddAgent("agent-1")
	require.NoError(t, err)
	creds2, err := b.AddAgent("agent-1")
	require.NoError(t, err)
	assert.NotEqual(t, creds1.KeyPEM, creds2.KeyPEM)
	for _, creds := range []Credentials{creds1, creds2} {
		s, err := StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-1", Credentials: creds}, echo)
		require.NoError(t, err)
		_, err = c.Call(testCtx(t), "agent-1", "echo")
		require.NoError(t, err)
		s.Close()
	}
	require.NoError(t, b.RemoveAgent("never-added"))
	require.NoError(t, b.RemoveAgent("agent-1"))
	require.NoError(t, b.RemoveAgent("agent-1"))
}

// TestAddAgents: many agents with one reload, each confined to its own
// subjects as AddAgent makes it; bad ids add nothing and are all named.
func TestAddAgents(t *testing.T) {
	b := startBus(t, BusConfig{})
	creds, err := b.AddAgents("a-1", "a-2", "a-3")
	require.NoError(t, err)
	require.Len(t, creds, 3)
	c := dial(t, b, Config{})
	for i, id := range []string{"a-1", "a-2", "a-3"} {
		s, err := StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: id, Credentials: creds[i]},
			Methods{"ping": {Func: func(context.Context, json.RawMessage) (any, error) { return id, nil }}})
		require.NoError(t, err, id)
		t.Cleanup(s.Close)
		v, err := c.Call(testCtx(t), id, "ping")
		require.NoError(t, err)
		assert.JSONEq(t, `"`+id+`"`, string(v))
	}
	// a-1's certificate does not serve a-2.
	_, err = StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "a-2", Credentials: creds[0]},
		Methods{"ping": {Func: func(context.Context, json.RawMessage) (any, error) { return "impostor", nil }}})
	require.Error(t, err)

	_, err = b.AddAgents("ok-1", "bad.id", "", "ok-2")
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 2)
	assert.Equal(t, "agentIDs[1]", ve.Problems[0].Field)
	assert.Equal(t, "agentIDs[2]", ve.Problems[1].Field)
	again, err := b.AddAgents("a-1")
	require.NoError(t, err, "adding again")
	require.Len(t, again, 1)
}

func TestBusStats(t *testing.T) {
	b := startBus(t, BusConfig{})
	before, err := b.Stats()
	require.NoError(t, err)
	startAgent(t, b, "s-1", Methods{"ping": {Func: func(context.Context, json.RawMessage) (any, error) { return "pong", nil }}})
	c := dial(t, b, Config{})
	for range 3 {
		_, err := c.Call(testCtx(t), "s-1", "ping")
		require.NoError(t, err)
	}
	// The server counts a message after it has routed it: the last answer
	// may be counted just after the call has it.
	var after BusStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, err = b.Stats()
		require.NoError(t, err)
		if after.InMsgs-before.InMsgs >= 6 && after.OutMsgs-before.OutMsgs >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	assert.Equal(t, int64(6), after.InMsgs-before.InMsgs, "three requests and three answers")
	assert.Equal(t, int64(6), after.OutMsgs-before.OutMsgs, "each delivered once")
	assert.Equal(t, 2, after.Connections, "the agent and the director")
}

// TestAllowAgents: a bus started again with the same CA lets in an agent
// holding a certificate from before once it is allowed, and not before;
// bad ids allow nothing.
func TestAllowAgents(t *testing.T) {
	ca, err := NewCA("kf-test")
	require.NoError(t, err)
	first := startBus(t, BusConfig{CA: ca})
	creds, err := first.AddAgent("agent-kept")
	require.NoError(t, err)
	first.Close()

	b := startBus(t, BusConfig{CA: ca})
	_, err = StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-kept", Credentials: creds}, echo)
	require.Error(t, err, "not allowed yet")
	require.ErrorIs(t, b.AllowAgents("agent-ok", "a.b"), kubefoundry.ErrInvalid)
	require.NoError(t, b.AllowAgents("agent-kept"))
	s, err := StartServer(testCtx(t), ServerConfig{URL: b.URL(), AgentID: "agent-kept", Credentials: creds}, echo)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	v, err := dial(t, b, Config{}).Call(testCtx(t), "agent-kept", "echo", 1)
	require.NoError(t, err)
	assert.JSONEq(t, `{"got":[1]}`, string(v))
}
