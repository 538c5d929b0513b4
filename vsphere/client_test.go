package vsphere_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

func TestConfigStringRedactsSecrets(t *testing.T) {
	tests := []struct {
		name   string
		cfg    vsphere.Config
		secret string
	}{
		{"password field", vsphere.Config{URL: "https://vc/sdk", Username: "admin", Password: "hunter2-field"}, "hunter2-field"},
		{"password in url", vsphere.Config{URL: "https://admin:hunter2-url@vc/sdk"}, "hunter2-url"},
		{"unparsable url", vsphere.Config{URL: "https://admin:hunter2-bad@vc:badport/%zz"}, "hunter2-bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range []string{tt.cfg.String(), fmt.Sprintf("%v", tt.cfg), fmt.Sprintf("%+v", tt.cfg), fmt.Sprintf("%#v", tt.cfg)} {
				assert.NotContains(t, s, tt.secret)
				assert.Contains(t, s, "REDACTED")
			}
		})
	}
	assert.Contains(t, vsphere.Config{URL: "https://vc/sdk", Username: "admin"}.String(), `Username: "admin"`)
}

func TestNewErrors(t *testing.T) {
	s := newSim(t)
	u, err := url.Parse(s.url)
	require.NoError(t, err)
	user := u.User.Username()
	u.User = nil
	ctx := context.Background()

	t.Run("wrong password", func(t *testing.T) {
		_, err := vsphere.New(ctx, vsphere.Config{URL: u.String(), Username: user, Password: "wrong", Insecure: true})
		require.Error(t, err)
		assert.True(t, fault.Is(err, &types.InvalidLogin{}), "%v", err)
		assert.Contains(t, err.Error(), `as "kf-admin"`)
		assert.NotContains(t, err.Error(), "wrong")
	})
	t.Run("no credentials", func(t *testing.T) {
		_, err := vsphere.New(ctx, vsphere.Config{URL: u.String(), Insecure: true})
		require.ErrorIs(t, err, vsphere.ErrInvalidSpec)
		assert.Contains(t, err.Error(), "username")
	})
	t.Run("tls verification is on by default", func(t *testing.T) {
		_, err := vsphere.New(ctx, vsphere.Config{URL: s.url})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate")
	})
	t.Run("bad CA", func(t *testing.T) {
		_, err := vsphere.New(ctx, vsphere.Config{URL: s.url, CACert: "not pem"})
		require.ErrorIs(t, err, vsphere.ErrInvalidSpec)
		assert.Contains(t, err.Error(), "caCert")
	})
	t.Run("unknown datacenter lists the ones there are", func(t *testing.T) {
		_, err := vsphere.New(ctx, vsphere.Config{URL: s.url, Insecure: true, Datacenter: "DC9"})
		var nf *vsphere.NotFoundError
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, []string{"DC0"}, nf.Available)
		assert.ErrorIs(t, err, vsphere.ErrNotFound)
	})
}

func TestNewTrustsGivenCA(t *testing.T) {
	s := newSim(t)
	c, err := vsphere.New(context.Background(), vsphere.Config{URL: s.url, CACert: s.caPEM(t)})
	require.NoError(t, err)
	require.NoError(t, c.Close(context.Background()))
}

