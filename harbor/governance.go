package harbor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/auditlog"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/gc"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/immutable"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/project"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/retention"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	"go.uber.org/zap"
)

// ImmutableRule makes tags matching Tags in repositories matching
// Repositories (doublestar patterns, ** for all) impossible to overwrite
// or delete.
type ImmutableRule struct {
	ID           int64
	Repositories string
	Tags         string
	Disabled     bool
}

// validate returns every problem of r at once as a *ValidationError.
func (r ImmutableRule) validate() error {
	verr := ValidationError{Object: "harbor.ImmutableRule"}
	if r.Repositories == "" {
		verr.Add("rule.repositories", "", "required: a doublestar pattern (** for all)")
	}
	if r.Tags == "" {
		verr.Add("rule.tags", "", "required: a doublestar pattern (** for all)")
	}
	return verr.Err()
}

func (r ImmutableRule) model() *models.ImmutableRule {
	return &models.ImmutableRule{Action: "immutable", Template: "immutable_template", Disabled: r.Disabled,
		TagSelectors: []*models.ImmutableSelector{{Kind: "doublestar", Decoration: "matches", Pattern: r.Tags}},
		ScopeSelectors: map[string][]models.ImmutableSelector{
			"repository": {{Kind: "doublestar", Decoration: "repoMatches", Pattern: r.Repositories}}}}
}

// ImmutableRules lists a project's immutable-tag rules.
func (c *Client) ImmutableRules(ctx context.Context, proj string) ([]ImmutableRule, error) {
	res, err := c.api.Immutable.ListImmuRules(ctx, immutable.NewListImmuRulesParams().WithProjectNameOrID(proj).
		WithXIsResourceName(ptr(true)).WithPageSize(ptr(int64(100))))
	if err != nil {
		return nil, apiError("list immutable rules of "+proj, err)
	}
	var out []ImmutableRule
	for _, m := range res.Payload {
		if m == nil {
			continue
		}
		r := ImmutableRule{ID: m.ID, Disabled: m.Disabled}
		if len(m.TagSelectors) > 0 && m.TagSelectors[0] != nil {
			r.Tags = m.TagSelectors[0].Pattern
		}
		if sel := m.ScopeSelectors["repository"]; len(sel) > 0 {
			r.Repositories = sel[0].Pattern
		}
		out = append(out, r)
	}
	return out, nil
}

// EnsureImmutableRule adds the rule unless one with the same patterns
// exists (then it only sets Disabled), and returns its id.
func (c *Client) EnsureImmutableRule(ctx context.Context, proj string, r ImmutableRule) (int64, error) {
	if err := r.validate(); err != nil {
		return 0, err
	}
	have, err := c.ImmutableRules(ctx, proj)
	if err != nil {
		return 0, err
	}
	for _, h := range have {
		if h.Repositories == r.Repositories && h.Tags == r.Tags {
			if h.Disabled != r.Disabled {
				m := r.model()
				m.ID = h.ID
				_, err := c.api.Immutable.UpdateImmuRule(ctx, immutable.NewUpdateImmuRuleParams().WithProjectNameOrID(proj).
					WithXIsResourceName(ptr(true)).WithImmutableRuleID(h.ID).WithImmutableRule(m))
				return h.ID, apiError("update immutable rule of "+proj, err)
			}
			return h.ID, nil
		}
	}
	if _, err := c.api.Immutable.CreateImmuRule(ctx, immutable.NewCreateImmuRuleParams().WithProjectNameOrID(proj).
		WithXIsResourceName(ptr(true)).WithImmutableRule(r.model())); err != nil {
		return 0, apiError("create immutable rule in "+proj, err)
	}
	have, err = c.ImmutableRules(ctx, proj)
	if err != nil {
		return 0, err
	}
	for _, h := range have {
		if h.Repositories == r.Repositories && h.Tags == r.Tags {
			return h.ID, nil
		}
	}
	return 0, fmt.Errorf("harbor: immutable rule %s:%s not found after creating it", r.Repositories, r.Tags)
}

// DeleteImmutableRule deletes a rule; one that is gone is not an error.
func (c *Client) DeleteImmutableRule(ctx context.Context, proj string, id int64) error {
	_, err := c.api.Immutable.DeleteImmuRule(ctx, immutable.NewDeleteImmuRuleParams().WithProjectNameOrID(proj).
		WithXIsResourceName(ptr(true)).WithImmutableRuleID(id))
	if e := apiError(fmt.Sprintf("delete immutable rule %d of %s", id, proj), err); e != nil && !isKind(e, ErrNotFound) {
		return e
	}
	return nil
}

