package harbor_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/configure"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/member"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/project"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/replication"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/robot"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/user"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/usergroup"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/harbor"
	"github.com/kubefoundry/kubefoundry/harbor/simulator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// backend is a Harbor the suite runs against: the simulator always, and a
// real Harbor when KUBEFOUNDRY_HARBOR_URL names one (.ci/run starts
// Harbor 2.4 for that).
type backend struct {
	name     string
	url      string
	user, pw string
	sim      *simulator.Server // nil for a real Harbor
}

// simulated is a backend on a new simulator, closed when t ends.
func simulated(t *testing.T) backend {
	t.Helper()
	sim, cfg := simulator.Start(t, simulator.Config{})
	return backend{name: "simulator", url: cfg.URL, user: cfg.Username, pw: cfg.Password, sim: sim}
}

// each runs fn against every backend, as a subtest named after it.
func each(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Run("simulator", func(t *testing.T) { fn(t, simulated(t)) })
	url := os.Getenv("KUBEFOUNDRY_HARBOR_URL")
	t.Run("harbor", func(t *testing.T) {
		if url == "" {
			if os.Getenv("KUBEFOUNDRY_REQUIRE_HARBOR") != "" {
				t.Fatal("KUBEFOUNDRY_REQUIRE_HARBOR is set but KUBEFOUNDRY_HARBOR_URL is not")
			}
			t.Skip("KUBEFOUNDRY_HARBOR_URL is not set: no real Harbor to test against (make test-harbor starts one)")
		}
		u, pw := os.Getenv("KUBEFOUNDRY_HARBOR_USERNAME"), os.Getenv("KUBEFOUNDRY_HARBOR_PASSWORD")
		if u == "" {
			u, pw = "admin", "Harbor12345"
		}
		fn(t, backend{name: "harbor", url: url, user: u, pw: pw})
	})
}

// simulatorOnly skips what a real Harbor cannot be made to do in a test.
func (b backend) simulatorOnly(t *testing.T, why string) {
	if b.sim == nil {
		t.Skipf("against the real Harbor: %s", why)
	}
}

func (b backend) client(t *testing.T, user, pw string) *harbor.Client {
	t.Helper()
	return clientAt(t, b.url, user, pw)
}

// clientAt is a client of the Harbor at url, such as a proxy's.
func clientAt(t *testing.T, url, user, pw string) *harbor.Client {
	t.Helper()
	c, err := harbor.New(context.Background(), harbor.Config{URL: url, Username: user, Password: pw},
		harbor.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func ptr[T any](v T) *T { return &v }

func (b backend) admin(t *testing.T) *harbor.Client { return b.client(t, b.user, b.pw) }

// unique makes names that do not clash with earlier runs on a real Harbor.
func unique(prefix string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return prefix + "-" + hex.EncodeToString(r[:])
}

func cleanupProject(t *testing.T, c *harbor.Client, name string) {
	t.Cleanup(func() { _ = c.DeleteProject(context.Background(), name) })
}

func TestProjects(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-c1")
		cleanupProject(t, c, name)
		p, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name, StorageLimitBytes: 10 << 30,
			AutoScan: true, PreventVulnerable: "high", CVEAllowlist: []string{"CVE-2021-44228"}})
		require.NoError(t, err)
		require.NotZero(t, p.ID)
		require.Equal(t, harbor.Project{ID: p.ID, Name: name, StorageLimitBytes: 10 << 30, AutoScan: true,
			PreventVulnerable: "high", CVEAllowlist: []string{"CVE-2021-44228"}, SystemCVEAllowlist: false}, *p)

		again, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name, StorageLimitBytes: 10 << 30,
			AutoScan: true, PreventVulnerable: "high", CVEAllowlist: []string{"CVE-2021-44228"}})
		require.NoError(t, err)
		require.Equal(t, p, again)

		changed, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name, Public: true, SignatureRequired: true,
			PreventVulnerable: "critical"})
		require.NoError(t, err)
		require.Equal(t, harbor.Project{ID: p.ID, Name: name, Public: true, SignatureRequired: true,
			PreventVulnerable: "critical", StorageLimitBytes: -1, SystemCVEAllowlist: true}, *changed)

		var fe *harbor.FieldError
		_, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: "Bad_Name"})
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "project.name", fe.Field)

		require.NoError(t, c.DeleteProject(ctx, name))
		_, err = c.GetProject(ctx, name)
		require.ErrorIs(t, err, harbor.ErrNotFound)
		require.NoError(t, c.DeleteProject(ctx, name), "deleting what is gone is not an error")
	})
}

// A project switched to the system CVE allowlist behind EnsureProject's
// back gets its own allowlist back.
func TestProjectAllowlistIsRepaired(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-cve")
		cleanupProject(t, c, name)
		spec := harbor.ProjectSpec{Name: name, CVEAllowlist: []string{"CVE-2021-44228"}}
		p, err := c.EnsureProject(ctx, spec)
		require.NoError(t, err)
		require.False(t, p.SystemCVEAllowlist)

		reuse := func() string {
			t.Helper()
			res, err := c.API().Project.GetProject(ctx, project.NewGetProjectParams().WithProjectNameOrID(name).WithXIsResourceName(ptr(true)))
			require.NoError(t, err)
			require.NotNil(t, res.Payload.Metadata.ReuseSysCVEAllowlist)
			return *res.Payload.Metadata.ReuseSysCVEAllowlist
		}
		require.Equal(t, "false", reuse())
		_, err = c.API().Project.UpdateProject(ctx, project.NewUpdateProjectParams().WithProjectNameOrID(name).
			WithXIsResourceName(ptr(true)).WithProject(&models.ProjectReq{
			Metadata: &models.ProjectMetadata{ReuseSysCVEAllowlist: ptr("true")}}))
		require.NoError(t, err)
		p, err = c.GetProject(ctx, name)
		require.NoError(t, err)
		require.True(t, p.SystemCVEAllowlist)

		p, err = c.EnsureProject(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, "false", reuse(), "the project's own allowlist applies again")
		require.False(t, p.SystemCVEAllowlist)
		require.Equal(t, []string{"CVE-2021-44228"}, p.CVEAllowlist)
	})
}

