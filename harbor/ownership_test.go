package harbor_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/label"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/robot"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/harbor"
)

// What a cluster owns is what was made for it, wherever it is, and never
// another cluster's.
func TestListOwned(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		c1, c2 := unique("kf-c1"), unique("kf-c2")
		p1, p2, team := unique("kf-own"), unique("kf-own"), unique("kf-team")
		for _, p := range []struct{ name, cluster string }{{p1, c1}, {p2, c2}, {team, ""}} {
			cleanupProject(t, c, p.name)
			got, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: p.name, ClusterID: p.cluster})
			require.NoError(t, err)
			require.Equal(t, p.cluster, got.ClusterID)
		}
		robots := map[string]*harbor.Robot{}
		for _, r := range []harbor.RobotSpec{
			{Project: p1, Name: "pull", Pull: true, Description: "pulls for the cluster", ClusterID: c1},
			{Project: p1, Name: "plain", Pull: true}, // in c1's project, but not made for it
			{Project: team, Name: "c1-pull", Pull: true, ClusterID: c1},
			{Project: team, Name: "c2-pull", Pull: true, ClusterID: c2},
		} {
			got, err := c.EnsureRobot(ctx, r)
			require.NoError(t, err)
			require.Equal(t, r.ClusterID, got.ClusterID)
			t.Cleanup(func() { _ = c.DeleteRobot(context.Background(), got.ID) })
			robots[r.Project+"/"+r.Name] = got
		}
		project := func(name string) harbor.Object {
			p, err := c.GetProject(ctx, name)
			require.NoError(t, err)
			return harbor.Object{Kind: harbor.KindProject, Name: name, ID: p.ID}
		}
		robotObj := func(key string) harbor.Object {
			r := robots[key]
			return harbor.Object{Kind: harbor.KindRobot, Name: r.Name, ID: r.ID}
		}
		owned := func(cluster string) []harbor.Object {
			t.Helper()
			got, err := c.ListOwned(ctx, cluster)
			require.NoError(t, err)
			return got
		}
		// Robots first, then projects, each by name: "robot$kf-own-…" and
		// "robot$kf-team-…".
		require.Equal(t, []harbor.Object{robotObj(p1 + "/pull"), robotObj(team + "/c1-pull"), project(p1)}, owned(c1))
		require.Equal(t, []harbor.Object{robotObj(team + "/c2-pull"), project(p2)}, owned(c2))
		require.Empty(t, owned(unique("kf-c3")))

		// The robot's description keeps what the caller wrote.
		res, err := c.API().Robot.GetRobotByID(ctx, robot.NewGetRobotByIDParams().WithRobotID(robots[p1+"/pull"].ID))
		require.NoError(t, err)
		require.Equal(t, "pulls for the cluster [kubefoundry.io/cluster="+c1+"]", res.Payload.Description)

		// Another cluster's project and robot are refused, and left as
		// they are.
		_, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: p1, Public: true, ClusterID: c2})
		require.ErrorIs(t, err, harbor.ErrAlreadyExists)
		require.ErrorIs(t, err, kubefoundry.ErrAlreadyExists)
		require.ErrorContains(t, err, "belongs to cluster "+c1)
		p, err := c.GetProject(ctx, p1)
		require.NoError(t, err)
		require.False(t, p.Public)
		require.Equal(t, c1, p.ClusterID)
		_, err = c.EnsureRobot(ctx, harbor.RobotSpec{Project: p1, Name: "pull", Pull: true, Push: true, ClusterID: c2})
		require.ErrorIs(t, err, harbor.ErrAlreadyExists)

		// Without a ClusterID the owner stays.
		p, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: p1, AutoScan: true})
		require.NoError(t, err)
		require.True(t, p.AutoScan)
		require.Equal(t, c1, p.ClusterID)
		r, err := c.EnsureRobot(ctx, harbor.RobotSpec{Project: p1, Name: "pull", Pull: true, Description: "renamed"})
		require.NoError(t, err)
		require.Equal(t, c1, r.ClusterID)

		// A project without an owner (a run that stopped between creating
		// and claiming it) is claimed.
		p, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: team, ClusterID: c2})
		require.NoError(t, err)
		require.Equal(t, c2, p.ClusterID)
		require.Equal(t, []harbor.Object{robotObj(team + "/c2-pull"), project(p2), project(team)}, owned(c2))

		// A deleted project is no longer owned; its robots went with it.
		require.NoError(t, c.DeleteProject(ctx, p1))
		require.Equal(t, []harbor.Object{robotObj(team + "/c1-pull")}, owned(c1))
	})
}

// The owner is the label named OwnerLabel, not the first whose name
// contains it (Harbor's label name filter is a substring match).
func TestOwnerLabelByItsExactName(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name, c1 := unique("kf-decoy"), unique("kf-c1")
		cleanupProject(t, c, name)
		p, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)
		_, err = c.API().Label.CreateLabel(ctx, label.NewCreateLabelParams().WithLabel(&models.Label{
			Name: harbor.OwnerLabel + "-previous", Description: "kf-c0", Scope: "p", ProjectID: p.ID}))
		require.NoError(t, err)

		p, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: name, ClusterID: c1})
		require.NoError(t, err, "a label that only contains OwnerLabel's name owns nothing: the project is claimed")
		require.Equal(t, c1, p.ClusterID)
		owned, err := c.ListOwned(ctx, c1)
		require.NoError(t, err)
		require.Equal(t, []harbor.Object{{Kind: harbor.KindProject, Name: name, ID: p.ID}}, owned)
	})
}

// Two clusters claiming one project at once: Harbor takes one owner label
// per project, and the one that lost is told whose it is.
func TestProjectClaimRace(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		px := newProxy(t, b.url)
		pc := clientAt(t, px.URL, b.user, b.pw)
		name, mine, theirs := unique("kf-race"), unique("kf-c1"), unique("kf-c2")
		cleanupProject(t, c, name)
		p, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)

		// The other cluster's claim lands just before ours.
		px.set(func(_ http.ResponseWriter, r *http.Request, _ []byte) bool {
			if r.Method == http.MethodPost && r.URL.Path == "/api/v2.0/labels" {
				px.set(nil, nil)
				_, err := c.API().Label.CreateLabel(ctx, label.NewCreateLabelParams().WithLabel(&models.Label{
					Name: harbor.OwnerLabel, Description: theirs, Scope: "p", ProjectID: p.ID}))
				require.NoError(t, err)
			}
			return false
		}, nil)
		_, err = pc.EnsureProject(ctx, harbor.ProjectSpec{Name: name, Public: true, ClusterID: mine})
		require.ErrorIs(t, err, harbor.ErrAlreadyExists)
		require.ErrorContains(t, err, "belongs to cluster "+theirs)
		got, err := c.GetProject(ctx, name)
		require.NoError(t, err)
		require.Equal(t, theirs, got.ClusterID)
		require.False(t, got.Public, "nothing changed")
		owned, err := c.ListOwned(ctx, mine)
		require.NoError(t, err)
		require.Empty(t, owned)

		// The same cluster claiming twice at once is no conflict.
		again := unique("kf-race")
		cleanupProject(t, c, again)
		_, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: again})
		require.NoError(t, err)
		px.requests("", "")
		px.createFirst(t, "/api/v2.0/labels")
		got, err = pc.EnsureProject(ctx, harbor.ProjectSpec{Name: again, ClusterID: mine})
		require.NoError(t, err)
		require.Equal(t, mine, got.ClusterID)
		require.Len(t, px.requests(http.MethodPost, "/api/v2.0/labels"), 1, "ours, answered 409")
	})
}
