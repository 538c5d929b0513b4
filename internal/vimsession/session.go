// Package vimsession is the one vCenter session that the SDK's vSphere
// clients share: package vsphere makes it, package csi finds it behind the
// *vim25.Client that vsphere hands out, and both send every call through
// the same chain:
//
//	rate limit -> re-login -> count -> call timeout -> keep-alive -> wire
//
// so that a session vCenter ends is logged in again once for every client,
// the rate limit is one budget, and Stats counts every call. Service
// endpoints of their own (CNS on /vsanHealth, SPBM on /pbm) share the
// session's cookie jar, so a new login reaches them too.
package vimsession

import (
	"context"
	"crypto/tls"
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
	"github.com/vmware/govmomi/pbm"
	"github.com/vmware/govmomi/session/keepalive"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/transport"
)

// Config is what a Session needs; package vsphere builds it from its own
// public Config.
type Config struct {
	URL       *url.URL // the SDK endpoint, without credentials
	User      *url.Userinfo
	TLS       *tls.Config
	Timeouts  transport.Timeouts
	KeepAlive time.Duration // 5 minutes when zero
	Limiter   *rate.Limiter // nil: no limit
	MaxConns  int           // idle connections kept per host
	Log       *zap.Logger
}

// Session is a logged-in vCenter session. It is safe for concurrent use.
type Session struct {
	log      *zap.Logger
	soap     *soap.Client
	vim      *vim25.Client
	ka       *keepalive.HandlerSOAP
	user     atomic.Pointer[url.Userinfo]
	limiter  *rate.Limiter
	timeouts transport.Timeouts

	calls    counter
	gen      atomic.Uint64 // incremented on each successful re-login
	loginMu  sync.Mutex
	relogins atomic.Int64
	closed   atomic.Bool
}

// New connects to cfg.URL and logs in.
func New(ctx context.Context, cfg Config) (*Session, error) {
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	s := &Session{log: log, limiter: cfg.Limiter, timeouts: cfg.Timeouts.WithDefaults()}
	s.user.Store(cfg.User)

	sc := soap.NewClient(cfg.URL, cfg.TLS != nil && cfg.TLS.InsecureSkipVerify)
	t := sc.DefaultTransport()
	// govmomi dials TLS with no bound at all: a server that accepts and
	// never answers would hang the first call forever.
	d := transport.NewDialer(cfg.Timeouts, cfg.TLS)
	t.DialContext, t.DialTLSContext, t.TLSClientConfig = d.DialContext, d.DialTLSContext, cfg.TLS
	// net/http keeps two idle connections per host by default; a pool of
	// workers would then open and close a TLS connection for most calls.
	t.MaxIdleConnsPerHost = max(cfg.MaxConns, 8)
	t.MaxIdleConns = max(cfg.MaxConns, 100)
	s.soap = sc

	keepAlive := cfg.KeepAlive
	if keepAlive <= 0 {
		keepAlive = 5 * time.Minute
	}
	s.ka = keepalive.NewHandlerSOAP(sc, keepAlive, nil)

	// vim25.NewClient reads the service content through the bare client:
	// bound it here.
	nctx, done := transport.WithCallTimeout(ctx, s.timeouts.Call)
	vc, err := vim25.NewClient(nctx, sc)
	if err = done(err, cfg.URL.Host, "RetrieveServiceContent"); err != nil {
		sc.CloseIdleConnections()
		return nil, fmt.Errorf("connect to %s: %w", cfg.URL.Host, err)
	}
	vc.RoundTripper = s.chain(s.ka, sc.URL().Host)
	s.vim = vc

	if err := s.loginAs(ctx, s.counted(s.ka), s.user.Load()); err != nil {
		sc.CloseIdleConnections()
		return nil, err
	}
	return s, nil
}

// Vim25 is the session's govmomi client: every call through it goes
// through the session's chain.
func (s *Session) Vim25() *vim25.Client { return s.vim }

// From returns the Session behind vc when vc is one a Session handed out.
func From(vc *vim25.Client) (*Session, bool) {
	if vc == nil {
		return nil, false
	}
	if l, ok := vc.RoundTripper.(*limited); ok {
		return l.s, true
	}
	return nil, false
}

// Wrap puts the session's chain around rt, a client of one of its
// endpoints (as ServiceClient returns, or as pbm.NewClient makes from
// Vim25, whose cookie header follows the session's jar).
func (s *Session) Wrap(rt soap.RoundTripper) soap.RoundTripper {
	return s.chain(rt, s.soap.URL().Host)
}

// chain: rate limit -> re-login -> count -> call timeout -> next. Counting
// below the re-login counts every call that reaches vCenter, repeats and
// logins included.
func (s *Session) chain(next soap.RoundTripper, host string) soap.RoundTripper {
	timed := &timed{next: next, call: s.timeouts.Call, host: host}
	return &limited{s: s, next: &relogin{s: s, next: s.counted(timed)}}
}

