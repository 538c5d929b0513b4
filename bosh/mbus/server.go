package mbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// Method is one method an agent serves.
type Method struct {
	// Func runs the method with the request's arguments (the JSON array).
	// Its ctx ends when the Server closes or, for a long-running method,
	// when the director cancels the task.
	Func func(ctx context.Context, args json.RawMessage) (any, error)
	// LongRunning methods answer at once with a task ({"agent_task_id",
	// "state": "running"}) and run on; the director polls get_task.
	LongRunning bool
}

// Handler finds the method a request names.
type Handler interface {
	Lookup(method string) (Method, bool)
}

// Methods is a Handler from a map of method names.
type Methods map[string]Method

// Lookup returns the method of that name.
func (m Methods) Lookup(method string) (Method, bool) {
	f, ok := m[method]
	return f, ok
}

// ServerConfig configures an agent-side Server.
type ServerConfig struct {
	// URL of the NATS server.
	URL string
	// AgentID is the agent's id; it listens on agent.<AgentID>.
	AgentID string
	// Credentials of the agent: what Bus.AddAgent returned.
	Credentials Credentials
	// TaskRetention is how long a finished task's result stays available
	// to get_task; 10 minutes when 0.
	TaskRetention time.Duration
}

// String redacts the credentials' key and a password in the URL.
func (c ServerConfig) String() string {
	return fmt.Sprintf("mbus.ServerConfig{URL: %s, AgentID: %s, TaskRetention: %s, Credentials: %s}",
		redactURL(c.URL), c.AgentID, c.TaskRetention, c.Credentials)
}

// GoString redacts them in %#v too.
func (c ServerConfig) GoString() string { return c.String() }

// Server is the agent's side of the bus: it answers the director's
// requests on agent.<id> from a Handler, runs long-running methods as
// tasks (serving get_task and cancel_task for them), and publishes
// heartbeats and alerts. Requests are served concurrently; a Server is
// safe for concurrent use.
type Server struct {
	cfg     ServerConfig
	log     *zap.Logger
	h       Handler
	nc      *nats.Conn
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	maxResp int

	sub   *nats.Subscription
	mu    sync.Mutex
	tasks map[string]*task
	shut  bool // Close has begun: no new requests or tasks
}

type task struct {
	cancel   context.CancelFunc
	state    string
	value    any
	err      error
	finished time.Time
}

// StartServer connects the agent to the bus and serves h on
// agent.<AgentID> until Close.
func StartServer(ctx context.Context, cfg ServerConfig, h Handler, opts ...Option) (*Server, error) {
	o := newOptions(opts)
	var ve kubefoundry.ValidationError
	if cfg.URL == "" {
		ve.Add("URL", "", "required")
	}
	ve.Merge("", ValidateAgentID(cfg.AgentID))
	if h == nil {
		ve.Add("Handler", "", "required")
	}
	if cfg.TaskRetention < 0 {
		ve.Add("TaskRetention", cfg.TaskRetention.String(), "must not be negative")
	}
	if err := ve.Err(); err != nil {
		ve.Object = "mbus.ServerConfig"
		return nil, err
	}
	if cfg.TaskRetention == 0 {
		cfg.TaskRetention = 10 * time.Minute
	}
	nc, err := connect(ctx, cfg.URL, "agent."+cfg.AgentID, cfg.Credentials, o)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: o.log.With(zap.String("agent", cfg.AgentID)), h: h, nc: nc,
		ctx: sctx, cancel: cancel, tasks: map[string]*task{}}
	s.maxResp = min(MaxResponseLength, int(nc.MaxPayload())) // the server's INFO always has max_payload
	s.sub, err = nc.Subscribe(AgentSubject(cfg.AgentID), s.onRequest)
	if err == nil {
		err = flush(ctx, nc)
	}
	if err == nil {
		err = nc.LastError()
	}
	if err != nil {
		cancel()
		nc.Close()
		return nil, fmt.Errorf("mbus: agent %s: subscribe %s: %w", cfg.AgentID, AgentSubject(cfg.AgentID), err)
	}
	return s, nil
}

