package harbor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/harbor"
)

// requireProblems checks that err is a *harbor.ValidationError about
// object that names exactly fields, in order, and wraps ErrInvalid.
func requireProblems(t *testing.T, err error, object string, fields ...string) {
	t.Helper()
	var ve *harbor.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, object, ve.Object)
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.Field)
		require.NotEmpty(t, p.Reason, "%s", p.Field)
	}
	require.Equal(t, fields, got, "%v", err)
	require.ErrorIs(t, err, harbor.ErrInvalid)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	var fe *harbor.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, fields[0], fe.Field)
}

// Every spec the package checks reports every problem at once, each with
// its field's path, and sends nothing to Harbor.
func TestSpecValidationListsEveryProblem(t *testing.T) {
	b := simulated(t)
	px := newProxy(t, b.url)
	c := clientAt(t, px.URL, b.user, b.pw)
	ctx := context.Background()
	img := harbor.Image{Project: "apps", Repository: "web", Reference: "v1"}
	for _, tc := range []struct {
		name   string
		call   func() error
		object string
		fields []string
	}{
		{"project", func() error {
			_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "Bad_Name", PreventVulnerable: "severe", StorageLimitBytes: -2,
				CVEAllowlist: []string{"CVE-2021-44228", " "}, ClusterID: "C1"})
			return err
		}, "harbor.ProjectSpec", []string{"project.name", "project.preventVulnerable", "project.storageLimitBytes", "project.cveAllowlist[1]",
			"project.clusterID"}},
		{"robot", func() error {
			_, err := c.EnsureRobot(ctx, harbor.RobotSpec{Project: "Bad", ExpiresIn: 36 * time.Hour, ClusterID: "-c1"})
			return err
		}, "harbor.RobotSpec", []string{"robot.project", "robot.name", "robot.pull", "robot.expiresIn", "robot.clusterID"}},
		{"owned", func() error {
			_, err := c.ListOwned(ctx, "c_1")
			return err
		}, "harbor.ListOwned", []string{"clusterID"}},
		{"member", func() error {
			return c.EnsureMember(ctx, "apps", harbor.Member{User: "alice", Group: "devs", Role: 9})
		}, "harbor.Member", []string{"member.group", "member.role"}},
		{"member without user or group", func() error {
			return c.EnsureMember(ctx, "apps", harbor.Member{GroupDN: "cn=devs", Role: harbor.Guest})
		}, "harbor.Member", []string{"member.user", "member.groupDN"}},
		{"ldap", func() error {
			return c.ConfigureLDAP(ctx, harbor.LDAPConfig{URL: "http://ldap", Scope: "deep"}, false)
		}, "harbor.LDAPConfig", []string{"ldap.url", "ldap.baseDN", "ldap.scope"}},
		{"ldap ping", func() error {
			_, _, err := c.PingLDAP(ctx, harbor.LDAPConfig{URL: "ldaps://ldap", Scope: "deep"})
			return err
		}, "harbor.LDAPConfig", []string{"ldap.baseDN", "ldap.scope"}},
		{"oidc", func() error {
			return c.ConfigureOIDC(ctx, harbor.OIDCConfig{Endpoint: "http://login.example.com"}, false)
		}, "harbor.OIDCConfig", []string{"oidc.name", "oidc.endpoint", "oidc.clientID"}},
		{"registry", func() error {
			_, err := c.EnsureRegistry(ctx, harbor.RegistrySpec{URL: "ftp://mirror", Password: "pw"})
			return err
		}, "harbor.RegistrySpec", []string{"registry.name", "registry.type", "registry.url", "registry.username"}},
		{"replication", func() error {
			_, err := c.EnsureReplication(ctx, harbor.ReplicationSpec{Direction: "sideways", Cron: "0 2 * * *"})
			return err
		}, "harbor.ReplicationSpec", []string{"replication.name", "replication.direction", "replication.registry", "replication.cron"}},
		{"event-based scheduled pull", func() error {
			_, err := c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: "p", Direction: harbor.Pull, Registry: "r",
				Cron: "0 0 2 * * *", EventBased: true})
			return err
		}, "harbor.ReplicationSpec", []string{"replication.cron", "replication.eventBased"}},
		{"immutable rule", func() error {
			_, err := c.EnsureImmutableRule(ctx, "apps", harbor.ImmutableRule{})
			return err
		}, "harbor.ImmutableRule", []string{"rule.repositories", "rule.tags"}},
		{"retention", func() error {
			_, err := c.SetRetention(ctx, "apps", "0 3 * * *",
				harbor.RetentionRule{Repositories: "**", Tags: "**", LatestPushed: 5},
				harbor.RetentionRule{LatestPushed: 1, PulledWithinDays: 2},
				harbor.RetentionRule{Repositories: "**", Tags: "**"},
				harbor.RetentionRule{Repositories: "**", Tags: "**", LatestPushed: -1})
			return err
		}, "retention policy of apps", []string{"cron", "rules[1].pulledWithinDays", "rules[1].repositories", "rules[1].tags",
			"rules[2].latestPushed", "rules[3].latestPushed"}},
		{"gc", func() error { return c.SetGCSchedule(ctx, "0 5 * * 6", false) }, "GC schedule", []string{"cron"}},
		{"scan gate", func() error {
			_, err := c.MayRun(ctx, img, "severe")
			return err
		}, "scan gate", []string{"threshold"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px.requests("", "")
			requireProblems(t, tc.call(), tc.object, tc.fields...)
			require.Empty(t, px.requests("", ""), "nothing is sent for a wrong spec")
		})
	}
}

