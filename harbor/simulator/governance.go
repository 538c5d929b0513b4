package simulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

type immuRule struct {
	id       int64
	project  int64
	body     map[string]any
	disabled bool
}

type retentionPolicy struct {
	id      int64
	project int64
	body    map[string]any
	execs   []map[string]any
}

func (r *immuRule) key() int64        { return r.id }
func (r *retentionPolicy) key() int64 { return r.id }

type gcRun struct {
	id      int64
	kind    string
	params  map[string]any
	created time.Time
	sched   map[string]any
	reads   int // of the run by id: it ends on the second
}

func (g *gcRun) key() int64 { return g.id }

// status is the run's job status; dated in the future (the clock moved
// back since), it is still pending.
func (g *gcRun) status(now time.Time) string {
	switch {
	case now.Before(g.created):
		return "Pending"
	case g.reads < 2:
		return "Running"
	}
	return "Success"
}

func (g *gcRun) json(now time.Time) map[string]any {
	params, _ := json.Marshal(g.params)
	return map[string]any{"id": g.id, "job_name": "GARBAGE_COLLECTION", "job_kind": g.kind,
		"job_parameters": string(params), "job_status": g.status(now), "deleted": false, "schedule": g.sched,
		"creation_time": ts(g.created), "update_time": ts(g.created)}
}

type auditEntry struct {
	id                      int64
	user, resource, typ, op string
	at                      time.Time
}

func init() {
	handlers["ListImmuRules"] = listImmuRules
	handlers["CreateImmuRule"] = createImmuRule
	handlers["UpdateImmuRule"] = updateImmuRule
	handlers["DeleteImmuRule"] = deleteImmuRule
	handlers["createRetention"] = createRetention
	handlers["getRetention"] = getRetention
	handlers["updateRetention"] = updateRetention
	handlers["triggerRetentionExecution"] = triggerRetention
	handlers["listRetentionExecutions"] = listRetentionExecutions
	handlers["getGCSchedule"] = getGCSchedule
	handlers["createGCSchedule"] = createGCSchedule
	handlers["updateGCSchedule"] = updateGCSchedule
	handlers["getGCHistory"] = getGCHistory
	handlers["getGC"] = getGC
	handlers["listAuditLogs"] = listAuditLogs
}

// audit records an operation, as Harbor's audit log does.
func (s *Server) audit(who *principal, typ, resource, op string) {
	s.st.audit = append(s.st.audit, &auditEntry{id: s.st.next(), user: who.name(), resource: resource, typ: typ, op: op, at: s.clock()})
}

