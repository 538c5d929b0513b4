package vspherecpi_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

// image packs the vsphere package's test OVF and disk as a vSphere
// stemcell's image file (a gzipped tar), with extra entries when given.
func image(t *testing.T, extra ...*tar.Header) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"stemcell.ovf", "stemcell-disk1.vmdk"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "vsphere", "testdata", name))
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}))
		_, err = tw.Write(b)
		require.NoError(t, err)
	}
	for _, h := range extra {
		require.NoError(t, tw.WriteHeader(h))
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return p
}

func newCPI(t *testing.T) (*vspherecpi.CPI, *vsphere.Client) {
	t.Helper()
	sim := vspheretest.Start(t)
	ctx := context.Background()
	vs, err := vsphere.New(ctx, sim.Config, vsphere.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = vs.Close(context.Background()) })
	vols, err := csi.New(ctx, vs.Vim25())
	require.NoError(t, err)
	c, err := vspherecpi.New(vs, vols, vspherecpi.Config{ClusterID: "bosh-1", VMFolder: "bosh/vms", StemcellFolder: "bosh/stemcells",
		Cluster: "DC0_C0", Datastore: "LocalDS_0", Agent: vspherecpi.AgentConfig{MBus: "nats://nats:secret@10.0.0.4:4222", NTP: []string{"ntp.example"}}})
	require.NoError(t, err)
	return c, vs
}

func settings(t *testing.T, vs *vsphere.Client, cid string) vspherecpi.Settings {
	t.Helper()
	ctx := context.Background()
	vm, err := vs.FindVM(ctx, "/DC0/vm/bosh/vms/"+cid)
	require.NoError(t, err)
	kv, err := vs.ExtraConfig(ctx, vm.Reference(), vspherecpi.SettingsKey)
	require.NoError(t, err)
	assert.Equal(t, "base64", kv[vspherecpi.SettingsKey+".encoding"])
	raw, err := base64.StdEncoding.DecodeString(kv[vspherecpi.SettingsKey])
	require.NoError(t, err)
	var s vspherecpi.Settings
	require.NoError(t, json.Unmarshal(raw, &s))
	return s
}