// ProjectSpec.Validate is the check EnsureProject makes, usable before
// any client exists.
func TestProjectSpecValidate(t *testing.T) {
	require.NoError(t, harbor.ProjectSpec{Name: "c1", PreventVulnerable: "high", StorageLimitBytes: -1}.Validate())
	require.NoError(t, harbor.ProjectSpec{Name: strings.Repeat("a", 255)}.Validate(), "255 characters is Harbor's limit")
	requireProblems(t, harbor.ProjectSpec{Name: strings.Repeat("a", 256)}.Validate(), "harbor.ProjectSpec", "project.name")
	requireProblems(t, harbor.ProjectSpec{Name: "", StorageLimitBytes: -5}.Validate(), "harbor.ProjectSpec",
		"project.name", "project.storageLimitBytes")
	// Merged into a bigger spec, the paths nest.
	var all kubefoundry.ValidationError
	all.Merge("harbor", harbor.ProjectSpec{Name: "X"}.Validate())
	require.Equal(t, "harbor.project.name", all.Problems[0].Field)
}

// Every problem of the Config is reported at once, before any request,
// and none shows a secret.
func TestConfigValidation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := harbor.New(ctx, harbor.Config{URL: "ftp://admin:s3cret@harbor.example.com", CACert: "not PEM", Thumbprint: "zz",
		ConnectTimeout: -time.Second, TLSHandshakeTimeout: -time.Second, Timeout: -time.Second})
	requireProblems(t, err, "harbor.Config", "url", "username", "password", "connectTimeout", "tlsHandshakeTimeout", "timeout",
		"caCert", "thumbprint")
	require.NotContains(t, err.Error(), "s3cret")
	require.NotContains(t, fmt.Sprintf("%+v", err), "s3cret")

	_, err = harbor.New(ctx, harbor.Config{URL: "https://harbor.example.com", Username: "admin", Password: "s3cret",
		CACert: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"})
	requireProblems(t, err, "harbor.Config", "caCert")
	require.NotContains(t, err.Error(), "s3cret")

	_, err = harbor.New(ctx, harbor.Config{URL: "http://", Username: "admin", Password: "pw"})
	requireProblems(t, err, "harbor.Config", "url")
}
