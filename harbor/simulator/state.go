package simulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// state is everything the simulator holds; the Server's mutex guards it.
type state struct {
	seq      int64
	users    map[string]*user
	groups   []*group
	projects collection[*project]
	members  collection[*member]
	robots   collection[*robot]
	labels   collection[*label]
	scanners []*scanner
	// artifacts by "project/repository"
	artifacts map[string][]*artifact
	config    map[string]any

	registries collection[*registryEP]
	policies   collection[*policy]
	executions collection[*execution]

	immutable  collection[*immuRule]
	retention  collection[*retentionPolicy]
	gcSchedule map[string]any
	gcParams   map[string]any
	gcSince    time.Time
	gcRuns     collection[*gcRun]
	audit      []*auditEntry
}

func (st *state) next() int64 { st.seq++; return st.seq }

func newState(cfg Config) *state {
	st := &state{users: map[string]*user{}, artifacts: map[string][]*artifact{}, config: defaultConfig()}
	now := time.Now()
	// Harbor installs Trivy as its default scanner.
	st.scanners = []*scanner{{uuid: "trivy-" + strconv.FormatInt(now.UnixNano(), 36), name: "Trivy",
		url: "http://trivy-adapter:8080", isDefault: true, created: now}}
	st.users["admin"] = &user{id: st.next(), name: "admin", password: cfg.AdminPassword, admin: true, created: now}
	for _, u := range cfg.Users {
		st.users[u.Name] = &user{id: st.next(), name: u.Name, password: u.Password, admin: u.Admin, created: now}
	}
	// Harbor starts with the public project "library".
	st.addProject("library", st.users["admin"].id, map[string]string{"public": "true"}, -1, now)
	return st
}

// principal is who is calling: a user or a robot.
type principal struct {
	user  *user
	robot *robot
	login string // the name a robot logged in with, under the prefix
}

// robotPrefix is Harbor's robot_name_prefix.
func (st *state) robotPrefix() string {
	if p, _ := st.config["robot_name_prefix"].(string); p != "" {
		return p
	}
	return "robot$"
}

func (p *principal) admin() bool { return p != nil && p.user != nil && p.user.admin }

func (p *principal) name() string {
	switch {
	case p == nil:
		return "anonymous"
	case p.user != nil:
		return p.user.name
	default:
		return p.login
	}
}

// authenticate checks basic-auth credentials: nil for an anonymous
// request, 401 for wrong credentials or a disabled or expired robot.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	name, pw, ok := r.BasicAuth()
	if !ok {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prefix := s.st.robotPrefix(); strings.HasPrefix(name, prefix) {
		rb, ok := s.st.robots.find(func(rb *robot) bool { return rb.name == strings.TrimPrefix(name, prefix) })
		switch {
		case !ok || subtle.ConstantTimeCompare([]byte(rb.secret), []byte(pw)) != 1:
			return nil, errf(http.StatusUnauthorized, "unauthorized")
		case rb.disabled:
			return nil, errf(http.StatusUnauthorized, "robot %s is disabled", name)
		case rb.expiresAt() > 0 && s.clock().Unix() >= rb.expiresAt():
			return nil, errf(http.StatusUnauthorized, "robot %s has expired", name)
		}
		return &principal{robot: rb, login: name}, nil
	}
	u := s.st.users[name]
	if u == nil || subtle.ConstantTimeCompare([]byte(u.password), []byte(pw)) != 1 {
		return nil, errf(http.StatusUnauthorized, "unauthorized")
	}
	return &principal{user: u}, nil
}

func needAuth(c *call) error {
	if c.who == nil {
		return errf(http.StatusUnauthorized, "UnAuthorize")
	}
	return nil
}

func needAdmin(c *call) error {
	if err := needAuth(c); err != nil {
		return err
	}
	if !c.who.admin() {
		return errf(http.StatusForbidden, "%s is not a system administrator", c.who.name())
	}
	return nil
}

// role is the caller's role in a project: 0 none.
func (st *state) role(who *principal, p *project) int64 {
	if who == nil || who.user == nil {
		return 0
	}
	if who.user.admin {
		return 1
	}
	if m, ok := st.members.find(func(m *member) bool { return m.project == p.id && m.user == who.user }); ok {
		return m.role
	}
	return 0
}

var (
	nameRe        = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	upperRe       = regexp.MustCompile(`[A-Z]`)
	lowerRe       = regexp.MustCompile(`[a-z]`)
	digitRe       = regexp.MustCompile(`[0-9]`)
	robotSecretOK = func(s string) bool {
		return len(s) >= 8 && len(s) <= 128 && upperRe.MatchString(s) && lowerRe.MatchString(s) && digitRe.MatchString(s)
	}
)

// newSecret makes a robot secret as Harbor does: 32 characters with upper
// and lower case and digits.
func newSecret() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "Kf" + hex.EncodeToString(b[:]) + "x9Q" + strconv.Itoa(int(b[0])%10)
}