// A project administrator who is not a system administrator cannot see
// quotas (Harbor lists them to system administrators only) but can read
// and ensure everything else.
func TestProjectAsProjectAdmin(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-owned")
		cleanupProject(t, c, name)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name, StorageLimitBytes: 5 << 30})
		require.NoError(t, err)
		owner := unique("owner")
		createUser(t, c, owner, "Passw0rd-Owner")
		require.NoError(t, c.EnsureMember(ctx, name, harbor.Member{User: owner, Role: harbor.ProjectAdmin}))
		oc := b.client(t, owner, "Passw0rd-Owner")

		p, err := oc.GetProject(ctx, name)
		require.NoError(t, err)
		require.Zero(t, p.StorageLimitBytes, "unknown to a project administrator")
		spec := harbor.ProjectSpec{Name: name, AutoScan: true, PreventVulnerable: "high"}
		p, err = oc.EnsureProject(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, harbor.Project{ID: p.ID, Name: name, AutoScan: true, PreventVulnerable: "high", SystemCVEAllowlist: true}, *p)
		again, err := oc.EnsureProject(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, p, again)

		// Asking for a limit needs the quota, which Harbor refuses.
		spec.StorageLimitBytes = 1 << 30
		_, err = oc.EnsureProject(ctx, spec)
		require.ErrorIs(t, err, harbor.ErrForbidden)
		ap, err := c.GetProject(ctx, name)
		require.NoError(t, err)
		require.Equal(t, int64(5<<30), ap.StorageLimitBytes, "the quota is as the administrator set it")
		require.True(t, ap.AutoScan)
	})
}

func TestProjectWithRepositoriesIsNotDeleted(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		full := unique("kf-full")
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: full})
		require.NoError(t, err)
		b.push(t, full, "nginx", "1.27")
		err = c.DeleteProject(ctx, full)
		var ae *harbor.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, 412, ae.Status)
		require.NotEmpty(t, ae.Message)
	})
}

func createUser(t *testing.T, c *harbor.Client, name, pw string) {
	t.Helper()
	_, err := c.API().User.CreateUser(context.Background(), user.NewCreateUserParams().WithUserReq(&models.UserCreationReq{
		Username: name, Password: pw, Email: name + "@example.com", Realname: name}))
	require.NoError(t, err)
}

func TestMembers(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-team")
		cleanupProject(t, c, name)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)
		alice := unique("alice")
		createUser(t, c, alice, "Passw0rd-Alice")

		require.NoError(t, c.EnsureMember(ctx, name, harbor.Member{User: alice, Role: harbor.Developer}))
		require.NoError(t, c.EnsureMember(ctx, name, harbor.Member{User: alice, Role: harbor.Developer}), "idempotent")
		require.NoError(t, c.EnsureMember(ctx, name, harbor.Member{User: alice, Role: harbor.Maintainer}))
		members, err := c.Members(ctx, name)
		require.NoError(t, err)
		require.Contains(t, members, harbor.Member{User: alice, Role: harbor.Maintainer})

		// Alice, a maintainer, may pull and push; a stranger may not.
		ac := b.client(t, alice, "Passw0rd-Alice")
		got, err := ac.RegistryAccess(ctx, name+"/app")
		require.NoError(t, err)
		require.Subset(t, got, []string{"pull", "push"}, "Harbor may grant more than was asked (delete)")

		require.NoError(t, c.RemoveMember(ctx, name, harbor.Member{User: alice}))
		require.NoError(t, c.RemoveMember(ctx, name, harbor.Member{User: alice}), "removing a non-member is not an error")
		got, err = ac.RegistryAccess(ctx, name+"/app")
		require.NoError(t, err)
		require.Empty(t, got)

		err = c.EnsureMember(ctx, name, harbor.Member{User: "no-such-user-" + alice, Role: harbor.Guest})
		require.Error(t, err)
		var fe *harbor.FieldError
		require.ErrorAs(t, c.EnsureMember(ctx, name, harbor.Member{User: alice, Group: "g", Role: harbor.Guest}), &fe)
	})
}

// Harbor's entityname filter is a substring match paged by 10: dev is
// found among dev0..dev11 all the same.
func TestMembersWithSimilarNames(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-similar")
		cleanupProject(t, c, name)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)
		dev := "dev"
		if b.sim == nil {
			dev = unique("dev") // users outlive the run on a real Harbor
		}
		var users []string
		for i := range 12 {
			users = append(users, fmt.Sprintf("%s%d", dev, i))
		}
		for _, u := range append(users, dev) { // dev last: on the second page
			createUser(t, c, u, "Passw0rd-Dev")
			require.NoError(t, c.EnsureMember(ctx, name, harbor.Member{User: u, Role: harbor.Guest}))
		}
		require.NoError(t, c.EnsureMember(ctx, name, harbor.Member{User: dev, Role: harbor.Developer}))
		require.NoError(t, c.EnsureMember(ctx, name, harbor.Member{User: dev, Role: harbor.Developer}), "idempotent")
		members, err := c.Members(ctx, name)
		require.NoError(t, err)
		require.Contains(t, members, harbor.Member{User: dev, Role: harbor.Developer})
		require.Contains(t, members, harbor.Member{User: dev + "11", Role: harbor.Guest})

		require.NoError(t, c.RemoveMember(ctx, name, harbor.Member{User: dev}))
		require.NoError(t, c.RemoveMember(ctx, name, harbor.Member{User: dev}))
		members, err = c.Members(ctx, name)
		require.NoError(t, err)
		require.NotContains(t, members, harbor.Member{User: dev, Role: harbor.Developer})
		require.Len(t, members, len(users)+1, "dev0..dev11 and the project's creator")
	})
}

