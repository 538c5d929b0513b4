package simulator

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

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

func (p *project) key() int64 { return p.id }

func init() {
	handlers["listProjects"] = listProjects
	handlers["createProject"] = createProject
	handlers["getProject"] = getProject
	handlers["headProject"] = headProject
	handlers["updateProject"] = updateProject
	handlers["deleteProject"] = deleteProject
	handlers["listQuotas"] = listQuotas
	handlers["updateQuota"] = updateQuota
}

func (st *state) addProject(name string, owner int64, md map[string]string, limit int64, now time.Time) *project {
	p := &project{id: st.next(), name: name, ownerID: owner, metadata: md, created: now, updated: now, limit: limit}
	p.quotaID = st.next()
	return st.projects.add(p)
}

func (st *state) projectByName(name string) *project {
	p, _ := st.projects.find(func(p *project) bool { return p.name == name })
	return p
}

// lookupProject resolves the project_name_or_id parameter as Harbor does.
// A project that does not exist is 403 "forbidden", as Harbor's project
// access check answers before any handler runs (HEAD /projects says 404).
func (s *Server) lookupProject(c *call) (*project, error) {
	key := c.str("project_name_or_id")
	var p *project
	if id, err := strconv.ParseInt(key, 10, 64); err == nil && !c.bool("X-Is-Resource-Name") {
		p, _ = s.st.projects.get(id)
	} else {
		p = s.st.projectByName(key)
	}
	if p == nil {
		return nil, errf(http.StatusForbidden, "forbidden")
	}
	return p, nil
}

// readableProject looks the call's project up and checks the caller may
// read it.
func (s *Server) readableProject(c *call) (*project, error) {
	p, err := s.lookupProject(c)
	if err != nil {
		return nil, err
	}
	return p, s.canRead(c, p)
}

// managedProject looks the call's project up and checks the caller may
// manage it.
func (s *Server) managedProject(c *call) (*project, error) {
	p, err := s.lookupProject(c)
	if err != nil {
		return nil, err
	}
	return p, s.canManage(c, p)
}

// canRead: public projects to anyone, private ones to members, admins and
// the project's robots.
func (s *Server) canRead(c *call, p *project) error {
	if p.metadata["public"] == "true" {
		return nil
	}
	if err := needAuth(c); err != nil {
		return err
	}
	if c.who.robot != nil {
		if c.who.robot.project == p.id {
			return nil
		}
		return errf(http.StatusForbidden, "%s has no access to project %s", c.who.name(), p.name)
	}
	if s.st.role(c.who, p) == 0 {
		return errf(http.StatusForbidden, "%s is not a member of project %s", c.who.name(), p.name)
	}
	return nil
}

// canManage: project admins and system admins; never robots.
func (s *Server) canManage(c *call, p *project) error {
	if err := needAuth(c); err != nil {
		return err
	}
	if c.who.robot != nil || (s.st.role(c.who, p) != 1 && !c.who.admin()) {
		return errf(http.StatusForbidden, "%s may not manage project %s", c.who.name(), p.name)
	}
	return nil
}

func (s *Server) projectJSON(c *call, p *project) map[string]any {
	md := map[string]any{}
	for k, v := range p.metadata {
		md[k] = v
	}
	owner := ""
	for _, u := range s.st.users {
		if u.id == p.ownerID {
			owner = u.name
		}
	}
	out := map[string]any{"project_id": p.id, "name": p.name, "owner_id": p.ownerID, "owner_name": owner,
		"creation_time": ts(p.created), "update_time": ts(p.updated), "deleted": false, "togglable": true,
		"repo_count": len(p.repos), "metadata": md, "registry_id": 0}
	if role := s.st.role(c.who, p); role != 0 {
		out["current_user_role_id"] = role
		out["current_user_role_ids"] = []any{role}
	}
	items := []any{}
	for _, id := range p.allowlist {
		items = append(items, map[string]any{"cve_id": id})
	}
	out["cve_allowlist"] = map[string]any{"id": p.id, "project_id": p.id, "items": items,
		"creation_time": ts(p.created), "update_time": ts(p.updated)}
	return out
}

type projectReq struct {
	ProjectName  string            `json:"project_name"`
	Public       *bool             `json:"public"`
	Metadata     map[string]string `json:"metadata"`
	StorageLimit *int64            `json:"storage_limit"`
	CVEAllowlist *struct {
		Items []struct {
			CVEID string `json:"cve_id"`
		} `json:"items"`
	} `json:"cve_allowlist"`
}

// apply sets what req asks of p. Metadata keys are Harbor's own: any
// other is refused, as Harbor's metadata API refuses it.
func (req projectReq) apply(p *project) error {
	for k, v := range req.Metadata {
		switch k {
		case "public", "enable_content_trust", "enable_content_trust_cosign", "prevent_vul", "auto_scan",
			"reuse_sys_cve_allowlist", "auto_sbom_generation":
			if v != "true" && v != "false" {
				return errf(http.StatusBadRequest, "metadata %s must be true or false, not %q", k, v)
			}
		case "severity":
			if !slices.Contains([]string{"none", "low", "medium", "high", "critical"}, v) {
				return errf(http.StatusBadRequest, "metadata severity %q is not a severity", v)
			}
		case "retention_id", "proxy_speed_kb":
		default:
			return errf(http.StatusBadRequest, "unknown project metadata %q", k)
		}
		if v == "" {
			delete(p.metadata, k)
		} else {
			p.metadata[k] = v
		}
	}
	if req.Public != nil {
		p.metadata["public"] = strconv.FormatBool(*req.Public)
	}
	if req.CVEAllowlist != nil {
		p.allowlist = nil
		for _, it := range req.CVEAllowlist.Items {
			p.allowlist = append(p.allowlist, it.CVEID)
		}
	}
	return nil
}

