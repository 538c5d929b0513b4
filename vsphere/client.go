package vsphere

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http/cookiejar"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/pbm"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session/keepalive"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Client is a vCenter session with keep-alive, transparent re-login, a
// client-side rate limit and a count of the SOAP calls it made.
// A Client is safe for concurrent use by many goroutines.
type Client struct {
	cfg  Config
	opts options
	log  *zap.Logger

	vim    *vim25.Client
	soap   *soap.Client
	ka     *keepalive.HandlerSOAP
	user   atomic.Pointer[url.Userinfo] // swapped by SetCredentials
	finder *find.Finder
	dc     *object.Datacenter

	calls   callCounter
	counted soap.RoundTripper // the chain below re-login, for logins
	relogin sessionRoundTripper

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

	u, err := soap.ParseURL(cfg.URL)
	if err != nil || u == nil {
		return nil, &ValidationError{Problems: []FieldError{{Field: "url", Reason: fmt.Sprintf("cannot parse %q", redactURL(cfg.URL))}}}
	}
	user := u.User
	if cfg.Username != "" {
		user = url.UserPassword(cfg.Username, cfg.Password)
	}
	if user == nil || user.Username() == "" {
		return nil, &ValidationError{Problems: []FieldError{{Field: "username", Reason: "required (or credentials in url)"}}}
	}
	c.user.Store(user)
	u.User = nil

	sc := soap.NewClient(u, cfg.Insecure)
	if cfg.CACert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.CACert)) {
			return nil, &ValidationError{Problems: []FieldError{{Field: "caCert", Reason: "no PEM certificate found"}}}
		}
		sc.DefaultTransport().TLSClientConfig.RootCAs = pool
	}
	if cfg.Thumbprint != "" {
		sc.SetThumbprint(u.Host, cfg.Thumbprint)
	}
	// net/http keeps two idle connections per host by default; a pool of
	// workers would then open and close a TLS connection for most calls.
	sc.DefaultTransport().MaxIdleConnsPerHost = max(2*o.concurrency, 8)
	sc.DefaultTransport().MaxIdleConns = max(2*o.concurrency, 100)
	c.soap = sc

	keepAlive := cfg.KeepAlive
	if keepAlive <= 0 {
		keepAlive = 5 * time.Minute
	}
	c.ka = keepalive.NewHandlerSOAP(sc, keepAlive, nil)

	// The chain, outermost first: rate limit -> re-login -> count ->
	// keep-alive -> wire. Counting below the re-login counts every call
	// that reaches vCenter, repeats and logins included.
	c.counted = &countingRoundTripper{next: c.ka, counter: &c.calls}
	c.relogin = sessionRoundTripper{next: c.counted, login: c.reauthenticate, log: c.log}
	var limiter *rate.Limiter
	if o.qps > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.qps), o.burst)
	}
	rt := &limitRoundTripper{next: &c.relogin, limiter: limiter}

	// NewClient sets the SOAP namespace and version when handed the
	// soap.Client itself; the wrapped chain takes over afterwards.
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		sc.CloseIdleConnections()
		return nil, fmt.Errorf("connect to %s: %w", u.Host, err)
	}
	vc.RoundTripper = rt
	c.vim = vc

	if err := c.login(ctx); err != nil {
		sc.CloseIdleConnections()
		return nil, err
	}
	c.finder = find.NewFinder(vc, false)
	if err := c.selectDatacenter(ctx, cfg.Datacenter); err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	c.log.Info("connected", zap.String("host", u.Host), zap.String("user", user.Username()),
		zap.String("apiVersion", vc.ServiceContent.About.ApiVersion))
	return c, nil
}

// login authenticates through the keep-alive handler, which starts its
// ticker on a successful login.
func (c *Client) login(ctx context.Context) error {
	return c.loginAs(ctx, c.counted, c.user.Load())
}

func (c *Client) loginAs(ctx context.Context, rt soap.RoundTripper, user *url.Userinfo) error {
	pw, _ := user.Password()
	req := types.Login{This: *c.vim.ServiceContent.SessionManager, UserName: user.Username(), Password: pw}
	if _, err := methods.Login(ctx, rt, &req); err != nil {
		return fmt.Errorf("login to %s as %q: %w", c.soap.URL().Host, user.Username(), err)
	}
	return nil
}

