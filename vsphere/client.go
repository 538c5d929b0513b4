package vsphere

import (
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/pbm"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/transport"
	"github.com/kubefoundry/kubefoundry/internal/vimsession"
)

// Client is a vCenter session with keep-alive, transparent re-login, a
// client-side rate limit, connect / TLS / per-call timeouts and a count of
// the SOAP calls it made. A Client is safe for concurrent use by many
// goroutines.
type Client struct {
	cfg  Config
	opts options
	log  *zap.Logger

	sess   *vimsession.Session
	vim    *vim25.Client
	finder *find.Finder
	dc     *object.Datacenter

	fieldMu   sync.Mutex
	fieldKeys map[string]int32

	pbmMu sync.Mutex
	pbm   *pbm.Client
}

// New logs in to vCenter and returns a Client. Close it to log out.
func New(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	c := &Client{cfg: cfg, opts: o, log: o.log.Named("vsphere")}

	var verr kubefoundry.ValidationError
	verr.Object = "vsphere.Config"
	u, err := soap.ParseURL(cfg.URL)
	if err != nil || u == nil {
		verr.Add("url", "", "cannot parse %q", redactURL(cfg.URL))
	}
	var user *url.Userinfo
	if u != nil {
		user = u.User
		u.User = nil
	}
	if cfg.Username != "" {
		user = url.UserPassword(cfg.Username, cfg.Password)
	}
	if user == nil || user.Username() == "" {
		verr.Add("username", "", "required (or credentials in url)")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"connectTimeout", cfg.ConnectTimeout}, {"tlsHandshakeTimeout", cfg.TLSHandshakeTimeout}, {"callTimeout", cfg.CallTimeout}, {"keepAlive", cfg.KeepAlive}} {
		if d.v < 0 {
			verr.Add(d.field, d.v.String(), "must not be negative (zero takes the default)")
		}
	}
	tlsCfg, err := transport.Config(transport.TLS{CACert: cfg.CACert, Thumbprint: cfg.Thumbprint, Insecure: cfg.Insecure})
	verr.Merge("", err)
	if err := verr.Err(); err != nil {
		return nil, err
	}

	limiter := o.limiter
	if limiter == nil && o.qps > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.qps), o.burst)
	}
	sess, err := vimsession.New(ctx, vimsession.Config{
		URL: u, User: user, TLS: tlsCfg, KeepAlive: cfg.KeepAlive, Limiter: limiter,
		Timeouts: transport.Timeouts{Connect: cfg.ConnectTimeout, TLSHandshake: cfg.TLSHandshakeTimeout, Call: cfg.CallTimeout},
		MaxConns: 2 * o.concurrency, Log: c.log,
	})
	if err != nil {
		return nil, err
	}
	c.sess = sess
	c.vim = sess.Vim25()
	c.finder = find.NewFinder(c.vim, false)
	if err := c.selectDatacenter(ctx, cfg.Datacenter); err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	c.log.Info("connected", zap.String("host", u.Host), zap.String("user", user.Username()),
		zap.String("apiVersion", c.vim.ServiceContent.About.ApiVersion))
	return c, nil
}

// SetCredentials rotates the account the Client logs in with, for when
// vCenter's password (or the service account) changes under a running
// program. The new credentials are first tried on a session of their own,
// logged out at once: if vCenter refuses them, nothing changes and the
// error says so (fault.Is(err, &types.InvalidLogin{}) holds, and
// errors.Is(err, kubefoundry.ErrUnauthorized)). Once accepted, every later
// login uses them; the current session, still valid, is kept, and when
// vCenter ends it the transparent re-login signs in with the new account
// without interrupting the work in flight. (The keep-alive keeps that
// session going; to move to another account at once, Close the Client and
// make a new one.)
func (c *Client) SetCredentials(ctx context.Context, username, password string) error {
	if username == "" {
		return &ValidationError{Object: "credentials", Problems: []FieldError{{Field: "username", Reason: "required"}}}
	}
	return c.sess.SetCredentials(ctx, url.UserPassword(username, password))
}

// Close logs out, stops the keep-alive and releases connections. Package
// csi's clients made on this session stop working too.
func (c *Client) Close(ctx context.Context) error { return c.sess.Close(ctx) }

// Vim25 returns the session's govmomi client, for packages such as csi
// that share it: csi.New(ctx, vs.Vim25()) sends CNS calls through this
// Client's session, so they are counted in Stats, rate limited with its
// budget, bounded by its timeouts and logged in again with it. Calls made
// through the vim25.Client directly are too.
func (c *Client) Vim25() *vim25.Client { return c.vim }

// Datacenter returns the default datacenter.
func (c *Client) Datacenter() *object.Datacenter { return c.dc }

// Stats are counts of the SOAP calls a Client's session has made, those
// of the csi clients sharing it included.
type Stats struct {
	Calls    int64            // every SOAP call that reached vCenter, repeats and logins included
	ByMethod map[string]int64 // per SOAP method name, such as "CloneVM_Task"
	Relogins int64            // sessions re-established after NotAuthenticated
}

// Stats returns the call counts so far.
func (c *Client) Stats() Stats {
	s := c.sess.Stats()
	return Stats{Calls: s.Calls, ByMethod: s.ByMethod, Relogins: s.Relogins}
}

func (c *Client) collector() *property.Collector { return property.DefaultCollector(c.vim) }