func TestInventoryNotFoundListsWhatExists(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	ctx := context.Background()
	tests := []struct {
		kind string
		find func(string) error
		want string
	}{
		{"cluster", func(n string) error { _, err := c.FindCluster(ctx, n); return err }, "DC0_C0"},
		{"datastore", func(n string) error { _, err := c.FindDatastore(ctx, n); return err }, "LocalDS_0"},
		{"network", func(n string) error { _, err := c.FindNetwork(ctx, n); return err }, "DC0_DVPG0"},
		{"resource pool", func(n string) error { _, err := c.FindResourcePool(ctx, n); return err }, "Resources"},
		{"folder", func(n string) error { _, err := c.FindFolder(ctx, n); return err }, ""},
		{"virtual machine", func(n string) error { _, err := c.FindVM(ctx, n); return err }, simTemplate},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			err := tt.find("no-such-thing")
			var nf *vsphere.NotFoundError
			require.ErrorAs(t, err, &nf)
			assert.Equal(t, tt.kind, nf.Kind)
			assert.Equal(t, "no-such-thing", nf.Name)
			assert.True(t, vsphere.IsNotFound(err))
			if tt.want != "" {
				assert.Contains(t, nf.Available, tt.want, "the error lists what exists: %v", err)
			}
		})
	}
	t.Run("found", func(t *testing.T) {
		for _, n := range []string{simNetwork, simDVPG} {
			_, err := c.FindNetwork(ctx, n)
			require.NoError(t, err, n)
		}
		_, err := c.FindResourcePool(ctx, simCluster+"/Resources")
		require.NoError(t, err)
		_, err = c.FindVM(ctx, simTemplate)
		require.NoError(t, err)
	})
}

// TestReloginAfterSessionEnds ends the client's session on the server; the
// next calls log in again, whether the expiry shows as a fault (a task
// call) or only as properties missing for NotAuthenticated (a property
// read, which is how vCenter answers those).
func TestReloginAfterSessionEnds(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	admin := s.client(t)
	ctx := context.Background()

	terminateOtherSessions(t, admin)
	vms, err := c.ListVMs(ctx, "nobody", "")
	require.NoError(t, err, "a property read re-authenticates")
	assert.Empty(t, vms)
	assert.Equal(t, int64(1), c.Stats().Relogins)

	terminateOtherSessions(t, admin)
	tpl, err := c.FindVM(ctx, simTemplate)
	require.NoError(t, err)
	require.NoError(t, c.PowerOff(ctx, tpl.Reference()))
	assert.Equal(t, int64(2), c.Stats().Relogins)
}

func TestNewTrustsThumbprint(t *testing.T) {
	s := newSim(t)
	thumb := s.server.CertificateInfo().ThumbprintSHA1
	require.NotEmpty(t, thumb)
	c, err := vsphere.New(context.Background(), vsphere.Config{URL: s.url, Thumbprint: thumb})
	require.NoError(t, err)
	require.NoError(t, c.Close(context.Background()))

	_, err = vsphere.New(context.Background(), vsphere.Config{URL: s.url, Thumbprint: "00:11:22"})
	require.Error(t, err, "a wrong thumbprint is refused")
}

func TestStoragePolicy(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	ctx := context.Background()
	id, err := c.FindStoragePolicy(ctx, "vSAN Default Storage Policy")
	require.NoError(t, err)
	assert.NotEmpty(t, id)

	_, err = c.FindStoragePolicy(ctx, "gold")
	var nf *vsphere.NotFoundError
	require.ErrorAs(t, err, &nf)
	assert.Contains(t, nf.Available, "vSAN Default Storage Policy")

	in := specs("nu", 2)
	in[0].StoragePolicy = "vSAN Default Storage Policy"
	in[0].Disks = []vsphere.Disk{{SizeGB: 1}}
	in[1].StoragePolicy = "gold"
	res, err := c.ProvisionVMs(ctx, in)
	require.Error(t, err)
	assert.NoError(t, res[0].Err)
	require.ErrorAs(t, res[1].Err, &nf, "an unknown policy fails that VM only")
}