// Close stops serving, cancels running tasks and waits for every request
// and task to end, then closes the connection. A Method must return when
// its ctx ends, or Close waits for it.
func (s *Server) Close() {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return
	}
	s.shut = true
	s.mu.Unlock()
	s.cancel()
	_ = s.sub.Unsubscribe()
	s.wg.Wait()
	s.nc.Close()
}

func (s *Server) onRequest(m *nats.Msg) {
	var req Request
	if err := json.Unmarshal(m.Data, &req); err != nil || req.ReplyTo == "" {
		s.log.Warn("mbus malformed request", zap.Error(err))
		return
	}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.reply(req.ReplyTo, s.dispatch(req))
	}()
}

// dispatch answers one request: get_task and cancel_task from the task
// table, other methods from the Handler. As on the real agent, get_task and
// cancel_task are actions like any other, so their failures read "Action
// Failed get_task: ...".
func (s *Server) dispatch(req Request) Response {
	args := req.Arguments
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("[]")
	}
	switch req.Method {
	case "get_task":
		return s.getTask(args)
	case "cancel_task":
		return s.cancelTask(args)
	}
	m, ok := s.h.Lookup(req.Method)
	if !ok || m.Func == nil {
		return exception("unknown message " + req.Method)
	}
	if !m.LongRunning {
		v, err := run(s.ctx, m, args)
		if err != nil {
			return actionFailed(req.Method, err.Error())
		}
		return value(req.Method, v)
	}
	return s.startTask(req.Method, m, args)
}

// run calls the method, turning a panic into an error.
func run(ctx context.Context, m Method, args json.RawMessage) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return m.Func(ctx, args)
}

func (s *Server) startTask(method string, m Method, args json.RawMessage) Response {
	id := randomID()
	tctx, cancel := context.WithCancel(s.ctx)
	t := &task{cancel: cancel, state: TaskRunning}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		cancel()
		return exception("agent is shutting down")
	}
	s.expireLocked()
	s.tasks[id] = t
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer cancel()
		v, err := run(tctx, m, args)
		s.mu.Lock()
		defer s.mu.Unlock()
		t.value, t.err, t.finished = v, err, time.Now()
		t.state = TaskDone
		if err != nil {
			t.state = TaskFailed
			s.log.Info("mbus task failed", zap.String("method", method), zap.String("task", id), zap.Error(err))
		}
	}()
	return value(method, TaskValue{AgentTaskID: id, State: TaskRunning})
}

// expireLocked forgets finished tasks older than the retention.
func (s *Server) expireLocked() {
	for id, t := range s.tasks {
		if t.state != TaskRunning && time.Since(t.finished) > s.cfg.TaskRetention {
			delete(s.tasks, id)
		}
	}
}

func taskIDArg(args json.RawMessage) (string, error) {
	var a []string
	if err := json.Unmarshal(args, &a); err != nil || len(a) != 1 {
		return "", errors.New("want one argument, the task id")
	}
	return a[0], nil
}

func (s *Server) getTask(args json.RawMessage) Response {
	id, err := taskIDArg(args)
	if err != nil {
		return actionFailed("get_task", err.Error())
	}
	s.mu.Lock()
	t, ok := s.tasks[id]
	var state string
	var v any
	if ok {
		state, v, err = t.state, t.value, t.err
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return actionFailed("get_task", taskNotFound(id))
	case state == TaskRunning:
		return value("get_task", TaskValue{AgentTaskID: id, State: TaskRunning})
	case err != nil:
		return actionFailed("get_task", fmt.Sprintf("Task %s result: %s", id, err))
	}
	return value("get_task", v)
}

// taskNotFound is the real agent's message for an unknown task id.
func taskNotFound(id string) string { return "Task with id " + id + " could not be found" }

func (s *Server) cancelTask(args json.RawMessage) Response {
	id, err := taskIDArg(args)
	if err != nil {
		return actionFailed("cancel_task", err.Error())
	}
	s.mu.Lock()
	t, ok := s.tasks[id]
	s.mu.Unlock()
	if !ok {
		return actionFailed("cancel_task", taskNotFound(id))
	}
	t.cancel()
	return value("cancel_task", "canceled")
}