func TestGroupMembers(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		b.simulatorOnly(t, "LDAP and HTTP groups need an LDAP or OIDC Harbor; the CI Harbor uses its database")
		ctx := context.Background()
		c := b.admin(t)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "team"})
		require.NoError(t, err)
		dn := "cn=platform,ou=groups,dc=example,dc=com"
		require.NoError(t, c.EnsureMember(ctx, "team", harbor.Member{Group: "platform", GroupDN: dn, Role: harbor.ProjectAdmin}))
		require.NoError(t, c.EnsureMember(ctx, "team", harbor.Member{Group: "platform", GroupDN: dn, Role: harbor.LimitedGuest}))
		members, err := c.Members(ctx, "team")
		require.NoError(t, err)
		require.Contains(t, members, harbor.Member{Group: "platform", Role: harbor.LimitedGuest})

		// A group with a DN is an LDAP group (type 1) with that DN, one
		// without an HTTP group (type 2).
		require.NoError(t, c.EnsureMember(ctx, "team", harbor.Member{Group: "ops", Role: harbor.Guest}))
		groupOf := func(name string) *models.UserGroup {
			t.Helper()
			res, err := c.API().Member.ListProjectMembers(ctx, member.NewListProjectMembersParams().
				WithProjectNameOrID("team").WithXIsResourceName(ptr(true)).WithEntityname(&name))
			require.NoError(t, err)
			for _, m := range res.Payload {
				if m.EntityType == "g" && m.EntityName == name {
					g, err := c.API().Usergroup.GetUserGroup(ctx, usergroup.NewGetUserGroupParams().WithGroupID(m.EntityID))
					require.NoError(t, err)
					return g.Payload
				}
			}
			require.FailNow(t, "no group member "+name)
			return nil
		}
		ldapGroup := groupOf("platform")
		require.Equal(t, int64(1), ldapGroup.GroupType)
		require.Equal(t, dn, ldapGroup.LdapGroupDn)
		httpGroup := groupOf("ops")
		require.Equal(t, int64(2), httpGroup.GroupType)
		require.Empty(t, httpGroup.LdapGroupDn)

		// A user and a group of one name are two members.
		createUser(t, c, "platform", "Passw0rd-Platform")
		require.NoError(t, c.EnsureMember(ctx, "team", harbor.Member{User: "platform", Role: harbor.Developer}))
		require.NoError(t, c.EnsureMember(ctx, "team", harbor.Member{User: "platform", Role: harbor.Guest}))
		members, err = c.Members(ctx, "team")
		require.NoError(t, err)
		require.Contains(t, members, harbor.Member{Group: "platform", Role: harbor.LimitedGuest}, "the group keeps its role")
		require.Contains(t, members, harbor.Member{User: "platform", Role: harbor.Guest})
		require.NoError(t, c.RemoveMember(ctx, "team", harbor.Member{User: "platform"}))
		members, err = c.Members(ctx, "team")
		require.NoError(t, err)
		require.Contains(t, members, harbor.Member{Group: "platform", Role: harbor.LimitedGuest}, "removing the user leaves the group")
		require.NotContains(t, members, harbor.Member{User: "platform", Role: harbor.Guest})
	})
}

// What the Client logs goes to the logger WithLogger gave it.
func TestLogsGoToWithLogger(t *testing.T) {
	b := simulated(t)
	core, logs := observer.New(zap.InfoLevel)
	c, err := harbor.New(context.Background(), harbor.Config{URL: b.url, Username: b.user, Password: b.pw}, harbor.WithLogger(zap.New(core)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	_, err = c.EnsureProject(context.Background(), harbor.ProjectSpec{Name: "logged"})
	require.NoError(t, err)
	created := logs.FilterMessage("harbor project created").All()
	require.Len(t, created, 1)
	require.Equal(t, "logged", created[0].ContextMap()["project"])
}

// Harbor answers at most 100 objects a page: Members, the member lookups
// of EnsureMember and RemoveMember, and ListOwned (the projects, and each
// project's robots) read every page.
func TestListingsReadEveryPage(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		b.simulatorOnly(t, "hundreds of users, projects and robots; users outlive the run on a real Harbor")
		// A lookup that reads the first page again and again never ends.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := b.admin(t)
		const n = 101 // past one page

		// Members: pg000..pg100, then pg, which every one of them matches
		// (Harbor's entityname filter is a substring match): its lookup
		// finds it on the second page.
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "paged"})
		require.NoError(t, err)
		for i := range n {
			u := fmt.Sprintf("pg%03d", i)
			createUser(t, c, u, "Passw0rd-Paged")
			require.NoError(t, c.EnsureMember(ctx, "paged", harbor.Member{User: u, Role: harbor.Guest}))
		}
		createUser(t, c, "pg", "Passw0rd-Paged")
		require.NoError(t, c.EnsureMember(ctx, "paged", harbor.Member{User: "pg", Role: harbor.Guest}))
		require.NoError(t, c.EnsureMember(ctx, "paged", harbor.Member{User: "pg", Role: harbor.Developer}),
			"found on the second page: its role changed, not added twice")
		members, err := c.Members(ctx, "paged")
		require.NoError(t, err)
		require.Len(t, members, n+2, "pg000..pg100, pg and the project's creator")
		require.Contains(t, members, harbor.Member{User: "pg100", Role: harbor.Guest})
		require.Contains(t, members, harbor.Member{User: "pg", Role: harbor.Developer})
		require.NoError(t, c.RemoveMember(ctx, "paged", harbor.Member{User: "pg"}))
		members, err = c.Members(ctx, "paged")
		require.NoError(t, err)
		require.Len(t, members, n+1)
		require.NotContains(t, members, harbor.Member{User: "pg", Role: harbor.Developer})

		// ListOwned: n projects of the cluster, and n robots in the first.
		var want []harbor.Object
		for i := range n {
			p, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: fmt.Sprintf("owned-%03d", i), ClusterID: "c-paged"})
			require.NoError(t, err)
			want = append(want, harbor.Object{Kind: harbor.KindProject, Name: p.Name, ID: p.ID})
		}
		var robots []harbor.Object
		for i := range n {
			r, err := c.EnsureRobot(ctx, harbor.RobotSpec{Project: "owned-000", Name: fmt.Sprintf("r%03d", i), Pull: true, ClusterID: "c-paged"})
			require.NoError(t, err)
			robots = append(robots, harbor.Object{Kind: harbor.KindRobot, Name: r.Name, ID: r.ID})
		}
		owned, err := c.ListOwned(ctx, "c-paged")
		require.NoError(t, err)
		require.Equal(t, append(robots, want...), owned)
	})
}

