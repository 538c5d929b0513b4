package cloudconfig

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

func mustCloud(t *testing.T, y string) *CloudConfig {
	t.Helper()
	c, err := Parse([]byte(y))
	require.NoError(t, err)
	return c
}

func mustRuntime(t *testing.T, y string) *RuntimeConfig {
	t.Helper()
	r, err := ParseRuntime([]byte(y))
	require.NoError(t, err)
	return r
}

const baseCloud = `
azs: [{name: z1}]
vm_types: [{name: small}]
networks:
- name: default
  type: manual
  subnets: [{range: 10.0.0.0/24, gateway: 10.0.0.1, az: z1}]
compilation: {workers: 1, network: default, az: z1, vm_type: small}
`

func TestMergeCloud(t *testing.T) {
	extra, err := ParsePart([]byte(`
azs: [{name: z2}]
vm_types: [{name: large}]
networks:
- name: pods
  type: manual
  subnets: [{range: 10.1.0.0/24, gateway: 10.1.0.1, az: z2}]
`))
	require.NoError(t, err)
	_, err = Parse([]byte("azs: [{name: z2}]\nnetworks: []\n"))
	require.Error(t, err, "a whole cloud config needs compilation")
	cc, err := MergeCloud(Named[CloudConfig]{"default", mustCloud(t, baseCloud)}, Named[CloudConfig]{"extra", extra})
	require.NoError(t, err)
	assert.NotNil(t, cc.AZ("z1"))
	assert.NotNil(t, cc.AZ("z2"))
	assert.NotNil(t, cc.VMType("large"))
	assert.NotNil(t, cc.Network("pods"))
	require.NotNil(t, cc.Compilation)

	t.Run("a part names another part's AZ", func(t *testing.T) {
		net, err := ParsePart([]byte("networks:\n- {name: more, type: dynamic, subnets: [{az: z1}]}\n"))
		require.NoError(t, err)
		_, err = MergeCloud(Named[CloudConfig]{"default", mustCloud(t, baseCloud)}, Named[CloudConfig]{"net", net})
		require.NoError(t, err)
		wrong, err := ParsePart([]byte("networks:\n- {name: more, type: dynamic, subnets: [{az: z7}]}\n"))
		require.NoError(t, err)
		_, err = MergeCloud(Named[CloudConfig]{"default", mustCloud(t, baseCloud)}, Named[CloudConfig]{"wrong", wrong})
		require.ErrorContains(t, err, `"z7": is not an AZ in azs`)
	})
	t.Run("a name in two configs", func(t *testing.T) {
		dup, err := ParsePart([]byte(`
azs: [{name: z1}]
networks:
- name: default
  type: dynamic
  subnets: [{az: z1}]
`))
		require.NoError(t, err)
		_, err = MergeCloud(Named[CloudConfig]{"default", mustCloud(t, baseCloud)}, Named[CloudConfig]{"dup", dup})
		require.Error(t, err)
		assert.True(t, kubefoundry.IsInvalid(err))
		assert.Contains(t, err.Error(), "cloud configs default, dup together")
		assert.Contains(t, err.Error(), `/azs/1/name "z1": the AZ is defined more than once`)
		assert.Contains(t, err.Error(), `/networks/1/name "default": the network is defined more than once`)
	})
	t.Run("compilation twice", func(t *testing.T) {
		_, err := MergeCloud(Named[CloudConfig]{"default", mustCloud(t, baseCloud)}, Named[CloudConfig]{"again", mustCloud(t, `
azs: [{name: z9}]
vm_types: [{name: tiny}]
networks:
- name: other
  type: manual
  subnets: [{range: 10.9.0.0/24, gateway: 10.9.0.1, az: z9}]
compilation: {workers: 1, network: other, az: z9, vm_type: tiny}
`)})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "in both default and again")
	})
}

func TestMergeRuntime(t *testing.T) {
	dns := mustRuntime(t, `
releases: [{name: bosh-dns, version: "1.38.2"}]
addons:
- name: bosh-dns
  jobs: [{name: bosh-dns, release: bosh-dns}]
tags: {team: platform}
`)
	osconf := mustRuntime(t, `
releases: [{name: bosh-dns, version: "1.38.2"}, {name: os-conf, version: "22.2.1"}]
addons:
- name: banner
  jobs: [{name: login_banner, release: os-conf}]
tags: {team: platform, cost: ops}
`)
	rc, err := MergeRuntime(Named[RuntimeConfig]{"dns", dns}, Named[RuntimeConfig]{"os-conf", osconf})
	require.NoError(t, err)
	assert.Len(t, rc.Releases, 2, "a release in both at one version counts once")
	assert.Len(t, rc.Addons, 2)
	assert.Equal(t, map[string]string{"team": "platform", "cost": "ops"}, rc.Tags)

	other := mustRuntime(t, `
releases: [{name: bosh-dns, version: "1.39.0"}]
addons:
- name: bosh-dns
  jobs: [{name: bosh-dns, release: bosh-dns}]
tags: {team: storage}
`)
	_, err = MergeRuntime(Named[RuntimeConfig]{"dns", dns}, Named[RuntimeConfig]{"other", other})
	require.Error(t, err)
	assert.True(t, kubefoundry.IsInvalid(err))
	assert.Contains(t, err.Error(), `/releases/name=bosh-dns "1.39.0": in dns at 1.38.2 and in other`)
	assert.Contains(t, err.Error(), `/tags/team "storage": dns sets it to "platform"`)

	_, err = MergeRuntime(Named[RuntimeConfig]{"dns", dns}, Named[RuntimeConfig]{"again", dns})
	require.Error(t, err, "the same add-on twice")
	assert.Contains(t, err.Error(), `/addons/1/name "bosh-dns": the add-on is defined more than once`)
}

// One config alone is checked too: a part that is not a whole cloud
// config, or a runtime config built wrong in Go, is refused.
func TestMergeOneIsChecked(t *testing.T) {
	part, err := ParsePart([]byte("vm_types: [{name: large}]\n"))
	require.NoError(t, err)
	_, err = MergeCloud(Named[CloudConfig]{"large", part})
	require.ErrorContains(t, err, "at least one network is required")
	_, err = MergeRuntime(Named[RuntimeConfig]{"built", &RuntimeConfig{Releases: []manifest.Release{{Name: "dns", Version: "latest"}}}})
	require.ErrorContains(t, err, "a runtime config names an exact version, not latest")
}