// SetCredentials rotates the account the Client logs in with, for when
// vCenter's password (or the service account) changes under a running
// program. The new credentials are first tried on a session of their own,
// logged out at once: if vCenter refuses them, nothing changes and the
// error says so (fault.Is(err, &types.InvalidLogin{}) holds). Once
// accepted, every later login uses them; the current session, still
// valid, is kept, and when vCenter ends it the transparent re-login
// signs in with the new account without interrupting the work in flight.
// (The keep-alive keeps that session going; to move to another account
// at once, Close the Client and make a new one.)
func (c *Client) SetCredentials(ctx context.Context, username, password string) error {
	if username == "" {
		return &ValidationError{Problems: []FieldError{{Field: "username", Reason: "required"}}}
	}
	user := url.UserPassword(username, password)
	var err error
	// A client of its own shares the connections and TLS settings but not
	// the cookie, so the check neither uses nor disturbs the session.
	side := c.soap.NewServiceClient(c.soap.URL().Path, vim25.Namespace)
	side.Version = c.soap.Version
	if side.Jar, err = cookiejar.New(nil); err != nil { // NewServiceClient copies the session cookie
		return err
	}
	rt := &countingRoundTripper{next: side, counter: &c.calls}
	if err := c.loginAs(ctx, rt, user); err != nil {
		return fmt.Errorf("new credentials refused: %w", err)
	}
	// Even when ctx has ended, so that the check leaves no session behind.
	if _, err := methods.Logout(context.WithoutCancel(ctx), rt, &types.Logout{This: *c.vim.ServiceContent.SessionManager}); err != nil {
		c.log.Debug("logout of the credential check failed", zap.Error(err))
	}
	old := c.user.Swap(user)
	c.log.Info("credentials rotated", zap.String("from", old.Username()), zap.String("to", username))
	return nil
}

// reauthenticate logs in again after a NotAuthenticated answer. If the
// login is refused because the session is in fact still valid (a spurious
// NotAuthenticated), that counts as success: the call is simply repeated.
func (c *Client) reauthenticate(ctx context.Context) error {
	user := c.user.Load()
	err := c.loginAs(ctx, c.counted, user)
	if err != nil && fault.Is(err, &types.InvalidLogin{}) && c.user.Load() != user {
		// SetCredentials swapped the account while this login used the
		// old one: try the new one.
		err = c.login(ctx)
	}
	if err == nil || !fault.Is(err, &types.InvalidLogin{}) {
		return err
	}
	var sm mo.SessionManager
	ref := *c.vim.ServiceContent.SessionManager
	req := types.RetrieveProperties{This: c.vim.ServiceContent.PropertyCollector, SpecSet: []types.PropertyFilterSpec{{
		ObjectSet: []types.ObjectSpec{{Obj: ref}},
		PropSet:   []types.PropertySpec{{Type: ref.Type, PathSet: []string{"currentSession"}}},
	}}}
	res, rerr := methods.RetrieveProperties(ctx, c.counted, &req)
	if rerr == nil && mo.LoadObjectContent(res.Returnval, &sm) == nil && sm.CurrentSession != nil {
		c.log.Info("session still valid; repeating the call")
		return nil
	}
	return err
}

