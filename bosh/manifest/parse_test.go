package manifest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return data
}

// problems returns the problems of a Parse or Validate error.
func problems(t testing.TB, err error) []kubefoundry.FieldError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	var verr *kubefoundry.ValidationError
	require.ErrorAs(t, err, &verr)
	require.NotEmpty(t, verr.Problems)
	return verr.Problems
}

// at lists problems as "path:line".
func at(probs []kubefoundry.FieldError) []string {
	out := make([]string, len(probs))
	for i, p := range probs {
		out[i] = fmt.Sprintf("%s:%d", p.Field, p.Line)
	}
	return out
}

func TestParseTKGI(t *testing.T) {
	m, err := Parse(readFile(t, "tkgi.yml"))
	require.NoError(t, err)

	assert.Equal(t, "service-instance_7f3c2a9e-1d4b-4c8e-9a6f-2b5d8e0c1f47", m.Name)
	require.NotNil(t, m.Features)
	assert.Equal(t, new(true), m.Features.UseDNSAddresses)
	assert.Equal(t, new(false), m.Features.RandomizeAZPlacement)
	assert.Nil(t, m.Features.ConvergeVariables)
	assert.Len(t, m.Releases, 6)
	assert.Equal(t, Release{Name: "bpm", Version: "1.1.21", URL: "https://bosh.io/d/github.com/cloudfoundry/bpm-release?v=1.1.21",
		SHA1: "5b26d4bfc19c32fd2d82c0196f71dd8d6d54a8e1"}, *m.Release("bpm"))
	assert.Equal(t, &ReleaseStemcell{OS: "ubuntu-jammy", Version: "1.83"}, m.Release("os-conf").Stemcell)
	assert.Equal(t, []Stemcell{{Alias: "jammy", OS: "ubuntu-jammy", Version: "1.83"}}, m.Stemcells)

	u := m.Update
	require.NotNil(t, u)
	assert.Equal(t, "1", u.Canaries.String())
	assert.Equal(t, "30%", u.MaxInFlight.String())
	assert.Equal(t, 10*time.Second, u.CanaryWatchTime.Min())
	assert.Equal(t, 300*time.Second, u.UpdateWatchTime.Max())
	assert.Equal(t, new(true), u.Serial)
	assert.Equal(t, VMStrategyDeleteCreate, u.VMStrategy)

	master := m.InstanceGroup("master")
	require.NotNil(t, master)
	assert.Equal(t, 3, master.Instances)
	assert.Equal(t, []string{"az1", "az2", "az3"}, master.AZs)
	assert.Equal(t, []string{"bpm", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"}, jobNames(master))
	api := master.Job("kube-apiserver")
	assert.Equal(t, "kubo", api.Release)
	assert.Equal(t, Map{"kube-apiserver": map[string]any{"as": "master-api"}}, api.Provides)
	assert.Equal(t, []CustomProvider{{Name: "kube-apiserver-address", Type: "address"}}, api.CustomProviderDefinitions)
	assert.Equal(t, map[string]any{"service-cluster-ip-range": "10.100.200.0/24", "secure-port": 8443, "audit-log-maxage": 0,
		"enable-admission-plugins": []any{"NodeRestriction", "PodSecurity"}}, api.Properties["k8s-args"])
	assert.Equal(t, 0.75, api.Properties["ratio"])
	assert.Equal(t, Map{}, master.Job("kube-scheduler").Properties, "properties: {} is kept apart from no properties")
	assert.Nil(t, master.Job("bpm").Properties)
	assert.Equal(t, Map{"etcd": map[string]any{"from": "master-etcd"}}, master.Job("etcd").Consumes)
	assert.Equal(t, "medium.disk", master.VMType)
	assert.Equal(t, "10240", master.PersistentDiskType)
	assert.Equal(t, []Network{{Name: "node-network", StaticIPs: []string{"10.0.0.10 - 10.0.0.11", "10.0.0.12"}}}, master.Networks)
	assert.Equal(t, map[string]any{"keep_root_password": true, "job_dir": map[string]any{"tmpfs": true}}, master.Env["bosh"])

	worker := m.InstanceGroup("worker")
	require.NotNil(t, worker)
	assert.Equal(t, 10, worker.Instances)
	assert.Equal(t, new(51200), worker.PersistentDisk)
	assert.Equal(t, []string{"worker-lb"}, worker.VMExtensions)
	assert.Equal(t, []string{"dns", "gateway"}, worker.Networks[0].Default)
	assert.Equal(t, []MigratedFrom{{Name: "kubo-worker", AZ: "az1"}}, worker.MigratedFrom)
	wu := m.UpdateFor(worker)
	assert.Equal(t, "1", wu.Canaries.String(), "from the deployment")
	assert.Equal(t, 1, wu.MaxInFlight.Of(worker.Instances), "the group's own")
	assert.Equal(t, Watch(30*time.Second), wu.CanaryWatchTime)
	assert.Equal(t, 300*time.Second, wu.UpdateWatchTime.Max(), "from the deployment")
	assert.Equal(t, VMStrategyCreateSwapDelete, wu.VMStrategy)
	assert.Equal(t, 3, m.UpdateFor(master).MaxInFlight.Of(10), "30% of 10")

	errand := m.InstanceGroup("apply-addons")
	require.NotNil(t, errand)
	assert.Equal(t, LifecycleErrand, errand.Lifecycle)
	assert.Equal(t, &VMResources{CPU: 1, RAM: 1024, EphemeralDiskSize: 8192}, errand.VMResources)
	assert.Equal(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: pks-system\n", errand.Jobs[0].Properties["addons-spec"])

	require.Len(t, m.Addons, 2)
	assert.Equal(t, &PlacementRule{Stemcell: []StemcellRule{{OS: "ubuntu-jammy"}}, Jobs: []JobRef{{Name: "kubelet", Release: "kubo"}}}, m.Addons[0].Include)
	assert.Equal(t, &PlacementRule{Lifecycle: LifecycleErrand}, m.Addons[0].Exclude)
	assert.Equal(t, []string{"master", "worker"}, m.Addons[1].Include.InstanceGroups)

	require.Len(t, m.Variables, 7)
	tls := m.Variables[2]
	assert.Equal(t, Variable{Name: "tls-kubernetes", Type: VariableCertificate, UpdateMode: "converge",
		Options: Map{"ca": "kubo_ca", "common_name": "master.cfcr.internal",
			"alternative_names":  []any{"10.100.200.1", "kubernetes", "kubernetes.default.svc"},
			"extended_key_usage": []any{"server_auth", "client_auth"}},
		Consumes: Map{"alternative_name": map[string]any{"from": "kube-apiserver-address"}}}, tls)
	var types []VariableType
	for _, v := range m.Variables {
		types = append(types, v.Type)
	}
	assert.Equal(t, []VariableType{"password", "certificate", "certificate", "certificate", "rsa", "ssh", "user"}, types)
	assert.Equal(t, map[string]string{"kubernetes-cluster": "my-cluster", "kubernetes-master-host": "my-cluster.example.com"}, m.Tags)
}

func jobNames(g *InstanceGroup) []string {
	var out []string
	for _, j := range g.Jobs {
		out = append(out, j.Name)
	}
	return out
}

// TestParseBad checks that every problem of testdata/bad.yml is reported,
// at once, in document order, each at its ops-file path and line, and
// nothing else: a valid line in it is never reported.
func TestParseBad(t *testing.T) {
	_, err := Parse(readFile(t, "bad.yml"))
	probs := problems(t, err)
	assert.Equal(t, []string{
		"/director_uuid:2",
		"/name:2",
		"/networks:3",
		"/releases/1/name:7",
		"/releases/name=bpm/version:9",
		"/releases/name=bpm/checksum:11",
		"/stemcells/alias=jammy/name:15",
		"/stemcells/1/alias:17",
		"/update/update_watch_time:20",
		"/update/canaries:21",
		"/update/max_in_flight:22",
		"/update/canary_watch_time:23",
		"/update/vm_strategy:24",
		"/update/serial:25",
		"/instance_groups/name=master/instances:28",
		"/instance_groups/name=master/lifecycle:29",
		"/instance_groups/name=master/jobs/name=kube-apiserver/release:32",
		"/instance_groups/name=master/jobs/1/name:33",
		"/instance_groups/name=master/jobs/name=etcd/release:35",
		"/instance_groups/name=master/vm_resources:37",
		"/instance_groups/name=master/stemcell:38",
		"/instance_groups/name=master/persistent_disk_type:40",
		"/instance_groups/name=worker/networks:55",
		"/instance_groups/name=worker/networks/name=node/static_ips:57",
		"/instance_groups/name=worker/networks/name=pods/default/1:59",
		"/instance_groups/name=worker/migrated_from/name=old-worker/az:62",
		"/instance_groups/name=worker/flavour:65",
		"/instance_groups/2/name:66",
		"/instance_groups/2/vm_type:66",
		"/instance_groups/2/instances:67",
		"/instance_groups/2/networks/name=node/static_ips/0:72",
		"/addons/name=dns/jobs/name=bosh-dns/release:77",
		"/addons/name=dns/include/deployments:79",
		"/addons/name=dns/include/jobs/name=kubelet/release:81",
		"/variables/1/name:85",
		"/variables/1/type:86",
		"/tags/team:88",
	}, at(probs))

	// Every problem is on a line the file marks, and every marked line
	// has a problem (line 2 holds two: director_uuid, and the missing
	// name reported at the document's first line).
	lines := strings.Split(string(readFile(t, "bad.yml")), "\n")
	marked := map[int]bool{}
	for i, l := range lines {
		if strings.Contains(l, "# <-") {
			marked[i+1] = true
		}
	}
	reported := map[int]bool{}
	for _, p := range probs {
		assert.True(t, marked[p.Line], "%s reported on unmarked line %d", p.Field, p.Line)
		reported[p.Line] = true
	}
	for l := range marked {
		if !strings.Contains(lines[l-1], "no count check") {
			assert.True(t, reported[l], "marked line %d not reported: %s", l, lines[l-1])
		}
	}

	// The reasons say what is wrong and what would do.
	byField := map[string]kubefoundry.FieldError{}
	for _, p := range probs {
		byField[p.Field] = p
	}
	for field, want := range map[string]string{
		"/networks":                              `unknown key "networks": it belongs in a cloud config`,
		"/releases/1/name":                       "the release is defined more than once",
		"/update/max_in_flight":                  "is neither a count (2) nor a percentage (30%)",
		"/update/canary_watch_time":              "has a minimum greater than its maximum",
		"/instance_groups/name=master/instances": "must be an integer, not a string",
		"/instance_groups/name=master/jobs/name=kube-apiserver/release": "is not a release in releases",
		"/instance_groups/name=worker/networks":                         "with more than one network, one must be the default for gateway",
		"/instance_groups/name=worker/networks/name=node/static_ips":    "names 2 addresses for 3 instances: BOSH needs exactly one static IP per instance",
		"/variables/1/type": "must be password, certificate, ssh, rsa or user",
	} {
		assert.Equal(t, want, byField[field].Reason, field)
	}
	assert.Equal(t, "thirty", byField["/update/max_in_flight"].Value)
	assert.Equal(t, "kubernetes", byField["/instance_groups/name=master/jobs/name=kube-apiserver/release"].Value)
}

func TestUnknownKey(t *testing.T) {
	valid := string(readFile(t, "minimal.yml"))
	for _, tc := range []struct {
		name, doc, path string
		line            int
	}{
		{"top level", valid + "colour: blue\n", "/colour", 14},
		{"v1 key", valid + "resource_pools: []\n", "/resource_pools", 14},
		{"instance group", strings.Replace(valid, "  instances: 0\n", "  instances: 0\n  replicas: 2\n", 1), "/instance_groups/name=redis/replicas", 10},
		{"network", strings.Replace(valid, "[{name: default}]", "[{name: default, gateway: 10.0.0.1}]", 1), "/instance_groups/name=redis/networks/name=default/gateway", 13},
		{"release", strings.Replace(valid, "version: 12}", "version: 12, sha: x}", 1), "/releases/name=redis/sha", 3},
		{"update", strings.Replace(valid, "canaries: 1,", "canaries: 1, canary: 2,", 1), "/update/canary", 6},
		{"key with a slash", valid + "a/b~c: x\n", "/a~1b~0c", 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			probs := problems(t, err)
			require.Len(t, probs, 1, "%v", err)
			assert.Equal(t, tc.path, probs[0].Field)
			assert.Equal(t, tc.line, probs[0].Line)
			assert.Contains(t, probs[0].Reason, "unknown key")
		})
	}
}

// TestFreeForm checks that any key is fine inside the free-form maps.
func TestFreeForm(t *testing.T) {
	doc := string(readFile(t, "minimal.yml")) + `properties: {anything: {goes: [1, {here: true}]}}
tags: {any-tag: x, count: 3}
features: {use_dns_addresses: true, some_future_feature: {enabled: 1}}
`
	doc = strings.Replace(doc, "  jobs: []\n", `  env: {bosh: {password: x}, anything: 1}
  properties: {whatever: 1}
  jobs:
  - name: redis
    release: redis
    properties: {any: {key: [at, all]}}
    consumes: {db: {from: other, deployment: x}, optional: nil}
    provides: {redis: {as: cache, shared: true, aliases: [{domain: a.b}]}}
`, 1)
	doc += `variables:
- name: ca
  type: certificate
  options: {is_ca: true, anything: 1}
  consumes: {common_name: {from: x, properties: {wildcard: true}}}
`
	m, err := Parse([]byte(doc))
	require.NoError(t, err)
	assert.Equal(t, Map{"enabled": 1}, Map(m.Features.Other["some_future_feature"].(map[string]any)))
	assert.Equal(t, "3", m.Tags["count"])
	assert.Equal(t, "nil", m.InstanceGroups[0].Jobs[0].Consumes["optional"])
}

func TestParseProblems(t *testing.T) {
	valid := string(readFile(t, "minimal.yml"))
	for _, tc := range []struct {
		name, doc string
		want      []string // path:line
		reason    string   // of the first problem
	}{
		{"not YAML", "name: [", []string{"/:1"}, "not YAML"},
		{"tab indentation", "name: x\n\tbad: 1\n", []string{"/:2"}, "not YAML"},
		{"empty", "", []string{"/:0"}, "the document is empty"},
		{"only a comment", "# nothing\n", []string{"/:0"}, "the document is empty"},
		{"two documents", valid + "---\nname: other\n", []string{"/:14"}, "one YAML document, and another starts at line 14"},
		{"a list", "- name: x\n", []string{"/:1"}, "must be a mapping, not a list"},
		{"a string", "hello\n", []string{"/:1"}, "must be a mapping, not a string"},
		{"missing everything", "name: x\n", []string{"/releases:1", "/stemcells:1", "/update:1", "/instance_groups:1"}, "at least one release is required"},
		{"instance_groups a mapping", strings.Replace(valid, "instance_groups:\n", "instance_groups: {a: 1}\nx:\n", 1),
			[]string{"/instance_groups:7", "/x:8"}, "must be a list, not a mapping"},
		{"huge instances", strings.Replace(valid, "instances: 0", "instances: 99999999999999999999999999", 1),
			[]string{"/instance_groups/name=redis/instances:9"}, "must be an integer, not a number"},
		{"instances past int64", strings.Replace(valid, "instances: 0", "instances: 18446744073709551615", 1),
			[]string{"/instance_groups/name=redis/instances:9"}, "is out of range"},
		{"instances missing", strings.Replace(valid, "  instances: 0\n", "", 1),
			[]string{"/instance_groups/name=redis/instances:8"}, "is required"},
		{"jobs missing", strings.Replace(valid, "  jobs: []\n", "", 1),
			[]string{"/instance_groups/name=redis/jobs:8"}, "is required (a list of jobs, [] for none)"},
		{"huge max_in_flight", strings.Replace(valid, "max_in_flight: 1,", "max_in_flight: 99999999999999999999%,", 1),
			[]string{"/update/max_in_flight:6"}, "is too large"},
		{"watch time past Duration", strings.Replace(valid, "canary_watch_time: 30000,", "canary_watch_time: 1-9999999999999999,", 1),
			[]string{"/update/canary_watch_time:6"}, "is longer than a time.Duration holds"},
		{"watch time a float", strings.Replace(valid, "canary_watch_time: 30000,", "canary_watch_time: 1.5,", 1),
			[]string{"/update/canary_watch_time:6"}, "must be an integer or a string, not a number"},
		{"duplicate key", strings.Replace(valid, "  vm_type: default\n", "  vm_type: default\n  vm_type: small\n", 1),
			[]string{"/instance_groups/name=redis/vm_type:12"}, "defined twice (first at line 11)"},
		{"key a list", valid + "[a]: 1\n", []string{"/:14"}, "keys must be strings, not a list"},
		{"stemcell neither os nor name", strings.Replace(valid, "name: bosh-vsphere-esxi-ubuntu-jammy-go_agent, ", "", 1),
			[]string{"/stemcells/alias=default/os:5"}, "is required (or name, the stemcell's full name)"},
		{"no networks", strings.Replace(valid, "networks: [{name: default}]", "networks: []", 1),
			[]string{"/instance_groups/name=redis/networks:13"}, "at least one network is required"},
		{"persistent disk negative", strings.Replace(valid, "  jobs: []\n", "  jobs: []\n  persistent_disk: -1\n", 1),
			[]string{"/instance_groups/name=redis/persistent_disk:11"}, "must not be negative"},
		{"merge of a scalar", strings.Replace(valid, "- name: redis\n", "- <<: 1\n  name: redis\n", 1),
			[]string{"/instance_groups/name=redis:8"}, "a merge key (<<) takes a mapping or a list of mappings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.doc))
			assert.Nil(t, m)
			probs := problems(t, err)
			assert.Equal(t, tc.want, at(probs), "%v", err)
			assert.Contains(t, probs[0].Reason, tc.reason)
		})
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	m, err := Parse(readFile(t, "anchors.yml"))
	require.NoError(t, err)
	a, b := m.InstanceGroup("a"), m.InstanceGroup("b")
	require.NotNil(t, a)
	require.NotNil(t, b)
	assert.Equal(t, 2, b.Instances, "explicit keys win over merged ones")
	assert.Equal(t, "small", b.VMType, "merged from a")
	assert.Equal(t, a.Networks, b.Networks)
	assert.Equal(t, a.Jobs[0].Properties, b.Jobs[0].Properties, "an alias")
	assert.Equal(t, "10%", b.Update.Canaries.String(), "merged from the deployment's update")
	assert.Equal(t, "50%", b.Update.MaxInFlight.String())
	assert.Equal(t, WatchRange(time.Second, 5*time.Second), b.Update.UpdateWatchTime)
}

// TestHostileInput checks that documents built to cost time or memory
// fail quickly with a problem, never a panic or a hang.
func TestHostileInput(t *testing.T) {
	valid := string(readFile(t, "minimal.yml"))
	bomb := "properties:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'j'; i++ {
		bomb += fmt.Sprintf("  %c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	deep := "properties:\n  a: " + strings.Repeat("[", MaxDepth+5) + strings.Repeat("]", MaxDepth+5) + "\n"
	for _, tc := range []struct {
		name, doc, reason string
	}{
		{"billion laughs", valid + bomb, "expands to too many nodes"},
		{"deep nesting", valid + deep, "nested deeper than 64 levels"},
		{"deeper than the YAML parser goes", valid + "properties:\n  a: " + strings.Repeat("[", 20000), "not YAML"},
		{"merge cycle", valid + "properties: &p\n  <<: *p\n", "nested deeper than 64 levels"},
		{"self-referencing alias", valid + "properties: &p\n  a: [*p]\n", "nested deeper than 64 levels"},
		{"too large", valid + "#" + strings.Repeat("x", MaxSize) + "\n", "a manifest is at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse([]byte(tc.doc))
			probs := problems(t, err)
			assert.Contains(t, probs[0].Reason, tc.reason, "%v", err)
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

func TestParseErrorIsValidationError(t *testing.T) {
	_, err := Parse([]byte("name: x\n"))
	var fe *kubefoundry.FieldError
	require.True(t, errors.As(err, &fe), "errors.As finds a *FieldError")
	assert.Equal(t, "/releases", fe.Field)
	assert.Contains(t, err.Error(), "invalid deployment manifest: /releases (line 1): at least one release is required")
}
