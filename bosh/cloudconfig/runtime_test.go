package cloudconfig

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

func TestParseRuntime(t *testing.T) {
	r, err := ParseRuntime(readFile(t, "runtime.yml"))
	require.NoError(t, err)

	assert.Equal(t, []manifest.Release{
		{Name: "bosh-dns", Version: "1.38.2", URL: "https://bosh.io/d/github.com/cloudfoundry/bosh-dns-release?v=1.38.2",
			SHA1: "8f2b1bd8e5ba2c9d2e5a1f6f2d1b8f7c3c7f2a11"},
		{Name: "os-conf", Version: "22.2.1"},
		{Name: "syslog", Version: "12.2.4", Stemcell: &manifest.ReleaseStemcell{OS: "ubuntu-jammy", Version: "1.83"}},
	}, r.Releases)

	require.Len(t, r.Addons, 3)
	dns := r.Addons[0]
	assert.Equal(t, "bosh-dns", dns.Name)
	assert.Equal(t, []manifest.Job{{Name: "bosh-dns", Release: "bosh-dns", Properties: manifest.Map{
		"api":   map[string]any{"server": map[string]any{"tls": "((/dns_api_server_tls))"}, "client": map[string]any{"tls": "((/dns_api_client_tls))"}},
		"cache": map[string]any{"enabled": true},
	}}}, dns.Jobs)
	assert.Equal(t, &manifest.PlacementRule{Stemcell: []manifest.StemcellRule{{OS: "ubuntu-jammy"}}}, dns.Include)
	assert.Equal(t, &manifest.PlacementRule{Deployments: []string{"bosh-health"}}, dns.Exclude, "a runtime config's rules may name deployments")
	assert.Equal(t, manifest.Map{"login_banner": map[string]any{"text": "Authorised use only."}}, r.Addons[1].Properties)
	assert.Equal(t, &manifest.PlacementRule{
		Deployments:    []string{"service-instance_7f3c2a9e", "service-instance_1b2d4e6f"},
		Jobs:           []manifest.JobRef{{Name: "kubelet", Release: "kubo"}},
		InstanceGroups: []string{"master", "worker"},
		Networks:       []string{"infrastructure"},
		Teams:          []string{"platform"},
		AZs:            []string{"z1", "z2"},
	}, r.Addons[2].Include)
	assert.Equal(t, &manifest.PlacementRule{Lifecycle: manifest.LifecycleErrand}, r.Addons[2].Exclude)

	assert.Equal(t, []manifest.Variable{
		{Name: "/dns_api_tls_ca", Type: manifest.VariableCertificate, Options: manifest.Map{"is_ca": true, "common_name": "dns-api-tls-ca"}},
		{Name: "/dns_api_server_tls", Type: manifest.VariableCertificate, Options: manifest.Map{"ca": "/dns_api_tls_ca",
			"common_name": "api.bosh-dns", "extended_key_usage": []any{"server_auth"}}},
	}, r.Variables)
	assert.Equal(t, map[string]string{"foundation": "tkgi-prod", "cost-center": "4711"}, r.Tags)
	require.NoError(t, r.Validate())
}

func TestParseRuntimeBad(t *testing.T) {
	_, err := ParseRuntime(readFile(t, "bad-runtime.yml"))
	probs := problems(t, err)
	assert.Equal(t, []string{
		"/releases/name=bosh-dns/version:4",
		"/releases/1/name:5",
		"/releases/name=os-conf/version:7",
		"/releases/name=os-conf/stemcell/version:8",
		"/addons/name=dns/jobs/1/name:14",
		"/addons/name=dns/jobs/name=syslog_forwarder/release:17",
		"/addons/name=dns/include/stemcell/0/name:20",
		"/addons/name=dns/include/stemcell/0/os:20",
		"/addons/name=dns/include/jobs/name=kubelet/release:22",
		"/addons/name=dns/include/lifecycle:23",
		"/addons/1/name:24",
		"/addons/1/exclude:26",
		"/variables/name=dns_ca/type:29",
		"/variables/1/name:30",
		"/tags/team:32",
		"/networks:33",
	}, at(probs))
	checkMarked(t, "bad-runtime.yml", probs)
}

