package nsxt

import (
	"bytes"
	"context"
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
// once, not on every call). A request NSX answers 403 with a session (it
// expired: 30 minutes idle by default) makes a new one and is sent again,
// once.
type sessions struct {
	user, password string
	base           http.RoundTripper
	log            *zap.Logger

	mu     sync.Mutex
	byHost map[string]*session
}

// session is one manager's: its cookie and XSRF token. mu serializes its
// making, so that concurrent requests share one session/create.
type session struct {
	mu           sync.Mutex
	cookie, xsrf string // empty until made
}

func newSessions(user, password string, base http.RoundTripper, log *zap.Logger) *sessions {
	return &sessions{user: user, password: password, base: base, log: log, byHost: map[string]*session{}}
}

func (s *sessions) of(host string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byHost[host] == nil {
		s.byHost[host] = &session{}
	}
	return s.byHost[host]
}

// roundTrip sends r (bound to manager m) with m's session, making it
// first when there is none, and making a new one when NSX refuses (403)
// the one it had. A manager that refuses to make a session answers r in
// its place: a 403 for wrong credentials reads as NSX's own answer.
func (s *sessions) roundTrip(r *http.Request, m *url.URL, body []byte) (*http.Response, error) {
	sess := s.of(m.Host)
	for again := false; ; again = true {
		cookie, xsrf, made, refusal, err := sess.get(r.Context(), s, m)
		if err != nil || refusal != nil {
			return refusal, err
		}
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		r.Header.Set("Cookie", "JSESSIONID="+cookie)
		r.Header.Set("X-XSRF-TOKEN", xsrf)
		resp, err := s.base.RoundTrip(r)
		if err != nil || resp.StatusCode != http.StatusForbidden || made || again {
			return resp, err
		}
		// The session expired or the manager forgot it (a restart, a new
		// leader behind a VIP): drop it, unless a concurrent request
		// already made a new one, and send again.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		sess.drop(cookie)
		s.log.Info("nsx session refused; making a new one", zap.String("manager", m.Host))
	}
}

// get returns the session's cookie and token, making the session when
// there is none (made says so). A manager that refuses answers in
// refusal.
func (sess *session) get(ctx context.Context, s *sessions, m *url.URL) (cookie, xsrf string, made bool, refusal *http.Response, err error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.cookie != "" {
		return sess.cookie, sess.xsrf, false, nil, nil
	}
	form := url.Values{"j_username": {s.user}, "j_password": {s.password}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Scheme+"://"+m.Host+"/api/session/create", strings.NewReader(form))
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

// drop forgets the session if it is still the one with cookie.
func (sess *session) drop(cookie string) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.cookie == cookie {
		sess.cookie, sess.xsrf = "", ""
	}
}

// close ends every session (POST /api/session/destroy), so that none
// lingers on the managers until its idle timeout.
func (s *sessions) close() {
	s.mu.Lock()
	hosts := make(map[string]*session, len(s.byHost))
	for h, sess := range s.byHost {
		hosts[h] = sess
	}
	s.mu.Unlock()
	for host, sess := range hosts {
		sess.mu.Lock()
		cookie, xsrf := sess.cookie, sess.xsrf
		sess.cookie, sess.xsrf = "", ""
		sess.mu.Unlock()
		if cookie == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+"/api/session/destroy", nil)
		if err == nil {
			req.Header.Set("Cookie", "JSESSIONID="+cookie)
			req.Header.Set("X-XSRF-TOKEN", xsrf)
			if resp, err := s.base.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
		}
		cancel()
	}
}