// RetentionRule keeps, in repositories matching Repositories, the tags
// matching Tags that are among the LatestPushed most recently pushed, or
// were pulled within PulledWithinDays (set one of the two).
type RetentionRule struct {
	Repositories     string
	Tags             string
	LatestPushed     int
	PulledWithinDays int
}

// validate adds every problem of r to verr, under field (rules[i]).
func (r RetentionRule) validate(verr *ValidationError, field string) {
	if r.LatestPushed < 0 {
		verr.Add(field+".latestPushed", strconv.Itoa(r.LatestPushed), "must not be negative")
	}
	if r.PulledWithinDays < 0 {
		verr.Add(field+".pulledWithinDays", strconv.Itoa(r.PulledWithinDays), "must not be negative")
	}
	switch {
	case r.LatestPushed == 0 && r.PulledWithinDays == 0:
		verr.Add(field+".latestPushed", "0", "set latestPushed or pulledWithinDays")
	case r.LatestPushed > 0 && r.PulledWithinDays > 0:
		verr.Add(field+".pulledWithinDays", strconv.Itoa(r.PulledWithinDays), "set latestPushed or pulledWithinDays, not both")
	}
	if r.Repositories == "" {
		verr.Add(field+".repositories", "", "required: a doublestar pattern (** for all)")
	}
	if r.Tags == "" {
		verr.Add(field+".tags", "", "required: a doublestar pattern (** for all)")
	}
}

// model is r as Harbor's rule; r is valid.
func (r RetentionRule) model(priority int64) *models.RetentionRule {
	m := &models.RetentionRule{Action: "retain", Priority: priority,
		TagSelectors: []*models.RetentionSelector{{Kind: "doublestar", Decoration: "matches", Pattern: r.Tags}},
		ScopeSelectors: map[string][]models.RetentionSelector{
			"repository": {{Kind: "doublestar", Decoration: "repoMatches", Pattern: r.Repositories}}}}
	if r.LatestPushed > 0 {
		m.Template, m.Params = "latestPushedK", map[string]interface{}{"latestPushedK": r.LatestPushed}
	} else {
		m.Template, m.Params = "nDaysSinceLastPull", map[string]interface{}{"nDaysSinceLastPull": r.PulledWithinDays}
	}
	return m
}

// validCron adds a problem to verr unless cron is empty or has Harbor's
// six fields.
func validCron(verr *ValidationError, field, cron string) {
	if n := len(strings.Fields(cron)); cron != "" && n != 6 {
		verr.Add(field, cron, "Harbor's cron has 6 fields (seconds first), not %d", n)
	}
}

// SetRetention gives a project its retention policy (replacing its rules),
// run on Cron (Harbor's six fields) or by hand when Cron is empty, and
// returns the policy id. A wrong cron or rule is a *ValidationError naming
// every one ("cron", "rules[1].tags").
func (c *Client) SetRetention(ctx context.Context, proj string, cron string, rules ...RetentionRule) (int64, error) {
	verr := ValidationError{Object: "retention policy of " + proj}
	validCron(&verr, "cron", cron)
	for i, r := range rules {
		r.validate(&verr, fmt.Sprintf("rules[%d]", i))
	}
	if err := verr.Err(); err != nil {
		return 0, err
	}
	p, err := c.api.Project.GetProject(ctx, project.NewGetProjectParams().WithProjectNameOrID(proj).WithXIsResourceName(ptr(true)))
	if err != nil {
		return 0, apiError("get project "+proj, err)
	}
	pol := &models.RetentionPolicy{Algorithm: "or", Scope: &models.RetentionPolicyScope{Level: "project", Ref: int64(p.Payload.ProjectID)},
		Trigger: &models.RetentionRuleTrigger{Kind: "Schedule", Settings: map[string]interface{}{"cron": cron}}}
	for i, r := range rules {
		pol.Rules = append(pol.Rules, r.model(int64(i+1)))
	}
	if id := retentionID(p.Payload); id > 0 {
		pol.ID = id
		_, err := c.api.Retention.UpdateRetention(ctx, retention.NewUpdateRetentionParams().WithID(id).WithPolicy(pol))
		return id, apiError("update retention of "+proj, err)
	}
	if _, err := c.api.Retention.CreateRetention(ctx, retention.NewCreateRetentionParams().WithPolicy(pol)); err != nil {
		return 0, apiError("create retention of "+proj, err)
	}
	p, err = c.api.Project.GetProject(ctx, project.NewGetProjectParams().WithProjectNameOrID(proj).WithXIsResourceName(ptr(true)))
	if err != nil {
		return 0, apiError("get project "+proj, err)
	}
	return retentionID(p.Payload), nil
}

func retentionID(p *models.Project) int64 {
	if p.Metadata == nil || p.Metadata.RetentionID == nil {
		return 0
	}
	id, _ := strconv.ParseInt(*p.Metadata.RetentionID, 10, 64)
	return id
}

