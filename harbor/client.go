package harbor

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	v2 "github.com/goharbor/go-client/pkg/sdk/v2.0/client"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/ping"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/user"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry/internal/transport"
)

// Config is the plain, serialisable description of a Harbor connection.
type Config struct {
	// URL of Harbor, such as https://harbor.example.com.
	URL string `json:"url"`
	// Username and Password of an administrator or a robot account
	// (robot$name).
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
	// CACert is a PEM bundle of certificate authorities to trust.
	CACert string `json:"caCert,omitempty"`
	// Thumbprint is the SHA-256 (or SHA-1) digest of Harbor's
	// certificate in hex, with or without colons: the certificate is
	// trusted when it matches, whoever signed it.
	Thumbprint string `json:"thumbprint,omitempty"`
	// Insecure turns TLS verification off. It is never implied.
	Insecure bool `json:"insecure,omitempty"`
	// ConnectTimeout bounds the TCP connect, TLSHandshakeTimeout the TLS
	// handshake after it; 10 seconds each when zero.
	ConnectTimeout      time.Duration `json:"connectTimeout,omitempty"`
	TLSHandshakeTimeout time.Duration `json:"tlsHandshakeTimeout,omitempty"`
	// Timeout bounds one request, from sending it to reading the whole
	// answer; 1 minute when zero.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// String describes the configuration with the password redacted, the
// one in Password and any user information in URL.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "--- REDACTED ---"
	}
	return fmt.Sprintf("harbor.Config{URL: %q, Username: %q, Password: %q, CACert: %d bytes, Thumbprint: %q, Insecure: %t, "+
		"ConnectTimeout: %s, TLSHandshakeTimeout: %s, Timeout: %s}",
		redact(c.URL), c.Username, pw, len(c.CACert), c.Thumbprint, c.Insecure, c.ConnectTimeout, c.TLSHandshakeTimeout, c.Timeout)
}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return c.String() }

// validate returns every problem of c at once as a *ValidationError, or
// Harbor's URL and the TLS configuration built from c.
func (c Config) validate() (*url.URL, *tls.Config, error) {
	verr := ValidationError{Object: "harbor.Config"}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		verr.Add("url", "", "cannot be parsed as a URL")
	case (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		verr.Add("url", redact(c.URL), "must be an http(s) URL such as https://harbor.example.com")
	}
	if c.Username == "" {
		verr.Add("username", "", "required: an administrator, a user or a robot account (robot$name)")
	}
	if c.Password == "" {
		verr.Add("password", "", "required")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"connectTimeout", c.ConnectTimeout}, {"tlsHandshakeTimeout", c.TLSHandshakeTimeout}, {"timeout", c.Timeout}} {
		if d.v < 0 {
			verr.Add(d.field, d.v.String(), "must not be negative (zero takes the default)")
		}
	}
	tlsCfg, err := transport.Config(transport.TLS{CACert: c.CACert, Thumbprint: c.Thumbprint, Insecure: c.Insecure})
	verr.Merge("", err) // caCert, thumbprint
	if err := verr.Err(); err != nil {
		return nil, nil, err
	}
	return u, tlsCfg, nil
}

// An Option configures a Client.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	log     *zap.Logger
	limiter *rate.Limiter
}

// WithRateLimiter sends every request through l, a token bucket the caller
// may share with other clients (a vsphere or nsxt Client) so that together
// they keep to one budget. Without it there is no client-side limit.
func WithRateLimiter(l *rate.Limiter) Option {
	return optionFunc(func(o *options) { o.limiter = l })
}

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.log = l
		}
	})
}

// Client manages projects, members, robot accounts and the rest of a
// Harbor through goharbor/go-client. It is safe for concurrent use.
type Client struct {
	cfg  Config
	log  *zap.Logger
	api  *v2.HarborAPI
	tr   *http.Transport   // the connections, closed by Close
	call http.RoundTripper // tr with the per-call bound
	host string            // the registry host in image references and pull secrets
}

// New checks the configuration, reporting every problem at once as a
// *ValidationError, then that Harbor answers and accepts the credentials.
// A Harbor that does not answer in time fails it with a
// *kubefoundry.TimeoutError naming the stage.
func New(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	o := options{log: zap.NewNop()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	u, tlsCfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	timeouts := transport.Timeouts{Connect: cfg.ConnectTimeout, TLSHandshake: cfg.TLSHandshakeTimeout, Call: cfg.Timeout}.WithDefaults()
	tr := transport.NewHTTPTransport(transport.NewDialer(timeouts, tlsCfg))
	var call http.RoundTripper = &transport.CallTimeout{Next: tr, Timeout: timeouts.Call}
	if o.limiter != nil {
		call = &limited{next: call, limiter: o.limiter}
	}
	base := *u
	base.User = nil
	base.Path = strings.TrimSuffix(u.Path, "/") + v2.DefaultBasePath
	c := &Client{cfg: cfg, log: o.log, tr: tr, call: call, host: u.Host, api: v2.New(v2.Config{
		URL: &base, Transport: bufferErrors{call},
		AuthInfo: httptransport.BasicAuth(cfg.Username, cfg.Password)})}
	if _, err := c.api.Ping.GetPing(ctx, ping.NewGetPingParams()); err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("harbor: %s does not answer: %w", redact(cfg.URL), err)
	}
	if _, err := c.api.User.GetCurrentUserInfo(ctx, user.NewGetCurrentUserInfoParams()); err != nil {
		// A robot account has no user record and gets another answer
		// (Harbor answers 412); its credentials still work on what it
		// is allowed to. What fails New is a refusal of the credentials
		// (401), a Harbor that cannot answer (5xx) and a request that
		// did not get an answer at all.
		e := apiError("log in as "+cfg.Username, err)
		var ae *APIError
		if !errors.As(e, &ae) || ae.Status == http.StatusUnauthorized || ae.Status >= 500 || ae.Status == 0 {
			tr.CloseIdleConnections()
			return nil, e
		}
		c.log.Debug("harbor current user check refused; taking the credentials for a robot's",
			zap.String("username", cfg.Username), zap.Int("status", ae.Status))
	}
	return c, nil
}

// Close releases idle connections. Harbor keeps no session for the
// Client, so there is nothing to end and the error is always nil; ctx is
// for the same signature as the other clients'.
func (c *Client) Close(context.Context) error {
	c.tr.CloseIdleConnections()
	return nil
}

// limited waits for the rate limiter before each request.
type limited struct {
	next    http.RoundTripper
	limiter *rate.Limiter
}

func (l *limited) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := l.limiter.Wait(r.Context()); err != nil {
		return nil, fmt.Errorf("rate limit: %w", err)
	}
	return l.next.RoundTrip(r)
}

// Registry is the host name images of this Harbor are pulled from.
func (c *Client) Registry() string { return c.host }

// API is go-client's HarborAPI, for operations this package does not wrap.
func (c *Client) API() *v2.HarborAPI { return c.api }

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "Config.URL"
	}
	u.User = nil
	return u.String()
}

// bufferErrors reads the body of an error answer into memory, so that it
// stays readable after go-client closes the response of a status its
// spec does not list. Error bodies are small.
type bufferErrors struct{ next http.RoundTripper }

func (b bufferErrors) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(r)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		// The call's bound struck while reading: a
		// *kubefoundry.TimeoutError says so.
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
