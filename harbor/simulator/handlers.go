package simulator

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// handlers maps swagger operation ids to what the simulator does. An
// operation not listed answers 501.
var handlers = map[string]handler{
	"getPing":             getPing,
	"getSystemInfo":       getSystemInfo,
	"getCurrentUserInfo":  getCurrentUserInfo,
	"listProjects":        listProjects,
	"createProject":       createProject,
	"getProject":          getProject,
	"headProject":         headProject,
	"updateProject":       updateProject,
	"deleteProject":       deleteProject,
	"listQuotas":          listQuotas,
	"updateQuota":         updateQuota,
	"listProjectMembers":  listProjectMembers,
	"createProjectMember": createProjectMember,
	"getProjectMember":    getProjectMember,
	"updateProjectMember": updateProjectMember,
	"deleteProjectMember": deleteProjectMember,
	"CreateRobot":         createRobot,
	"ListRobot":           listRobots,
	"GetRobotByID":        getRobot,
	"UpdateRobot":         updateRobot,
	"RefreshSec":          refreshSecret,
	"DeleteRobot":         deleteRobot,
	"listRepositories":    listRepositories,
	"createUser":          createUser,
}

func createUser(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Email    string `json:"email"`
		Realname string `json:"realname"`
	}
	if err := c.body("userReq", &req); err != nil {
		return reply{}, err
	}
	if req.Username == "" || strings.ContainsAny(req.Username, ",~#$%") || len(req.Username) > 255 {
		return reply{}, errf(http.StatusBadRequest, "invalid username %q", req.Username)
	}
	if !robotSecretOK(req.Password) {
		return reply{}, errf(http.StatusBadRequest, "the password must be 8-128 characters with an upper-case letter, a lower-case letter and a digit")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.users[req.Username] != nil {
		return reply{}, errf(http.StatusConflict, "username %s already exists", req.Username)
	}
	u := &user{id: s.st.next(), name: req.Username, password: req.Password, created: s.clock()}
	s.st.users[u.name] = u
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/users/%d", u.id)}}, nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func getPing(*Server, *call) (reply, error) { return reply{body: []byte(`"Pong"`)}, nil }

func getSystemInfo(_ *Server, _ *call) (reply, error) {
	return reply{body: map[string]any{"harbor_version": "v2.13.1-simulator", "auth_mode": "db_auth",
		"self_registration": false, "has_ca_root": false, "primary_auth_mode": false}}, nil
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

func getCurrentUserInfo(s *Server, c *call) (reply, error) {
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	if c.who.user == nil {
		// As Harbor: the current user is only known to a local security
		// context.
		return reply{}, errf(http.StatusPreconditionFailed, "get current user not available for security context: robot")
	}
	u := c.who.user
	return reply{body: map[string]any{"user_id": u.id, "username": u.name, "sysadmin_flag": u.admin,
		"creation_time": ts(u.created), "update_time": ts(u.created)}}, nil
}

// lookupProject resolves the project_name_or_id parameter as Harbor does.
// A project that does not exist is 403 "forbidden", as Harbor's project
// access check answers before any handler runs (HEAD /projects says 404).
func (s *Server) lookupProject(c *call) (*project, error) {
	key := c.str("project_name_or_id")
	var p *project
	if !c.bool("X-Is-Resource-Name") {
		if id, err := strconv.ParseInt(key, 10, 64); err == nil {
			if p = s.st.projects[id]; p == nil {
				return nil, errf(http.StatusForbidden, "forbidden")
			}
			return p, nil
		}
	}
	if p = s.st.projectByName(key); p == nil {
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
		delete(s.st.projects, p.id)
		return reply{}, err
	}
	s.st.members = append(s.st.members, &member{id: s.st.next(), project: p.id, user: c.who.user, role: 1})
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
	var out []map[string]any
	var ids []int64
	for id := range s.st.projects {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := s.st.projects[id]
		if name != "" && !strings.Contains(p.name, name) {
			continue
		}
		if s.canRead(c, p) != nil {
			continue
		}
		out = append(out, s.projectJSON(c, p))
	}
	return page(c, out), nil
}

// page cuts a list by the page and page_size parameters, with
// X-Total-Count as Harbor sends it.
func page[T any](c *call, all []T) reply {
	n, _ := c.int64("page")
	size, _ := c.int64("page_size")
	if n < 1 {
		n = 1
	}
	if size < 1 {
		size = 10
	}
	start := min(int((n-1)*size), len(all))
	end := min(start+int(size), len(all))
	body := all[start:end]
	if body == nil {
		body = []T{}
	}
	return reply{body: body, headers: map[string]string{"X-Total-Count": strconv.Itoa(len(all))}}
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
	delete(s.st.projects, p.id)
	s.audit(c.who, "project", p.name, "delete")
	s.st.members = slices.DeleteFunc(s.st.members, func(m *member) bool { return m.project == p.id })
	for id, r := range s.st.robots {
		if r.project == p.id {
			delete(s.st.robots, id)
		}
	}
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
	var out []map[string]any
	var ids []int64
	for id := range s.st.projects {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := s.st.projects[id]
		if ref := c.str("reference_id"); ref != "" && ref != strconv.FormatInt(p.id, 10) {
			continue
		}
		out = append(out, quotaJSON(p))
	}
	return page(c, out), nil
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
	for _, p := range s.st.projects {
		if p.quotaID == id {
			v, ok := req.Hard["storage"]
			if !ok || v < -1 || v == 0 {
				return reply{}, errf(http.StatusBadRequest, "hard.storage must be -1 or positive")
			}
			p.limit = v
			return reply{}, nil
		}
	}
	return reply{}, errf(http.StatusNotFound, "quota %d not found", id)
}

var roleNames = map[int64]string{1: "projectAdmin", 2: "developer", 3: "guest", 4: "maintainer", 5: "limitedGuest"}

func memberJSON(m *member) map[string]any {
	out := map[string]any{"id": m.id, "project_id": m.project, "role_id": m.role, "role_name": roleNames[m.role]}
	if m.user != nil {
		out["entity_id"], out["entity_name"], out["entity_type"] = m.user.id, m.user.name, "u"
	} else {
		out["entity_id"], out["entity_name"], out["entity_type"] = m.group.id, m.group.name, "g"
	}
	return out
}

func listProjectMembers(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.lookupProject(c)
	if err != nil {
		return reply{}, err
	}
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	if err := s.canRead(c, p); err != nil {
		return reply{}, err
	}
	var out []map[string]any
	for _, m := range s.st.members {
		if m.project != p.id {
			continue
		}
		j := memberJSON(m)
		if name := c.str("entityname"); name != "" && !strings.Contains(j["entity_name"].(string), name) {
			continue
		}
		out = append(out, j)
	}
	return page(c, out), nil
}

func (s *Server) findMember(c *call) (*project, *member, error) {
	p, err := s.lookupProject(c)
	if err != nil {
		return nil, nil, err
	}
	mid, _ := c.int64("mid")
	for _, m := range s.st.members {
		if m.project == p.id && m.id == mid {
			return p, m, nil
		}
	}
	return p, nil, errf(http.StatusNotFound, "member %d of project %s not found", mid, p.name)
}

func createProjectMember(s *Server, c *call) (reply, error) {
	var req struct {
		RoleID     int64 `json:"role_id"`
		MemberUser *struct {
			UserID   int64  `json:"user_id"`
			Username string `json:"username"`
		} `json:"member_user"`
		MemberGroup *struct {
			ID          int64  `json:"id"`
			GroupName   string `json:"group_name"`
			GroupType   int64  `json:"group_type"`
			LdapGroupDn string `json:"ldap_group_dn"`
		} `json:"member_group"`
	}
	if err := c.body("project_member", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.managedProject(c)
	if err != nil {
		return reply{}, err
	}
	if roleNames[req.RoleID] == "" {
		return reply{}, errf(http.StatusBadRequest, "invalid role_id %d", req.RoleID)
	}
	m := &member{id: s.st.next(), project: p.id, role: req.RoleID}
	switch {
	case req.MemberUser != nil:
		u := s.st.users[req.MemberUser.Username]
		if u == nil {
			return reply{}, errf(http.StatusNotFound, "user %q not found", req.MemberUser.Username)
		}
		m.user = u
	case req.MemberGroup != nil:
		g := req.MemberGroup
		if g.GroupType < 1 || g.GroupType > 3 {
			return reply{}, errf(http.StatusBadRequest, "invalid group_type %d", g.GroupType)
		}
		if g.GroupType == 1 && g.LdapGroupDn == "" {
			return reply{}, errf(http.StatusBadRequest, "an LDAP group needs ldap_group_dn")
		}
		name := g.GroupName
		if name == "" && g.LdapGroupDn != "" {
			name = strings.TrimPrefix(strings.SplitN(g.LdapGroupDn, ",", 2)[0], "cn=")
		}
		for _, have := range s.st.groups {
			if have.name == name && have.typ == g.GroupType {
				m.group = have
			}
		}
		if m.group == nil {
			m.group = &group{id: s.st.next(), name: name, typ: g.GroupType, dn: g.LdapGroupDn}
			s.st.groups = append(s.st.groups, m.group)
		}
	default:
		return reply{}, errf(http.StatusBadRequest, "member_user or member_group is required")
	}
	for _, have := range s.st.members {
		if have.project == p.id && ((m.user != nil && have.user == m.user) || (m.group != nil && have.group == m.group)) {
			return reply{}, errf(http.StatusConflict, "the member already exists in project %s", p.name)
		}
	}
	s.st.members = append(s.st.members, m)
	return reply{status: http.StatusCreated, headers: map[string]string{
		"Location": fmt.Sprintf("/api/v2.0/projects/%d/members/%d", p.id, m.id)}}, nil
}

func getProjectMember(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, m, err := s.findMember(c)
	if err != nil {
		return reply{}, err
	}
	if err := s.canRead(c, p); err != nil {
		return reply{}, err
	}
	return reply{body: memberJSON(m)}, nil
}

func updateProjectMember(s *Server, c *call) (reply, error) {
	var req struct {
		RoleID int64 `json:"role_id"`
	}
	if err := c.body("role", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, m, err := s.findMember(c)
	if err != nil {
		return reply{}, err
	}
	if err := s.canManage(c, p); err != nil {
		return reply{}, err
	}
	if roleNames[req.RoleID] == "" {
		return reply{}, errf(http.StatusBadRequest, "invalid role_id %d", req.RoleID)
	}
	m.role = req.RoleID
	return reply{}, nil
}

func deleteProjectMember(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, m, err := s.findMember(c)
	if err != nil {
		return reply{}, err
	}
	if err := s.canManage(c, p); err != nil {
		return reply{}, err
	}
	s.st.members = slices.DeleteFunc(s.st.members, func(x *member) bool { return x == m })
	return reply{}, nil
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
	level := "project"
	perms := []any{map[string]any{"kind": "project", "namespace": r.namespace, "access": acc}}
	return map[string]any{"id": r.id, "name": prefix + r.name, "description": r.description, "level": level,
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
	for _, r := range s.st.robots {
		if r.name == bare {
			return reply{}, errf(http.StatusConflict, "robot account %d:%s already exists", p.id, bare)
		}
	}
	secret := req.Secret
	if secret == "" {
		secret = newSecret()
	} else if !robotSecretOK(secret) {
		return reply{}, errf(http.StatusBadRequest, "the secret must be 8-128 characters with an upper-case letter, a lower-case letter and a digit")
	}
	now := s.clock()
	r := &robot{id: s.st.next(), name: bare, description: req.Description, secret: secret, project: p.id,
		namespace: p.name, access: acc, duration: req.Duration, disabled: req.Disable, created: now, updated: now}
	s.st.robots[r.id] = r
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
	var ids []int64
	for id := range s.st.robots {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []map[string]any
	for _, id := range ids {
		r := s.st.robots[id]
		if v, ok := q["ProjectID"]; ok && v != strconv.FormatInt(r.project, 10) {
			continue
		}
		if v, ok := q["Level"]; ok && v != "project" {
			continue
		}
		if v, ok := q["name"]; ok && !strings.Contains(r.name, v) {
			continue
		}
		if p := s.st.projects[r.project]; p == nil || (!c.who.admin() && s.canManage(c, p) != nil) {
			continue
		}
		out = append(out, robotJSON(s.st.robotPrefix(), r))
	}
	return page(c, out), nil
}

func (s *Server) robotFor(c *call) (*robot, error) {
	id, _ := c.int64("robot_id")
	r := s.st.robots[id]
	if r == nil {
		return nil, errf(http.StatusNotFound, "robot %d not found", id)
	}
	if p := s.st.projects[r.project]; p == nil || s.canManage(c, p) != nil {
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
	delete(s.st.robots, r.id)
	return reply{}, nil
}

func listRepositories(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.st.projectByName(c.str("project_name"))
	if p == nil {
		return reply{}, errf(http.StatusNotFound, "project %s not found", c.str("project_name"))
	}
	if c.who != nil && c.who.robot != nil {
		if !c.who.robot.can(p, "repository", "list") && !c.who.robot.can(p, "repository", "pull") {
			return reply{}, errf(http.StatusForbidden, "%s has no access to project %s", c.who.name(), p.name)
		}
	} else if err := s.canRead(c, p); err != nil {
		return reply{}, err
	}
	repos := append([]string{}, p.repos...)
	sort.Strings(repos)
	var out []map[string]any
	for i, name := range repos {
		out = append(out, map[string]any{"id": i + 1, "project_id": p.id, "name": p.name + "/" + name,
			"creation_time": ts(p.created), "update_time": ts(p.updated), "artifact_count": 0, "pull_count": 0})
	}
	return page(c, out), nil
}

// AddRepository makes a repository exist in a project, as a push would.
func (s *Server) AddRepository(project, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.st.projectByName(project)
	if p == nil {
		return fmt.Errorf("simulator: no project %s", project)
	}
	p.repos = append(p.repos, name)
	return nil
}