// RemoveMember reports a removal Harbor refused, as the member keeps its
// access; one that is gone when it is deleted (404) is removed.
func TestRemoveMemberFailures(t *testing.T) {
	b := simulated(t)
	ctx := context.Background()
	c := b.admin(t)
	_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "team"})
	require.NoError(t, err)
	createUser(t, c, "alice", "Passw0rd-Alice")
	alice := harbor.Member{User: "alice", Role: harbor.Developer}
	require.NoError(t, c.EnsureMember(ctx, "team", alice))
	deleteMember := regexp.MustCompile(`^/api/v2\.0/projects/team/members/\d+$`)

	b.sim.Inject(&simulator.Fault{Method: http.MethodDelete, Path: deleteMember, Status: http.StatusInternalServerError})
	err = c.RemoveMember(ctx, "team", harbor.Member{User: "alice"})
	var ae *harbor.APIError
	require.ErrorAs(t, err, &ae, "a refused removal is an error")
	require.Equal(t, http.StatusInternalServerError, ae.Status)
	members, err := c.Members(ctx, "team")
	require.NoError(t, err)
	require.Contains(t, members, alice)

	b.sim.Inject(&simulator.Fault{Method: http.MethodDelete, Path: deleteMember, Status: http.StatusNotFound})
	require.NoError(t, c.RemoveMember(ctx, "team", harbor.Member{User: "alice"}), "gone meanwhile: removed")
}

// EnsureProject applies a change of any one setting alone, and the
// vulnerability gate turned off reads back off (Harbor keeps its severity).
func TestProjectSettingsChangeAlone(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-alone")
		cleanupProject(t, c, name)
		type settings struct {
			Public, SignatureRequired, AutoScan bool
			PreventVulnerable                   string
			CVEAllowlist                        []string
		}
		of := func(p *harbor.Project) settings {
			return settings{p.Public, p.SignatureRequired, p.AutoScan, p.PreventVulnerable, p.CVEAllowlist}
		}
		for i, want := range []settings{
			{},
			{Public: true},
			{Public: true, SignatureRequired: true},
			{Public: true, SignatureRequired: true, PreventVulnerable: "high"},
			{Public: true, SignatureRequired: true, PreventVulnerable: "critical"},
			{Public: true, SignatureRequired: true},
			{SignatureRequired: true},
			{},
			{AutoScan: true},
			{AutoScan: true, CVEAllowlist: []string{"CVE-2021-44228"}},
			{CVEAllowlist: []string{"CVE-2021-44228"}},
		} {
			got, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name, Public: want.Public, SignatureRequired: want.SignatureRequired,
				AutoScan: want.AutoScan, PreventVulnerable: want.PreventVulnerable, CVEAllowlist: want.CVEAllowlist})
			require.NoError(t, err, "step %d", i)
			require.Equal(t, want, of(got), "step %d: as returned", i)
			got, err = c.GetProject(ctx, name)
			require.NoError(t, err)
			require.Equal(t, want, of(got), "step %d: as Harbor has it", i)
		}
	})
}

// EnsureRobot applies a change of any one setting alone and writes
// nothing when nothing changed; a robot made without ExpiresIn never
// expires; DeleteRobot of a robot that is gone is done.
func TestRobotSettingsChangeAlone(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		name := unique("kf-robots")
		p := newProxy(t, b.url)
		c := clientAt(t, p.URL, b.user, b.pw)
		cleanupProject(t, c, name)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)

		spec := harbor.RobotSpec{Project: name, Name: "ci", Description: "ci", Pull: true, Push: true}
		r, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRobot(context.Background(), r.ID) })
		require.True(t, r.ExpiresAt.IsZero(), "no ExpiresIn: never expires, not %s", r.ExpiresAt)
		p.requests("", "")
		again, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		require.True(t, again.ExpiresAt.IsZero())
		require.Zero(t, len(p.requests(http.MethodPut, "/api/v2.0/robots")), "nothing changed, nothing written")

		read := func() *models.Robot {
			t.Helper()
			res, err := c.API().Robot.GetRobotByID(ctx, robot.NewGetRobotByIDParams().WithRobotID(r.ID))
			require.NoError(t, err)
			return res.Payload
		}
		spec.Pull = false
		got, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		require.False(t, got.Pull, "pull taken away alone")
		require.True(t, got.Push)
		spec.Description = "ci builds"
		_, err = c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, "ci builds", read().Description, "the description changed alone")
		spec.ExpiresIn = 7 * 24 * time.Hour
		got, err = c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(spec.ExpiresIn), got.ExpiresAt, 24*time.Hour, "the lifetime changed alone")
		require.Equal(t, int64(7), *read().Duration)

		require.NoError(t, c.DeleteRobot(ctx, r.ID))
		require.NoError(t, c.DeleteRobot(ctx, r.ID), "gone already: done")
		if b.sim != nil {
			r, err := c.EnsureRobot(ctx, spec)
			require.NoError(t, err)
			b.sim.Inject(&simulator.Fault{Method: http.MethodDelete, Path: regexp.MustCompile(`^/api/v2\.0/robots/\d+$`),
				Status: http.StatusInternalServerError})
			err = c.DeleteRobot(ctx, r.ID)
			var ae *harbor.APIError
			require.ErrorAs(t, err, &ae, "a refused deletion is an error")
			require.Equal(t, http.StatusInternalServerError, ae.Status)
		}
	})
}

