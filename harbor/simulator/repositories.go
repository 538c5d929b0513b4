package simulator

import (
	"fmt"
	"net/http"
	"sort"
)

func init() {
	handlers["listRepositories"] = listRepositories
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