func (s *Session) counted(next soap.RoundTripper) soap.RoundTripper {
	return &counting{next: next, c: &s.calls}
}

func (s *Session) loginAs(ctx context.Context, rt soap.RoundTripper, user *url.Userinfo) error {
	pw, _ := user.Password()
	req := types.Login{This: *s.vim.ServiceContent.SessionManager, UserName: user.Username(), Password: pw}
	if _, err := methods.Login(ctx, rt, &req); err != nil {
		if fault.Is(err, &types.InvalidLogin{}) {
			err = errors.Join(err, kubefoundry.ErrUnauthorized)
		}
		return fmt.Errorf("login to %s as %q: %w", s.soap.URL().Host, user.Username(), err)
	}
	return nil
}

// SetCredentials rotates the account the session logs in with after
// checking the new one on a side session of its own (logged out at once).
// If vCenter refuses it, nothing changes. The current session is kept; the
// next re-login uses the new account.
func (s *Session) SetCredentials(ctx context.Context, user *url.Userinfo) error {
	side := s.soap.NewServiceClient(s.soap.URL().Path, vim25.Namespace)
	side.Version = s.soap.Version
	jar, err := cookiejar.New(nil) // NewServiceClient copies the session cookie
	if err != nil {
		return err
	}
	side.Jar = jar
	rt := s.counted(&timed{next: side, call: s.timeouts.Call, host: s.soap.URL().Host})
	if err := s.loginAs(ctx, rt, user); err != nil {
		return fmt.Errorf("new credentials refused: %w", err)
	}
	// Even when ctx has ended, so that the check leaves no session behind.
	if _, err := methods.Logout(context.WithoutCancel(ctx), rt, &types.Logout{This: *s.vim.ServiceContent.SessionManager}); err != nil {
		s.log.Debug("logout of the credential check failed", zap.Error(err))
	}
	old := s.user.Swap(user)
	s.log.Info("credentials rotated", zap.String("from", old.Username()), zap.String("to", user.Username()))
	return nil
}

// reauthenticate logs in again after a NotAuthenticated answer, once for
// every goroutine that saw the same session end (seen is the generation it
// saw). A login refused because the session is in fact still valid (a
// spurious NotAuthenticated) counts as success: the call is repeated.
func (s *Session) reauthenticate(ctx context.Context, seen uint64) error {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if s.gen.Load() != seen {
		return nil // another goroutine already logged in again
	}
	if s.closed.Load() {
		return errors.New("the session is closed")
	}
	s.log.Warn("session not authenticated, logging in again")
	if err := s.login(ctx); err != nil {
		return err
	}
	s.gen.Add(1)
	s.relogins.Add(1)
	return nil
}

func (s *Session) login(ctx context.Context) error {
	rt := s.counted(&timed{next: s.ka, call: s.timeouts.Call, host: s.soap.URL().Host})
	user := s.user.Load()
	err := s.loginAs(ctx, rt, user)
	if err != nil && fault.Is(err, &types.InvalidLogin{}) && s.user.Load() != user {
		// SetCredentials swapped the account while this login used the
		// old one: try the new one.
		err = s.loginAs(ctx, rt, s.user.Load())
	}
	if err == nil || !fault.Is(err, &types.InvalidLogin{}) {
		return err
	}
	var sm mo.SessionManager
	ref := *s.vim.ServiceContent.SessionManager
	req := types.RetrieveProperties{This: s.vim.ServiceContent.PropertyCollector, SpecSet: []types.PropertyFilterSpec{{
		ObjectSet: []types.ObjectSpec{{Obj: ref}},
		PropSet:   []types.PropertySpec{{Type: ref.Type, PathSet: []string{"currentSession"}}},
	}}}
	res, rerr := methods.RetrieveProperties(ctx, rt, &req)
	if rerr == nil && mo.LoadObjectContent(res.Returnval, &sm) == nil && sm.CurrentSession != nil {
		s.log.Info("session still valid; repeating the call")
		return nil
	}
	return err
}