// Close logs out, stops the keep-alive and releases connections.
func (c *Client) Close(ctx context.Context) error {
	req := types.Logout{This: *c.vim.ServiceContent.SessionManager}
	_, err := methods.Logout(ctx, c.vim, &req)
	c.ka.Stop()
	c.soap.CloseIdleConnections()
	if err != nil && !isNotAuthenticated(err) {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// Vim25 returns the underlying govmomi client, for packages such as csi
// that share this session. Calls made through it are counted, rate limited
// and re-authenticated like the Client's own.
func (c *Client) Vim25() *vim25.Client { return c.vim }

// Datacenter returns the default datacenter.
func (c *Client) Datacenter() *object.Datacenter { return c.dc }

// Stats are counts of the SOAP calls a Client has made.
type Stats struct {
	Calls    int64            // every SOAP call that reached vCenter, repeats and logins included
	ByMethod map[string]int64 // per SOAP method name, such as "CloneVM_Task"
	Relogins int64            // sessions re-established after NotAuthenticated
}

// Stats returns the call counts so far.
func (c *Client) Stats() Stats {
	s := c.calls.snapshot()
	s.Relogins = c.relogin.relogins.Load()
	return s
}

func (c *Client) collector() *property.Collector { return property.DefaultCollector(c.vim) }

// callCounter counts SOAP calls by method.
type callCounter struct {
	total    atomic.Int64
	mu       sync.Mutex
	byMethod map[string]int64
}

func (cc *callCounter) add(method string) {
	cc.total.Add(1)
	cc.mu.Lock()
	if cc.byMethod == nil {
		cc.byMethod = map[string]int64{}
	}
	cc.byMethod[method]++
	cc.mu.Unlock()
}

func (cc *callCounter) snapshot() Stats {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	m := make(map[string]int64, len(cc.byMethod))
	for k, v := range cc.byMethod {
		m[k] = v
	}
	return Stats{Calls: cc.total.Load(), ByMethod: m}
}

// methodName turns *methods.CloneVM_TaskBody into "CloneVM_Task".
func methodName(req soap.HasFault) string {
	t := reflect.TypeOf(req)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return strings.TrimSuffix(t.Name(), "Body")
}

type countingRoundTripper struct {
	next    soap.RoundTripper
	counter *callCounter
}

func (r *countingRoundTripper) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	r.counter.add(methodName(req))
	return r.next.RoundTrip(ctx, req, res)
}

type limitRoundTripper struct {
	next    soap.RoundTripper
	limiter *rate.Limiter
}

func (r *limitRoundTripper) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	if r.limiter != nil {
		if err := r.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
	}
	return r.next.RoundTrip(ctx, req, res)
}

// sessionRoundTripper logs in again when vCenter answers NotAuthenticated
// (the session expired or was terminated) and repeats the call once. Many
// goroutines that see the same expiry share one login.
type sessionRoundTripper struct {
	next  soap.RoundTripper
	login func(context.Context) error
	log   *zap.Logger

	mu       sync.Mutex
	gen      atomic.Uint64 // incremented on each successful re-login
	relogins atomic.Int64
}

func (r *sessionRoundTripper) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	gen := r.gen.Load()
	err := r.next.RoundTrip(ctx, req, res)
	if err == nil && missingNotAuthenticated(res) {
		// vCenter answers a property read on an expired session with
		// NotAuthenticated per property (MissingSet), not as a fault.
		err = soap.WrapVimFault(&types.NotAuthenticated{})
	}
	if !isNotAuthenticated(err) {
		return err
	}
	switch req.(type) {
	case *methods.LoginBody, *methods.LogoutBody:
		return err
	}
	if lerr := r.reauthenticate(ctx, gen); lerr != nil {
		return errors.Join(err, lerr)
	}
	// The response may hold the fault of the first attempt.
	v := reflect.ValueOf(res).Elem()
	v.Set(reflect.Zero(v.Type()))
	return r.next.RoundTrip(ctx, req, res)
}

func (r *sessionRoundTripper) reauthenticate(ctx context.Context, seen uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen.Load() != seen {
		return nil // another goroutine already logged in again
	}
	r.log.Warn("session not authenticated, logging in again")
	if err := r.login(ctx); err != nil {
		return err
	}
	r.gen.Add(1)
	r.relogins.Add(1)
	return nil
}

// missingNotAuthenticated reports whether a property read came back with
// properties missing for want of a session.
func missingNotAuthenticated(res soap.HasFault) bool {
	var objects []types.ObjectContent
	switch r := res.(type) {
	case *methods.RetrievePropertiesBody:
		if r.Res != nil {
			objects = r.Res.Returnval
		}
	case *methods.RetrievePropertiesExBody:
		if r.Res != nil && r.Res.Returnval != nil {
			objects = r.Res.Returnval.Objects
		}
	case *methods.ContinueRetrievePropertiesExBody:
		if r.Res != nil {
			objects = r.Res.Returnval.Objects
		}
	}
	for _, o := range objects {
		for _, m := range o.MissingSet {
			if _, ok := m.Fault.Fault.(*types.NotAuthenticated); ok {
				return true
			}
		}
	}
	return false
}
