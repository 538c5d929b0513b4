package director

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cloudconfig"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

func TestBatches(t *testing.T) {
	no, yes := false, true
	group := func(name string, serial *bool, errand bool) manifest.InstanceGroup {
		g := manifest.InstanceGroup{Name: name}
		if serial != nil {
			g.Update = &manifest.Update{Serial: serial}
		}
		if errand {
			g.Lifecycle = manifest.LifecycleErrand
		}
		return g
	}
	names := func(m *manifest.Manifest) [][]string {
		var out [][]string
		for _, b := range batches(m) {
			var ns []string
			for _, g := range b {
				ns = append(ns, g.Name)
			}
			out = append(out, ns)
		}
		return out
	}
	m := &manifest.Manifest{InstanceGroups: []manifest.InstanceGroup{
		group("a", nil, false), group("b", &no, false), group("c", &no, false), group("smoke", &no, true),
		group("d", &no, false), group("e", &yes, false), group("f", &no, false)}}
	assert.Equal(t, [][]string{{"a"}, {"b", "c", "d"}, {"e"}, {"f"}}, names(m),
		"adjacent serial: false groups together, errands left out")
	m.Update = &manifest.Update{Serial: &no}
	m.InstanceGroups[0].Update = nil
	assert.Equal(t, [][]string{{"a", "b", "c", "d"}, {"e"}, {"f"}}, names(m), "the deployment's serial: false applies to groups without their own")
}