// Close logs out, stops the keep-alive and releases connections. Calls
// after Close fail with NotAuthenticated rather than logging in again.
func (s *Session) Close(ctx context.Context) error {
	s.closed.Store(true)
	req := types.Logout{This: *s.vim.ServiceContent.SessionManager}
	_, err := methods.Logout(ctx, s.counted(&timed{next: s.ka, call: s.timeouts.Call, host: s.soap.URL().Host}), &req)
	s.ka.Stop()
	s.soap.CloseIdleConnections()
	if err != nil && !IsNotAuthenticated(err) {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// Host is the vCenter's host[:port].
func (s *Session) Host() string { return s.soap.URL().Host }

// SOAP is the session's SOAP client (for uploads and other HTTP work on
// the same connections).
func (s *Session) SOAP() *soap.Client { return s.soap }

// Stats are counts of the SOAP calls a Session has made.
type Stats struct {
	Calls    int64
	ByMethod map[string]int64
	Relogins int64
}

// Stats returns the counts so far.
func (s *Session) Stats() Stats {
	st := s.calls.snapshot()
	st.Relogins = s.relogins.Load()
	return st
}

// IsNotAuthenticated reports whether err is vCenter's NotAuthenticated.
func IsNotAuthenticated(err error) bool {
	return err != nil && fault.Is(err, &types.NotAuthenticated{})
}

// counter counts SOAP calls by method.
type counter struct {
	total    atomic.Int64
	mu       sync.Mutex
	byMethod map[string]int64
}

func (cc *counter) add(method string) {
	cc.total.Add(1)
	cc.mu.Lock()
	if cc.byMethod == nil {
		cc.byMethod = map[string]int64{}
	}
	cc.byMethod[method]++
	cc.mu.Unlock()
}

func (cc *counter) snapshot() Stats {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	m := make(map[string]int64, len(cc.byMethod))
	for k, v := range cc.byMethod {
		m[k] = v
	}
	return Stats{Calls: cc.total.Load(), ByMethod: m}
}

// MethodName turns *methods.CloneVM_TaskBody into "CloneVM_Task".
func MethodName(req soap.HasFault) string {
	t := reflect.TypeOf(req)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return strings.TrimSuffix(t.Name(), "Body")
}

type counting struct {
	next soap.RoundTripper
	c    *counter
}

func (r *counting) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	r.c.add(MethodName(req))
	return r.next.RoundTrip(ctx, req, res)
}

type limited struct {
	s    *Session
	next soap.RoundTripper
}

func (r *limited) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	if err := wait(ctx, r.s.limiter); err != nil {
		return err
	}
	return r.next.RoundTrip(ctx, req, res)
}

// Limit returns rt behind the token bucket l: a SOAP client's calls wait
// for it (package csi's on a session of its own).
func Limit(rt soap.RoundTripper, l *rate.Limiter) soap.RoundTripper {
	return limitedBy{next: rt, limiter: l}
}

type limitedBy struct {
	next    soap.RoundTripper
	limiter *rate.Limiter
}

func (r limitedBy) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	if err := wait(ctx, r.limiter); err != nil {
		return err
	}
	return r.next.RoundTrip(ctx, req, res)
}

func wait(ctx context.Context, l *rate.Limiter) error {
	if l == nil {
		return nil
	}
	if err := l.Wait(ctx); err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	return nil
}

// timed bounds one call by the call timeout. A WaitForUpdatesEx long poll
// is bounded by its own MaxWaitSeconds plus the call timeout.
type timed struct {
	next soap.RoundTripper
	call time.Duration
	host string
}

func (r *timed) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	d := r.call
	if w, ok := req.(*methods.WaitForUpdatesExBody); ok && d > 0 {
		if w.Req == nil || w.Req.Options == nil || w.Req.Options.MaxWaitSeconds == nil {
			d = 0 // waits until something changes: the caller's ctx bounds it
		} else {
			d += time.Duration(*w.Req.Options.MaxWaitSeconds) * time.Second
		}
	}
	cctx, done := transport.WithCallTimeout(ctx, d)
	return done(r.next.RoundTrip(cctx, req, res), r.host, MethodName(req))
}

// relogin logs in again when vCenter answers NotAuthenticated (the session
// expired or was terminated) and repeats the call once.
type relogin struct {
	s    *Session
	next soap.RoundTripper
}

func (r *relogin) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	gen := r.s.gen.Load()
	err := r.next.RoundTrip(ctx, req, res)
	if err == nil && missingNotAuthenticated(res) {
		// vCenter answers a property read on an expired session with
		// NotAuthenticated per property (MissingSet), not as a fault.
		err = soap.WrapVimFault(&types.NotAuthenticated{})
	}
	if !IsNotAuthenticated(err) {
		return err
	}
	switch req.(type) {
	case *methods.LoginBody, *methods.LogoutBody:
		return err
	}
	if lerr := r.s.reauthenticate(ctx, gen); lerr != nil {
		return errors.Join(err, lerr)
	}
	// The response may hold the fault of the first attempt.
	v := reflect.ValueOf(res).Elem()
	v.Set(reflect.Zero(v.Type()))
	return r.next.RoundTrip(ctx, req, res)
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

// Share makes sc, a service client made from this session's client (as
// cns.NewClient makes one), use the session's cookie jar, so a later login
// reaches it, and returns the session's chain around it.
func (s *Session) Share(sc *soap.Client) soap.RoundTripper {
	sc.Jar = s.soap.Jar
	return s.Wrap(sc)
}

// PBM returns a storage policy (SPBM) client on vc; when vc is a
// Session's, its calls go through the session's chain.
func PBM(ctx context.Context, vc *vim25.Client) (*pbm.Client, error) {
	pc, err := pbm.NewClient(ctx, vc)
	if err != nil {
		return nil, err
	}
	if s, ok := From(vc); ok {
		// Its vcSessionCookie header is read from the session's jar at
		// each call already; the chain adds re-login, limit and count.
		pc.RoundTripper = s.Wrap(pc.Client)
	}
	return pc, nil
}