func TestRobotsAndPullSecrets(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		mine, other := unique("kf-c1"), unique("kf-c2")
		cleanupProject(t, c, mine)
		cleanupProject(t, c, other)
		for _, n := range []string{mine, other} {
			_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: n})
			require.NoError(t, err)
		}
		spec := harbor.RobotSpec{Project: mine, Name: "cluster-pull", Description: "pulls for cluster c1", Pull: true,
			ExpiresIn: 30 * 24 * time.Hour}
		r, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRobot(context.Background(), r.ID) })
		require.Equal(t, "robot$"+mine+"+cluster-pull", r.Name)
		require.NotEmpty(t, r.Secret)
		require.True(t, r.Pull)
		require.False(t, r.Push)
		require.WithinDuration(t, time.Now().Add(30*24*time.Hour), r.ExpiresAt, 24*time.Hour)
		require.NotContains(t, r.String(), r.Secret)
		require.NotContains(t, fmt.Sprintf("%#v", *r), r.Secret)

		again, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, r.ID, again.ID)
		require.Empty(t, again.Secret, "an existing robot's secret is not known")

		// Least privilege: pull in its project, nothing elsewhere.
		rc := b.client(t, r.Name, r.Secret)
		got, err := rc.RegistryAccess(ctx, mine+"/app")
		require.NoError(t, err)
		require.Equal(t, []string{"pull"}, got)
		got, err = rc.RegistryAccess(ctx, other+"/app")
		require.NoError(t, err)
		require.Empty(t, got, "a robot cannot reach another project")

		// The pull Secret carries exactly those credentials.
		sec, err := c.PullSecret(r, "default", "harbor-pull")
		require.NoError(t, err)
		require.Equal(t, corev1.SecretTypeDockerConfigJson, sec.Type)
		var cfg struct {
			Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
		}
		require.NoError(t, json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg))
		entry, ok := cfg.Auths[c.Registry()]
		require.True(t, ok, "%v", cfg.Auths)
		require.Equal(t, r.Name, entry.Username)
		require.Equal(t, r.Secret, entry.Password)
		_, err = c.PullSecret(again, "default", "x")
		require.Error(t, err, "no secret, no pull Secret")

		// A new secret: the old one stops working.
		newSecret, err := c.RefreshRobotSecret(ctx, r.ID, "")
		require.NoError(t, err)
		require.NotEqual(t, r.Secret, newSecret)
		_, err = rc.RegistryAccess(ctx, mine+"/app")
		require.ErrorIs(t, err, harbor.ErrUnauthorized)
		rc2 := b.client(t, r.Name, newSecret)
		got, err = rc2.RegistryAccess(ctx, mine+"/app")
		require.NoError(t, err)
		require.Equal(t, []string{"pull"}, got)

		// Push added, then the robot disabled: refused.
		spec.Push = true
		upd, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		require.True(t, upd.Push)
		got, err = rc2.RegistryAccess(ctx, mine+"/app")
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"pull", "push"}, got)
		spec.Disabled = true
		_, err = c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		_, err = rc2.RegistryAccess(ctx, mine+"/app")
		require.ErrorIs(t, err, harbor.ErrUnauthorized)

		require.NoError(t, c.DeleteRobot(ctx, r.ID))
		require.NoError(t, c.DeleteRobot(ctx, r.ID), "deleting what is gone is not an error")
	})
}

func TestExpiredRobotIsRefused(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		psql := strings.Fields(os.Getenv("KUBEFOUNDRY_HARBOR_PSQL"))
		if b.sim == nil && len(psql) == 0 {
			t.Skip("against the real Harbor: a robot cannot be made to expire without waiting a day, " +
				"unless KUBEFOUNDRY_HARBOR_PSQL (make test-harbor sets it) reaches its database")
		}
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-exp")
		cleanupProject(t, c, name)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)
		if b.sim != nil {
			// Made a day and an hour ago, so that it has expired by this
			// test's clock too once the simulator's is back to now.
			b.sim.Advance(-25 * time.Hour)
		}
		spec := harbor.RobotSpec{Project: name, Name: "short", Pull: true, ExpiresIn: 24 * time.Hour}
		r, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		rc := b.client(t, r.Name, r.Secret)
		_, err = rc.RegistryAccess(ctx, name+"/app")
		require.NoError(t, err)
		if b.sim != nil {
			b.sim.Advance(25 * time.Hour)
		} else {
			// A day later, by the database's clock: Harbor reads expires_at
			// from its robot table on every login.
			q := fmt.Sprintf("UPDATE robot SET expiresat = %d WHERE id = %d", time.Now().Add(-time.Hour).Unix(), r.ID)
			out, err := exec.Command(psql[0], append(psql[1:], "-v", "ON_ERROR_STOP=1", "-c", q)...).CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Contains(t, string(out), "UPDATE 1")
		}
		_, err = rc.RegistryAccess(ctx, name+"/app")
		require.ErrorIs(t, err, harbor.ErrUnauthorized)
		_, err = harbor.New(ctx, harbor.Config{URL: b.url, Username: r.Name, Password: r.Secret})
		require.ErrorIs(t, err, harbor.ErrUnauthorized)

		// EnsureRobot does not pass an expired robot off as fine: it
		// names it and its expiry, and the caller may delete it.
		_, err = c.EnsureRobot(ctx, spec)
		var ee *harbor.ExpiredError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, r.ID, ee.Robot.ID)
		require.True(t, ee.Robot.ExpiresAt.Before(time.Now()), "%s", ee.Robot.ExpiresAt)
		require.Contains(t, err.Error(), r.Name)
		require.Contains(t, err.Error(), ee.Robot.ExpiresAt.UTC().Format(time.RFC3339))
		require.NoError(t, c.DeleteRobot(ctx, r.ID))
		fresh, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRobot(context.Background(), fresh.ID) })
		require.NotEqual(t, r.ID, fresh.ID)
		require.NotEmpty(t, fresh.Secret)
	})
}

