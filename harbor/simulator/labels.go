package simulator

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// label is a global (scope g) or project (scope p) label.
type label struct {
	id          int64
	name        string
	description string
	color       string
	scope       string
	project     int64 // for scope p
	created     time.Time
	updated     time.Time
}

func (l *label) key() int64 { return l.id }

func init() {
	handlers["ListLabels"] = listLabels
	handlers["CreateLabel"] = createLabel
	handlers["GetLabelByID"] = getLabel
	handlers["UpdateLabel"] = updateLabel
	handlers["DeleteLabel"] = deleteLabel
}

func labelJSON(l *label) map[string]any {
	return map[string]any{"id": l.id, "name": l.name, "description": l.description, "color": l.color, "scope": l.scope,
		"project_id": l.project, "creation_time": ts(l.created), "update_time": ts(l.updated), "deleted": false}
}

type labelReq struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Color       string `json:"color"`
	Scope       string `json:"scope"`
	ProjectID   int64  `json:"project_id"`
}

// labelAccess checks the caller may read (write false) or change a label
// of scope in project: a global label is anyone's to read and a system
// administrator's to change; a project's, its members' to read and its
// administrators' and maintainers' to change. A missing project is 403, as
// Harbor's project access check answers. Robots get no label permission.
func (s *Server) labelAccess(c *call, scope string, project int64, write bool) error {
	switch scope {
	case "g":
		if write {
			return needAdmin(c)
		}
		return nil
	case "p":
	default:
		return errf(http.StatusBadRequest, "invalid scope: %s", scope)
	}
	p, ok := s.st.projects.get(project)
	if !ok {
		if err := needAuth(c); err != nil {
			return err
		}
		return errf(http.StatusForbidden, "forbidden")
	}
	if c.who != nil && c.who.robot != nil {
		return errf(http.StatusForbidden, "%s has no label permission in project %s", c.who.name(), p.name)
	}
	if !write {
		return s.canRead(c, p)
	}
	if err := needAuth(c); err != nil {
		return err
	}
	if role := s.st.role(c.who, p); role != 1 && role != 4 {
		return errf(http.StatusForbidden, "%s may not change the labels of project %s", c.who.name(), p.name)
	}
	return nil
}

func (s *Server) checkLabel(l *label) error {
	if l.name == "" || len(l.name) > 128 {
		return errf(http.StatusBadRequest, "a label name is 1 to 128 characters")
	}
	if _, dup := s.st.labels.find(func(o *label) bool {
		return o.id != l.id && o.name == l.name && o.scope == l.scope && o.project == l.project
	}); dup {
		return errf(http.StatusConflict, "label %s already exists", l.name)
	}
	return nil
}

// listLabels lists the labels of a scope: scope is required, and project_id
// with scope p; name is a substring match.
func listLabels(s *Server, c *call) (reply, error) {
	scope := c.str("scope")
	pid, _ := c.int64("project_id")
	if scope == "p" && pid == 0 {
		return reply{}, errf(http.StatusBadRequest, "must with project ID when to query project labels")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.labelAccess(c, scope, pid, false); err != nil {
		return reply{}, err
	}
	name := c.str("name")
	return listPage(c, &s.st.labels, func(l *label) bool {
		return l.scope == scope && (scope == "g" || l.project == pid) && strings.Contains(l.name, name)
	}, labelJSON), nil
}

func createLabel(s *Server, c *call) (reply, error) {
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	var req labelReq
	if err := c.body("label", &req); err != nil {
		return reply{}, err
	}
	if req.Scope == "g" {
		req.ProjectID = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.labelAccess(c, req.Scope, req.ProjectID, true); err != nil {
		return reply{}, err
	}
	now := s.clock()
	l := &label{id: s.st.next(), name: req.Name, description: req.Description, color: req.Color, scope: req.Scope,
		project: req.ProjectID, created: now, updated: now}
	if err := s.checkLabel(l); err != nil {
		return reply{}, err
	}
	s.st.labels.add(l)
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/labels/%d", l.id)}}, nil
}

// labelFor finds the call's label and checks the caller's access to it.
func (s *Server) labelFor(c *call, write bool) (*label, error) {
	id, _ := c.int64("label_id")
	l, err := s.st.labels.lookup("label", id)
	if err != nil {
		return nil, err
	}
	return l, s.labelAccess(c, l.scope, l.project, write)
}

func getLabel(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.labelFor(c, false)
	if err != nil {
		return reply{}, err
	}
	return reply{body: labelJSON(l)}, nil
}

// updateLabel changes a label's name, description and color.
func updateLabel(s *Server, c *call) (reply, error) {
	var req labelReq
	if err := c.body("label", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.labelFor(c, true)
	if err != nil {
		return reply{}, err
	}
	next := *l
	next.name, next.description, next.color, next.updated = req.Name, req.Description, req.Color, s.clock()
	if err := s.checkLabel(&next); err != nil {
		return reply{}, err
	}
	*l = next
	return reply{}, nil
}

func deleteLabel(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.labelFor(c, true)
	if err != nil {
		return reply{}, err
	}
	s.st.labels.delete(l.id)
	return reply{}, nil
}