func TestParseRuntimeDocument(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"no releases", "addons: []\n", []string{"/releases:1: is required ([] when no add-on needs one)"}},
		{"releases not a list", "releases: {bosh-dns: 1.38.2}\naddons: [{name: dns, jobs: [{name: bosh-dns, release: bosh-dns}]}]\n",
			[]string{"/releases:1: must be a list, not a mapping"}},
		{"a cloud config", minimal, []string{
			`/networks:1: unknown key "networks": it belongs in a cloud config`,
			"/releases:1: is required ([] when no add-on needs one)",
			`/compilation:4: unknown key "compilation": it belongs in a cloud config`,
		}},
		{"a manifest", "name: x\nreleases: []\ninstance_groups: []\n", []string{
			`/name:1: unknown key "name": it belongs in a deployment manifest`,
			`/instance_groups:3: unknown key "instance_groups": it belongs in a deployment manifest`,
		}},
		{"latest with a prefix", "releases: [{name: a, version: 1.latest}, {name: b, version: latest-1}]\n", []string{
			"/releases/name=a/version:1: a runtime config names an exact version, not latest",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRuntime([]byte(tc.doc))
			var got []string
			for _, p := range problems(t, err) {
				got = append(got, fmt.Sprintf("%s:%d: %s", p.Field, p.Line, p.Reason))
			}
			assert.Equal(t, tc.want, got)
		})
	}

	r, err := ParseRuntime([]byte("releases: []\naddons: []\n"))
	require.NoError(t, err, "empty lists remove every add-on, as BOSH's docs say")
	assert.Empty(t, r.Addons)
}

func TestRuntimeValidate(t *testing.T) {
	good := func() *RuntimeConfig {
		return &RuntimeConfig{
			Releases: []manifest.Release{{Name: "bosh-dns", Version: "1.38.2"}},
			Addons: []manifest.Addon{{Name: "dns", Jobs: []manifest.Job{{Name: "bosh-dns", Release: "bosh-dns"}},
				Include: &manifest.PlacementRule{Deployments: []string{"k8s"}, Teams: []string{"platform"}}}},
			Variables: []manifest.Variable{{Name: "pw", Type: manifest.VariablePassword}},
		}
	}
	require.NoError(t, good().Validate())

	for _, tc := range []struct {
		name   string
		change func(r *RuntimeConfig)
		want   []string
	}{
		{"releases", func(r *RuntimeConfig) {
			r.Releases = append(r.Releases, manifest.Release{Name: "bosh-dns", Version: "1.x.latest"}, manifest.Release{},
				manifest.Release{Name: "c", Version: "1", ExportedFrom: []manifest.ReleaseStemcell{{Version: "1.83"}}})
		}, []string{
			"/releases/1/name: the release is defined more than once",
			"/releases/1/version: a runtime config names an exact version, not latest",
			"/releases/2/name: is required",
			"/releases/2/version: is required",
			"/releases/name=c/exported_from/0/os: is required",
		}},
		{"add-ons", func(r *RuntimeConfig) {
			r.Addons = append(r.Addons, manifest.Addon{Name: "dns", Jobs: []manifest.Job{{Name: "a"}, {Release: "bosh-dns"}, {Name: "b", Release: "kubo"}}},
				manifest.Addon{})
		}, []string{
			"/addons/1/name: the add-on is defined more than once",
			"/addons/1/jobs/name=a/release: is required",
			"/addons/1/jobs/1/name: is required",
			"/addons/1/jobs/name=b/release: is not a release in this runtime config's releases",
			"/addons/2/name: is required",
		}},
		{"rules", func(r *RuntimeConfig) {
			r.Addons[0].Include = &manifest.PlacementRule{Jobs: []manifest.JobRef{{Name: "kubelet"}, {Release: "kubo"}},
				Stemcell: []manifest.StemcellRule{{}}, Lifecycle: "batch"}
			r.Addons[0].Exclude = &manifest.PlacementRule{Lifecycle: manifest.LifecycleErrand, Stemcell: []manifest.StemcellRule{{OS: "windows2019"}, {}}}
		}, []string{
			"/addons/name=dns/include/jobs/name=kubelet/release: is required",
			"/addons/name=dns/include/jobs/1/name: is required",
			"/addons/name=dns/include/stemcell/0/os: is required",
			"/addons/name=dns/include/lifecycle: must be service or errand",
			"/addons/name=dns/exclude/stemcell/1/os: is required",
		}},
		{"variables", func(r *RuntimeConfig) {
			r.Variables = append(r.Variables, manifest.Variable{Name: "pw", Type: manifest.VariableSSH}, manifest.Variable{Name: "x"})
		}, []string{
			"/variables/1/name: the variable is defined more than once",
			"/variables/name=x/type: is required (password, certificate, ssh, rsa or user)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.change(r)
			assert.Equal(t, tc.want, reasons(t, r.Validate()))
		})
	}
}
