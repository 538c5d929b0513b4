package harbor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/label"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/project"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/robot"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// How a project and a robot account record the cluster that owns them.
//
// Harbor 2.4 has no free-form metadata on a project: it keeps project
// metadata to its own keys and refuses others (400). A project records
// its owner as a label of its own (Harbor's project scope) named
// OwnerLabel whose description is the cluster id; Harbor allows one label
// of a name in a project, so two clusters cannot both claim one. A robot
// account records it at the end of its description, which is the only
// free text a robot has: "pulls for c1 [kubefoundry.io/cluster=c1]".
// Editing the label or the description in Harbor's UI changes the owner.
// Members, immutable-tag rules and a retention policy have no place to
// record one; they go with their project.
const OwnerLabel = "kubefoundry.io/cluster"

// The kinds of Object.
const (
	KindProject = "project"
	KindRobot   = "robot"
)

// Object is something in Harbor a cluster owns.
type Object struct {
	Kind string `json:"kind"` // KindProject or KindRobot
	// Name is a project's name, or a robot's full name
	// (robot$<project>+<name>).
	Name string `json:"name"`
	ID   int64  `json:"id"`
}

// ListOwned lists what the cluster owns in Harbor, in the order to
// delete it: its robot accounts, wherever they are, then its projects
// (which take their members, rules and other robots with them), each kind
// by name. Only what the client may see is listed: a system
// administrator sees everything. It asks Harbor for every project's
// labels and robots, two requests a project (Harbor 2.4 lists project
// labels and robots one project at a time).
func (c *Client) ListOwned(ctx context.Context, clusterID string) ([]Object, error) {
	verr := ValidationError{Object: "harbor.ListOwned"}
	verr.Merge("", kubefoundry.ClusterID(clusterID).Validate())
	if err := verr.Err(); err != nil {
		return nil, err
	}
	var projects, robots []Object
	err := c.eachProject(ctx, func(p *models.Project) error {
		id := int64(p.ProjectID)
		owner, _, err := c.projectOwner(ctx, id)
		switch {
		case isKind(err, ErrForbidden) || isKind(err, ErrNotFound):
			// Not the client's to see, or deleted meanwhile.
		case err != nil:
			return err
		case owner == clusterID:
			projects = append(projects, Object{Kind: KindProject, Name: p.Name, ID: id})
		}
		rs, err := c.projectRobots(ctx, p.Name, id)
		switch {
		case isKind(err, ErrForbidden) || isKind(err, ErrNotFound):
		case err != nil:
			return err
		}
		for _, r := range rs {
			if robotOwner(r.Description) == clusterID {
				robots = append(robots, Object{Kind: KindRobot, Name: r.Name, ID: r.ID})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	byName := func(a, b Object) int { return cmp.Compare(a.Name, b.Name) }
	slices.SortFunc(robots, byName)
	slices.SortFunc(projects, byName)
	return append(robots, projects...), nil
}

// eachProject calls fn for every project the client can see, a page at a
// time.
func (c *Client) eachProject(ctx context.Context, fn func(*models.Project) error) error {
	for page := int64(1); ; page++ {
		res, err := c.api.Project.ListProjects(ctx, project.NewListProjectsParams().WithPage(&page).WithPageSize(ptr(int64(maxPage))))
		if err != nil {
			return apiError("list projects", err)
		}
		for _, p := range res.Payload {
			if p == nil {
				continue
			}
			if err := fn(p); err != nil {
				return err
			}
		}
		if len(res.Payload) < maxPage {
			return nil
		}
	}
}

// projectRobots lists a project's robot accounts.
func (c *Client) projectRobots(ctx context.Context, name string, id int64) ([]*models.Robot, error) {
	q := "Level=project,ProjectID=" + strconv.FormatInt(id, 10)
	var out []*models.Robot
	for page := int64(1); ; page++ {
		res, err := c.api.Robot.ListRobot(ctx, robot.NewListRobotParams().WithQ(&q).WithPage(&page).WithPageSize(ptr(int64(maxPage))))
		if err != nil {
			return nil, apiError("list robots of "+name, err)
		}
		for _, r := range res.Payload {
			if r != nil {
				out = append(out, r)
			}
		}
		if len(res.Payload) < maxPage {
			return out, nil
		}
	}
}

// projectOwner reads the cluster a project's OwnerLabel names, and the
// label's id; "" and 0 when it has none.
func (c *Client) projectOwner(ctx context.Context, projectID int64) (string, int64, error) {
	res, err := c.api.Label.ListLabels(ctx, label.NewListLabelsParams().WithScope(ptr("p")).WithProjectID(&projectID).
		WithName(ptr(OwnerLabel)).WithPageSize(ptr(int64(maxPage))))
	if err != nil {
		return "", 0, apiError(fmt.Sprintf("list labels of project %d", projectID), err)
	}
	// The name filter is a substring match.
	for _, l := range res.Payload {
		if l != nil && l.Name == OwnerLabel {
			return l.Description, l.ID, nil
		}
	}
	return "", 0, nil
}

// claimProject records cluster as the owner of the project p, which has
// none; another cluster that claimed it first is ErrAlreadyExists.
func (c *Client) claimProject(ctx context.Context, p *Project, cluster string) error {
	_, err := c.api.Label.CreateLabel(ctx, label.NewCreateLabelParams().WithLabel(&models.Label{
		Name: OwnerLabel, Description: cluster, Scope: "p", ProjectID: p.ID}))
	e := apiError("label project "+p.Name+" as cluster "+cluster+"'s", err)
	if e == nil {
		c.log.Info("harbor project claimed", zap.String("project", p.Name), zap.String("cluster", cluster))
		p.ClusterID = cluster
		return nil
	}
	if !isKind(e, ErrConflict) {
		return e
	}
	// Another caller labelled it in the meantime.
	owner, _, err := c.projectOwner(ctx, p.ID)
	if err != nil {
		return errors.Join(e, err)
	}
	p.ClusterID = owner
	return ownedElsewhere("project", p.Name, owner, cluster)
}

// ownedElsewhere is the error for an object owned by another cluster than
// want; nil when it is want's.
func ownedElsewhere(kind, name, owner, want string) error {
	if owner == want {
		return nil
	}
	return fmt.Errorf("harbor: %s %s belongs to cluster %s, not %s: %w", kind, name, owner, want, ErrAlreadyExists)
}

var robotOwnerRe = regexp.MustCompile(`(?:^| )\[` + regexp.QuoteMeta(OwnerLabel) + `=([a-z0-9-]+)\]$`)

// robotOwner reads the cluster a robot's description names; "" for none.
func robotOwner(description string) string {
	if m := robotOwnerRe.FindStringSubmatch(description); m != nil {
		return m[1]
	}
	return ""
}

// robotDescription is description with cluster recorded at its end.
func robotDescription(description, cluster string) string {
	if cluster == "" {
		return description
	}
	tag := "[" + OwnerLabel + "=" + cluster + "]"
	if description == "" {
		return tag
	}
	return description + " " + tag
}