func TestNetmask(t *testing.T) {
	assert.Equal(t, "255.255.255.0", netmask(netip.MustParsePrefix("10.0.0.0/24")))
	assert.Equal(t, "255.255.240.0", netmask(netip.MustParsePrefix("10.0.0.0/20")))
	assert.Equal(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00", netmask(netip.MustParsePrefix("fd00::/120")), "IPv6 too")
}

func TestPlaceAddonsRefusesAnotherReleaseVersion(t *testing.T) {
	m := &manifest.Manifest{Name: "d", Releases: []manifest.Release{{Name: "app", Version: "1"}},
		InstanceGroups: []manifest.InstanceGroup{{Name: "web", Jobs: []manifest.Job{{Name: "web", Release: "app"}}}}}
	rc := &cloudconfig.RuntimeConfig{Releases: []manifest.Release{{Name: "app", Version: "2"}, {Name: "syslog", Version: "3"}},
		Addons: []manifest.Addon{{Name: "logs", Jobs: []manifest.Job{{Name: "forwarder", Release: "syslog"}}}}}
	err := placeAddons(m, rc, func(string) string { return "" })
	assert.ErrorContains(t, err, "the runtime config wants version 2, the manifest 1")
	assert.Len(t, m.Releases, 1, "nothing changed")
	assert.Len(t, m.InstanceGroups[0].Jobs, 1, "nothing changed")

	rc.Releases = rc.Releases[1:]
	assert.NoError(t, placeAddons(m, rc, func(string) string { return "" }))
	assert.Len(t, m.Releases, 2)
	assert.Equal(t, []string{"web", "forwarder"}, []string{m.InstanceGroups[0].Jobs[0].Name, m.InstanceGroups[0].Jobs[1].Name},
		"an add-on without rules goes on every group")
}

func TestSelects(t *testing.T) {
	g := &manifest.InstanceGroup{Name: "web", AZs: []string{"z1"}, Stemcell: "default", Networks: []manifest.Network{{Name: "pub"}},
		Jobs: []manifest.Job{{Name: "nginx", Release: "web"}}}
	errand := &manifest.InstanceGroup{Name: "smoke", Lifecycle: manifest.LifecycleErrand}
	os := func(string) string { return "ubuntu-jammy" }
	for _, tc := range []struct {
		rule *manifest.PlacementRule
		g    *manifest.InstanceGroup
		want bool
	}{
		{nil, g, true},
		{nil, errand, true},
		{&manifest.PlacementRule{}, errand, true},
		{&manifest.PlacementRule{InstanceGroups: []string{"smoke"}}, errand, true},
		{&manifest.PlacementRule{Lifecycle: manifest.LifecycleService}, errand, false},
		{&manifest.PlacementRule{Lifecycle: manifest.LifecycleErrand}, errand, true},
		{&manifest.PlacementRule{Lifecycle: manifest.LifecycleErrand}, g, false},
		{&manifest.PlacementRule{Deployments: []string{"d"}}, g, true},
		{&manifest.PlacementRule{Deployments: []string{"other"}}, g, false},
		{&manifest.PlacementRule{Teams: []string{"a"}}, g, false},
		{&manifest.PlacementRule{InstanceGroups: []string{"db", "web"}}, g, true},
		{&manifest.PlacementRule{InstanceGroups: []string{"db"}}, g, false},
		{&manifest.PlacementRule{Jobs: []manifest.JobRef{{Name: "nginx", Release: "web"}}}, g, true},
		{&manifest.PlacementRule{Jobs: []manifest.JobRef{{Name: "nginx", Release: "other"}}}, g, false},
		{&manifest.PlacementRule{Stemcell: []manifest.StemcellRule{{OS: "ubuntu-jammy"}}}, g, true},
		{&manifest.PlacementRule{Stemcell: []manifest.StemcellRule{{OS: "windows"}}}, g, false},
		{&manifest.PlacementRule{Networks: []string{"pub"}}, g, true},
		{&manifest.PlacementRule{Networks: []string{"priv"}}, g, false},
		{&manifest.PlacementRule{AZs: []string{"z2", "z1"}}, g, true},
		{&manifest.PlacementRule{AZs: []string{"z2"}}, g, false},
		{&manifest.PlacementRule{InstanceGroups: []string{"web"}, AZs: []string{"z2"}}, g, false},
	} {
		assert.Equal(t, tc.want, selects(tc.rule, "d", tc.g, os, true), "include %+v on %s", tc.rule, tc.g.Name)
	}
	assert.False(t, selects(nil, "d", g, os, false), "no exclude rule excludes nothing")
	assert.False(t, selects(&manifest.PlacementRule{}, "d", g, os, false), "an empty exclude rule excludes nothing")
	assert.True(t, selects(&manifest.PlacementRule{InstanceGroups: []string{"smoke"}}, "d", errand, os, false),
		"an exclude rule needs no lifecycle to exclude an errand group")
}

// With VariablesDir a deployment's variables are in a file of its own
// there; a deployment name that is no plain file name is refused.
func TestVariablesDir(t *testing.T) {
	dir := t.TempDir()
	d := &Director{cfg: Config{VariablesDir: filepath.Join(dir, "vars")}}
	vars, err := d.variables("k8s-1")
	require.NoError(t, err)
	require.NoError(t, vars.Put("token", "s3cret"))
	_, err = os.Stat(filepath.Join(dir, "vars", "k8s-1.json"))
	require.NoError(t, err)
	_, err = d.variables("../k8s")
	require.Error(t, err)
	assert.True(t, kubefoundry.IsInvalid(err))
}

func TestOrphanOf(t *testing.T) {
	r := InstanceRecord{Deployment: "cf", Group: "db", Index: 2, ID: "db2", AZ: "z1", DiskCID: "disk-9", DiskSize: 4096,
		DiskType: `{"name":"fast","disk_size":4096,"cloud_properties":{"type":"thin","datastores":["ds1"]}}`}
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("x", 3600))
	o := orphanOf(r, currentDisk(r), at)
	want := OrphanedDisk{CID: "disk-9", Size: 4096, Type: r.DiskType, Deployment: "cf", Group: "db", InstanceID: "db2", Index: 2,
		AZ: "z1", OrphanedAt: at.UTC(), CloudProperties: cpi.CloudProps{"type": "thin", "datastores": []any{"ds1"}}}
	assert.Equal(t, want, o, "the disk type's cloud properties are the orphan's")
	r.DiskType = ""
	assert.Empty(t, orphanOf(r, currentDisk(r), at).CloudProperties, "a persistent_disk size has none")
}
