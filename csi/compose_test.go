package csi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/session"
	"go.uber.org/zap/zaptest"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// killSession ends vs's vCenter session from another session, as an
// administrator (or vCenter's idle timeout) would.
func killSession(ctx context.Context, t *testing.T, admin *govmomi.Client, vs *vsphere.Client) {
	t.Helper()
	us, err := session.NewManager(vs.Vim25()).UserSession(ctx)
	require.NoError(t, err)
	require.NotNil(t, us)
	require.NoError(t, session.NewManager(admin.Client).TerminateSession(ctx, []string{us.Key}))
}

// TestSharedSessionProvisionThenAttach composes vsphere and csi on one
// vCenter session: VMs provisioned, the session killed, a volume made and
// attached through csi, the session killed again, VMs and volumes read
// through both. csi's calls log in again with vsphere's session (one
// login per kill, whichever package meets it first), and vsphere's Stats
// count them.
func TestSharedSessionProvisionThenAttach(t *testing.T) {
	_, s := newServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := govmomi.NewClient(ctx, s.URL, true)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Logout(context.Background()) })

	vs, err := vsphere.New(ctx, vsphere.Config{URL: s.URL.String(), Insecure: true}, vsphere.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = vs.Close(context.Background()) })
	c, err := csi.New(ctx, vs.Vim25(), csi.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)

	res, err := vs.ProvisionVMs(ctx, []vsphere.VMSpec{{
		Name: "c1-worker-0", Owner: vsphere.Owner{Cluster: "c1", Group: "worker"},
		Template: "DC0_C0_RP0_VM0", Folder: "kubefoundry/c1", Cluster: "DC0_C0",
	}})
	require.NoError(t, err)
	vm := res[0].Ref

	killSession(ctx, t, admin, vs)
	vol, err := c.CreateVolume(ctx, spec("pv-shared"))
	require.NoError(t, err, "the first call after the kill is csi's: it logs in again with the shared session")
	require.NoError(t, c.AttachVolume(ctx, vol.ID, vm))
	st := vs.Stats()
	assert.Equal(t, int64(1), st.Relogins)
	assert.Equal(t, int64(1), st.ByMethod["CnsCreateVolume"], "csi's calls are counted in vsphere's Stats")
	assert.Equal(t, int64(1), st.ByMethod["CnsAttachVolume"])

	// The same session serves vsphere again without a login of its own.
	vms, err := vs.ListVMs(ctx, "c1", "")
	require.NoError(t, err)
	require.Len(t, vms, 1)
	assert.Equal(t, int64(1), vs.Stats().Relogins)

	// Killed again: vsphere meets it first, and csi uses its new login.
	killSession(ctx, t, admin, vs)
	_, err = vs.ListVMs(ctx, "c1", "")
	require.NoError(t, err)
	got, err := c.Get(ctx, vol.ID)
	require.NoError(t, err, "csi follows the login vsphere made")
	assert.Equal(t, vm.Value, got.AttachedTo)
	assert.Equal(t, int64(2), vs.Stats().Relogins)

	// Storage policies (SPBM, an endpoint of its own) share it too.
	killSession(ctx, t, admin, vs)
	_, err = c.StoragePolicies(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), vs.Stats().Relogins)

	// A closed session is not logged in again behind the caller's back.
	require.NoError(t, vs.Close(ctx))
	_, err = c.Get(ctx, vol.ID)
	require.Error(t, err, "csi on a closed vsphere.Client fails")
}

// TestRateLimit: on a session of its own, csi keeps to its own bucket; on
// vsphere's, to the session's unless given one.
func TestRateLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Its own session: a bucket of 2 calls that does not refill.
	e := newEnv(t, csi.WithRateLimiter(rate.NewLimiter(rate.Every(time.Hour), 2)))
	_, err := e.c.QueryVolumes(ctx, "c1")
	require.NoError(t, err)
	short, stop := context.WithTimeout(ctx, time.Second)
	defer stop()
	_, err = e.c.CreateVolume(short, spec("pv-limited"))
	require.ErrorContains(t, err, "rate limit", "the bucket is spent")

	// vsphere's session: its bucket is the one both keep to.
	_, s := newServer(t)
	shared := rate.NewLimiter(rate.Every(time.Hour), 100)
	vs, err := vsphere.New(ctx, vsphere.Config{URL: s.URL.String(), Insecure: true}, vsphere.WithRateLimiter(shared))
	require.NoError(t, err)
	defer vs.Close(ctx)
	c, err := csi.New(ctx, vs.Vim25())
	require.NoError(t, err)
	before := shared.Tokens()
	_, err = c.QueryVolumes(ctx, "c1")
	require.NoError(t, err)
	assert.Less(t, shared.Tokens(), before, "a CNS call takes from the session's bucket")
}