// value answers with v; a v that does not encode is method's failure.
func value(method string, v any) Response {
	b, err := json.Marshal(v)
	if err != nil {
		return actionFailed(method, err.Error())
	}
	return Response{Value: b}
}

func exception(msg string) Response { return Response{Exception: &Exception{Message: msg}} }

// actionFailed is the real agent's exception for a method that failed.
func actionFailed(method, msg string) Response {
	return exception("Action Failed " + method + ": " + msg)
}

// reply publishes the answer; one larger than the agent may send becomes
// an exception, as the real agent answers: an exception message is
// shortened to fit, a value is replaced by ResponseTooLargeMessage.
func (s *Server) reply(subject string, r Response) {
	b, _ := json.Marshal(r) // the value is JSON already (value): it encodes
	if len(b) > s.maxResp {
		s.log.Warn("mbus answer too large", zap.Int("bytes", len(b)), zap.Int("max", s.maxResp))
		msg := ResponseTooLargeMessage
		if r.Exception != nil {
			if short, ok := shorten(r.Exception.Message, s.maxResp); ok {
				msg = short
			}
		}
		b, _ = json.Marshal(exception(msg))
	}
	if err := s.nc.Publish(subject, b); err != nil {
		s.log.Warn("mbus publish answer", zap.String("subject", subject), zap.Error(err))
	}
}

// truncationMarker stands for the middle of an exception message that was
// cut out to fit, as the real agent marks it.
const truncationMarker = "\n...[truncated]...\n"

// shorten cuts the middle out of an exception message so that its answer's
// JSON fits in max bytes: it keeps the head (what failed) and the tail (the
// root cause), half each, cut between runes. Each pass keeps as many bytes
// of msg as the last pass's bytes of JSON per byte of msg let fit (one for
// plain text, up to six where JSON escapes); false if nothing of msg fits.
func shorten(msg string, max int) (string, bool) {
	fixed := encodedLen(truncationMarker) // the answer around the message, and the marker
	for n := len(msg); n > 0; {
		k := n / 2 // msg[:k] is the head
		for k > 0 && !utf8.RuneStart(msg[k]) {
			k--
		}
		j := len(msg) - (n - n/2) // msg[j:] is the tail
		for j < len(msg) && !utf8.RuneStart(msg[j]) {
			j++
		}
		short := msg[:k] + truncationMarker + msg[j:]
		size := encodedLen(short)
		if size <= max {
			return short, true
		}
		n = n * (max - fixed) / (size - fixed) // fewer than n: size-fixed > max-fixed
	}
	return "", false
}

// encodedLen is the length of the JSON of an exception answer with msg.
func encodedLen(msg string) int {
	b, _ := json.Marshal(exception(msg)) // strings always encode
	return len(b)
}

// PublishHeartbeat publishes hb to hm.agent.heartbeat.<agent-id>.
func (s *Server) PublishHeartbeat(ctx context.Context, hb Heartbeat) error {
	return s.Send(ctx, TopicHeartbeat, hb)
}

// PublishAlert publishes a to hm.agent.alert.<agent-id>.
func (s *Server) PublishAlert(ctx context.Context, a Alert) error {
	return s.Send(ctx, TopicAlert, a)
}

// Send publishes v as JSON to hm.agent.<topic>.<agent-id> and waits until
// the bus has processed it (bounded by ctx, or 10 s). NATS does not
// acknowledge a message: one the bus refuses (an external NATS whose
// permissions lack the topic) is reported only to the logger, as a
// permissions violation.
func (s *Server) Send(ctx context.Context, topic string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("mbus: encode %s: %w", topic, err)
	}
	subject := HMSubject(topic, s.cfg.AgentID)
	if err := s.nc.Publish(subject, b); err != nil {
		return fmt.Errorf("mbus: publish %s: %w", subject, err)
	}
	if err := flush(ctx, s.nc); err != nil {
		return fmt.Errorf("mbus: publish %s: %w", subject, err)
	}
	return nil
}
