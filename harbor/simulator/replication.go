package simulator

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

type registryEP struct {
	id          int64
	name, typ   string
	url         string
	user, pw    string
	insecure    bool
	description string
	created     time.Time
}

type policy struct {
	id          int64
	name        string
	src, dest   int64 // registry ids; 0 is this Harbor
	destNS      string
	filters     []map[string]any
	trigger     map[string]any
	enabled     bool
	override    bool
	deletion    bool
	description string
	created     time.Time
}

type execution struct {
	id             int64
	policy         int64
	status         string
	trigger        string
	start, end     time.Time
	total, succeed int64
	reads          int
}

func (r *registryEP) key() int64 { return r.id }
func (p *policy) key() int64     { return p.id }
func (e *execution) key() int64  { return e.id }

var registryTypes = []string{"harbor", "docker-registry", "docker-hub", "aws-ecr", "azure-acr", "google-gcr",
	"quay", "gitlab", "jfrog-artifactory", "github-ghcr", "huawei-SWR", "ali-acr", "helm-hub", "tencent-tcr"}

func init() {
	handlers["createRegistry"] = createRegistry
	handlers["listRegistries"] = listRegistries
	handlers["getRegistry"] = getRegistry
	handlers["updateRegistry"] = updateRegistry
	handlers["deleteRegistry"] = deleteRegistry
	handlers["createReplicationPolicy"] = createPolicy
	handlers["listReplicationPolicies"] = listPolicies
	handlers["getReplicationPolicy"] = getPolicy
	handlers["updateReplicationPolicy"] = updatePolicy
	handlers["deleteReplicationPolicy"] = deletePolicy
	handlers["startReplication"] = startReplication
	handlers["listReplicationExecutions"] = listExecutions
	handlers["getReplicationExecution"] = getExecution
}

func registryJSON(r *registryEP) map[string]any {
	out := map[string]any{"id": r.id, "name": r.name, "type": r.typ, "url": r.url, "insecure": r.insecure,
		"description": r.description, "status": "healthy", "creation_time": ts(r.created), "update_time": ts(r.created)}
	if r.user != "" {
		out["credential"] = map[string]any{"type": "basic", "access_key": r.user, "access_secret": "*****"}
	}
	return out
}

type registryReq struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	URL         string `json:"url"`
	Insecure    bool   `json:"insecure"`
	Description string `json:"description"`
	Credential  *struct {
		Type         string `json:"type"`
		AccessKey    string `json:"access_key"`
		AccessSecret string `json:"access_secret"`
	} `json:"credential"`
}

func checkRegistryURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errf(http.StatusBadRequest, "invalid registry url %q", raw)
	}
	return nil
}

func createRegistry(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req registryReq
	if err := c.body("registry", &req); err != nil {
		return reply{}, err
	}
	if req.Name == "" || !slices.Contains(registryTypes, req.Type) {
		return reply{}, errf(http.StatusBadRequest, "a registry needs a name and a known type, got %q %q", req.Name, req.Type)
	}
	if err := checkRegistryURL(req.URL); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.registryNameFree(req.Name); err != nil {
		return reply{}, err
	}
	r := s.st.registries.add(&registryEP{id: s.st.next(), name: req.Name, typ: req.Type, url: strings.TrimSuffix(req.URL, "/"),
		insecure: req.Insecure, description: req.Description, created: s.clock()})
	if req.Credential != nil {
		r.user, r.pw = req.Credential.AccessKey, req.Credential.AccessSecret
	}
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/registries/%d", r.id)}}, nil
}

func (s *Server) registryNameFree(name string) error {
	if _, taken := s.st.registries.find(func(r *registryEP) bool { return r.name == name }); taken {
		return errf(http.StatusConflict, "registry %s already exists", name)
	}
	return nil
}

// nameMatches reports whether name is the one asked for: equal to it, or
// holding it for a fuzzy match; anything when none is asked for.
func nameMatches(name, asked string, exact bool) bool {
	return asked == "" || (exact && name == asked) || (!exact && strings.Contains(name, asked))
}