// TestLifecycle: what a director asks of a CPI to deploy an instance with a
// persistent disk and take it away again, on vcsim with CNS.
func TestLifecycle(t *testing.T) {
	c, vs := newCPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	info, err := c.Info(ctx)
	require.NoError(t, err)
	assert.Contains(t, info.StemcellFormats, "vsphere-ovf")

	sc, err := c.CreateStemcell(ctx, image(t), nil)
	require.NoError(t, err)
	nets := cpi.Networks{"default": {Type: "manual", IP: "10.0.0.10", Netmask: "255.255.255.0", Gateway: "10.0.0.1",
		DNS: []string{"10.0.0.2"}, Default: []string{"dns", "gateway"}, CloudProperties: cpi.CloudProps{"name": "VM Network"}}}
	vm, got, err := c.CreateVM(ctx, "agent-1", sc, cpi.CloudProps{"cpu": 2, "ram": 2048, "disk": 3000}, nets, nil,
		cpi.Env{"bosh": map[string]any{"group": "dir-c1-worker"}})
	require.NoError(t, err)
	assert.Regexp(t, `^00:50:56:[0-3][0-9a-f]:[0-9a-f]{2}:[0-9a-f]{2}$`, got["default"].MAC, "the NIC's MAC, for the agent")

	s := settings(t, vs, vm)
	assert.Equal(t, "agent-1", s.AgentID)
	assert.Equal(t, vm, s.VM.Name)
	assert.Equal(t, "10.0.0.10", s.Networks["default"].IP)
	assert.Equal(t, got["default"].MAC, s.Networks["default"].MAC)
	assert.Equal(t, "nats://nats:secret@10.0.0.4:4222", s.MBus)
	assert.Equal(t, "/dev/sdb", s.Disks.Ephemeral)
	assert.Equal(t, "dir-c1-worker", s.Env["bosh"].(map[string]any)["group"])
	ref, err := vs.FindVM(ctx, "/DC0/vm/bosh/vms/"+vm)
	require.NoError(t, err)
	vms, err := vs.ListVMs(ctx, "bosh-1", "")
	require.NoError(t, err)
	require.Len(t, vms, 1, "the VM carries the CPI's cluster as its owner")
	assert.Equal(t, ref.Reference(), vms[0].Ref)

	ok, err := c.HasVM(ctx, vm)
	require.NoError(t, err)
	assert.True(t, ok)
	require.NoError(t, c.SetVMMetadata(ctx, vm, cpi.Metadata{"deployment": "c1", "job": "worker", "index": "0"}))
	require.NoError(t, c.RebootVM(ctx, vm))

	disk, err := c.CreateDisk(ctx, 1024, nil, vm)
	require.NoError(t, err)
	ok, err = c.HasDisk(ctx, disk)
	require.NoError(t, err)
	assert.True(t, ok)
	hint, err := c.AttachDisk(ctx, vm, disk)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"`+disk+`"}`, string(hint))
	assert.JSONEq(t, string(hint), string(settings(t, vs, vm).Disks.Persistent[disk]), "the agent finds the disk in its settings")
	disks, err := c.GetDisks(ctx, vm)
	require.NoError(t, err)
	assert.Equal(t, []string{disk}, disks)
	require.NoError(t, c.ResizeDisk(ctx, disk, 2048))
	require.NoError(t, c.DetachDisk(ctx, vm, disk))
	assert.Empty(t, settings(t, vs, vm).Disks.Persistent)
	disks, err = c.GetDisks(ctx, vm)
	require.NoError(t, err)
	assert.Empty(t, disks)

	require.NoError(t, c.DeleteVM(ctx, vm))
	ok, err = c.HasVM(ctx, vm)
	require.NoError(t, err)
	assert.False(t, ok)
	var ce *cpi.Error
	require.ErrorAs(t, c.DeleteVM(ctx, vm), &ce)
	assert.Equal(t, cpi.VMNotFound, ce.Type, "the director recreates on VMNotFound")

	require.NoError(t, c.DeleteDisk(ctx, disk))
	ok, err = c.HasDisk(ctx, disk)
	require.NoError(t, err)
	assert.False(t, ok)
	require.ErrorAs(t, c.DeleteDisk(ctx, disk), &ce)
	assert.Equal(t, cpi.DiskNotFound, ce.Type)
	require.NoError(t, c.DeleteStemcell(ctx, sc))
	require.NoError(t, c.DeleteStemcell(ctx, sc), "gone already")
}

// TestCreateVMFailures: a VM that cannot be made is VMCreationFailed and
// leaves nothing; a stemcell image that would write outside its directory
// is refused.
func TestCreateVMFailures(t *testing.T) {
	c, vs := newCPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sc, err := c.CreateStemcell(ctx, image(t), nil)
	require.NoError(t, err)

	_, _, err = c.CreateVM(ctx, "agent-2", sc, nil, cpi.Networks{"default": {Type: "dynamic", CloudProperties: cpi.CloudProps{"name": "no-such-network"}}}, nil, nil)
	var ce *cpi.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.VMCreationFailed, ce.Type)
	assert.Contains(t, ce.Message, "no-such-network")
	_, _, err = c.CreateVM(ctx, "agent-3", sc, nil, cpi.Networks{"default": {Type: "dynamic"}}, nil, nil)
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, ce.Message, "cloud_properties.name")
	vms, err := vs.ListVMs(ctx, "bosh-1", "")
	require.NoError(t, err)
	assert.Empty(t, vms, "nothing left of the failed VMs")

	_, err = c.CreateStemcell(ctx, image(t, &tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Size: 0, Mode: 0o644}), nil)
	require.ErrorContains(t, err, "only plain files")
	_, err = c.CreateStemcell(ctx, image(t, &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}), nil)
	require.ErrorContains(t, err, "only plain files")
}