// TestSetCredentials rotates the account under a running Client: vCenter
// starts accepting only a new password; refused credentials change
// nothing; accepted ones are used by the re-login after vCenter ends the
// session, and the work in flight carries on. A client that was not told
// fails at that re-login, which shows the rotation is what made the
// difference. No password reaches the log.
func TestSetCredentials(t *testing.T) {
	var password atomic.Pointer[string]
	first := "kf-secret"
	password.Store(&first)
	s := startSim(t, nil, func(m *simulator.Model) {
		m.Map().SessionManager().ValidLogin = func(req *types.Login) bool {
			return req.UserName == "kf-admin" && req.Password == *password.Load()
		}
	})
	core, logs := observer.New(zap.DebugLevel)
	c := s.client(t, vsphere.WithLogger(zap.New(core)))
	stale := s.client(t)
	admin := s.client(t)
	ctx := context.Background()

	rotated := "kf-secret-2"
	password.Store(&rotated)
	err := c.SetCredentials(ctx, "kf-admin", "not-it")
	assert.True(t, fault.Is(err, &types.InvalidLogin{}), "%v", err)
	assert.NotContains(t, err.Error(), "not-it")
	_, err = c.ListVMs(ctx, "", "")
	require.NoError(t, err, "the session is untouched by a refused rotation")

	require.NoError(t, c.SetCredentials(ctx, "kf-admin", rotated))
	_, err = c.ListVMs(ctx, "", "")
	require.NoError(t, err, "the session is kept")
	assert.Zero(t, c.Stats().Relogins)

	terminateOtherSessions(t, admin) // vCenter ends both clients' sessions
	_, err = c.ListVMs(ctx, "", "")
	require.NoError(t, err, "the re-login uses the new password")
	assert.Equal(t, int64(1), c.Stats().Relogins)
	_, err = stale.ListVMs(ctx, "", "")
	assert.True(t, fault.Is(err, &types.InvalidLogin{}), "a client with the old password cannot log in again: %v", err)

	for _, e := range logs.All() {
		for _, secret := range []string{first, rotated, "not-it"} {
			assert.NotContains(t, e.Message, secret)
			for k, v := range e.ContextMap() {
				assert.NotContains(t, fmt.Sprint(v), secret, "log field %s", k)
			}
		}
	}
	assert.NotEmpty(t, logs.FilterMessage("credentials rotated").All())

	require.ErrorIs(t, c.SetCredentials(ctx, "", "x"), vsphere.ErrInvalidSpec)
}

// TestNotFoundListsOnlyWhatWouldBeAccepted: the "available" lists leave
// out what would fail if picked: a distributed switch and its uplink
// portgroup as networks, VMs in sub-folders (the SDK's own clones among
// them) and the SDK's replicas as templates.
func TestNotFoundListsOnlyWhatWouldBeAccepted(t *testing.T) {
	// vcsim makes the uplink portgroup but, unlike vCenter, does not list
	// it in its switch's config.uplinkPortgroup: do as vCenter does.
	s := startSim(t, nil, func(m *simulator.Model) {
		ctx := m.Service.Context
		for _, ref := range ctx.Map.AllReference("DistributedVirtualSwitch") {
			dvs := ctx.Map.Get(ref.Reference()).(*simulator.DistributedVirtualSwitch)
			for _, pg := range dvs.Portgroup {
				if strings.Contains(ctx.Map.Get(pg).(*simulator.DistributedVirtualPortgroup).Name, "-DVUplinks") {
					dvs.Config.GetDVSConfigInfo().UplinkPortgroup = append(dvs.Config.GetDVSConfigInfo().UplinkPortgroup, pg)
				}
			}
		}
	})
	c := s.client(t)
	ctx := context.Background()
	in := specs("avail", 1)
	in[0].LinkedClone = true // makes a replica beside the template
	_, err := c.ProvisionVMs(ctx, in)
	require.NoError(t, err)

	_, err = c.FindNetwork(ctx, "no-such-network")
	var nf *vsphere.NotFoundError
	require.ErrorAs(t, err, &nf)
	assert.ElementsMatch(t, []string{simNetwork, simDVPG}, nf.Available)

	_, err = c.FindVM(ctx, "no-such-template")
	require.ErrorAs(t, err, &nf)
	assert.Contains(t, nf.Available, simTemplate)
	for _, n := range nf.Available {
		assert.NotContains(t, n, ".replica.", "the SDK's replica is not offered")
		assert.NotContains(t, n, "avail-worker", "a cluster's VM in its sub-folder is not offered")
	}
}
