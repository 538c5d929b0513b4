package mbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// Defaults of a Client's Config.
const (
	DefaultCallTimeout  = 45 * time.Second
	DefaultPollInterval = time.Second
	// sendRetry is the pause between tries to send a request while the
	// director reconnects to the bus.
	sendRetry = 10 * time.Millisecond
	// getTaskRetries is how often a get_task that timed out is sent again,
	// as BOSH's director does: an agent that restarts mid-task (network
	// reconfiguration) loses the first one.
	getTaskRetries = 2
)

// Config configures a director-side Client.
type Config struct {
	// URL of the NATS server: Bus.URL() or an external NATS (tls://host:port).
	URL string
	// Credentials of the director: Bus.DirectorCredentials() for the
	// embedded bus.
	Credentials Credentials
	// DirectorID names this director in reply subjects
	// (director.<id>.<agent>.<request>); a random one when empty.
	DirectorID string
	// CallTimeout bounds the wait for each answer (a call, each get_task);
	// DefaultCallTimeout when 0.
	CallTimeout time.Duration
	// PollInterval is the pause between get_task polls of a long-running
	// method; DefaultPollInterval when 0, at least 10 ms and at most a
	// minute.
	PollInterval time.Duration
}

// String redacts the credentials' key and a password in the URL.
func (c Config) String() string {
	return fmt.Sprintf("mbus.Config{URL: %s, DirectorID: %s, CallTimeout: %s, PollInterval: %s, Credentials: %s}",
		redactURL(c.URL), c.DirectorID, c.CallTimeout, c.PollInterval, c.Credentials)
}

// GoString redacts them in %#v too.
func (c Config) GoString() string { return c.String() }

// AgentError is an agent's exception answer to a call.
type AgentError struct {
	AgentID string
	Method  string
	Message string // the agent's exception message
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("agent %s: %s: %s", e.AgentID, e.Method, e.Message)
}

// Client is the director's side of the bus: it calls agents' methods and
// receives their heartbeats and alerts. A Client is safe for concurrent
// use; calls run concurrently over one connection.
type Client struct {
	cfg  Config
	log  *zap.Logger
	bus  string // host:port of the bus, for errors
	nc   *nats.Conn
	sub  *nats.Subscription
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup // first answers awaited after their Call returned

	mu      sync.Mutex
	pending map[string]chan Response // by reply subject
}

// Dial connects the director to the bus and subscribes to its replies.
func Dial(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	o := newOptions(opts)
	var ve kubefoundry.ValidationError
	if cfg.URL == "" {
		ve.Add("URL", "", "required")
	}
	if cfg.DirectorID == "" {
		cfg.DirectorID = randomID()
	} else if strings.ContainsAny(cfg.DirectorID, ".*> \t") {
		ve.Add("DirectorID", cfg.DirectorID, "must be one subject token (no dots, wildcards or spaces)")
	}
	if cfg.CallTimeout < 0 {
		ve.Add("CallTimeout", cfg.CallTimeout.String(), "must not be negative")
	}
	if cfg.PollInterval < 0 {
		ve.Add("PollInterval", cfg.PollInterval.String(), "must not be negative")
	}
	if err := ve.Err(); err != nil {
		ve.Object = "mbus.Config"
		return nil, err
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	cfg.PollInterval = clampPoll(cfg.PollInterval)
	// No reconnect buffer: a request is sent while the connection is up or
	// not at all, never queued to reach an agent after its call gave up.
	nc, err := connect(ctx, cfg.URL, "director."+cfg.DirectorID, cfg.Credentials, o, nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: o.log, nc: nc, done: make(chan struct{}), pending: map[string]chan Response{}}
	if u, err := url.Parse(cfg.URL); err == nil {
		c.bus = u.Host
	}
	c.sub, err = nc.Subscribe("director."+cfg.DirectorID+".>", c.onReply)
	if err == nil {
		err = flush(ctx, nc)
	}
	if err == nil {
		err = nc.LastError()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("mbus: subscribe to replies: %w", err)
	}
	return c, nil
}

func clampPoll(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultPollInterval
	case d < 10*time.Millisecond:
		return 10 * time.Millisecond
	case d > time.Minute:
		return time.Minute
	}
	return d
}

// DirectorID is the id this director uses in reply subjects.
func (c *Client) DirectorID() string { return c.cfg.DirectorID }

// Close closes the connection; pending calls fail and subscriptions end.
func (c *Client) Close() {
	c.once.Do(func() {
		close(c.done)
		c.nc.Close()
	})
	c.wg.Wait()
}

