package director_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/variables"
)

// TestNamedConfigsOnVcsim: a named cloud config adds to the default one
// (a clash is refused and records nothing); a deployment records the
// versions it was deployed with, and a recreate uses those, not newer
// ones; named runtime configs place their add-ons together.
func TestNamedConfigsOnVcsim(t *testing.T) {
	g := newRig(t)
	g.upload(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	large := func(cpu string) []byte {
		return []byte("vm_types:\n- name: large\n  cloud_properties: {cpu: " + cpu + ", ram: 1024, disk: 1024}\n")
	}
	v1, err := g.dir.UpdateConfig(director.ConfigCloud, "large", large("2"))
	require.NoError(t, err)
	_, err = g.dir.UpdateConfig(director.ConfigCloud, "clash", []byte("vm_types:\n- name: small\n"))
	require.Error(t, err)
	assert.True(t, kubefoundry.IsInvalid(err), "%v", err)
	assert.Contains(t, err.Error(), "/vm_types/")
	assert.Contains(t, err.Error(), "defined more than once")
	cur, err := g.dir.Configs(director.ConfigCloud)
	require.NoError(t, err)
	require.Len(t, cur, 2, "the clash was not recorded")

	// Two runtime configs, each with an add-on of the test's release; the
	// first's tag is a variable it declares.
	_, err = g.dir.UpdateConfig(director.ConfigRuntime, "one", []byte(`
releases: [{name: kf-e2e, version: "1"}]
addons:
- name: addon-one
  include: {instance_groups: [client]}
  jobs: [{name: sidecar, release: kf-e2e, properties: {sidecar: {tag: ((addon_tag))}}}]
variables:
- {name: addon_tag, type: password}
`))
	require.NoError(t, err)
	_, err = g.dir.UpdateConfig(director.ConfigRuntime, "two", []byte(`
releases: [{name: kf-e2e, version: "1"}]
addons:
- name: addon-two
  include: {instance_groups: [server]}
  jobs: [{name: sidecar, release: kf-e2e, properties: {sidecar: {tag: from-two}}}]
tags: {team: platform, env: from-runtime-config}
`))
	require.NoError(t, err)

	m := []byte(strings.Replace(string(deployment(1, 1, 8080, false, "1")), "vm_type: small", "vm_type: large", 1) + "tags: {env: prod}\n")
	_, err = g.dir.Deploy(ctx, m, director.DeployOptions{})
	require.NoError(t, err)
	vars, err := variables.OpenBackend(storeVars{g.st, "e2e"})
	require.NoError(t, err)
	tag, ok, err := vars.Get("addon_tag")
	require.NoError(t, err)
	require.True(t, ok, "the runtime config's variable is generated for the deployment")
	for _, r := range g.instances(t) {
		want := map[string]string{"client": tag.(string), "server": "from-two"}[r.Group]
		assert.Contains(t, g.config(t, r, "sidecar"), "tag: "+want+"\n", "%s has its runtime config's add-on", r.Group)
	}
	for _, r := range g.instances(t) {
		md, ok := g.scpi.meta.Load(r.VMCID)
		require.True(t, ok, "no metadata on %s", r.VMCID)
		assert.Equal(t, cpi.Metadata{"team": "platform", "env": "prod", "deployment": "e2e", "job": r.Group, "instance_group": r.Group,
			"index": "0", "id": r.ID, "name": r.Group + "/" + r.ID}, md, "the runtime config's tags, the manifest's winning, on every VM")
	}
	dep, err := g.st.Deployment("e2e")
	require.NoError(t, err)
	assert.Contains(t, dep.Configs, v1.ID, "the deployment records the versions it was deployed with")

	// A newer version of the named cloud config: the next deploy would
	// recreate the server, a recreate uses what it was deployed with.
	_, err = g.dir.UpdateConfig(director.ConfigCloud, "large", large("4"))
	require.NoError(t, err)
	plan := func() string {
		res, err := g.dir.Deploy(ctx, m, director.DeployOptions{DryRun: true})
		require.NoError(t, err)
		return strings.Join(actions(res.Plan), ", ")
	}
	assert.Equal(t, "keep client/0, recreate server/0", plan())
	_, err = g.dir.Recreate(ctx, "e2e", director.RecreateOptions{Instances: []string{"server"}})
	require.NoError(t, err)
	assert.Equal(t, "keep client/0, recreate server/0", plan(), "the recreate used the recorded cloud config, not the newer one")
	for _, r := range g.instances(t) {
		if r.Group == "client" {
			assert.Contains(t, g.config(t, r, "sidecar"), "tag: "+tag.(string)+"\n", "the variable keeps its value")
		}
	}
	_, err = g.dir.Deploy(ctx, m, director.DeployOptions{})
	require.NoError(t, err)
	assert.Equal(t, "keep client/0, keep server/0", plan())

	_, err = g.dir.DeleteDeployment(ctx, "e2e", director.DeleteOptions{})
	require.NoError(t, err)
	assert.Empty(t, g.vms(t))
}
