package harbor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/project"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/robot"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefoundry/kubefoundry"
)

// RobotSpec is a project-scoped robot account. Clusters get Pull only:
// least privilege.
type RobotSpec struct {
	Project string `json:"project,omitempty"`
	// Name is the robot's short name; Harbor calls it
	// <prefix><project>+<name>, robot$ being the default prefix.
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Pull        bool   `json:"pull,omitempty"`
	Push        bool   `json:"push,omitempty"`
	// ExpiresIn is the lifetime, in whole days; 0 never expires.
	ExpiresIn time.Duration `json:"expiresIn,omitempty"`
	// Disabled keeps the robot but refuses its logins.
	Disabled bool `json:"disabled,omitempty"`
	// ClusterID is the cluster the robot belongs to, recorded at the end
	// of its description in Harbor (see OwnerLabel), by
	// kubefoundry.ClusterID's rule. A robot of another cluster is refused
	// (ErrAlreadyExists); empty leaves the robot's owner as it is.
	ClusterID string `json:"clusterID,omitempty"`
}

// Robot is a robot account. Secret is only known when it was just created
// or refreshed.
type Robot struct {
	ID        int64
	Name      string // the full name to log in with, robot$<project>+<name> by default
	Secret    string
	ExpiresAt time.Time // zero: never
	Disabled  bool
	Pull      bool
	Push      bool
	ClusterID string // the cluster that owns it; empty for none
}

// String never shows the secret.
func (r Robot) String() string {
	return fmt.Sprintf("harbor.Robot{ID: %d, Name: %q, ExpiresAt: %s, Disabled: %t, Pull: %t, Push: %t, ClusterID: %q}",
		r.ID, r.Name, r.ExpiresAt.Format(time.RFC3339), r.Disabled, r.Pull, r.Push, r.ClusterID)
}

// GoString makes %#v as safe as %v.
func (r Robot) GoString() string { return r.String() }

var robotNameRe = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// validate returns every problem of s at once as a *ValidationError.
func (s RobotSpec) validate() error {
	verr := ValidationError{Object: "harbor.RobotSpec"}
	if !projectNameRe.MatchString(s.Project) {
		verr.Add("robot.project", s.Project, "is not a project name")
	}
	if !robotNameRe.MatchString(s.Name) || len(s.Name) > 255 {
		verr.Add("robot.name", s.Name, "must be lower-case letters and digits, with . _ - between them")
	}
	if !s.Pull && !s.Push {
		verr.Add("robot.pull", "false", "a robot needs pull or push")
	}
	if s.ExpiresIn < 0 || s.ExpiresIn%(24*time.Hour) != 0 {
		verr.Add("robot.expiresIn", s.ExpiresIn.String(), "must be zero or whole days")
	}
	if s.ClusterID != "" {
		verr.Merge("robot", kubefoundry.ClusterID(s.ClusterID).Validate())
	}
	return verr.Err()
}

func (s RobotSpec) duration() int64 {
	if s.ExpiresIn == 0 {
		return -1
	}
	return int64(s.ExpiresIn / (24 * time.Hour))
}

func (s RobotSpec) permissions() []*models.RobotPermission {
	var access []*models.Access
	if s.Pull {
		access = append(access, &models.Access{Resource: "repository", Action: "pull"})
	}
	if s.Push {
		access = append(access, &models.Access{Resource: "repository", Action: "push"})
	}
	return []*models.RobotPermission{{Kind: "project", Namespace: s.Project, Access: access}}
}

// FullName is how Harbor names a project robot under the default
// robot_name_prefix, robot$.
func (s RobotSpec) FullName() string { return "robot$" + s.Project + "+" + s.Name }

// suffix is the part of a project robot's name that no robot_name_prefix
// changes.
func (s RobotSpec) suffix() string { return s.Project + "+" + s.Name }

// ExpiredError is EnsureRobot's answer for a robot that exists but has
// expired: Harbor refuses its logins. Delete it (DeleteRobot with
// Robot.ID) and ensure it again for a new one.
type ExpiredError struct{ Robot *Robot }

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("harbor: robot %s (id %d) expired at %s; delete it to create it again",
		e.Robot.Name, e.Robot.ID, e.Robot.ExpiresAt.UTC().Format(time.RFC3339))
}