func createProject(s *Server, c *call) (reply, error) {
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	if c.who.robot != nil {
		return reply{}, errf(http.StatusForbidden, "robots cannot create projects")
	}
	var req projectReq
	if err := c.body("project", &req); err != nil {
		return reply{}, err
	}
	if len(req.ProjectName) > 255 || !nameRe.MatchString(req.ProjectName) {
		return reply{}, errf(http.StatusBadRequest, "project name is not in lower case or contains illegal characters: %q", req.ProjectName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.projectByName(req.ProjectName) != nil {
		return reply{}, errf(http.StatusConflict, "The project named %s already exists", req.ProjectName)
	}
	// Only a system administrator sets a new project's quota; anyone
	// else's storage_limit is ignored for storage_per_project, as in
	// Harbor.
	limit, _ := s.st.config["storage_per_project"].(int64)
	if limit == 0 {
		limit = -1
	}
	if req.StorageLimit != nil && c.who.admin() {
		if *req.StorageLimit < -1 || *req.StorageLimit == 0 {
			return reply{}, errf(http.StatusBadRequest, "storage_limit must be -1 or positive, got %d", *req.StorageLimit)
		}
		limit = *req.StorageLimit
	}
	now := s.clock()
	p := s.st.addProject(req.ProjectName, c.who.user.id, map[string]string{"public": "false"}, limit, now)
	if err := req.apply(p); err != nil {
		s.st.projects.delete(p.id)
		return reply{}, err
	}
	s.st.members.add(&member{id: s.st.next(), project: p.id, user: c.who.user, role: 1})
	s.audit(c.who, "project", p.name, "create")
	loc := "/api/v2.0/projects/" + strconv.FormatInt(p.id, 10)
	if c.bool("X-Resource-Name-In-Location") {
		loc = "/api/v2.0/projects/" + p.name
	}
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": loc}}, nil
}

func getProject(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.readableProject(c)
	if err != nil {
		return reply{}, err
	}
	return reply{body: s.projectJSON(c, p)}, nil
}

func headProject(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.projectByName(c.str("project_name")) == nil {
		return reply{}, errf(http.StatusNotFound, "project %s not found", c.str("project_name"))
	}
	return reply{}, nil
}

func listProjects(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := c.str("name")
	return listPage(c, &s.st.projects, func(p *project) bool {
		return strings.Contains(p.name, name) && s.canRead(c, p) == nil
	}, func(p *project) map[string]any { return s.projectJSON(c, p) }), nil
}

func updateProject(s *Server, c *call) (reply, error) {
	var req projectReq
	if err := c.body("project", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.managedProject(c)
	if err != nil {
		return reply{}, err
	}
	if err := req.apply(p); err != nil {
		return reply{}, err
	}
	p.updated = s.clock()
	return reply{}, nil
}

// deleteProject deletes an empty project with its members, robots and
// labels.
func deleteProject(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.managedProject(c)
	if err != nil {
		return reply{}, err
	}
	if len(p.repos) > 0 {
		return reply{}, errf(http.StatusPreconditionFailed, "the project %s contains repositories, can not be deleted", p.name)
	}
	s.st.projects.delete(p.id)
	s.audit(c.who, "project", p.name, "delete")
	s.st.members.remove(func(m *member) bool { return m.project == p.id })
	s.st.robots.remove(func(r *robot) bool { return r.project == p.id })
	s.st.labels.remove(func(l *label) bool { return l.scope == "p" && l.project == p.id })
	return reply{}, nil
}

func quotaJSON(p *project) map[string]any {
	return map[string]any{"id": p.quotaID, "ref": map[string]any{"id": p.id, "name": p.name},
		"hard": map[string]any{"storage": p.limit}, "used": map[string]any{"storage": 0},
		"creation_time": ts(p.created), "update_time": ts(p.updated)}
}

// listQuotas, like updateQuota, is for system administrators only, as in
// Harbor (RequireSystemAccess): a project administrator gets 403.
func listQuotas(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := c.str("reference_id")
	return listPage(c, &s.st.projects, func(p *project) bool {
		return ref == "" || ref == strconv.FormatInt(p.id, 10)
	}, quotaJSON), nil
}

func updateQuota(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req struct {
		Hard map[string]int64 `json:"hard"`
	}
	if err := c.body("hard", &req); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.st.projects.find(func(p *project) bool { return p.quotaID == id })
	if !ok {
		return reply{}, errf(http.StatusNotFound, "quota %d not found", id)
	}
	v, ok := req.Hard["storage"]
	if !ok || v < -1 || v == 0 {
		return reply{}, errf(http.StatusBadRequest, "hard.storage must be -1 or positive")
	}
	p.limit = v
	return reply{}, nil
}
