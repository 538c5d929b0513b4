package csi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kubefoundry/kubefoundry/csi"
)

func TestDriverConfig(t *testing.T) {
	cfg := csi.DriverConfig{ClusterID: "c1", VCenter: "vc.example.com", User: "csi@vsphere.local",
		Password: `s3cr"et\`, Datacenters: []string{"DC0", "DC1"}, CAFile: "/etc/ssl/vc/ca.crt"}
	conf, err := cfg.Render()
	require.NoError(t, err)
	want := `[Global]
cluster-id = "c1"

[VirtualCenter "vc.example.com"]
insecure-flag = "false"
user = "csi@vsphere.local"
password = "s3cr\"et\\"
port = "443"
datacenters = "DC0, DC1"
ca-file = "/etc/ssl/vc/ca.crt"
`
	assert.Equal(t, want, string(conf))

	sec, err := cfg.Secret()
	require.NoError(t, err)
	assert.Equal(t, "vmware-system-csi", sec.Namespace)
	assert.Equal(t, conf, sec.Data["csi-vsphere.conf"])

	for _, s := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%#v", cfg)} {
		assert.NotContains(t, s, "s3cr")
	}

	_, err = csi.DriverConfig{ClusterID: "c1", VCenter: "vc", User: "u", Password: "p", Datacenters: []string{"DC0"}}.Render()
	require.ErrorIs(t, err, csi.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "TLS verification")

	for name, c := range map[string]csi.DriverConfig{
		"no password": {ClusterID: "c1", VCenter: "vc", User: "u", Datacenters: []string{"DC0"}, Insecure: true},
		"no user":     {ClusterID: "c1", VCenter: "vc", Password: "p", Datacenters: []string{"DC0"}, Insecure: true},
	} {
		_, err := c.Render()
		require.ErrorIs(t, err, csi.ErrInvalidSpec, name)
		assert.Contains(t, err.Error(), "user and password", name)
	}
}

func TestStorageClasses(t *testing.T) {
	scs, err := csi.StorageClasses([]csi.StorageClassSpec{
		{Name: "gold", StoragePolicy: "vSAN Default Storage Policy", Default: true, WaitForFirstConsumer: true, Zones: []string{"az2", "az1"}},
		{Name: "archive", StoragePolicy: "cold", Retain: true, FSType: "xfs"},
	})
	require.NoError(t, err)
	require.Len(t, scs, 2)
	gold := scs[0]
	assert.Equal(t, "csi.vsphere.vmware.com", gold.Provisioner)
	assert.Equal(t, "true", gold.Annotations["storageclass.kubernetes.io/is-default-class"])
	assert.Equal(t, []string{"az1", "az2"}, gold.AllowedTopologies[0].MatchLabelExpressions[0].Values)
	assert.Equal(t, storagev1.VolumeBindingWaitForFirstConsumer, *gold.VolumeBindingMode)
	assert.Equal(t, "xfs", scs[1].Parameters["csi.storage.k8s.io/fstype"])
	assert.Empty(t, scs[1].Annotations)
	assert.Empty(t, scs[1].AllowedTopologies, "no zones: no topology restriction (an empty one is invalid)")

	// They encode as Kubernetes objects.
	enc := scheme.Codecs.LegacyCodec(storagev1.SchemeGroupVersion)
	for _, sc := range scs {
		var b strings.Builder
		require.NoError(t, enc.Encode(sc, &b))
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(b.String()), nil, nil)
		require.NoError(t, err)
		assert.Equal(t, sc.Name, obj.(*storagev1.StorageClass).Name)
	}

	_, err = csi.StorageClasses([]csi.StorageClassSpec{{Name: "a", StoragePolicy: "p", Default: true}, {Name: "b", StoragePolicy: "p", Default: true}, {Name: "c"}})
	require.ErrorIs(t, err, csi.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "2 are marked default")
	assert.Contains(t, err.Error(), "storageClasses[2]")
}
