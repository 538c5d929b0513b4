package simulator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

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

func (r *robot) key() int64 { return r.id }

func (r *robot) expiresAt() int64 {
	if r.duration <= 0 {
		return -1
	}
	return r.created.Add(time.Duration(r.duration) * 24 * time.Hour).Unix()
}

// can reports whether a robot may do action on resource in project.
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

func init() {
	handlers["CreateRobot"] = createRobot
	handlers["ListRobot"] = listRobots
	handlers["GetRobotByID"] = getRobot
	handlers["UpdateRobot"] = updateRobot
	handlers["RefreshSec"] = refreshSecret
	handlers["DeleteRobot"] = deleteRobot
}

type permissionJSON struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Access    []struct {
		Resource string `json:"resource"`
		Action   string `json:"action"`
		Effect   string `json:"effect,omitempty"`
	} `json:"access"`
}

func robotJSON(prefix string, r *robot) map[string]any {
	acc := []any{}
	for _, a := range r.access {
		acc = append(acc, map[string]any{"resource": a.resource, "action": a.action})
	}
	perms := []any{map[string]any{"kind": "project", "namespace": r.namespace, "access": acc}}
	return map[string]any{"id": r.id, "name": prefix + r.name, "description": r.description, "level": "project",
		"duration": r.duration, "disable": r.disabled, "editable": true, "expires_at": r.expiresAt(),
		"permissions": perms, "creation_time": ts(r.created), "update_time": ts(r.updated)}
}

// robotPermissions checks a project robot's permissions: one project, that
// the caller may manage, and known actions on repositories.
func (s *Server) robotPermissions(c *call, level string, perms []permissionJSON) (*project, []access, error) {
	if level != "project" {
		return nil, nil, errf(http.StatusBadRequest, "the simulator serves project robots only, not level %q", level)
	}
	if len(perms) != 1 || perms[0].Kind != "project" {
		return nil, nil, errf(http.StatusBadRequest, "a project robot needs exactly one permission of kind project")
	}
	p := s.st.projectByName(perms[0].Namespace)
	if p == nil {
		return nil, nil, errf(http.StatusBadRequest, "project %q not found", perms[0].Namespace)
	}
	if err := s.canManage(c, p); err != nil {
		return nil, nil, err
	}
	var acc []access
	for _, a := range perms[0].Access {
		ok := map[string][]string{
			"repository": {"pull", "push", "list", "delete", "read"},
			"artifact":   {"read", "list", "delete"},
			"tag":        {"list", "create", "delete"},
			"helm-chart": {"read", "create"},
			"scan":       {"create", "read"},
		}[a.Resource]
		if !slices.Contains(ok, a.Action) {
			return nil, nil, errf(http.StatusBadRequest, "unsupported permission %s:%s", a.Resource, a.Action)
		}
		acc = append(acc, access{a.Resource, a.Action})
	}
	if len(acc) == 0 {
		return nil, nil, errf(http.StatusBadRequest, "a robot needs at least one permission")
	}
	return p, acc, nil
}

func createRobot(s *Server, c *call) (reply, error) {
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	var req struct {
		Name        string           `json:"name"`
		Description string           `json:"description"`
		Level       string           `json:"level"`
		Duration    int64            `json:"duration"`
		Disable     bool             `json:"disable"`
		Secret      string           `json:"secret"`
		Permissions []permissionJSON `json:"permissions"`
	}
	if err := c.body("robot", &req); err != nil {
		return reply{}, err
	}
	if !nameRe.MatchString(req.Name) {
		return reply{}, errf(http.StatusBadRequest, "robot name is not in lower case or contains illegal characters: %q", req.Name)
	}
	if req.Duration != -1 && req.Duration <= 0 {
		return reply{}, errf(http.StatusBadRequest, "duration must be -1 or a positive number of days, got %d", req.Duration)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, acc, err := s.robotPermissions(c, req.Level, req.Permissions)
	if err != nil {
		return reply{}, err
	}
	bare := p.name + "+" + req.Name
	if _, dup := s.st.robots.find(func(r *robot) bool { return r.name == bare }); dup {
		return reply{}, errf(http.StatusConflict, "robot account %d:%s already exists", p.id, bare)
	}
	secret := req.Secret
	if secret == "" {
		secret = newSecret()
	} else if !robotSecretOK(secret) {
		return reply{}, errf(http.StatusBadRequest, "the secret must be 8-128 characters with an upper-case letter, a lower-case letter and a digit")
	}
	now := s.clock()
	r := s.st.robots.add(&robot{id: s.st.next(), name: bare, description: req.Description, secret: secret, project: p.id,
		namespace: p.name, access: acc, duration: req.Duration, disabled: req.Disable, created: now, updated: now})
	full := s.st.robotPrefix() + r.name
	s.audit(c.who, "robot", full, "create")
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/robots/%d", r.id)},
		body: map[string]any{"id": r.id, "name": full, "secret": secret, "creation_time": ts(now), "expires_at": r.expiresAt()}}, nil
}