func decodeMap(c *call, name string) (map[string]any, error) {
	var m map[string]any
	if err := c.body(name, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func checkSelectors(m map[string]any) error {
	tags, _ := m["tag_selectors"].([]any)
	if len(tags) == 0 {
		return errf(http.StatusBadRequest, "tag_selectors are required")
	}
	for _, t := range tags {
		sel, _ := t.(map[string]any)
		if p, _ := sel["pattern"].(string); p == "" {
			return errf(http.StatusBadRequest, "a tag selector needs a pattern")
		}
	}
	scopes, _ := m["scope_selectors"].(map[string]any)
	if repos, _ := scopes["repository"].([]any); len(repos) == 0 {
		return errf(http.StatusBadRequest, "scope_selectors.repository is required")
	}
	return nil
}

func listImmuRules(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.readableProject(c)
	if err != nil {
		return reply{}, err
	}
	return listPage(c, &s.st.immutable, func(r *immuRule) bool { return r.project == p.id }, func(r *immuRule) map[string]any {
		b := maps.Clone(r.body)
		b["id"], b["disabled"] = r.id, r.disabled
		return b
	}), nil
}

func createImmuRule(s *Server, c *call) (reply, error) {
	m, err := decodeMap(c, "ImmutableRule")
	if err != nil {
		return reply{}, err
	}
	if err := checkSelectors(m); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.managedProject(c)
	if err != nil {
		return reply{}, err
	}
	if len(s.st.immutable.filter(func(r *immuRule) bool { return r.project == p.id })) >= 15 {
		return reply{}, errf(http.StatusBadRequest, "a project has at most 15 immutable tag rules")
	}
	disabled, _ := m["disabled"].(bool)
	r := &immuRule{id: s.st.next(), project: p.id, body: m, disabled: disabled}
	m["action"], m["template"] = "immutable", "immutable_template"
	delete(m, "id")
	s.st.immutable.add(r)
	return reply{status: http.StatusCreated, headers: map[string]string{
		"Location": fmt.Sprintf("/api/v2.0/projects/%d/immutabletagrules/%d", p.id, r.id)}}, nil
}

func (s *Server) immuRule(c *call) (*immuRule, error) {
	p, err := s.managedProject(c)
	if err != nil {
		return nil, err
	}
	id, _ := c.int64("immutable_rule_id")
	if r, ok := s.st.immutable.get(id); ok && r.project == p.id {
		return r, nil
	}
	return nil, errf(http.StatusNotFound, "immutable rule %d not found in project %s", id, p.name)
}

func updateImmuRule(s *Server, c *call) (reply, error) {
	m, err := decodeMap(c, "ImmutableRule")
	if err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.immuRule(c)
	if err != nil {
		return reply{}, err
	}
	if _, ok := m["tag_selectors"]; ok {
		if err := checkSelectors(m); err != nil {
			return reply{}, err
		}
		delete(m, "id")
		r.body = m
	}
	r.disabled, _ = m["disabled"].(bool)
	return reply{}, nil
}

func deleteImmuRule(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.immuRule(c)
	if err != nil {
		return reply{}, err
	}
	s.st.immutable.delete(r.id)
	return reply{}, nil
}

func checkRetention(m map[string]any) error {
	if m["algorithm"] != "or" {
		return errf(http.StatusBadRequest, "retention algorithm must be \"or\", got %v", m["algorithm"])
	}
	rules, _ := m["rules"].([]any)
	if len(rules) > 15 {
		return errf(http.StatusBadRequest, "a retention policy has at most 15 rules")
	}
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		switch rule["template"] {
		case "latestPushedK", "latestPulledN", "nDaysSinceLastPush", "nDaysSinceLastPull", "always":
		default:
			return errf(http.StatusBadRequest, "unknown retention template %v", rule["template"])
		}
		if err := checkSelectors(rule); err != nil {
			return err
		}
	}
	return nil
}

func createRetention(s *Server, c *call) (reply, error) {
	m, err := decodeMap(c, "policy")
	if err != nil {
		return reply{}, err
	}
	if err := checkRetention(m); err != nil {
		return reply{}, err
	}
	scope, _ := m["scope"].(map[string]any)
	ref, _ := scope["ref"].(float64)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.st.projects.get(int64(ref))
	if !ok || scope["level"] != "project" {
		return reply{}, errf(http.StatusBadRequest, "retention scope must be an existing project")
	}
	if err := s.canManage(c, p); err != nil {
		return reply{}, err
	}
	if p.metadata["retention_id"] != "" {
		return reply{}, errf(http.StatusBadRequest, "project %s already has retention policy %s", p.name, p.metadata["retention_id"])
	}
	pol := s.st.retention.add(&retentionPolicy{id: s.st.next(), project: p.id, body: m})
	p.metadata["retention_id"] = strconv.FormatInt(pol.id, 10)
	return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/retentions/%d", pol.id)}}, nil
}

func (s *Server) retentionByID(c *call) (*retentionPolicy, error) {
	id, _ := c.int64("id")
	if r, ok := s.st.retention.get(id); ok {
		if p, live := s.st.projects.get(r.project); live {
			if err := s.canManage(c, p); err != nil {
				return nil, err
			}
			return r, nil
		}
	}
	if err := needAuth(c); err != nil {
		return nil, err
	}
	return nil, errf(http.StatusNotFound, "retention policy %d not found", id)
}

func getRetention(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.retentionByID(c)
	if err != nil {
		return reply{}, err
	}
	b := maps.Clone(r.body)
	b["id"] = r.id
	return reply{body: b}, nil
}

func updateRetention(s *Server, c *call) (reply, error) {
	m, err := decodeMap(c, "policy")
	if err != nil {
		return reply{}, err
	}
	if err := checkRetention(m); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.retentionByID(c)
	if err != nil {
		return reply{}, err
	}
	r.body = m
	return reply{}, nil
}

func triggerRetention(s *Server, c *call) (reply, error) {
	var body struct {
		DryRun bool `json:"dry_run"`
	}
	if err := c.body("body", &body); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.retentionByID(c)
	if err != nil {
		return reply{}, err
	}
	now := s.clock()
	id := s.st.next()
	r.execs = append([]map[string]any{{"id": id, "policy_id": r.id, "status": "Succeed", "trigger": "MANUAL",
		"dry_run": body.DryRun, "start_time": ts(now), "end_time": ts(now.Add(time.Second))}}, r.execs...)
	// As Harbor: 201 with the execution in Location.
	return reply{status: http.StatusCreated, headers: map[string]string{
		"Location": fmt.Sprintf("/api/v2.0/retentions/%d/executions/%d", r.id, id)}}, nil
}

func listRetentionExecutions(s *Server, c *call) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.retentionByID(c)
	if err != nil {
		return reply{}, err
	}
	return page(c, r.execs), nil
}

func scheduleJSON(sched map[string]any, params map[string]any, created time.Time) map[string]any {
	return map[string]any{"id": 1, "status": "", "schedule": sched, "parameters": params,
		"creation_time": ts(created), "update_time": ts(created)}
}

