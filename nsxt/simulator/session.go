package simulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"time"
)

// userSession is a session made by POST /api/session/create, as NSX's
// session-based authentication makes them.
type userSession struct {
	user string
	xsrf string
	last time.Time // its last request
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// createSession answers POST /api/session/create: a form with j_username
// and j_password makes a session, answered 200 with no body, a
// JSESSIONID cookie and an X-XSRF-TOKEN header, which later requests
// send instead of credentials; wrong credentials are 403.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, errorf(http.StatusMethodNotAllowed, "method %s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, errorf(http.StatusBadRequest, "reading the form: %v", err))
		return
	}
	u, p := r.PostForm.Get("j_username"), r.PostForm.Get("j_password")
	if subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) != 1 {
		writeError(w, errorf(http.StatusForbidden, "The credentials were incorrect or the account specified has been locked."))
		return
	}
	id, xsrf := randomToken(), randomToken()
	s.mu.Lock()
	s.sessions[id] = &userSession{user: u, xsrf: xsrf, last: time.Now()}
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: id, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("X-XSRF-TOKEN", xsrf)
	w.WriteHeader(http.StatusOK)
}

// destroySession answers POST /api/session/destroy: the session of the
// request's cookie and token ends.
func (s *Server) destroySession(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie("JSESSIONID")
	if r.Method != http.MethodPost || err != nil {
		writeError(w, errorf(http.StatusForbidden, "The credentials were incorrect or the account specified has been locked."))
		return
	}
	if _, ok := s.session(c.Value, r.Header.Get("X-XSRF-TOKEN")); !ok {
		writeError(w, errorf(http.StatusForbidden, "The credentials were incorrect or the account specified has been locked."))
		return
	}
	s.mu.Lock()
	delete(s.sessions, c.Value)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// session is the user of a live session with that cookie and token; a
// request keeps it alive for Config.SessionTimeout more.
func (s *Server) session(cookie, xsrf string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	us := s.sessions[cookie]
	if us == nil {
		return "", false
	}
	if time.Since(us.last) > s.cfg.SessionTimeout {
		delete(s.sessions, cookie)
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(xsrf), []byte(us.xsrf)) != 1 {
		return "", false
	}
	us.last = time.Now()
	return us.user, true
}
