package kube

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubefoundry/kubefoundry"
)

// Client talks to one cluster's API server. It is safe for concurrent use.
type Client struct {
	cs  kubernetes.Interface
	cfg *rest.Config
	log *zap.Logger

	requestTimeout time.Duration

	etcdEndpoints []string
	etcdTLS       *tls.Config
}

// An Option configures a Client.
type Option interface {
	apply(*Client)
}

type optionFunc func(*Client)

func (f optionFunc) apply(c *Client) { f(c) }

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(c *Client) {
		if l != nil {
			c.log = l
		}
	})
}

// DefaultRequestTimeout is how long a request waits for the API server to
// begin its answer unless WithRequestTimeout says otherwise.
const DefaultRequestTimeout = 30 * time.Second

// WithRequestTimeout bounds how long each request to the API server waits
// for the server to begin its answer (its response headers): a server
// that accepts the connection and never answers fails the call with a
// *kubefoundry.TimeoutError naming the request, instead of hanging a call
// made without a deadline. Only the start of an answer is bounded, so a
// long list or a watch is not cut off. Zero means DefaultRequestTimeout;
// a negative value, no bound but the caller's context.
func WithRequestTimeout(d time.Duration) Option {
	return optionFunc(func(c *Client) { c.requestTimeout = d })
}

// New returns a Client for cfg. The config is copied. Warnings the API
// server sends (deprecated APIs, Pod Security) go to the Client's logger
// rather than through klog to stderr, unless cfg has its own handler.
func New(cfg *rest.Config, opts ...Option) (*Client, error) {
	c := &Client{cfg: rest.CopyConfig(cfg), log: zap.NewNop()}
	// client-go's token bucket stays, at rates for a drain of many pods
	// rather than its default 5 per second.
	if c.cfg.QPS == 0 {
		c.cfg.QPS, c.cfg.Burst = 50, 100
	}
	for _, o := range opts {
		o.apply(c)
	}
	c.log = c.log.Named("kube")
	if c.cfg.WarningHandler == nil && c.cfg.WarningHandlerWithContext == nil {
		c.cfg.WarningHandler = warningLogger{c.log}
	}
	if d := cmp.Or(c.requestTimeout, DefaultRequestTimeout); d > 0 {
		c.cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &answerTimeout{rt: rt, after: d} })
	}
	cs, err := kubernetes.NewForConfig(c.cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client for %s: %w", cfg.Host, err)
	}
	c.cs = cs
	return c, nil
}

// Clientset returns the underlying client-go clientset.
func (c *Client) Clientset() kubernetes.Interface { return c.cs }

func newLimiter(qps float64, burst int) *rate.Limiter { return rate.NewLimiter(rate.Limit(qps), burst) }

// warningLogger logs the API server's warnings.
type warningLogger struct{ log *zap.Logger }

func (w warningLogger) HandleWarningHeader(code int, agent, text string) {
	if code == 299 && text != "" {
		w.log.Warn("API server warning", zap.String("warning", text))
	}
}

// errNoAnswer cancels a request whose answer did not begin in time.
var errNoAnswer = errors.New("no answer from the API server")

// answerTimeout fails a request whose response headers do not arrive
// within after. The request's context is cancelled then, or when the
// body of an answer that did begin is closed.
type answerTimeout struct {
	rt    http.RoundTripper
	after time.Duration
}

func (t *answerTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(t.after, func() { cancel(errNoAnswer) })
	resp, err := t.rt.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() {
		if err == nil {
			_ = resp.Body.Close()
		}
		cancel(nil)
		return nil, &kubefoundry.TimeoutError{Host: req.URL.Host, Stage: kubefoundry.StageCall, Op: req.Method + " " + req.URL.Path, After: t.after, Err: cmp.Or(err, errNoAnswer)}
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// WrappedRoundTripper lets client-go reach the transport beneath (to
// close idle connections).
func (t *answerTimeout) WrappedRoundTripper() http.RoundTripper { return t.rt }

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}