func getGCSchedule(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.gcSchedule == nil {
		return reply{body: map[string]any{"schedule": map[string]any{"type": "None"}}}, nil
	}
	return reply{body: scheduleJSON(s.st.gcSchedule, s.st.gcParams, s.st.gcSince)}, nil
}

func (s *Server) setGC(c *call, create bool) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	m, err := decodeMap(c, "schedule")
	if err != nil {
		return reply{}, err
	}
	sched, _ := m["schedule"].(map[string]any)
	params, _ := m["parameters"].(map[string]any)
	typ, _ := sched["type"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch typ {
	case "Manual":
		if !create {
			return reply{}, errf(http.StatusBadRequest, "a manual run is created, not updated")
		}
		if _, running := s.st.gcRuns.find(func(g *gcRun) bool {
			return g.kind == "MANUAL" && s.clock().Sub(g.created) < time.Second
		}); running {
			return reply{}, errf(http.StatusConflict, "a garbage collection is already running")
		}
		// Harbor 2.4 keeps no audit log of garbage collection.
		g := s.st.gcRuns.add(&gcRun{id: s.st.next(), kind: "MANUAL", params: params, created: s.clock(), sched: sched})
		return reply{status: http.StatusCreated, headers: map[string]string{"Location": fmt.Sprintf("/api/v2.0/system/gc/%d", g.id)}}, nil
	case "None":
		s.st.gcSchedule = nil
	case "Hourly", "Daily", "Weekly", "Custom", "Schedule":
		cron, _ := sched["cron"].(string)
		if typ == "Custom" && len(strings.Fields(cron)) != 6 {
			return reply{}, errf(http.StatusBadRequest, "invalid cron %q: six fields expected", cron)
		}
		s.st.gcSchedule, s.st.gcParams, s.st.gcSince = sched, params, s.clock()
	default:
		return reply{}, errf(http.StatusBadRequest, "invalid schedule type %q", typ)
	}
	if create {
		return reply{status: http.StatusCreated}, nil
	}
	return reply{}, nil
}

func createGCSchedule(s *Server, c *call) (reply, error) { return s.setGC(c, true) }
func updateGCSchedule(s *Server, c *call) (reply, error) { return s.setGC(c, false) }

func getGCHistory(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, g := range slices.Backward(s.st.gcRuns.all) {
		out = append(out, g.json(s.clock()))
	}
	return page(c, out), nil
}

// getGC reports a run; reading it counts: it ends, successfully, on the
// second read, so a client that follows it sees it running first.
// Listing the history changes nothing.
func getGC(s *Server, c *call) (reply, error) {
	if err := needAdmin(c); err != nil {
		return reply{}, err
	}
	id, _ := c.int64("gc_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.st.gcRuns.lookup("GC", id)
	if err != nil {
		return reply{}, err
	}
	g.reads++
	return reply{body: g.json(s.clock())}, nil
}

// auditQuery parses q=username=a,operation=create,resource=~x,op_time=[a~b].
func auditQuery(q string) (map[string]string, [2]time.Time, error) {
	out := map[string]string{}
	var window [2]time.Time
	for _, kv := range strings.Split(q, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if k == "op_time" {
			a, b, ok := strings.Cut(strings.Trim(v, "[]"), "~")
			if !ok {
				return nil, window, errf(http.StatusBadRequest, "op_time must be [from~to]")
			}
			const f = "2006-01-02 15:04:05"
			var err error
			if window[0], err = time.Parse(f, a); err != nil {
				return nil, window, errf(http.StatusBadRequest, "op_time: %v", err)
			}
			if window[1], err = time.Parse(f, b); err != nil {
				return nil, window, errf(http.StatusBadRequest, "op_time: %v", err)
			}
			continue
		}
		out[k] = v
	}
	return out, window, nil
}

func listAuditLogs(s *Server, c *call) (reply, error) {
	if err := needAuth(c); err != nil {
		return reply{}, err
	}
	q, window, err := auditQuery(c.str("q"))
	if err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for i := len(s.st.audit) - 1; i >= 0; i-- {
		a := s.st.audit[i]
		if !c.who.admin() && a.user != c.who.name() {
			continue
		}
		if v := q["username"]; v != "" && v != a.user {
			continue
		}
		if v := q["operation"]; v != "" && v != a.op {
			continue
		}
		if v := q["resource_type"]; v != "" && v != a.typ {
			continue
		}
		if v := q["resource"]; v != "" && !(strings.HasPrefix(v, "~") && strings.Contains(a.resource, v[1:])) && v != a.resource {
			continue
		}
		if !window[0].IsZero() && (a.at.Before(window[0].Add(-time.Second)) || a.at.After(window[1].Add(time.Second))) {
			continue
		}
		out = append(out, map[string]any{"id": a.id, "username": a.user, "resource": a.resource,
			"resource_type": a.typ, "operation": a.op, "op_time": ts(a.at)})
	}
	return page(c, out), nil
}
