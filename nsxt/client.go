package nsxt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/core"
	vapilog "github.com/vmware/vsphere-automation-sdk-go/runtime/log"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/protocol/client"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/security"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry/internal/retry"
	"github.com/kubefoundry/kubefoundry/internal/transport"
)

// Client talks to the NSX-T Policy API through vsphere-automation-sdk-go
// over REST. It is safe for concurrent use by many goroutines.
type Client struct {
	cfg  Config
	opts options
	log  *zap.Logger
	tr   *failover
	rt   *calls // every request goes through it: the SDK's and get's
	conn client.Connector
}

// DefaultTimeout is the bound of one call when Config.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// New checks the configuration, connects to the first manager that
// answers and returns a Client. A wrong Config is a
// *kubefoundry.ValidationError listing every problem.
func New(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	cfg.URLs = slices.Clone(cfg.URLs)
	managers, tlsCfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	routeRuntimeLog(o.log)
	// A manager that is powered off drops packets rather than refusing
	// connections, and one that hangs may accept them and never answer:
	// each dial gives up after ConnectTimeout, each TLS handshake after
	// TLSHandshakeTimeout (10s each by default), and the next manager is
	// tried.
	base := transport.NewHTTPTransport(transport.NewDialer(transport.Timeouts{
		Connect: cfg.ConnectTimeout, TLSHandshake: cfg.TLSHandshakeTimeout}, tlsCfg))
	tr := &failover{base: base, managers: managers, log: o.log, attempts: o.attempts, backoff: o.backoff, overwrite: cfg.AllowOverwrite}
	if o.limiter != nil {
		tr.limit = o.limiter
	} else if o.qps > 0 {
		tr.limit = rate.NewLimiter(rate.Limit(o.qps), o.burst)
	}
	rt := &calls{f: tr, bound: &transport.CallTimeout{Next: tr, Timeout: timeout}}
	hc := &http.Client{Transport: rt}
	copts := []client.ConnectorOption{client.UsingRest(nil), client.WithHttpClient(hc)}
	hasCert := cfg.ClientCert != "" || cfg.ClientKey != ""
	switch {
	case cfg.Username == "" || hasCert:
	case cfg.NoSession:
		copts = append(copts, client.WithSecurityContext(security.NewUserPasswordSecurityContext(cfg.Username, cfg.Password)))
	default:
		tr.sess = newSessions(cfg.Username, cfg.Password, base, o.log, tr.countRequest, tr.wait)
	}
	c := &Client{cfg: cfg, opts: o, log: o.log, tr: tr, rt: rt,
		conn: client.NewConnector(managers[0].String(), copts...)}
	if err := c.ping(ctx); err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// Close ends the Client's NSX sessions and releases idle connections;
// ctx bounds the ending of the sessions (5 s per manager without a
// deadline). The error says which session could not be ended; the Client
// is closed whatever it says.
func (c *Client) Close(ctx context.Context) error {
	var err error
	if c.tr.sess != nil {
		err = c.tr.sess.close(ctx)
	}
	c.tr.base.CloseIdleConnections()
	return err
}

// Calls reports the HTTP requests made so far: reads (GET) and writes.
func (c *Client) Calls() (reads, writes int64) { return c.tr.reads.Load(), c.tr.writes.Load() }

// connector returns the SDK connector bound to ctx: the generated clients
// take no context, so the execution context carries it to the request.
// The transport's error for a call that got no answer is kept in the
// returned cause, for apiError: the SDK keeps only its text. The calls of
// one connector are made one at a time, as they share the cause.
func (c *Client) connector(ctx context.Context) (client.Connector, *cause) {
	box := new(cause)
	return ctxConnector{Connector: c.conn, ctx: context.WithValue(ctx, causeKey{}, box)}, box
}

type ctxConnector struct {
	client.Connector
	ctx context.Context
}

func (c ctxConnector) NewExecutionContext() *core.ExecutionContext {
	ec := c.Connector.NewExecutionContext()
	ec.WithContext(c.ctx)
	return ec
}

// cause holds the transport's error for the last call of a connector.
type cause struct {
	mu  sync.Mutex
	err error
}

type causeKey struct{}

func (b *cause) set(err error) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

// get returns the error, if the last call ended with one.
func (b *cause) get() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// calls is the Client's outermost RoundTripper. It sends a call to the
// manager the failover transport uses at the moment, bounds it, answer
// body included, by Config.Timeout (a *kubefoundry.TimeoutError, Stage
// call, naming that manager and "GET /policy/api/v1/..."), and records
// the error of a call that got no answer where apiError finds it (a
// cause in the request's context).
//
// The bound is the call's whole: a manager that cannot be reached (its
// connect or TLS handshake timed out) gives way to the next within it,
// and a 503 is retried within it; a call that runs out of time is not
// sent again anywhere, as the manager may have done what it asked.
type calls struct {
	f     *failover
	bound *transport.CallTimeout // Next is f
}

func (c *calls) RoundTrip(req *http.Request) (*http.Response, error) {
	box, _ := req.Context().Value(causeKey{}).(*cause)
	box.set(nil)
	if m := c.f.current(); req.URL.Host != m.Host {
		req = req.Clone(req.Context())
		req.URL.Host = m.Host
	}
	resp, err := c.bound.RoundTrip(req)
	if err != nil {
		box.set(err)
		return nil, err
	}
	if box != nil {
		resp.Body = &recordedBody{ReadCloser: resp.Body, box: box}
	}
	return resp, nil
}

// recordedBody records an error reading the answer, such as the call's
// bound cutting it short.
type recordedBody struct {
	io.ReadCloser
	box *cause
}

func (b *recordedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.box.set(err)
	}
	return n, err
}