// A robot is found by <project>+<name> in its project, whatever Harbor's
// robot_name_prefix has become since it was made.
func TestRobotNamePrefixChanged(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-prefix")
		cleanupProject(t, c, name)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)
		spec := harbor.RobotSpec{Project: name, Name: "pull", Pull: true}
		r, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRobot(context.Background(), r.ID) })
		require.Equal(t, spec.FullName(), r.Name)

		cfg, err := c.API().Configure.GetConfigurations(ctx, configure.NewGetConfigurationsParams())
		require.NoError(t, err)
		was := "robot$"
		if cfg.Payload.RobotNamePrefix != nil && cfg.Payload.RobotNamePrefix.Value != "" {
			was = cfg.Payload.RobotNamePrefix.Value
		}
		setPrefix := func(p string) error {
			_, err := c.API().Configure.UpdateConfigurations(context.Background(), configure.NewUpdateConfigurationsParams().
				WithConfigurations(&models.Configurations{RobotNamePrefix: &p}))
			return err
		}
		require.NoError(t, setPrefix("bot-"))
		t.Cleanup(func() { require.NoError(t, setPrefix(was)) })

		spec.Description = "now bot-"
		again, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, r.ID, again.ID, "the same robot, not a second one")
		require.Equal(t, "bot-"+name+"+pull", again.Name)
		got, err := b.client(t, again.Name, r.Secret).RegistryAccess(ctx, name+"/app")
		require.NoError(t, err)
		require.Equal(t, []string{"pull"}, got, "it logs in under its new name")
	})
}

func TestWrongAdminPassword(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		_, err := harbor.New(context.Background(), harbor.Config{URL: b.url, Username: b.user, Password: "not-the-password"})
		require.ErrorIs(t, err, harbor.ErrUnauthorized)
		require.Contains(t, err.Error(), "log in as "+b.user)
		require.NotContains(t, err.Error(), "not-the-password")
	})
}

func TestConfigStringRedacts(t *testing.T) {
	for _, cfg := range []harbor.Config{
		{URL: "https://harbor", Username: "admin", Password: "s3cret!"},
		{URL: "https://admin:s3cret!@harbor/", Username: "admin"},
		{URL: "https://admin:s3cret%21@harbor:8443/x", Username: "admin", Password: "s3cret!"},
		{URL: "https://admin:s3cret@harbor", Username: "admin", Password: "s3cret!", CACert: "-----BEGIN CERTIFICATE-----",
			Thumbprint: "ab:cd", Insecure: true, ConnectTimeout: 2 * time.Second, TLSHandshakeTimeout: 3 * time.Second, Timeout: time.Minute},
	} {
		for _, s := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%+v", cfg)} {
			require.NotContains(t, s, "s3cret")
			require.Contains(t, s, "admin")
			require.Regexp(t, `URL: "https://harbor[:/"]`, s, "the URL, without its user information")
			if cfg.Thumbprint != "" {
				require.Contains(t, s, `Thumbprint: "ab:cd"`)
				require.Contains(t, s, "ConnectTimeout: 2s, TLSHandshakeTimeout: 3s, Timeout: 1m0s")
				require.Contains(t, s, "CACert: 27 bytes")
			}
		}
	}
}

// Advance may move the simulator's clock while it issues tokens; run with
// -race.
func TestSimulatorAdvanceWhileServing(t *testing.T) {
	b := simulated(t)
	ctx := context.Background()
	c := b.admin(t)
	_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "clock"})
	require.NoError(t, err)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				b.sim.Advance(time.Millisecond)
			}
		}
	}()
	for range 20 {
		got, err := c.RegistryAccess(ctx, "clock/app")
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"pull", "push"}, got)
	}
	close(done)
	wg.Wait()
}

func TestScanGate(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		scanners, err := c.Scanners(ctx)
		require.NoError(t, err)
		if b.sim == nil {
			// The CI Harbor runs without a scanner adapter.
			t.Logf("scanners on the real Harbor: %v", scanners)
			t.Skip("against the real Harbor: no scanner adapter (Trivy) runs in CI; the scanner list is checked, scanning is not")
		}
		require.Len(t, scanners, 1)
		require.Equal(t, "Trivy", scanners[0].Name)
		require.True(t, scanners[0].Default)
		require.False(t, scanners[0].Disabled)
		require.NoError(t, c.SetDefaultScanner(ctx, "Trivy"))
		require.ErrorIs(t, c.SetDefaultScanner(ctx, "Clair"), harbor.ErrNotFound)

		_, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: "apps"})
		require.NoError(t, err)
		_, err = b.sim.AddArtifact("apps", "team/web", "v1")
		require.NoError(t, err)
		_, err = b.sim.AddArtifact("apps", "team/web", "v2")
		require.NoError(t, err)
		require.NoError(t, b.sim.SetVulnerabilities("apps", "team/web", "v1", map[string]int64{"High": 2, "Low": 5}, 3))
		v1 := harbor.Image{Project: "apps", Repository: "team/web", Reference: "v1"}
		v2 := harbor.Image{Project: "apps", Repository: "team/web", Reference: "v2"}

		d, err := c.MayRun(ctx, v1, "high")
		require.NoError(t, err)
		require.False(t, d.Allowed)
		require.Contains(t, d.Reason, "has not been scanned")

		_, err = c.Scan(ctx, v1)
		require.NoError(t, err)
		_, err = c.Scan(ctx, v2)
		require.NoError(t, err)
		sum, err := c.Vulnerabilities(ctx, v1)
		require.NoError(t, err)
		require.Equal(t, &harbor.ScanSummary{Scanned: true, Status: "Success", Severity: "High", Total: 7, Fixable: 3,
			Counts: map[string]int64{"High": 2, "Low": 5}}, sum)

		for _, tc := range []struct {
			img       harbor.Image
			threshold string
			allowed   bool
		}{
			{v1, "critical", true}, {v1, "high", false}, {v1, "medium", false}, {v1, "low", false},
			{v2, "low", true},
		} {
			d, err := c.MayRun(ctx, tc.img, tc.threshold)
			require.NoError(t, err)
			require.Equal(t, tc.allowed, d.Allowed, "%s at %s: %s", tc.img, tc.threshold, d.Reason)
		}
		// Scanning needs the scan permission, which a pull-only robot
		// does not have.
		r, err := c.EnsureRobot(ctx, harbor.RobotSpec{Project: "apps", Name: "puller", Pull: true})
		require.NoError(t, err)
		_, err = b.client(t, r.Name, r.Secret).Scan(ctx, v1)
		require.ErrorIs(t, err, harbor.ErrForbidden)

		_, err = c.MayRun(ctx, v1, "severe")
		var fe *harbor.FieldError
		require.ErrorAs(t, err, &fe)
		_, err = c.Vulnerabilities(ctx, harbor.Image{Project: "apps", Repository: "team/web", Reference: "v9"})
		require.ErrorIs(t, err, harbor.ErrNotFound)
	})
}