// RunRetention runs a retention policy now (dryRun: only report what it
// would delete) and returns the execution id.
func (c *Client) RunRetention(ctx context.Context, policyID int64, dryRun bool) (int64, error) {
	_, created, err := c.api.Retention.TriggerRetentionExecution(ctx, retention.NewTriggerRetentionExecutionParams().
		WithID(policyID).WithBody(retention.TriggerRetentionExecutionBody{DryRun: dryRun}))
	if err != nil {
		return 0, apiError(fmt.Sprintf("run retention %d", policyID), err)
	}
	// Harbor answers 201 with the execution in Location
	// (/api/v2.0/retentions/<policy>/executions/<id>).
	if created != nil {
		if id, ok := idFromLocation(created.Location); ok {
			return id, nil
		}
	}
	// Without it (a 200) the newest execution is taken for ours, which a
	// concurrent run could make wrong.
	c.log.Warn("harbor retention run without a Location; taking the newest execution", zap.Int64("policy", policyID))
	res, err := c.api.Retention.ListRetentionExecutions(ctx, retention.NewListRetentionExecutionsParams().WithID(policyID).WithPageSize(ptr(int64(1))))
	if err != nil {
		return 0, apiError(fmt.Sprintf("list executions of retention %d", policyID), err)
	}
	if len(res.Payload) == 0 {
		return 0, fmt.Errorf("harbor: the retention run of policy %d cannot be found", policyID)
	}
	return res.Payload[0].ID, nil
}

// GCRun is one garbage collection.
type GCRun struct {
	ID             int64
	Status         string // Pending, Running, Success, Error, Stopped
	Kind           string // MANUAL or SCHEDULE
	DeleteUntagged bool
	Created        time.Time
}

func gcRunOf(h *models.GCHistory) GCRun {
	run := GCRun{ID: h.ID, Status: h.JobStatus, Kind: h.JobKind, Created: time.Time(h.CreationTime)}
	var params map[string]any
	if json.Unmarshal([]byte(h.JobParameters), &params) == nil {
		run.DeleteUntagged, _ = params["delete_untagged"].(bool)
	}
	return run
}

func gcSchedule(typ, cron string, deleteUntagged bool) *models.Schedule {
	return &models.Schedule{Schedule: &models.ScheduleObj{Type: typ, Cron: cron},
		Parameters: map[string]interface{}{"delete_untagged": deleteUntagged, "workers": 1}}
}

// SetGCSchedule schedules garbage collection on cron (Harbor's six
// fields); an empty cron removes the schedule.
func (c *Client) SetGCSchedule(ctx context.Context, cron string, deleteUntagged bool) error {
	verr := ValidationError{Object: "GC schedule"}
	validCron(&verr, "cron", cron)
	if err := verr.Err(); err != nil {
		return err
	}
	typ := "Custom"
	if cron == "" {
		typ = "None"
	}
	cur, err := c.api.GC.GetGCSchedule(ctx, gc.NewGetGCScheduleParams())
	if err != nil {
		return apiError("get GC schedule", err)
	}
	if cur.Payload == nil || cur.Payload.Schedule == nil || cur.Payload.Schedule.Type == "" || cur.Payload.Schedule.Type == "None" {
		if typ == "None" {
			return nil
		}
		_, err = c.api.GC.CreateGCSchedule(ctx, gc.NewCreateGCScheduleParams().WithSchedule(gcSchedule(typ, cron, deleteUntagged)))
		return apiError("create GC schedule", err)
	}
	_, err = c.api.GC.UpdateGCSchedule(ctx, gc.NewUpdateGCScheduleParams().WithSchedule(gcSchedule(typ, cron, deleteUntagged)))
	return apiError("update GC schedule", err)
}

// RunGC runs a garbage collection now and waits until it ends. With
// WithSink it reports the run's id (PhaseStarted) before it waits; with
// WithExecution it waits for that run, started by an earlier call,
// instead of starting another. It returns the run, and an error when it
// ended other than Success or when ctx ended first (the run goes on in
// Harbor: resume it).
func (c *Client) RunGC(ctx context.Context, deleteUntagged bool, opts ...RunOption) (GCRun, error) {
	r := newRun(OpGC, "", opts)
	run, err := c.runGC(ctx, r, deleteUntagged)
	return run, r.finish(err)
}

func (c *Client) runGC(ctx context.Context, r *run, deleteUntagged bool) (GCRun, error) {
	id, err := r.resumeID()
	if err != nil {
		return GCRun{}, err
	}
	if id == 0 {
		if id, err = c.startGC(ctx, deleteUntagged); err != nil {
			return GCRun{}, err
		}
		r.started(strconv.FormatInt(id, 10), false)
	} else {
		r.started(r.resume, true)
	}
	var last GCRun
	err = c.follow(ctx, r, func(ctx context.Context) (state, error) {
		res, err := c.api.GC.GetGC(ctx, gc.NewGetGCParams().WithGCID(id))
		if err != nil {
			return state{}, apiError(fmt.Sprintf("get GC %d", id), err)
		}
		last = gcRunOf(res.Payload)
		return last.state(), nil
	})
	return last, err
}

// startGC starts a manual garbage collection and returns its id.
func (c *Client) startGC(ctx context.Context, deleteUntagged bool) (int64, error) {
	res, err := c.api.GC.CreateGCSchedule(ctx, gc.NewCreateGCScheduleParams().WithSchedule(gcSchedule("Manual", "", deleteUntagged)))
	if err != nil {
		return 0, apiError("run GC", err)
	}
	// Harbor answers 201 with the run in Location (/api/v2.0/system/gc/<id>).
	if id, ok := idFromLocation(res.Location); ok {
		return id, nil
	}
	// Without it the newest manual run is taken for ours, which a
	// concurrent run could make wrong.
	c.log.Warn("harbor GC started without a Location; taking the newest run", zap.String("location", res.Location))
	runs, err := c.GCHistory(ctx, 10)
	if err != nil {
		return 0, err
	}
	for _, run := range runs {
		if run.Kind == "MANUAL" {
			return run.ID, nil
		}
	}
	return 0, fmt.Errorf("harbor: the GC run started but cannot be found")
}

// state is g as progress sees it.
func (g GCRun) state() state {
	st := state{status: g.Status}
	switch g.Status {
	case "Success":
		st.ended = true
	case "Error", "Stopped":
		st.ended = true
		st.failure = fmt.Errorf("harbor: GC run %d ended %s", g.ID, g.Status)
	}
	return st
}

// maxPage is the largest page Harbor serves.
const maxPage = 100

// pageSize is limit within (0, maxPage], maxPage when not positive.
func pageSize(limit int64) int64 {
	if limit <= 0 || limit > maxPage {
		return maxPage
	}
	return limit
}

// GCHistory lists the latest garbage collections, newest first: limit of
// them, at most 100 (Harbor's largest page), 100 when not positive.
func (c *Client) GCHistory(ctx context.Context, limit int64) ([]GCRun, error) {
	limit = pageSize(limit)
	res, err := c.api.GC.GetGCHistory(ctx, gc.NewGetGCHistoryParams().WithSort(ptr("-creation_time")).WithPageSize(&limit))
	if err != nil {
		return nil, apiError("GC history", err)
	}
	var out []GCRun
	for _, h := range res.Payload {
		if h == nil {
			continue
		}
		out = append(out, gcRunOf(h))
	}
	return out, nil
}

// AuditEntry is one audit log record.
type AuditEntry struct {
	ID           int64
	Username     string
	Resource     string
	ResourceType string
	Operation    string // create, delete, pull, push, ...
	Time         time.Time
}

// AuditQuery filters audit logs; zero fields do not filter.
type AuditQuery struct {
	Username     string
	Resource     string // fuzzy
	ResourceType string
	Operation    string
	Since, Until time.Time
	Limit        int64 // at most 100 (Harbor's largest page); 100 when zero
}

func (q AuditQuery) q() string {
	var parts []string
	for _, kv := range [][2]string{{"username", q.Username}, {"resource_type", q.ResourceType}, {"operation", q.Operation}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if q.Resource != "" {
		parts = append(parts, "resource=~"+q.Resource)
	}
	if !q.Since.IsZero() || !q.Until.IsZero() {
		until := q.Until
		if until.IsZero() {
			until = time.Now().Add(time.Minute)
		}
		const f = "2006-01-02 15:04:05"
		parts = append(parts, fmt.Sprintf("op_time=[%s~%s]", q.Since.UTC().Format(f), until.UTC().Format(f)))
	}
	return strings.Join(parts, ",")
}

// AuditLogs queries the audit log, newest first.
func (c *Client) AuditLogs(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	limit := pageSize(q.Limit)
	p := auditlog.NewListAuditLogsParams().WithSort(ptr("-op_time")).WithPageSize(&limit)
	if s := q.q(); s != "" {
		p = p.WithQ(&s)
	}
	res, err := c.api.Auditlog.ListAuditLogs(ctx, p)
	if err != nil {
		return nil, apiError("audit logs", err)
	}
	var out []AuditEntry
	for _, a := range res.Payload {
		if a != nil {
			out = append(out, AuditEntry{ID: a.ID, Username: a.Username, Resource: a.Resource, ResourceType: a.ResourceType,
				Operation: a.Operation, Time: time.Time(a.OpTime)})
		}
	}
	return out, nil
}