// failover sends each request to the current manager, moves to the next
// when one cannot be reached, waits for the rate limit, and retries a 503
// or 429 with backoff (honouring Retry-After) up to attempts.
type failover struct {
	base      *http.Transport
	managers  []*url.URL
	cur       atomic.Int32
	limit     *rate.Limiter
	log       *zap.Logger
	attempts  int
	backoff   time.Duration
	overwrite bool      // Config.AllowOverwrite
	sess      *sessions // user sessions; nil with a certificate or Config.NoSession

	reads, writes atomic.Int64
}

func (t *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	bo := retry.Backoff{Initial: t.backoff}
	for attempt := 1; ; attempt++ {
		if err := t.wait(ctx); err != nil {
			return nil, err
		}
		resp, err := t.send(req, body)
		if err != nil {
			return nil, err
		}
		if (resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests) || attempt >= t.attempts {
			return resp, nil
		}
		wait := bo.Next()
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		t.log.Debug("nsx busy, retrying", zap.String("method", req.Method), zap.String("path", req.URL.Path),
			zap.Int("status", resp.StatusCode), zap.Int("attempt", attempt), zap.Duration("wait", wait))
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, fmt.Errorf("nsxt: %s %s answered %d and the context ends before a retry", req.Method, req.URL.Path, resp.StatusCode)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// current is the manager requests go to first.
func (t *failover) current() *url.URL { return t.managers[t.cur.Load()] }

// wait holds a request to the rate limit, when there is one.
func (t *failover) wait(ctx context.Context) error {
	if t.limit == nil {
		return nil
	}
	if err := t.limit.Wait(ctx); err != nil {
		return fmt.Errorf("%w: %w", errRateLimited, err)
	}
	return nil
}

// errRateLimited: the client-side rate limit did not let a request go
// within its context; no manager is at fault.
var errRateLimited = errors.New("nsxt: rate limit")

// countRequest counts a request sent: a read (GET) or a write, the latter
// for the operation of its context too.
func (t *failover) countRequest(r *http.Request) {
	if r.Method == http.MethodGet {
		t.reads.Add(1)
		return
	}
	t.writes.Add(1)
	if n, ok := r.Context().Value(writesKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
}

// send tries the managers in turn from the current one, moving on when
// one cannot be reached (a refused or timed-out connect or TLS
// handshake, as the dialer bounds them) but never once the call's
// context has ended: its time is up, and a write may have been done.
func (t *failover) send(req *http.Request, body []byte) (*http.Response, error) {
	start := int(t.cur.Load())
	var errs []error
	for i := range t.managers {
		idx := (start + i) % len(t.managers)
		m := t.managers[idx]
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = m.Scheme, m.Host, m.Host
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		if r.Method != http.MethodGet && t.overwrite {
			r.Header.Set("X-Allow-Overwrite", "true")
		}
		var resp *http.Response
		var err error
		if t.sess != nil {
			resp, err = t.sess.roundTrip(r, m, body) // it counts what it sends
		} else {
			t.countRequest(r)
			resp, err = t.base.RoundTrip(r)
		}
		if err == nil {
			if idx != start {
				t.cur.Store(int32(idx))
				t.log.Info("nsx manager failover", zap.String("to", m.Host))
			}
			return resp, nil
		}
		if req.Context().Err() != nil {
			return nil, req.Context().Err()
		}
		if errors.Is(err, errClosed) || errors.Is(err, errRateLimited) {
			return nil, err
		}
		t.log.Warn("nsx manager unreachable", zap.String("manager", m.Host), zap.Error(err))
		errs = append(errs, fmt.Errorf("%s: %w", m.Host, err))
	}
	return nil, fmt.Errorf("nsxt: no manager answered: %w", errors.Join(errs...))
}

type writesKey struct{}

// countWrites returns a context whose write requests are counted, so that
// an operation reports its own writes even while others share the Client.
func countWrites(ctx context.Context) (context.Context, *atomic.Int64) {
	n := new(atomic.Int64)
	return context.WithValue(ctx, writesKey{}, n), n
}

// The runtime logs through one package-level logger. It is pointed, once,
// at a router that forwards to the logger of the most recently created
// Client, at debug level: the runtime logs every request at info.
var runtimeLog struct {
	once sync.Once
	cur  atomic.Pointer[zap.SugaredLogger]
}

func routeRuntimeLog(l *zap.Logger) {
	runtimeLog.cur.Store(l.Named("vapi").Sugar())
	runtimeLog.once.Do(func() { vapilog.SetLogger(runtimeLogger{}) })
}

type runtimeLogger struct{}

func (runtimeLogger) out() *zap.SugaredLogger { return runtimeLog.cur.Load() }

// The runtime sometimes calls the f variants without a format verb; such a
// line is logged as its parts rather than with %!(EXTRA ...).
func (l runtimeLogger) logf(f string, args []interface{}) {
	if len(args) > 0 && !strings.Contains(f, "%") {
		l.out().Debug(append([]interface{}{f, " "}, args...)...)
		return
	}
	l.out().Debugf(f, args...)
}

func (l runtimeLogger) Error(args ...interface{})            { l.out().Debug(args...) }
func (l runtimeLogger) Errorf(f string, args ...interface{}) { l.logf(f, args) }
func (l runtimeLogger) Info(args ...interface{})             { l.out().Debug(args...) }
func (l runtimeLogger) Infof(f string, args ...interface{})  { l.logf(f, args) }
func (l runtimeLogger) Debug(args ...interface{})            { l.out().Debug(args...) }
func (l runtimeLogger) Debugf(f string, args ...interface{}) { l.logf(f, args) }

// ping checks that a manager answers and accepts the credentials.
func (c *Client) ping(ctx context.Context) error {
	conn, cause := c.connector(ctx)
	_, err := infra.NewDomainsClient(conn).Get("default")
	if err != nil {
		return fmt.Errorf("nsxt: connecting to %s: %w", c.cfg.URLs[0], apiError("get /infra/domains/default", err, cause.get()))
	}
	return nil
}
