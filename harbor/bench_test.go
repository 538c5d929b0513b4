package harbor_test

import (
	"context"
	"testing"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/user"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/harbor"
	"github.com/kubefoundry/kubefoundry/harbor/simulator"
)

// BenchmarkEnsureNoChange measures what an ensure costs when there is
// nothing to change, on the simulator, counted at the server: a project
// with its quota, scanning and CVE allowlist as asked, and a member with
// its role. A reconcile loop calls these on every pass, so this is what a
// portal pays per team per pass.
func BenchmarkEnsureNoChange(b *testing.B) {
	sim, cfg := simulator.Start(b, simulator.Config{})
	ctx := context.Background()
	c, err := harbor.New(ctx, cfg, harbor.WithLogger(zap.NewNop()))
	require.NoError(b, err)
	defer func() { _ = c.Close(ctx) }()
	spec := harbor.ProjectSpec{Name: "bench", StorageLimitBytes: 10 << 30, AutoScan: true, PreventVulnerable: "high",
		CVEAllowlist: []string{"CVE-2021-44228"}}
	_, err = c.EnsureProject(ctx, spec)
	require.NoError(b, err)
	_, err = c.API().User.CreateUser(ctx, user.NewCreateUserParams().WithUserReq(&models.UserCreationReq{
		Username: "alice", Password: "Passw0rd-Alice", Email: "alice@example.com", Realname: "alice"}))
	require.NoError(b, err)
	member := harbor.Member{User: "alice", Role: harbor.Developer}
	require.NoError(b, c.EnsureMember(ctx, "bench", member))

	var project, members int64
	for b.Loop() {
		r0 := sim.Requests()
		_, err := c.EnsureProject(ctx, spec)
		require.NoError(b, err)
		r1 := sim.Requests()
		require.NoError(b, c.EnsureMember(ctx, "bench", member))
		project += r1 - r0
		members += sim.Requests() - r1
	}
	b.ReportMetric(float64(project)/float64(b.N), "calls/ensure-project")
	b.ReportMetric(float64(members)/float64(b.N), "calls/ensure-member")
}
