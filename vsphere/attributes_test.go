package vsphere_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

// TestExtraConfigAndAttributes: a guest's settings set and changed in
// extraConfig, read back by prefix; the ownership keys refused; custom
// attributes defined on first use and set.
func TestExtraConfigAndAttributes(t *testing.T) {
	c := newSim(t).client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vm, err := c.CreateVM(ctx, specs("attr", 1)[0])
	require.NoError(t, err)

	require.NoError(t, c.SetExtraConfig(ctx, vm.Ref, map[string]string{"guestinfo.bosh.settings": "v1", "guestinfo.bosh.encoding": "base64"}))
	require.NoError(t, c.SetExtraConfig(ctx, vm.Ref, map[string]string{"guestinfo.bosh.settings": "v2"}))
	got, err := c.ExtraConfig(ctx, vm.Ref, "guestinfo.bosh.")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"guestinfo.bosh.settings": "v2", "guestinfo.bosh.encoding": "base64"}, got)
	own, err := c.ExtraConfig(ctx, vm.Ref, "kubefoundry.")
	require.NoError(t, err)
	assert.Equal(t, "attr", own["kubefoundry.cluster"], "the owner keys are still there")

	err = c.SetExtraConfig(ctx, vm.Ref, map[string]string{"kubefoundry.cluster": "other", "guestinfo.userdata": "x"})
	var ve *vsphere.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Len(t, ve.Problems, 2)

	require.NoError(t, c.SetAttributes(ctx, vm.Ref, map[string]string{"deployment": "c1", "job": "worker"}))
	fields, err := object.GetCustomFieldsManager(c.Vim25())
	require.NoError(t, err)
	key, err := fields.FindKey(ctx, "deployment")
	require.NoError(t, err)
	var values []string
	for _, v := range vmProps(t, c, vm.Ref).CustomValue {
		if sv := v.GetCustomFieldValue(); sv.Key == key {
			values = append(values, "deployment")
		}
	}
	assert.Equal(t, []string{"deployment"}, values)
	require.ErrorIs(t, c.SetAttributes(ctx, vm.Ref, map[string]string{vsphere.OwnerAttribute: "x"}), vsphere.ErrInvalidSpec)
}