// onReply hands an answer to the call waiting for it. The answer must come
// on the whole reply subject of that call, which names the agent asked: an
// agent, allowed to publish only to director.*.<its id>.*, cannot answer a
// request sent to another even if it learnt the request id.
func (c *Client) onReply(m *nats.Msg) {
	c.mu.Lock()
	ch := c.pending[m.Subject]
	delete(c.pending, m.Subject)
	c.mu.Unlock()
	if ch == nil {
		c.log.Debug("mbus reply to no pending call", zap.String("subject", m.Subject))
		return
	}
	var r Response
	if err := json.Unmarshal(m.Data, &r); err != nil {
		r = Response{Exception: &Exception{Message: "malformed answer: " + err.Error()}}
	}
	ch <- r // buffered, one answer per request
}

// Call calls method on agent agentID with args and returns the answer's
// value. A long-running method's task is polled with get_task every
// PollInterval until it is no longer running, and its result returned;
// if ctx ends first, the task is cancelled on the agent (cancel_task,
// best effort) and ctx's error returned. Call returns when ctx ends, also
// before the first answer; that answer is still awaited in the background
// (at most CallTimeout, or until Close) and a task it names cancelled. An
// exception from the agent is an *AgentError; an agent that
// does not answer within CallTimeout is a *kubefoundry.TimeoutError
// (ErrTimeout) naming the agent and the method. While the director
// reconnects to the bus a request waits, within CallTimeout, to be sent;
// a director still disconnected then is a *kubefoundry.TimeoutError of
// StageConnect naming the bus (ErrTimeout and ErrUnavailable), and the
// request is never sent later.
func (c *Client) Call(ctx context.Context, agentID, method string, args ...any) (json.RawMessage, error) {
	if err := ValidateAgentID(agentID); err != nil {
		return nil, err
	}
	if args == nil {
		args = []any{}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mbus: agent %s: %s: %w", agentID, method, err)
	}
	// The first answer may name a task, which must be cancelled if ctx
	// ends first: it is awaited in the background (bounded by
	// CallTimeout) while Call returns at ctx's end.
	type answer struct {
		v   json.RawMessage
		err error
	}
	first := make(chan answer, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		v, err := c.call(context.WithoutCancel(ctx), agentID, method, args)
		first <- answer{v, err}
	}()
	var v json.RawMessage
	select {
	case a := <-first:
		if a.err != nil {
			return nil, a.err
		}
		v = a.v
	case <-ctx.Done():
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if a := <-first; a.err == nil {
				if task, ok := runningTask(a.v); ok {
					c.cancelTask(agentID, method, task.AgentTaskID)
				}
			}
		}()
		return nil, fmt.Errorf("mbus: agent %s: %s: %w", agentID, method, ctx.Err())
	}
	task, ok := runningTask(v)
	if !ok {
		return v, nil
	}
	if ctx.Err() != nil {
		c.cancelTask(agentID, method, task.AgentTaskID)
		return nil, fmt.Errorf("mbus: agent %s: %s: task %s: %w", agentID, method, task.AgentTaskID, ctx.Err())
	}
	t := time.NewTicker(c.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.cancelTask(agentID, method, task.AgentTaskID)
			return nil, fmt.Errorf("mbus: agent %s: %s: task %s: %w", agentID, method, task.AgentTaskID, ctx.Err())
		case <-t.C:
		}
		var err error
		v, err = c.getTask(ctx, agentID, method, task.AgentTaskID)
		if err != nil {
			if ctx.Err() != nil {
				c.cancelTask(agentID, method, task.AgentTaskID)
			}
			return nil, err
		}
		if _, running := runningTask(v); !running {
			return v, nil
		}
	}
}

// getTask polls a task, sending get_task again after a timeout. An
// exception is reported under the original method's name.
func (c *Client) getTask(ctx context.Context, agentID, method, taskID string) (json.RawMessage, error) {
	var err error
	for range getTaskRetries + 1 {
		var v json.RawMessage
		v, err = c.call(ctx, agentID, "get_task", []any{taskID})
		if err == nil {
			return v, nil
		}
		var ae *AgentError
		if errors.As(err, &ae) {
			ae.Method = method
			return nil, ae
		}
		if !errors.Is(err, kubefoundry.ErrTimeout) { // ctx's end too: the next call would see it
			return nil, err
		}
		c.log.Warn("mbus get_task timed out", zap.String("agent", agentID), zap.String("task", taskID))
	}
	var te *kubefoundry.TimeoutError
	if errors.As(err, &te) {
		te.Op = method
		te.Err = fmt.Errorf("get_task %s: %w", taskID, te.Err)
	}
	return nil, err
}

// cancelTask asks the agent to cancel a task after the caller gave up; it
// waits at most CallTimeout and only logs a failure.
func (c *Client) cancelTask(agentID, method, taskID string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
	defer cancel()
	if _, err := c.call(ctx, agentID, "cancel_task", []any{taskID}); err != nil {
		c.log.Warn("mbus cancel_task failed", zap.String("agent", agentID), zap.String("method", method),
			zap.String("task", taskID), zap.Error(err))
	}
}

