package harbor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	// Insecure turns TLS verification off. It is never implied.
	Insecure bool `json:"insecure,omitempty"`
	// Timeout bounds one request; 1 minute when zero.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// String describes the configuration with the password redacted, the
// one in Password and any user information in URL.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "--- REDACTED ---"
	}
	return fmt.Sprintf("harbor.Config{URL: %q, Username: %q, Password: %q, CACert: %d bytes, Insecure: %t, Timeout: %s}",
		redact(c.URL), c.Username, pw, len(c.CACert), c.Insecure, c.Timeout)
}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return c.String() }

// An Option configures a Client.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct{ log *zap.Logger }

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
	cfg      Config
	log      *zap.Logger
	api      *v2.HarborAPI
	hc       *http.Transport
	host     string // the registry host in image references and pull secrets
	timeoutD time.Duration
}

func (c *Client) timeout() time.Duration { return c.timeoutD }

// New checks that Harbor answers and accepts the credentials.
func New(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	o := options{log: zap.NewNop()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("harbor: Config.URL %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Username == "" {
		return nil, fmt.Errorf("harbor: Config.Username is empty")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.Insecure}
	if cfg.CACert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.CACert)) {
			return nil, fmt.Errorf("harbor: Config.CACert holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}
	base := *u
	base.Path = strings.TrimSuffix(u.Path, "/") + v2.DefaultBasePath
	c := &Client{cfg: cfg, log: o.log, hc: tr, host: u.Host, timeoutD: timeout, api: v2.New(v2.Config{
		URL: &base, Transport: timeoutTransport{tr, timeout},
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

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

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

// timeoutTransport bounds each request by the configured timeout on top
// of its context.
type timeoutTransport struct {
	base    http.RoundTripper
	timeout time.Duration
}

func (t timeoutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), t.timeout)
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode >= 400 {
		// Error bodies are small; kept in memory they stay readable after
		// go-client closes the response of a status its spec does not list.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return resp, nil
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }
