package harbor

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/registry"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/replication"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	"go.uber.org/zap"
)

// RegistrySpec is a registry endpoint replication pushes to or pulls from.
type RegistrySpec struct {
	Name string `json:"name,omitempty"`
	// Type is Harbor's adapter: harbor, docker-registry, docker-hub, ...
	Type     string `json:"type,omitempty"`
	URL      string `json:"url,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
}

// String never shows the password.
func (r RegistrySpec) String() string {
	pw := ""
	if r.Password != "" {
		pw = "--- REDACTED ---"
	}
	return fmt.Sprintf("harbor.RegistrySpec{Name: %q, Type: %q, URL: %q, Username: %q, Password: %q, Insecure: %t}",
		r.Name, r.Type, r.URL, r.Username, pw, r.Insecure)
}

// GoString makes %#v as safe as %v.
func (r RegistrySpec) GoString() string { return r.String() }

// validate returns every problem of r at once as a *ValidationError.
func (r RegistrySpec) validate() error {
	verr := ValidationError{Object: "harbor.RegistrySpec"}
	if r.Name == "" {
		verr.Add("registry.name", "", "required")
	}
	if r.Type == "" {
		verr.Add("registry.type", "", "required: Harbor's adapter, such as harbor, docker-registry or docker-hub")
	}
	switch u, err := url.Parse(r.URL); {
	case err != nil:
		verr.Add("registry.url", "", "cannot be parsed as a URL")
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		verr.Add("registry.url", redact(r.URL), "must be an http(s) URL")
	}
	if r.Password != "" && r.Username == "" {
		verr.Add("registry.username", "", "required with a password")
	}
	return verr.Err()
}

func (r RegistrySpec) model() *models.Registry {
	m := &models.Registry{Name: r.Name, Type: r.Type, URL: r.URL, Insecure: r.Insecure}
	if r.Username != "" {
		m.Credential = &models.RegistryCredential{Type: "basic", AccessKey: r.Username, AccessSecret: r.Password}
	}
	return m
}

// EnsureRegistry creates the registry endpoint or updates what differs
// from spec, and returns its id. Harbor checks that it can reach it.
// Harbor never shows a password back, so a changed Password alone is not
// seen; it is sent whenever the URL or user name changes. An endpoint of
// another Type is a *ValidationError: Harbor cannot change it (delete the
// endpoint first).
func (c *Client) EnsureRegistry(ctx context.Context, spec RegistrySpec) (int64, error) {
	if err := spec.validate(); err != nil {
		return 0, err
	}
	cur, err := c.findRegistry(ctx, spec.Name)
	if err != nil {
		return 0, err
	}
	if cur == nil {
		_, err := c.api.Registry.CreateRegistry(ctx, registry.NewCreateRegistryParams().WithRegistry(spec.model()))
		created := apiError("create registry "+spec.Name, err)
		if created != nil && !isKind(created, ErrConflict) {
			return 0, created
		}
		// Created, or another caller created it in the meantime (409):
		// either way it is there now.
		if cur, err = c.findRegistry(ctx, spec.Name); err != nil || cur == nil {
			return 0, fmt.Errorf("harbor: registry %s not found after creating it: %w", spec.Name, errors.Join(created, err))
		}
		if created == nil {
			return cur.ID, nil
		}
	}
	if cur.Type != spec.Type {
		return 0, &ValidationError{Object: "harbor.RegistrySpec", Problems: []FieldError{{Field: "registry.type", Value: spec.Type,
			Reason: fmt.Sprintf("registry %s is of type %s, which Harbor cannot change; delete it first", spec.Name, cur.Type)}}}
	}
	upd, changed := &models.RegistryUpdate{}, false
	if strings.TrimSuffix(cur.URL, "/") != strings.TrimSuffix(spec.URL, "/") {
		upd.URL, changed = &spec.URL, true
	}
	if cur.Insecure != spec.Insecure {
		upd.Insecure, changed = &spec.Insecure, true
	}
	curUser := ""
	if cur.Credential != nil {
		curUser = cur.Credential.AccessKey
	}
	if curUser != spec.Username || (upd.URL != nil && spec.Username != "") {
		// The credential goes whole: a new user with its password, or a
		// new URL with the password that goes with it there.
		upd.AccessKey, upd.AccessSecret, changed = &spec.Username, &spec.Password, true
		if spec.Username != "" {
			upd.CredentialType = ptr("basic")
		}
	}
	if !changed {
		return cur.ID, nil
	}
	_, err = c.api.Registry.UpdateRegistry(ctx, registry.NewUpdateRegistryParams().WithID(cur.ID).WithRegistry(upd))
	return cur.ID, apiError("update registry "+spec.Name, err)
}

func (c *Client) findRegistry(ctx context.Context, name string) (*models.Registry, error) {
	res, err := c.api.Registry.ListRegistries(ctx, registry.NewListRegistriesParams().WithQ(ptr("name="+name)))
	if err != nil {
		return nil, apiError("list registries", err)
	}
	for _, r := range res.Payload {
		if r != nil && r.Name == name {
			return r, nil
		}
	}
	return nil, nil
}

// DeleteRegistry deletes a registry endpoint by name; one that is gone is
// not an error. Harbor refuses while a policy uses it.
func (c *Client) DeleteRegistry(ctx context.Context, name string) error {
	cur, err := c.findRegistry(ctx, name)
	if err != nil || cur == nil {
		return err
	}
	_, err = c.api.Registry.DeleteRegistry(ctx, registry.NewDeleteRegistryParams().WithID(cur.ID))
	if e := apiError("delete registry "+name, err); e != nil && !isKind(e, ErrNotFound) {
		return e
	}
	return nil
}

// Direction of a replication policy.
type Direction string

// Push sends local images to the registry; Pull fetches from it.
const (
	Push Direction = "push"
	Pull Direction = "pull"
)

// ReplicationSpec is a replication policy.
type ReplicationSpec struct {
	Name      string    `json:"name,omitempty"`
	Direction Direction `json:"direction,omitempty"`
	Registry  string    `json:"registry,omitempty"` // the endpoint's name
	// Filters on what is replicated: repository names (library/**),
	// tags (v*), and the resource type (image, artifact).
	NameFilter     string `json:"nameFilter,omitempty"`
	TagFilter      string `json:"tagFilter,omitempty"`
	ResourceFilter string `json:"resourceFilter,omitempty"`
	// DestNamespace is where images land; empty keeps their project.
	DestNamespace string `json:"destNamespace,omitempty"`
	// Cron schedules the policy ("0 0 2 * * *", Harbor's six fields);
	// EventBased replicates on every push; neither is manual only.
	Cron       string `json:"cron,omitempty"`
	EventBased bool   `json:"eventBased,omitempty"`
	Override   bool   `json:"override,omitempty"`
	Disabled   bool   `json:"disabled,omitempty"`
	Deletion   bool   `json:"deletion,omitempty"` // replicate deletions too
}

// validate returns every problem of s at once as a *ValidationError.
func (s ReplicationSpec) validate() error {
	verr := ValidationError{Object: "harbor.ReplicationSpec"}
	if s.Name == "" {
		verr.Add("replication.name", "", "required")
	}
	if s.Direction != Push && s.Direction != Pull {
		verr.Add("replication.direction", string(s.Direction), "must be push or pull")
	}
	if s.Registry == "" {
		verr.Add("replication.registry", "", "required: the name of a registry endpoint")
	}
	if s.Cron != "" && s.EventBased {
		verr.Add("replication.cron", s.Cron, "a policy is scheduled or event based, not both")
	} else {
		validCron(&verr, "replication.cron", s.Cron)
	}
	if s.EventBased && s.Direction == Pull {
		verr.Add("replication.eventBased", "true", "only push policies can be event based")
	}
	return verr.Err()
}

// model is s as Harbor's policy; s is valid.
func (s ReplicationSpec) model(registryID int64) *models.ReplicationPolicy {
	p := &models.ReplicationPolicy{Name: s.Name, DestNamespace: s.DestNamespace, Override: s.Override,
		Enabled: !s.Disabled, Deletion: s.Deletion, ReplicateDeletion: s.Deletion}
	reg := &models.Registry{ID: registryID}
	if s.Direction == Push {
		p.DestRegistry = reg
	} else {
		p.SrcRegistry = reg
	}
	if s.NameFilter != "" {
		p.Filters = append(p.Filters, &models.ReplicationFilter{Type: "name", Value: s.NameFilter})
	}
	if s.TagFilter != "" {
		p.Filters = append(p.Filters, &models.ReplicationFilter{Type: "tag", Value: s.TagFilter, Decoration: "matches"})
	}
	if s.ResourceFilter != "" {
		p.Filters = append(p.Filters, &models.ReplicationFilter{Type: "resource", Value: s.ResourceFilter})
	}
	switch {
	case s.Cron != "":
		p.Trigger = &models.ReplicationTrigger{Type: "scheduled", TriggerSettings: &models.ReplicationTriggerSettings{Cron: s.Cron}}
	case s.EventBased:
		p.Trigger = &models.ReplicationTrigger{Type: "event_based"}
	default:
		p.Trigger = &models.ReplicationTrigger{Type: "manual"}
	}
	return p
}

// EnsureReplication creates the policy or updates it to match, and
// returns its id.
func (c *Client) EnsureReplication(ctx context.Context, spec ReplicationSpec) (int64, error) {
	if err := spec.validate(); err != nil {
		return 0, err
	}
	reg, err := c.findRegistry(ctx, spec.Registry)
	if err != nil {
		return 0, err
	}
	if reg == nil {
		return 0, &ValidationError{Object: "harbor.ReplicationSpec", Problems: []FieldError{
			{Field: "replication.registry", Value: spec.Registry, Reason: "no such registry endpoint"}}}
	}
	m := spec.model(reg.ID)
	cur, err := c.findPolicy(ctx, spec.Name)
	if err != nil {
		return 0, err
	}
	if cur == nil {
		_, err := c.api.Replication.CreateReplicationPolicy(ctx, replication.NewCreateReplicationPolicyParams().WithPolicy(m))
		created := apiError("create replication policy "+spec.Name, err)
		if created != nil && !isKind(created, ErrConflict) {
			return 0, created
		}
		// Created, or another caller created it in the meantime (409):
		// either way it is there now, and the latter is updated below.
		if cur, err = c.findPolicy(ctx, spec.Name); err != nil || cur == nil {
			return 0, fmt.Errorf("harbor: policy %s not found after creating it: %w", spec.Name, errors.Join(created, err))
		}
		if created == nil {
			return cur.ID, nil
		}
	}
	m.ID = cur.ID
	_, err = c.api.Replication.UpdateReplicationPolicy(ctx, replication.NewUpdateReplicationPolicyParams().WithID(cur.ID).WithPolicy(m))
	return cur.ID, apiError("update replication policy "+spec.Name, err)
}

func (c *Client) findPolicy(ctx context.Context, name string) (*models.ReplicationPolicy, error) {
	res, err := c.api.Replication.ListReplicationPolicies(ctx, replication.NewListReplicationPoliciesParams().WithQ(ptr("name="+name)))
	if err != nil {
		return nil, apiError("list replication policies", err)
	}
	for _, p := range res.Payload {
		if p != nil && p.Name == name {
			return p, nil
		}
	}
	return nil, nil
}

// DeleteReplication deletes a policy by name; one that is gone is not an
// error.
func (c *Client) DeleteReplication(ctx context.Context, name string) error {
	cur, err := c.findPolicy(ctx, name)
	if err != nil || cur == nil {
		return err
	}
	_, err = c.api.Replication.DeleteReplicationPolicy(ctx, replication.NewDeleteReplicationPolicyParams().WithID(cur.ID))
	if e := apiError("delete replication policy "+name, err); e != nil && !isKind(e, ErrNotFound) {
		return e
	}
	return nil
}

// Execution is one run of a replication policy.
type Execution struct {
	ID         int64
	PolicyID   int64
	Status     string // InProgress, Succeed, Failed, Stopped
	StatusText string
	// Total tasks (a push policy has one per repository), and how many
	// succeeded, failed, were stopped or are in progress.
	Total      int64
	Succeed    int64
	Failed     int64
	Stopped    int64
	InProgress int64
	Start, End time.Time
}

// Done reports whether the execution has finished.
func (e Execution) Done() bool {
	return e.Status != "" && e.Status != "InProgress" && e.Status != "Pending"
}

// state is e as progress sees it: tasks ended of all of them.
func (e Execution) state() state {
	st := state{status: e.Status, ended: e.Done(), step: int(e.Succeed + e.Failed + e.Stopped), steps: int(e.Total)}
	if st.ended && e.Status != "Succeed" {
		msg := fmt.Sprintf("%d of %d tasks failed, %d stopped", e.Failed, e.Total, e.Stopped)
		if e.StatusText != "" {
			msg = e.StatusText + "; " + msg
		}
		st.failure = fmt.Errorf("harbor: replication execution %d ended %s: %s", e.ID, e.Status, msg)
	}
	return st
}

// Replicate runs a replication policy now and waits until the run ends.
// With WithSink it reports the execution's id (PhaseStarted) before it
// waits, then the tasks ended of all of them (PhaseRunning); with
// WithExecution it waits for that execution of the policy, started by an
// earlier call, instead of starting another. It returns the execution,
// and an error when it ended other than Succeed, when the policy or
// execution is not found, or when ctx ended first (the execution goes on
// in Harbor: resume it).
func (c *Client) Replicate(ctx context.Context, policy string, opts ...RunOption) (Execution, error) {
	r := newRun(OpReplicate, policy, opts)
	e, err := c.replicate(ctx, r, policy)
	return e, r.finish(err)
}

func (c *Client) replicate(ctx context.Context, r *run, policy string) (Execution, error) {
	id, err := r.resumeID()
	if err != nil {
		return Execution{}, err
	}
	var first *Execution // read already, when resuming
	if id == 0 {
		if id, err = c.StartReplication(ctx, policy); err != nil {
			return Execution{}, err
		}
		r.started(strconv.FormatInt(id, 10), false)
	} else {
		r.handle = r.resume
		cur, err := c.findPolicy(ctx, policy)
		if err != nil {
			return Execution{}, err
		}
		if cur == nil {
			return Execution{}, &APIError{Op: "replicate " + policy, Status: 404, Kind: ErrNotFound, Message: "no such policy"}
		}
		e, err := c.Execution(ctx, id)
		if err != nil {
			return Execution{}, err
		}
		if e.PolicyID != cur.ID {
			return Execution{}, &ValidationError{Object: OpReplicate, Problems: []FieldError{{Field: "execution", Value: r.resume,
				Reason: fmt.Sprintf("is an execution of policy %d, not of %s (%d)", e.PolicyID, policy, cur.ID)}}}
		}
		first = &e
		r.started(r.resume, true)
	}
	var last Execution
	err = c.follow(ctx, r, func(ctx context.Context) (state, error) {
		if first != nil {
			last, first = *first, nil
			return last.state(), nil
		}
		e, err := c.Execution(ctx, id)
		if err != nil {
			return state{}, err
		}
		last = e
		return e.state(), nil
	})
	return last, err
}

// StartReplication runs a policy now and returns the execution's id.
func (c *Client) StartReplication(ctx context.Context, policy string) (int64, error) {
	cur, err := c.findPolicy(ctx, policy)
	if err != nil {
		return 0, err
	}
	if cur == nil {
		return 0, &APIError{Op: "start replication " + policy, Status: 404, Kind: ErrNotFound, Message: "no such policy"}
	}
	since := time.Now().Add(-time.Second)
	started, err := c.api.Replication.StartReplication(ctx, replication.NewStartReplicationParams().
		WithExecution(&models.StartReplicationExecution{PolicyID: cur.ID}))
	if err != nil {
		return 0, apiError("start replication "+policy, err)
	}
	// Harbor answers 201 with the execution in Location
	// (/api/v2.0/replication/executions/<id>).
	if id, ok := idFromLocation(started.Location); ok {
		return id, nil
	}
	// Without it the newest execution of the policy is taken for ours,
	// which a concurrent start could make wrong.
	c.log.Warn("harbor replication started without a Location; taking the newest execution",
		zap.String("policy", policy), zap.String("location", started.Location))
	res, err := c.api.Replication.ListReplicationExecutions(ctx, replication.NewListReplicationExecutionsParams().
		WithPolicyID(&cur.ID).WithSort(ptr("-start_time")).WithPageSize(ptr(int64(1))))
	if err != nil {
		return 0, apiError("list executions of "+policy, err)
	}
	if len(res.Payload) == 0 || time.Time(res.Payload[0].StartTime).Before(since.Add(-time.Minute)) {
		return 0, fmt.Errorf("harbor: the execution of %s started but cannot be found", policy)
	}
	return res.Payload[0].ID, nil
}

// idFromLocation reads the id that ends a Location header such as
// /api/v2.0/replication/executions/12.
func idFromLocation(loc string) (int64, bool) {
	if u, err := url.Parse(loc); err == nil {
		loc = u.Path
	}
	i := strings.LastIndexByte(loc, '/')
	if i < 0 {
		return 0, false
	}
	id, err := strconv.ParseInt(loc[i+1:], 10, 64)
	return id, err == nil && id > 0
}

// Execution reads an execution.
func (c *Client) Execution(ctx context.Context, id int64) (Execution, error) {
	res, err := c.api.Replication.GetReplicationExecution(ctx, replication.NewGetReplicationExecutionParams().WithID(id))
	if err != nil {
		return Execution{}, apiError(fmt.Sprintf("get execution %d", id), err)
	}
	e := res.Payload
	return Execution{ID: e.ID, PolicyID: e.PolicyID, Status: e.Status, StatusText: e.StatusText, Total: e.Total,
		Succeed: e.Succeed, Failed: e.Failed, Stopped: e.Stopped, InProgress: e.InProgress,
		Start: time.Time(e.StartTime), End: time.Time(e.EndTime)}, nil
}
