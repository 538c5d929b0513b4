package nsxt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// sessions authenticates a user with NSX's session-based authentication:
// POST /api/session/create with the user name and password once per
// manager (a session belongs to the manager that made it), then the
// JSESSIONID cookie and the X-XSRF-TOKEN header on every request, rather
// than the password on each (NSX then checks a remote user's password
// once, not on every call). A request NSX answers 403 for its session
// (it expired: 30 minutes idle by default) makes a new one and is sent
// again, once; the old one is ended.
type sessions struct {
	user, password string
	base           http.RoundTripper
	log            *zap.Logger
	// sent counts a request as the transport counts what it sends; wait
	// holds a request the session makes or sends again to the Client's
	// rate limit.
	sent func(*http.Request)
	wait func(context.Context) error

	mu     sync.Mutex
	byURL  map[string]*session // by manager URL
	closed bool
}

// session is one manager's: its cookie and XSRF token. mu serializes its
// making, so that concurrent requests share one session/create.
type session struct {
	mu           sync.Mutex
	cookie, xsrf string // empty until made
}

// errClosed is returned for a request made after Close.
var errClosed = errors.New("nsxt: the Client is closed")

func newSessions(user, password string, base http.RoundTripper, log *zap.Logger,
	sent func(*http.Request), wait func(context.Context) error) *sessions {
	return &sessions{user: user, password: password, base: base, log: log, sent: sent, wait: wait, byURL: map[string]*session{}}
}

func (s *sessions) of(m *url.URL) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	key := m.String()
	if s.byURL[key] == nil {
		s.byURL[key] = &session{}
	}
	return s.byURL[key], nil
}

// endpoint is path under manager m (which may sit under a path prefix).
func endpoint(m *url.URL, path string) string {
	return m.Scheme + "://" + m.Host + strings.TrimSuffix(m.Path, "/") + path
}

// roundTrip sends r (bound to manager m) with m's session, making it
// first when there is none. A 403 that says the session is not (or no
// longer) good, NSX's error code 403 ("The credentials were incorrect")
// or 98 (a bad or expired XSRF token), as when it expired, makes a new one
// and sends r again, once, as NSX's own Python client does; any other 403
// is the request's own. A manager that refuses to make a session answers
// r in its place: a 403 for wrong credentials reads as NSX's own answer.
func (s *sessions) roundTrip(r *http.Request, m *url.URL, body []byte) (*http.Response, error) {
	sess, err := s.of(m)
	if err != nil {
		return nil, err
	}
	for again := false; ; again = true {
		cookie, xsrf, made, refusal, err := sess.get(r.Context(), s, m)
		if err != nil || refusal != nil {
			return refusal, err
		}
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if again {
			if err := s.wait(r.Context()); err != nil {
				return nil, err
			}
		}
		s.sent(r)
		r.Header.Set("Cookie", "JSESSIONID="+cookie)
		r.Header.Set("X-XSRF-TOKEN", xsrf)
		resp, err := s.base.RoundTrip(r)
		if err != nil || resp.StatusCode != http.StatusForbidden || made || again {
			return resp, err
		}
		answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		var e struct {
			Code int64 `json:"error_code"`
		}
		if json.Unmarshal(answer, &e) == nil && e.Code != sessionRefusedCode && e.Code != badXSRFCode {
			resp.Body = io.NopCloser(bytes.NewReader(answer))
			return resp, nil
		}
		if sess.drop(cookie) {
			s.log.Info("nsx session refused; making a new one", zap.String("manager", m.Host))
			_ = s.destroy(context.WithoutCancel(r.Context()), m, cookie, xsrf) // in case it is still alive
		}
	}
}

// NSX's error codes, with a 403, for a session it does not take: "The
// credentials were incorrect or the account specified has been locked",
// and a bad or expired XSRF token.
const (
	sessionRefusedCode = 403
	badXSRFCode        = 98
)

// get returns the session's cookie and token, making the session when
// there is none (made says so). A manager that refuses answers in
// refusal.
func (sess *session) get(ctx context.Context, s *sessions, m *url.URL) (cookie, xsrf string, made bool, refusal *http.Response, err error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.cookie != "" {
		return sess.cookie, sess.xsrf, false, nil, nil
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return "", "", false, nil, errClosed
	}
	if err := s.wait(ctx); err != nil {
		return "", "", false, nil, err
	}
	form := url.Values{"j_username": {s.user}, "j_password": {s.password}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint(m, "/api/session/create"), strings.NewReader(form))
	if err != nil {
		return "", "", false, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		return "", "", false, nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return "", "", false, resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "JSESSIONID" {
			sess.cookie = c.Value
		}
	}
	sess.xsrf = resp.Header.Get("X-XSRF-TOKEN")
	if sess.cookie == "" || sess.xsrf == "" {
		sess.cookie, sess.xsrf = "", ""
		return "", "", false, nil, fmt.Errorf("nsxt: %s made a session without a JSESSIONID cookie and an X-XSRF-TOKEN header", m.Host)
	}
	s.log.Debug("nsx session made", zap.String("manager", m.Host))
	return sess.cookie, sess.xsrf, true, nil, nil
}

// drop forgets the session if it is still the one with cookie (another
// request may have dropped it, and made a new one, already); it reports
// whether it did.
func (sess *session) drop(cookie string) bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.cookie != cookie {
		return false
	}
	sess.cookie, sess.xsrf = "", ""
	return true
}

// destroy ends a session on its manager (POST /api/session/destroy),
// best effort.
func (s *sessions) destroy(ctx context.Context, m *url.URL, cookie, xsrf string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint(m, "/api/session/destroy"), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Cookie", "JSESSIONID="+cookie)
	req.Header.Set("X-XSRF-TOKEN", xsrf)
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("end the session on %s: %w", m.Host, err)
	}
	resp.Body.Close()
	// A session NSX no longer knows is ended already.
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		return fmt.Errorf("end the session on %s: %s", m.Host, resp.Status)
	}
	return nil
}

// close ends every session, so that none lingers on the managers until
// its idle timeout, and refuses to make more. ctx bounds it (5 s per
// manager when ctx has no deadline).
func (s *sessions) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	byURL := make(map[string]*session, len(s.byURL))
	for u, sess := range s.byURL {
		byURL[u] = sess
	}
	s.mu.Unlock()
	var errs []error
	for raw, sess := range byURL {
		sess.mu.Lock()
		cookie, xsrf := sess.cookie, sess.xsrf
		sess.cookie, sess.xsrf = "", ""
		sess.mu.Unlock()
		m, err := url.Parse(raw)
		if cookie == "" || err != nil {
			continue
		}
		errs = append(errs, s.destroy(ctx, m, cookie, xsrf))
	}
	return errors.Join(errs...)
}