// robotQuery parses q=Level=project,ProjectID=3 as Harbor's list API does.
func robotQuery(q string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(q, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), "~")
		}
	}
	return out
}

func listRobots(s *Server, c *call) (reply, error) {
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	q := robotQuery(c.str("q"))
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := s.st.robotPrefix()
	return listPage(c, &s.st.robots, func(r *robot) bool {
		if v, ok := q["ProjectID"]; ok && v != strconv.FormatInt(r.project, 10) {
			return false
		}
		// As Harbor: without Level=project the list is of system robots,
		// which the simulator has none of.
		if q["Level"] != "project" {
			return false
		}
		if v, ok := q["name"]; ok && !strings.Contains(r.name, v) {
			return false
		}
		p, ok := s.st.projects.get(r.project)
		return ok && (c.who.admin() || s.canManage(c, p) == nil)
	}, func(r *robot) map[string]any { return robotJSON(prefix, r) }), nil
}

func (s *Server) robotFor(c *call) (*robot, error) {
	id, _ := c.int64("robot_id")
	r, err := s.st.robots.lookup("robot", id)
	if err != nil {
		return nil, err
	}
	if p, ok := s.st.projects.get(r.project); !ok || s.canManage(c, p) != nil {
		if err := needAuth(c); err != nil {
			return nil, err
		}
		return nil, errf(http.StatusForbidden, "%s may not manage robot %d", c.who.name(), id)
	}
	return r, nil
}

func getRobot(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.robotFor(c)
	if err != nil {
		return reply{}, err
	}
	return reply{body: robotJSON(s.st.robotPrefix(), r)}, nil
}

func updateRobot(s *Server, c *call) (reply, error) {
	var req struct {
		Name        string           `json:"name"`
		Description string           `json:"description"`
		Level       string           `json:"level"`
		Duration    *int64           `json:"duration"`
		Disable     bool             `json:"disable"`
		Permissions []permissionJSON `json:"permissions"`
	}
	if err := c.body("robot", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.robotFor(c)
	if err != nil {
		return reply{}, err
	}
	if full := s.st.robotPrefix() + r.name; req.Name != full {
		return reply{}, errf(http.StatusBadRequest, "the robot name cannot be changed (%q, sent %q)", full, req.Name)
	}
	if req.Duration == nil || (*req.Duration != -1 && *req.Duration <= 0) {
		return reply{}, errf(http.StatusBadRequest, "duration must be -1 or a positive number of days")
	}
	p, acc, err := s.robotPermissions(c, req.Level, req.Permissions)
	if err != nil {
		return reply{}, err
	}
	if p.id != r.project {
		return reply{}, errf(http.StatusBadRequest, "a project robot cannot move to another project")
	}
	r.description, r.duration, r.disabled, r.access, r.updated = req.Description, *req.Duration, req.Disable, acc, s.clock()
	return reply{}, nil
}

func refreshSecret(s *Server, c *call) (reply, error) {
	var req struct {
		Secret string `json:"secret"`
	}
	if err := c.body("robotSec", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.robotFor(c)
	if err != nil {
		return reply{}, err
	}
	if req.Secret == "" {
		req.Secret = newSecret()
	} else if !robotSecretOK(req.Secret) {
		return reply{}, errf(http.StatusBadRequest, "the secret must be 8-128 characters with an upper-case letter, a lower-case letter and a digit")
	}
	r.secret, r.updated = req.Secret, s.clock()
	return reply{body: map[string]any{"secret": r.secret}}, nil
}

func deleteRobot(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.robotFor(c)
	if err != nil {
		return reply{}, err
	}
	s.st.robots.delete(r.id)
	return reply{}, nil
}