// queryName reads the name from q=name=x (or name=~x for a fuzzy match)
// or the name parameter.
func queryName(c *call) (string, bool) {
	if n := c.str("name"); n != "" {
		return n, true
	}
	for _, kv := range strings.Split(c.str("q"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "name" {
			return strings.TrimPrefix(v, "~"), !strings.HasPrefix(v, "~")
		}
	}
	return "", false
}

func listRegistries(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	name, exact := queryName(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	return listPage(c, &s.st.registries, func(r *registryEP) bool { return nameMatches(r.name, name, exact) }, registryJSON), nil
}

func getRegistry(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.st.registries.lookup("registry", id)
	if err != nil {
		return reply{}, err
	}
	return reply{body: registryJSON(r)}, nil
}

func updateRegistry(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req struct {
		Name           *string `json:"name"`
		URL            *string `json:"url"`
		Insecure       *bool   `json:"insecure"`
		Description    *string `json:"description"`
		CredentialType *string `json:"credential_type"`
		AccessKey      *string `json:"access_key"`
		AccessSecret   *string `json:"access_secret"`
	}
	if err := c.body("registry", &req); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.st.registries.lookup("registry", id)
	if err != nil {
		return reply{}, err
	}
	if req.URL != nil {
		if err := checkRegistryURL(*req.URL); err != nil {
			return reply{}, err
		}
		r.url = strings.TrimSuffix(*req.URL, "/")
	}
	if req.Name != nil && *req.Name != r.name {
		if err := s.registryNameFree(*req.Name); err != nil {
			return reply{}, err
		}
		r.name = *req.Name
	}
	if req.Insecure != nil {
		r.insecure = *req.Insecure
	}
	if req.Description != nil {
		r.description = *req.Description
	}
	if req.AccessKey != nil {
		r.user = *req.AccessKey
	}
	if req.AccessSecret != nil {
		r.pw = *req.AccessSecret
	}
	return reply{}, nil
}

func deleteRegistry(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.st.registries.lookup("registry", id); err != nil {
		return reply{}, err
	}
	if p, used := s.st.policies.find(func(p *policy) bool { return p.src == id || p.dest == id }); used {
		return reply{}, errf(http.StatusPreconditionFailed, "the registry %d is referenced by replication policy %s", id, p.name)
	}
	s.st.registries.delete(id)
	return reply{}, nil
}

func (s *Server) policyJSON(p *policy) map[string]any {
	out := map[string]any{"id": p.id, "name": p.name, "description": p.description, "dest_namespace": p.destNS,
		"filters": nonNil(p.filters), "trigger": p.trigger, "enabled": p.enabled, "override": p.override,
		"deletion": p.deletion, "replicate_deletion": p.deletion, "creation_time": ts(p.created), "update_time": ts(p.created)}
	local := map[string]any{"id": 0, "name": "Local", "type": "harbor", "url": s.URL, "status": "healthy",
		"insecure": true, "creation_time": ts(p.created), "update_time": ts(p.created)}
	for key, id := range map[string]int64{"src_registry": p.src, "dest_registry": p.dest} {
		if id == 0 {
			out[key] = local
		} else if r, ok := s.st.registries.get(id); ok {
			out[key] = registryJSON(r)
		}
	}
	return out
}

type policyReq struct {
	Name          string              `json:"name"`
	Description   string              `json:"description"`
	SrcRegistry   *struct{ ID int64 } `json:"src_registry"`
	DestRegistry  *struct{ ID int64 } `json:"dest_registry"`
	DestNamespace string              `json:"dest_namespace"`
	Filters       []map[string]any    `json:"filters"`
	Trigger       map[string]any      `json:"trigger"`
	Enabled       bool                `json:"enabled"`
	Override      bool                `json:"override"`
	Deletion      bool                `json:"deletion"`
}

func (s *Server) applyPolicy(p *policy, req policyReq) error {
	if req.Name == "" {
		return errf(http.StatusBadRequest, "a policy needs a name")
	}
	var src, dest int64
	if req.SrcRegistry != nil {
		src = req.SrcRegistry.ID
	}
	if req.DestRegistry != nil {
		dest = req.DestRegistry.ID
	}
	if (src == 0) == (dest == 0) {
		return errf(http.StatusBadRequest, "exactly one of src_registry and dest_registry must be a remote registry")
	}
	for _, id := range []int64{src, dest} {
		if _, ok := s.st.registries.get(id); id != 0 && !ok {
			return errf(http.StatusBadRequest, "registry %d not found", id)
		}
	}
	for _, f := range req.Filters {
		switch f["type"] {
		case "name", "tag", "resource", "label":
		default:
			return errf(http.StatusBadRequest, "invalid filter type %v", f["type"])
		}
	}
	trig := req.Trigger
	if trig == nil {
		trig = map[string]any{"type": "manual"}
	}
	switch trig["type"] {
	case "manual", "event_based":
	case "scheduled":
		ts, _ := trig["trigger_settings"].(map[string]any)
		cron, _ := ts["cron"].(string)
		if len(strings.Fields(cron)) != 6 {
			return errf(http.StatusBadRequest, "invalid cron %q: six fields expected", cron)
		}
	default:
		return errf(http.StatusBadRequest, "invalid trigger type %v", trig["type"])
	}
	p.name, p.description, p.src, p.dest, p.destNS = req.Name, req.Description, src, dest, req.DestNamespace
	p.filters, p.trigger, p.enabled, p.override, p.deletion = req.Filters, trig, req.Enabled, req.Override, req.Deletion
	return nil
}

func createPolicy(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req policyReq
	if err := c.body("policy", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.st.policies.find(func(p *policy) bool { return p.name == req.Name }); taken {
		return reply{}, errf(http.StatusConflict, "policy %s already exists", req.Name)
	}
	p := &policy{id: s.st.next(), created: s.clock()}
	if err := s.applyPolicy(p, req); err != nil {
		return reply{}, err
	}
	s.st.policies.add(p)
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/replication/policies/%d", p.id)}}, nil
}

func listPolicies(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	name, exact := queryName(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	return listPage(c, &s.st.policies, func(p *policy) bool { return nameMatches(p.name, name, exact) }, s.policyJSON), nil
}

func getPolicy(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.st.policies.lookup("replication policy", id)
	if err != nil {
		return reply{}, err
	}
	return reply{body: s.policyJSON(p)}, nil
}

func updatePolicy(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req policyReq
	if err := c.body("policy", &req); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.st.policies.lookup("replication policy", id)
	if err != nil {
		return reply{}, err
	}
	return reply{}, s.applyPolicy(p, req)
}

func deletePolicy(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.st.policies.lookup("replication policy", id); err != nil {
		return reply{}, err
	}
	s.st.policies.delete(id)
	return reply{}, nil
}

// matching counts the tasks of a push policy: one per local repository
// with an artifact its filters match, as Harbor counts them.
func (s *Server) matching(p *policy) int64 {
	var names, tags []string
	for _, f := range p.filters {
		v, _ := f["value"].(string)
		switch f["type"] {
		case "name":
			names = append(names, v)
		case "tag":
			tags = append(tags, v)
		}
	}
	glob := func(patterns []string, v string) bool {
		if len(patterns) == 0 {
			return true
		}
		for _, pat := range patterns {
			pat = strings.ReplaceAll(pat, "**", "*")
			if ok, _ := path.Match(pat, v); ok {
				return true
			}
			if ok, _ := path.Match(strings.ReplaceAll(pat, "/*", "/*/*"), v); ok {
				return true
			}
		}
		return false
	}
	var n int64
	for repo, arts := range s.st.artifacts {
		if !glob(names, repo) {
			continue
		}
		matched := false
		for _, a := range arts {
			for _, t := range a.tags {
				matched = matched || glob(tags, t)
			}
		}
		if matched {
			n++
		}
	}
	return n
}

func startReplication(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	var req struct {
		PolicyID int64 `json:"policy_id"`
	}
	if err := c.body("execution", &req); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.st.policies.lookup("replication policy", req.PolicyID)
	if err != nil {
		return reply{}, err
	}
	if !p.enabled {
		return reply{}, errf(http.StatusBadRequest, "the policy %s is disabled", p.name)
	}
	var total int64
	if p.dest != 0 {
		total = s.matching(p)
	}
	e := s.st.executions.add(&execution{id: s.st.next(), policy: p.id, status: "InProgress", trigger: "manual", start: s.clock(), total: total})
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/replication/executions/%d", e.id)}}, nil
}

// executionJSON reports an execution. Reading it by id (read true)
// counts: it finishes, every task succeeding, on the second such read, so
// a client that follows it sees it in progress first. Listing executions
// changes nothing.
func (s *Server) executionJSON(e *execution, read bool) map[string]any {
	if read {
		e.reads++
	}
	if e.status == "InProgress" && e.reads >= 2 {
		e.status, e.succeed, e.end = "Succeed", e.total, s.clock()
	}
	out := map[string]any{"id": e.id, "policy_id": e.policy, "status": e.status, "trigger": e.trigger,
		"start_time": ts(e.start), "total": e.total, "succeed": e.succeed, "failed": 0, "stopped": 0,
		"in_progress": e.total - e.succeed, "status_text": ""}
	if !e.end.IsZero() {
		out["end_time"] = ts(e.end)
	}
	return out
}

func listExecutions(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	// The binder gives an absent policy_id its zero value: ask the query.
	pid, _ := c.int64("policy_id")
	hasPID := c.r.URL.Query().Has("policy_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.st.executions.filter(func(e *execution) bool { return !hasPID || e.policy == pid })
	if strings.HasPrefix(c.str("sort"), "-") {
		slices.Reverse(list)
	}
	var out []map[string]any
	for _, e := range list {
		out = append(out, s.executionJSON(e, false))
	}
	return page(c, out), nil
}

func getExecution(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.st.executions.lookup("execution", id)
	if err != nil {
		return reply{}, err
	}
	return reply{body: s.executionJSON(e, true)}, nil
}