func TestAuthConfiguration(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		mode, err := c.AuthMode(ctx)
		require.NoError(t, err)
		require.Equal(t, "db_auth", mode)

		ldap := harbor.LDAPConfig{URL: "ldap://127.0.0.1:1", SearchDN: "cn=harbor,dc=example,dc=com",
			SearchPassword: "bind-s3cret", BaseDN: "dc=example,dc=com", UID: "uid", Filter: "(objectClass=person)",
			GroupBaseDN: "ou=groups,dc=example,dc=com", GroupNameAttr: "cn"}
		require.NoError(t, c.ConfigureLDAP(ctx, ldap, false))
		require.NotContains(t, fmt.Sprintf("%v %#v", ldap, ldap), "bind-s3cret")
		ok, msg, err := c.PingLDAP(ctx, ldap)
		require.NoError(t, err)
		require.False(t, ok, "nothing listens on port 1")
		require.NotEmpty(t, msg)

		var fe *harbor.FieldError
		require.ErrorAs(t, c.ConfigureLDAP(ctx, harbor.LDAPConfig{URL: "http://x", BaseDN: "dc=x"}, false), &fe)
		require.Equal(t, "ldap.url", fe.Field)

		oidc := harbor.OIDCConfig{Name: "corp", Endpoint: "https://login.example.com", ClientID: "harbor",
			ClientSecret: "oidc-s3cret", Scope: []string{"profile", "email"}, GroupsClaim: "groups", AutoOnboard: true}
		require.NoError(t, c.ConfigureOIDC(ctx, oidc, false))
		require.NotContains(t, fmt.Sprintf("%v %#v", oidc, oidc), "oidc-s3cret")
		conf, err := c.API().Configure.GetConfigurations(ctx, configure.NewGetConfigurationsParams())
		require.NoError(t, err)
		require.NotNil(t, conf.Payload.OIDCScope)
		require.Equal(t, "openid,profile,email", conf.Payload.OIDCScope.Value, "openid, which OIDC login needs, comes first")
		mode, err = c.AuthMode(ctx)
		require.NoError(t, err)
		require.Equal(t, "db_auth", mode, "settings written, mode unchanged")
	})
}

func TestAuthModeLockedOnceUsersExist(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		b.simulatorOnly(t, "switching the CI Harbor's auth mode would break the other tests")
		ctx := context.Background()
		c := b.admin(t)
		ldap := harbor.LDAPConfig{URL: "ldaps://ldap.example.com", BaseDN: "dc=example,dc=com"}
		require.NoError(t, c.ConfigureLDAP(ctx, ldap, true))
		mode, err := c.AuthMode(ctx)
		require.NoError(t, err)
		require.Equal(t, "ldap_auth", mode)
		require.NoError(t, c.ConfigureOIDC(ctx, harbor.OIDCConfig{Name: "corp", Endpoint: "https://login.example.com", ClientID: "h"}, true))
		createUser(t, c, "bob", "Passw0rd-Bob")
		err = c.ConfigureLDAP(ctx, ldap, true)
		require.ErrorIs(t, err, harbor.ErrInvalid)
		require.Contains(t, err.Error(), "new users have been inserted")
	})
}

func TestReplication(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c := b.admin(t)
		src := unique("kf-src")
		cleanupProject(t, c, src)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: src})
		require.NoError(t, err)
		for _, tag := range []string{"v1", "v2", "latest"} {
			b.push(t, src, "web", tag)
		}
		b.push(t, src, "db", "latest") // no v* tag: not replicated
		const tasks = 1                // Harbor runs a task per repository: web

		// The endpoint is this Harbor itself: replication between two local
		// registries, as CI can run it without the internet.
		regName := unique("kf-self")
		// Harbor takes an endpoint whose URL is exactly its own for itself
		// and authenticates with its internal secret, refusing admin's
		// password; localhost names the same server another way.
		selfURL := strings.Replace(b.url, "127.0.0.1", "localhost", 1)
		reg := harbor.RegistrySpec{Name: regName, Type: "harbor", URL: selfURL, Username: b.user, Password: b.pw, Insecure: true}
		require.NotContains(t, fmt.Sprintf("%v %#v", reg, reg), b.pw)
		regID, err := c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		again, err := c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		require.Equal(t, regID, again)
		t.Cleanup(func() { _ = c.DeleteRegistry(context.Background(), regName) })

		polName := unique("kf-mirror")
		spec := harbor.ReplicationSpec{Name: polName, Direction: harbor.Push, Registry: regName,
			NameFilter: src + "/**", TagFilter: "v*", DestNamespace: unique("kf-dst"), Override: true}
		polID, err := c.EnsureReplication(ctx, spec)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteReplication(context.Background(), polName) })
		spec.Cron = "0 0 2 * * *"
		again2, err := c.EnsureReplication(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, polID, again2)

		_, err = c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: "x", Direction: harbor.Push, Registry: regName, Cron: "0 2 * * *"})
		var fe *harbor.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "replication.cron", fe.Field)

		id, err := c.StartReplication(ctx, polName)
		require.NoError(t, err)
		if b.sim != nil {
			// Listing executions, as a dashboard does, changes nothing.
			for range 2 {
				_, err := c.API().Replication.ListReplicationExecutions(ctx, replication.NewListReplicationExecutionsParams())
				require.NoError(t, err)
			}
		}
		var seen []string
		exec, err := c.Replicate(ctx, polName, harbor.WithExecution(strconv.FormatInt(id, 10)),
			harbor.WithSink(kubefoundry.SinkFunc(func(e kubefoundry.Event) { seen = append(seen, e.Phase+" "+e.Message) })))
		require.NoError(t, err)
		require.Equal(t, id, exec.ID)
		require.Equal(t, "Succeed", exec.Status, "%+v", exec)
		require.Equal(t, int64(tasks), exec.Total, "%+v", exec)
		require.Equal(t, int64(tasks), exec.Succeed)
		require.Zero(t, exec.Failed)
		require.Equal(t, "started resumed", seen[0])
		require.Equal(t, "done Succeed", seen[len(seen)-1])
		if b.sim != nil {
			// The simulator's execution is in progress until its second
			// read: progress sees both.
			require.Equal(t, []string{"started resumed", "running InProgress", "done Succeed"}, seen)
		}

		// A pull policy and an event-based push policy on the same endpoint.
		pullName, eventName := unique("kf-pull"), unique("kf-onpush")
		_, err = c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: pullName, Direction: harbor.Pull, Registry: regName,
			NameFilter: src + "/web", DestNamespace: unique("kf-pulled"), Cron: "0 30 1 * * *"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteReplication(context.Background(), pullName) })
		_, err = c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: eventName, Direction: harbor.Push, Registry: regName,
			NameFilter: src + "/**", EventBased: true, ResourceFilter: "image"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteReplication(context.Background(), eventName) })
		_, err = c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: "x", Direction: harbor.Pull, Registry: regName, EventBased: true})
		require.ErrorAs(t, err, &fe)
		require.NoError(t, c.DeleteReplication(ctx, pullName))
		require.NoError(t, c.DeleteReplication(ctx, eventName))

		err = c.DeleteRegistry(ctx, regName)
		require.Error(t, err, "a registry a policy uses is kept")
		require.NoError(t, c.DeleteReplication(ctx, polName))
		require.NoError(t, c.DeleteRegistry(ctx, regName))
		require.NoError(t, c.DeleteRegistry(ctx, regName))
	})
}