// EnsureRobot creates the robot, or updates an existing one's permissions,
// lifetime and description to match. The returned Secret is set only when
// the robot was created; use RefreshRobotSecret for an existing one. An
// existing robot is found by its project and <project>+<name>, whatever
// Harbor's robot_name_prefix; one that has expired is an *ExpiredError.
func (c *Client) EnsureRobot(ctx context.Context, spec RobotSpec) (*Robot, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	cur, err := c.findRobot(ctx, spec)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		res, err := c.api.Robot.CreateRobot(ctx, robot.NewCreateRobotParams().WithRobot(&models.RobotCreate{
			Name: spec.Name, Description: robotDescription(spec.Description, spec.ClusterID), Level: "project", Duration: spec.duration(),
			Disable: spec.Disabled, Permissions: spec.permissions()}))
		if err == nil {
			r := &Robot{ID: res.Payload.ID, Name: res.Payload.Name, Secret: res.Payload.Secret, Pull: spec.Pull, Push: spec.Push,
				Disabled: spec.Disabled, ClusterID: spec.ClusterID}
			if res.Payload.ExpiresAt > 0 {
				r.ExpiresAt = time.Unix(res.Payload.ExpiresAt, 0)
			}
			return r, nil
		}
		if e := apiError("create robot "+spec.FullName(), err); !isKind(e, ErrConflict) {
			return nil, e
		}
		// Another caller created it in the meantime: ensure that one.
		if cur, err = c.findRobot(ctx, spec); err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, fmt.Errorf("harbor: robot %s: Harbor says it exists but it cannot be found", spec.FullName())
		}
	}
	have := toRobot(cur)
	owner := spec.ClusterID
	switch {
	case owner == "":
		owner = have.ClusterID
	case have.ClusterID != "":
		if err := ownedElsewhere("robot", have.Name, have.ClusterID, owner); err != nil {
			return nil, err
		}
	}
	if !have.ExpiresAt.IsZero() && !time.Now().Before(have.ExpiresAt) {
		return nil, &ExpiredError{Robot: have}
	}
	desc := robotDescription(spec.Description, owner)
	if have.Pull != spec.Pull || have.Push != spec.Push || cur.Description != desc || cur.Disable != spec.Disabled ||
		cur.Duration == nil || *cur.Duration != spec.duration() {
		upd := *cur
		upd.Secret = ""
		upd.Description = desc
		upd.Disable = spec.Disabled
		upd.Duration = ptr(spec.duration())
		upd.Permissions = spec.permissions()
		if _, err := c.api.Robot.UpdateRobot(ctx, robot.NewUpdateRobotParams().WithRobotID(cur.ID).WithRobot(&upd)); err != nil {
			return nil, apiError("update robot "+spec.FullName(), err)
		}
		if cur, err = c.findRobot(ctx, spec); err != nil || cur == nil {
			return nil, fmt.Errorf("harbor: robot %s went away while updating it: %w", spec.FullName(), err)
		}
		have = toRobot(cur)
	}
	return have, nil
}

func toRobot(m *models.Robot) *Robot {
	r := &Robot{ID: m.ID, Name: m.Name, Disabled: m.Disable, ClusterID: robotOwner(m.Description)}
	if m.ExpiresAt > 0 {
		r.ExpiresAt = time.Unix(m.ExpiresAt, 0)
	}
	for _, p := range m.Permissions {
		for _, a := range p.Access {
			if a.Resource == "repository" && a.Action == "pull" {
				r.Pull = true
			}
			if a.Resource == "repository" && a.Action == "push" {
				r.Push = true
			}
		}
	}
	return r
}

func (c *Client) findRobot(ctx context.Context, spec RobotSpec) (*models.Robot, error) {
	p, err := c.api.Project.GetProject(ctx, project.NewGetProjectParams().WithProjectNameOrID(spec.Project).WithXIsResourceName(ptr(true)))
	if err != nil {
		return nil, apiError("get project "+spec.Project, err)
	}
	robots, err := c.projectRobots(ctx, spec.Project, int64(p.Payload.ProjectID))
	if err != nil {
		return nil, err
	}
	for _, r := range robots {
		// Harbor lists names under the robot_name_prefix in force, so a
		// prefix changed since the robot was made is no matter: its
		// <project>+<name> and its project are.
		if r.Level == "project" && strings.HasSuffix(r.Name, spec.suffix()) && inProject(r, spec.Project) {
			return r, nil
		}
	}
	return nil, nil
}

// inProject reports whether a project robot's permissions are for project;
// a robot listed without permissions is taken on its name and the list's
// project filter.
func inProject(r *models.Robot, project string) bool {
	for _, p := range r.Permissions {
		if p != nil && p.Kind == "project" && p.Namespace != project {
			return false
		}
	}
	return true
}

// RefreshRobotSecret gives a robot a new secret: secret when not empty
// (Harbor requires 8-128 characters with upper and lower case and a
// digit), else one Harbor generates. It returns the secret now in force.
func (c *Client) RefreshRobotSecret(ctx context.Context, id int64, secret string) (string, error) {
	res, err := c.api.Robot.RefreshSec(ctx, robot.NewRefreshSecParams().WithRobotID(id).WithRobotSec(&models.RobotSec{Secret: secret}))
	if err != nil {
		return "", apiError(fmt.Sprintf("refresh secret of robot %d", id), err)
	}
	if res.Payload != nil && res.Payload.Secret != "" {
		return res.Payload.Secret, nil
	}
	return secret, nil
}

// DeleteRobot deletes a robot; one that is gone is not an error.
func (c *Client) DeleteRobot(ctx context.Context, id int64) error {
	_, err := c.api.Robot.DeleteRobot(ctx, robot.NewDeleteRobotParams().WithRobotID(id))
	if e := apiError(fmt.Sprintf("delete robot %d", id), err); e != nil && !isKind(e, ErrNotFound) {
		return e
	}
	return nil
}

// PullSecret is a kubernetes.io/dockerconfigjson Secret that lets a
// cluster's namespace pull from this Harbor as robot r. r.Secret must be
// set (just created or refreshed).
func (c *Client) PullSecret(r *Robot, namespace, name string) (*corev1.Secret, error) {
	if r.Secret == "" {
		return nil, fmt.Errorf("harbor: robot %s: no secret known; refresh it first", r.Name)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(r.Name + ":" + r.Secret))
	cfg, err := json.Marshal(map[string]any{"auths": map[string]any{
		c.host: map[string]string{"username": r.Name, "password": r.Secret, "auth": auth},
	}})
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubefoundry"},
			Annotations: map[string]string{"kubefoundry.io/harbor-robot": r.Name}},
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}, nil
}
