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

type user struct {
	id       int64
	name     string
	password string
	admin    bool
	created  time.Time
}

type group struct {
	id   int64
	name string
	typ  int64 // 1 LDAP, 2 HTTP, 3 OIDC
	dn   string
}

type project struct {
	id        int64
	name      string
	ownerID   int64
	metadata  map[string]string
	allowlist []string
	created   time.Time
	updated   time.Time
	quotaID   int64
	limit     int64
	repos     []string
}

type member struct {
	id      int64
	project int64
	user    *user
	group   *group
	role    int64
}

type access struct{ resource, action string }

type robot struct {
	id int64
	// name is project+name; Harbor shows it, and robots log in, under the
	// robot_name_prefix in force (robot$ by default), so changing the
	// prefix renames every robot.
	name        string
	description string
	secret      string
	project     int64 // 0 for a system robot
	namespace   string
	access      []access
	duration    int64 // days, -1 never
	disabled    bool
	created     time.Time
	updated     time.Time
}

func (r *robot) expiresAt() int64 {
	if r.duration <= 0 {
		return -1
	}
	return r.created.Add(time.Duration(r.duration) * 24 * time.Hour).Unix()
}

// state is everything the simulator holds; the Server's mutex guards it.
type state struct {
	seq      int64
	users    map[string]*user
	groups   []*group
	projects map[int64]*project
	members  []*member
	robots   map[int64]*robot
	scanners []*scanner
	// artifacts by "project/repository"
	artifacts map[string][]*artifact
	config    map[string]any

	registries []*registryEP
	policies   []*policy
	executions []*execution

	immutable  []*immuRule
	retention  []*retentionPolicy
	gcSchedule map[string]any
	gcParams   map[string]any
	gcSince    time.Time
	gcRuns     []*gcRun
	audit      []*auditEntry
}

func (st *state) next() int64 { st.seq++; return st.seq }

func newState(cfg Config) *state {
	st := &state{users: map[string]*user{}, projects: map[int64]*project{}, robots: map[int64]*robot{},
		artifacts: map[string][]*artifact{}, config: defaultConfig()}
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

func (st *state) addProject(name string, owner int64, md map[string]string, limit int64, now time.Time) *project {
	p := &project{id: st.next(), name: name, ownerID: owner, metadata: md, created: now, updated: now, limit: limit}
	p.quotaID = st.next()
	st.projects[p.id] = p
	return p
}

func (st *state) projectByName(name string) *project {
	for _, p := range st.projects {
		if p.name == name {
			return p
		}
	}
	return nil
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
		for _, rb := range s.st.robots {
			if rb.name != strings.TrimPrefix(name, prefix) {
				continue
			}
			if subtle.ConstantTimeCompare([]byte(rb.secret), []byte(pw)) != 1 {
				break
			}
			if rb.disabled {
				return nil, errf(http.StatusUnauthorized, "robot %s is disabled", name)
			}
			if exp := rb.expiresAt(); exp > 0 && s.clock().Unix() >= exp {
				return nil, errf(http.StatusUnauthorized, "robot %s has expired", name)
			}
			return &principal{robot: rb, login: name}, nil
		}
		return nil, errf(http.StatusUnauthorized, "unauthorized")
	}
	u := s.st.users[name]
	if u == nil || subtle.ConstantTimeCompare([]byte(u.password), []byte(pw)) != 1 {
		return nil, errf(http.StatusUnauthorized, "unauthorized")
	}
	return &principal{user: u}, nil
}

// role is the caller's role in a project: 0 none.
func (st *state) role(who *principal, p *project) int64 {
	if who == nil || who.user == nil {
		return 0
	}
	if who.user.admin {
		return 1
	}
	for _, m := range st.members {
		if m.project == p.id && m.user == who.user {
			return m.role
		}
	}
	return 0
}

// robotCan reports whether a robot may do action on resource in project.
func (r *robot) can(p *project, resource, action string) bool {
	if r.project != p.id {
		return false
	}
	for _, a := range r.access {
		if a.resource == resource && (a.action == action || a.action == "*") {
			return true
		}
	}
	return false
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