// CancelTask asks agentID to cancel its task taskID.
func (c *Client) CancelTask(ctx context.Context, agentID, taskID string) error {
	if err := ValidateAgentID(agentID); err != nil {
		return err
	}
	_, err := c.call(ctx, agentID, "cancel_task", []any{taskID})
	return err
}

// call sends one request and waits for its one answer.
func (c *Client) call(ctx context.Context, agentID, method string, args []any) (json.RawMessage, error) {
	argJSON, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("mbus: %s: encode arguments: %w", method, err)
	}
	reqID := randomID()
	body, err := json.Marshal(Request{
		Protocol:  ProtocolVersion,
		Method:    method,
		Arguments: argJSON,
		ReplyTo:   ReplySubject(c.cfg.DirectorID, agentID, reqID),
	})
	if err != nil {
		return nil, fmt.Errorf("mbus: %s: encode request: %w", method, err)
	}
	replyTo := ReplySubject(c.cfg.DirectorID, agentID, reqID)
	ch := make(chan Response, 1)
	c.mu.Lock()
	c.pending[replyTo] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, replyTo)
		c.mu.Unlock()
	}()
	timer := time.NewTimer(c.cfg.CallTimeout)
	defer timer.Stop()
	switch err := c.publish(ctx, timer.C, AgentSubject(agentID), body); {
	case errors.Is(err, errNotConnected):
		return nil, &kubefoundry.TimeoutError{Host: c.bus, Stage: kubefoundry.StageConnect, Op: method,
			After: c.cfg.CallTimeout, Err: fmt.Errorf("director not connected to the bus, %s to agent %s not sent: %w",
				method, agentID, kubefoundry.ErrUnavailable)}
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("mbus: agent %s: %s: %w", agentID, method, ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("mbus: send %s to agent %s: %w", method, agentID, err)
	}
	select {
	case r := <-ch:
		if r.Exception != nil {
			return nil, &AgentError{AgentID: agentID, Method: method, Message: r.Exception.Message}
		}
		return r.Value, nil
	case <-timer.C:
		return nil, &kubefoundry.TimeoutError{Host: "agent " + agentID, Stage: kubefoundry.StageCall, Op: method,
			After: c.cfg.CallTimeout, Err: fmt.Errorf("no answer on %s", replyTo)}
	case <-ctx.Done():
		return nil, fmt.Errorf("mbus: agent %s: %s: %w", agentID, method, ctx.Err())
	case <-c.done:
		return nil, fmt.Errorf("mbus: agent %s: %s: %w", agentID, method, nats.ErrConnectionClosed)
	}
}

// errNotConnected: the director stayed disconnected from the bus for the
// whole CallTimeout.
var errNotConnected = errors.New("not connected")

// publish sends a request while the connection is up. While the director
// reconnects (the connection has no reconnect buffer, so NATS refuses the
// message) it tries again every sendRetry until expired fires, ctx ends or
// the Client closes.
func (c *Client) publish(ctx context.Context, expired <-chan time.Time, subject string, body []byte) error {
	retry := time.NewTicker(sendRetry)
	defer retry.Stop()
	for {
		err := c.nc.Publish(subject, body)
		if !errors.Is(err, nats.ErrReconnectBufExceeded) {
			return err
		}
		select {
		case <-retry.C:
		case <-expired:
			return errNotConnected
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return nats.ErrConnectionClosed
		}
	}
}

// Heartbeats calls fn with every heartbeat an agent publishes, until ctx
// ends or the Client closes. The subscription is active when Heartbeats
// returns; fn is called from one goroutine, in order. A heartbeat that is
// not JSON of the right shape is logged and skipped.
func (c *Client) Heartbeats(ctx context.Context, fn func(agentID string, hb Heartbeat)) error {
	return subscribeHM(ctx, c, TopicHeartbeat, fn)
}

// Alerts calls fn with every alert an agent publishes, as Heartbeats does.
func (c *Client) Alerts(ctx context.Context, fn func(agentID string, a Alert)) error {
	return subscribeHM(ctx, c, TopicAlert, fn)
}

func subscribeHM[T any](ctx context.Context, c *Client, topic string, fn func(string, T)) error {
	sub, err := c.nc.Subscribe(HMSubject(topic, "*"), func(m *nats.Msg) {
		id, ok := AgentIDFromSubject(m.Subject)
		if !ok {
			return
		}
		var v T
		if err := json.Unmarshal(m.Data, &v); err != nil {
			c.log.Warn("mbus malformed message", zap.String("subject", m.Subject), zap.Error(err))
			return
		}
		fn(id, v)
	})
	if err != nil {
		return fmt.Errorf("mbus: subscribe %s: %w", topic, err)
	}
	if err := flush(ctx, c.nc); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("mbus: subscribe %s: %w", topic, err)
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-c.done:
		}
		_ = sub.Unsubscribe()
	}()
	return nil
}

// randomID is a random UUID (version 4) string.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
