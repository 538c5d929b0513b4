package simulator

import (
	"fmt"
	"net/http"
	"strings"
)

type member struct {
	id      int64
	project int64
	user    *user
	group   *group
	role    int64
}

func (m *member) key() int64 { return m.id }

type group struct {
	id   int64
	name string
	typ  int64 // 1 LDAP, 2 HTTP, 3 OIDC
	dn   string
}

func init() {
	handlers["listProjectMembers"] = listProjectMembers
	handlers["createProjectMember"] = createProjectMember
	handlers["getProjectMember"] = getProjectMember
	handlers["updateProjectMember"] = updateProjectMember
	handlers["deleteProjectMember"] = deleteProjectMember
	handlers["getUserGroup"] = getUserGroup
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

func (m *member) name() string {
	if m.user != nil {
		return m.user.name
	}
	return m.group.name
}

// listProjectMembers lists a project's members; entityname is a
// substring match.
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
	name := c.str("entityname")
	return listPage(c, &s.st.members, func(m *member) bool {
		return m.project == p.id && strings.Contains(m.name(), name)
	}, memberJSON), nil
}

func (s *Server) findMember(c *call) (*project, *member, error) {
	p, err := s.lookupProject(c)
	if err != nil {
		return nil, nil, err
	}
	mid, _ := c.int64("mid")
	if m, ok := s.st.members.find(func(m *member) bool { return m.project == p.id && m.id == mid }); ok {
		return p, m, nil
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
	if _, dup := s.st.members.find(func(have *member) bool {
		return have.project == p.id && ((m.user != nil && have.user == m.user) || (m.group != nil && have.group == m.group))
	}); dup {
		return reply{}, errf(http.StatusConflict, "the member already exists in project %s", p.name)
	}
	s.st.members.add(m)
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
	s.st.members.delete(m.id)
	return reply{}, nil
}

// getUserGroup reads a user group a member was made with: its type and,
// for an LDAP group, its DN.
func getUserGroup(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("group_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.st.groups {
		if g.id == id {
			return reply{body: map[string]any{"id": g.id, "group_name": g.name, "group_type": g.typ, "ldap_group_dn": g.dn}}, nil
		}
	}
	return reply{}, errf(http.StatusNotFound, "user group %d not found", id)
}
