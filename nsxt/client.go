package nsxt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/core"
	vapilog "github.com/vmware/vsphere-automation-sdk-go/runtime/log"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/protocol/client"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/security"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry/internal/retry"
)

// Client talks to the NSX-T Policy API through vsphere-automation-sdk-go
// over REST. It is safe for concurrent use by many goroutines.
type Client struct {
	cfg  Config
	opts options
	log  *zap.Logger
	tr   *transport
	conn client.Connector
}

// New checks the configuration, connects to the first manager that
// answers and returns a Client.
func New(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	if len(cfg.URLs) == 0 {
		return nil, fmt.Errorf("nsxt: Config.URLs is empty")
	}
	var managers []*url.URL
	for i, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("nsxt: Config.URLs[%d] is not an https URL", i)
		}
		if u.User != nil {
			return nil, fmt.Errorf("nsxt: Config.URLs[%d] carries credentials; set Username and Password instead", i)
		}
		managers = append(managers, u)
	}
	hasCert := cfg.ClientCert != "" || cfg.ClientKey != ""
	if cfg.Username == "" && !hasCert {
		return nil, fmt.Errorf("nsxt: Config needs Username/Password or ClientCert/ClientKey")
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	routeRuntimeLog(o.log)
	base := &http.Transport{
		// A manager that is powered off drops packets rather than refusing
		// connections: give up on it after 10s and try the next.
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	tr := &transport{base: base, managers: managers, log: o.log, attempts: o.attempts, backoff: o.backoff, overwrite: cfg.AllowOverwrite}
	if o.qps > 0 {
		tr.limit = rate.NewLimiter(rate.Limit(o.qps), o.burst)
	}
	hc := &http.Client{Transport: tr, Timeout: timeout}
	copts := []client.ConnectorOption{client.UsingRest(nil), client.WithHttpClient(hc)}
	switch {
	case cfg.Username == "" || hasCert:
	case cfg.NoSession:
		copts = append(copts, client.WithSecurityContext(security.NewUserPasswordSecurityContext(cfg.Username, cfg.Password)))
	default:
		tr.sess = newSessions(cfg.Username, cfg.Password, base, o.log, tr.countRequest, tr.wait)
	}
	c := &Client{cfg: cfg, opts: o, log: o.log, tr: tr,
		conn: client.NewConnector(managers[0].String(), copts...)}
	if err := c.ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close ends the Client's NSX sessions and releases idle connections.
func (c *Client) Close() {
	if c.tr.sess != nil {
		c.tr.sess.close()
	}
	c.tr.base.CloseIdleConnections()
}

// Calls reports the HTTP requests made so far: reads (GET) and writes.
func (c *Client) Calls() (reads, writes int64) { return c.tr.reads.Load(), c.tr.writes.Load() }

// connector returns the SDK connector bound to ctx: the generated clients
// take no context, so the execution context carries it to the request.
func (c *Client) connector(ctx context.Context) client.Connector {
	return ctxConnector{Connector: c.conn, ctx: ctx}
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

func tlsConfig(cfg Config) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.ClientCert != "" || cfg.ClientKey != "" {
		pair, err := tls.X509KeyPair([]byte(cfg.ClientCert), []byte(cfg.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("nsxt: Config.ClientCert/ClientKey: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	switch {
	case cfg.Insecure:
		t.InsecureSkipVerify = true
	case cfg.Thumbprint != "":
		want := strings.ToLower(strings.ReplaceAll(cfg.Thumbprint, ":", ""))
		if len(want) != 64 {
			return nil, fmt.Errorf("nsxt: Config.Thumbprint %q is not a SHA-256 thumbprint", cfg.Thumbprint)
		}
		t.InsecureSkipVerify = true // verified below against the thumbprint instead
		t.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("nsxt: the manager sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if got := hex.EncodeToString(sum[:]); got != want {
				return fmt.Errorf("nsxt: the manager's certificate thumbprint %s does not match Config.Thumbprint", got)
			}
			return nil
		}
	case cfg.CACert != "":
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.CACert)) {
			return nil, fmt.Errorf("nsxt: Config.CACert holds no PEM certificate")
		}
		t.RootCAs = pool
	}
	return t, nil
}

// transport sends each request to the current manager, moves to the next
// when one cannot be reached, waits for the rate limit, and retries a 503
// or 429 with backoff (honouring Retry-After) up to attempts.
type transport struct {
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

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
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

// wait holds a request to the rate limit, when there is one.
func (t *transport) wait(ctx context.Context) error {
	if t.limit == nil {
		return nil
	}
	return t.limit.Wait(ctx)
}

// countRequest counts a request sent: a read (GET) or a write, the latter
// for the operation of its context too.
func (t *transport) countRequest(r *http.Request) {
	if r.Method == http.MethodGet {
		t.reads.Add(1)
		return
	}
	t.writes.Add(1)
	if n, ok := r.Context().Value(writesKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
}

// send tries the managers in turn from the current one.
func (t *transport) send(req *http.Request, body []byte) (*http.Response, error) {
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
		if errors.Is(err, errClosed) {
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