func TestImmutableAndRetention(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		name := unique("kf-rel")
		cleanupProject(t, c, name)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)

		id, err := c.EnsureImmutableRule(ctx, name, harbor.ImmutableRule{Repositories: "**", Tags: "v*"})
		require.NoError(t, err)
		again, err := c.EnsureImmutableRule(ctx, name, harbor.ImmutableRule{Repositories: "**", Tags: "v*"})
		require.NoError(t, err)
		require.Equal(t, id, again)
		_, err = c.EnsureImmutableRule(ctx, name, harbor.ImmutableRule{Repositories: "**", Tags: "v*", Disabled: true})
		require.NoError(t, err)
		rules, err := c.ImmutableRules(ctx, name)
		require.NoError(t, err)
		require.Equal(t, []harbor.ImmutableRule{{ID: id, Repositories: "**", Tags: "v*", Disabled: true}}, rules)
		require.NoError(t, c.DeleteImmutableRule(ctx, name, id))
		require.NoError(t, c.DeleteImmutableRule(ctx, name, id), "deleting what is gone is not an error")
		rules, err = c.ImmutableRules(ctx, name)
		require.NoError(t, err)
		require.Empty(t, rules)

		pol, err := c.SetRetention(ctx, name, "0 0 3 * * *",
			harbor.RetentionRule{Repositories: "**", Tags: "**", LatestPushed: 10},
			harbor.RetentionRule{Repositories: "**", Tags: "release-*", PulledWithinDays: 90})
		require.NoError(t, err)
		require.NotZero(t, pol)
		pol2, err := c.SetRetention(ctx, name, "", harbor.RetentionRule{Repositories: "**", Tags: "**", LatestPushed: 5})
		require.NoError(t, err)
		require.Equal(t, pol, pol2, "the project's policy is updated, not duplicated")
		exec, err := c.RunRetention(ctx, pol, true)
		require.NoError(t, err)
		require.NotZero(t, exec)

		var fe *harbor.FieldError
		_, err = c.SetRetention(ctx, name, "", harbor.RetentionRule{Repositories: "**", Tags: "**"})
		require.ErrorAs(t, err, &fe)
	})
}

func TestGCAndAudit(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		require.NoError(t, c.SetGCSchedule(ctx, "0 0 4 * * 6", true))
		require.NoError(t, c.SetGCSchedule(ctx, "0 0 5 * * 6", false))
		var fe *harbor.FieldError
		require.ErrorAs(t, c.SetGCSchedule(ctx, "0 5 * * 6", false), &fe)
		since := time.Now().Add(-time.Minute)
		run, err := c.RunGC(ctx, true)
		require.NoError(t, err)
		require.Equal(t, "Success", run.Status)
		runs, err := c.GCHistory(ctx, 5)
		require.NoError(t, err)
		require.NotEmpty(t, runs)
		require.Equal(t, run.ID, runs[0].ID)
		require.Equal(t, "MANUAL", runs[0].Kind)
		require.True(t, runs[0].DeleteUntagged)
		require.NoError(t, c.SetGCSchedule(ctx, "", false))
		all, err := c.GCHistory(ctx, 500)
		require.NoError(t, err, "a limit past Harbor's largest page is capped")
		require.LessOrEqual(t, len(all), 100)
		logs, err := c.AuditLogs(ctx, harbor.AuditQuery{Since: since, Limit: 500})
		require.NoError(t, err, "a limit past Harbor's largest page is capped")
		for _, l := range logs {
			require.NotContains(t, strings.ToLower(l.ResourceType), "gc", "Harbor 2.4 keeps no audit log of GC: %+v", l)
		}

		name := unique("kf-audit")
		cleanupProject(t, c, name)
		_, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)
		logs, err = c.AuditLogs(ctx, harbor.AuditQuery{Resource: name, Operation: "create", Since: since})
		require.NoError(t, err)
		require.NotEmpty(t, logs, "the project's creation is in the audit log")
		require.Equal(t, b.user, logs[0].Username)
		require.Equal(t, "project", logs[0].ResourceType)
	})
}
