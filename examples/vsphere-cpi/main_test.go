package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

// TestMain makes this test binary the vsphere-cpi executable when asked,
// so the tests drive it through stdin and stdout as a director does.
func TestMain(m *testing.M) {
	if os.Getenv("KF_RUN_VSPHERE_CPI") != "" {
		if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "vsphere-cpi:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func stemcellImage(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"stemcell.ovf", "stemcell-disk1.vmdk"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "vsphere", "testdata", name))
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}))
		_, err = tw.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return p
}

// TestExternalVSphereCPI: package bosh/cpi's External drives the
// vsphere-cpi executable, a process per call as a director does, against a
// vCenter simulator: create_stemcell, create_vm, create_disk, attach_disk,
// has_vm, get_disks, detach_disk, delete_vm, delete_disk, delete_stemcell.
func TestExternalVSphereCPI(t *testing.T) {
	sim := vspheretest.Start(t)
	cfg := Config{VCenter: sim.Config, CPI: vspherecpi.Config{ClusterID: "bosh-1", VMFolder: "bosh/vms",
		StemcellFolder: "bosh/stemcells", Cluster: "DC0_C0", Datastore: "LocalDS_0",
		Agent: vspherecpi.AgentConfig{MBus: "nats://nats:pw@10.0.0.4:4222"}}}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "cpi.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	exe, err := os.Executable()
	require.NoError(t, err)
	c := &cpi.External{Path: exe, Args: []string{"-config", path}, Env: append(os.Environ(), "KF_RUN_VSPHERE_CPI=1")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	info, err := c.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, info.APIVersion)
	sc, err := c.CreateStemcell(ctx, stemcellImage(t), cpi.CloudProps{})
	require.NoError(t, err)
	vm, nets, err := c.CreateVM(ctx, "agent-1", sc, cpi.CloudProps{"cpu": 1, "ram": 1024},
		cpi.Networks{"default": {Type: "manual", IP: "10.0.0.10", Netmask: "255.255.255.0", Gateway: "10.0.0.1", CloudProperties: cpi.CloudProps{"name": "VM Network"}}},
		nil, cpi.Env{})
	require.NoError(t, err)
	assert.NotEmpty(t, nets["default"].MAC)
	disk, err := c.CreateDisk(ctx, 1024, nil, vm)
	require.NoError(t, err)
	hint, err := c.AttachDisk(ctx, vm, disk)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"`+disk+`"}`, string(hint))
	ok, err := c.HasVM(ctx, vm)
	require.NoError(t, err)
	assert.True(t, ok)
	disks, err := c.GetDisks(ctx, vm)
	require.NoError(t, err)
	assert.Equal(t, []string{disk}, disks)
	require.NoError(t, c.DetachDisk(ctx, vm, disk))
	require.NoError(t, c.DeleteVM(ctx, vm))
	ok, err = c.HasVM(ctx, vm)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, c.DeleteDisk(ctx, disk))
	require.NoError(t, c.DeleteStemcell(ctx, sc))

	// A config the CPI cannot use still gets the director an answer.
	bad := &cpi.External{Path: exe, Args: []string{"-config", filepath.Join(t.TempDir(), "missing.json")}, Env: c.Env}
	_, err = bad.Info(ctx)
	var ce *cpi.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.CloudError, ce.Type)
	assert.Contains(t, ce.Message, "missing.json")
}
