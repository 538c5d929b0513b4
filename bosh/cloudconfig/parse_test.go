package cloudconfig

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return data
}

// problems returns the problems of a Parse, ParseRuntime, Validate or
// Allocate error.
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

// reasons lists problems as "path: reason".
func reasons(t testing.TB, err error) []string {
	t.Helper()
	var out []string
	for _, p := range problems(t, err) {
		out = append(out, p.Field+": "+p.Reason)
	}
	return out
}

// vsphere is testdata/vsphere.yml, parsed.
func vsphere(t testing.TB) *CloudConfig {
	t.Helper()
	c, err := Parse(readFile(t, "vsphere.yml"))
	require.NoError(t, err)
	return c
}

func TestParseVSphere(t *testing.T) {
	c := vsphere(t)

	require.Len(t, c.AZs, 3)
	assert.Equal(t, AZ{Name: "z1", CloudProperties: manifest.Map{"datacenters": []any{map[string]any{
		"name": "dc1", "clusters": []any{map[string]any{"cluster-a": map[string]any{"resource_pool": "tkgi-z1"}}}}}}}, c.AZs[0])
	assert.Equal(t, "vcenter-2", c.AZ("z3").CPI)
	assert.Nil(t, c.AZ("z4"))

	assert.Equal(t, []string{"small", "medium", "large"}, []string{c.VMTypes[0].Name, c.VMTypes[1].Name, c.VMTypes[2].Name})
	assert.Equal(t, manifest.Map{"cpu": 8, "ram": 16384, "disk": 65536, "memory_reservation_locked_to_max": true},
		c.VMType("large").CloudProperties)
	assert.Equal(t, manifest.Map{"vmx_options": map[string]any{"disk.enableUUID": "1"}}, c.VMExtension("disk-uuid").CloudProperties)
	assert.Equal(t, DiskType{Name: "51200", DiskSize: 51200, CloudProperties: manifest.Map{"type": "thin"}}, *c.DiskType("51200"),
		"51_200 is an integer, and a numeric name stays a string")

	infra := c.Network("infrastructure")
	require.NotNil(t, infra)
	assert.Equal(t, Manual, infra.Type)
	require.Len(t, infra.Subnets, 3)
	assert.Equal(t, Subnet{Range: "10.0.1.0/24", Gateway: "10.0.1.1", DNS: []string{"10.0.0.2", "10.0.0.3"},
		Reserved: []string{"10.0.1.2-10.0.1.9", "10.0.1.250 - 10.0.1.254"}, Static: []string{"10.0.1.10 - 10.0.1.19"},
		AZ: "z1", CloudProperties: manifest.Map{"name": "VM Network z1"}}, infra.Subnets[0])
	assert.Equal(t, []string{"z3"}, infra.Subnets[2].Zones())

	services := c.Network("services")
	assert.Equal(t, NetworkType(""), services.Type, "manual by default")
	assert.Equal(t, []string{"z1", "z2", "z3"}, services.Subnets[0].Zones())

	assert.Equal(t, &Compilation{Workers: 4, AZ: "z1", VMType: "large", VMExtensions: []string{"disk-uuid"},
		Network: "infrastructure", ReuseCompilationVMs: true,
		Env: manifest.Map{"bosh": map[string]any{"remove_dev_tools": true}}}, c.Compilation)

	require.NoError(t, c.Validate(), "what Parse accepts, Validate accepts")
}

// TestParseBad checks that every problem of testdata/bad.yml is reported
// at once, in document order, each at its ops-file path and line, and
// nothing else: every line marked "<-" has a problem and no other line
// has one.
func TestParseBad(t *testing.T) {
	_, err := Parse(readFile(t, "bad.yml"))
	probs := problems(t, err)
	assert.Equal(t, []string{
		"/azs/1/name:5",
		"/azs/2/name:6",
		"/azs/name=z2/cpi:8",
		"/vm_types/1/name:12",
		"/vm_types/1/cloud_properties:13",
		"/vm_extensions/name=lb/cloud_properites:16",
		"/disk_types/name=10240/disk_size:18",
		"/disk_types/name=big/disk_size:20",
		"/disk_types/name=huge/disk_size:22",
		"/networks/name=infrastructure/subnets/0/gateway:27",
		"/networks/name=infrastructure/subnets/0/dns/1:28",
		"/networks/name=infrastructure/subnets/0/reserved/1:29",
		"/networks/name=infrastructure/subnets/0/static/0:30",
		"/networks/name=infrastructure/subnets/0/static/2:30",
		"/networks/name=infrastructure/subnets/1/range:32",
		"/networks/name=infrastructure/subnets/1/gateway:33",
		"/networks/name=infrastructure/subnets/1/az:34",
		"/networks/name=infrastructure/subnets/2/range:35",
		"/networks/name=infrastructure/subnets/2/azs:38",
		"/networks/name=infrastructure/subnets/3:39",
		"/networks/name=infrastructure/subnets/3/netmask:41",
		"/networks/name=infrastructure/subnets/4/static/0:44",
		"/networks/name=infrastructure/subnets/4/azs:45",
		"/networks/1/name:46",
		"/networks/name=dhcp/dns:51",
		"/networks/name=dhcp/subnets/0/range:54",
		"/networks/name=empty/subnets:55",
		"/networks/name=bridged/type:57",
		"/networks/name=elastic/dns:60",
		"/networks/name=elastic/subnets/0/static/0:62",
		"/compilation/workers:64",
		"/compilation/az:65",
		"/compilation/vm_type:66",
		"/compilation/vm_extensions/1:67",
		"/compilation/reuse_compilation_vms:69",
		"/resource_pools:70",
	}, at(probs))
	checkMarked(t, "bad.yml", probs)

	byField := map[string]string{}
	for _, p := range probs {
		byField[p.Field] = p.Reason
	}
	for field, reason := range map[string]string{
		"/networks/name=infrastructure/subnets/0/static/0": "holds reserved 10.0.1.2 - 10.0.1.9, which BOSH never assigns",
		"/networks/name=infrastructure/subnets/1/range":    "overlaps subnet 0 (10.0.1.0/24) of this network",
		"/networks/name=infrastructure/subnets/2/range":    "has host bits set: the network is 10.0.3.0/24",
		"/compilation/az": "network infrastructure has no subnet in this AZ",
		"/resource_pools": `unknown key "resource_pools": a v1 key (a cloud config has vm_types)`,
	} {
		assert.Equal(t, reason, byField[field], field)
	}
}

// checkMarked checks that the problems are on the lines of name marked
// "<-", and that every such line has one.
func checkMarked(t *testing.T, name string, probs []kubefoundry.FieldError) {
	t.Helper()
	lines := strings.Split(string(readFile(t, name)), "\n")
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
		assert.True(t, reported[l], "marked line %d not reported: %s", l, lines[l-1])
	}
}

// minimal is the smallest valid cloud config.
const minimal = `networks:
- name: default
  subnets: [{range: 10.0.0.0/24, gateway: 10.0.0.1}]
compilation: {workers: 1, network: default}
`

func TestParseDocument(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string // "path:line: reason"
	}{
		{"empty", "", []string{"/:0: the document is empty"}},
		{"comment only", "# nothing\n", []string{"/:0: the document is empty"}},
		{"not YAML", "networks: [\n", []string{"/:1: not YAML: line 1: did not find expected node content"}},
		{"two documents", minimal + "---\nazs: []\n", []string{"/:5: a config is one YAML document, and another starts at line 5"}},
		{"a list", "- networks\n", []string{"/:1: must be a mapping, not a list"}},
		{"a key twice", minimal + "networks: []\n", []string{"/networks:5: defined twice (first at line 1)"}},
		{"a key that is not a string", minimal + "[a]: b\n", []string{"/:5: keys must be strings, not a list"}},
		{"no networks, no compilation", "azs: []\n", []string{
			"/networks:1: at least one network is required",
			"/compilation:1: is required",
		}},
		{"compilation null", "networks: [{name: n, type: dynamic}]\ncompilation:\n", []string{"/compilation:2: is required"}},
		{"deep cloud_properties", "azs: [{name: z, cloud_properties: " + strings.Repeat("{a: ", 70) + "1" + strings.Repeat("}", 70) + "}]\n" + minimal,
			[]string{"/azs/name=z/cloud_properties" + strings.Repeat("/a", 63) + ":1: nested deeper than 64 levels"}},
		{"alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
			"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n" +
			"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n" +
			"azs: [{name: z, cloud_properties: {bomb: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]}}]\n",
			[]string{"/a:1: unknown key \"a\"", "/:1: the document expands to too many nodes through aliases",
				"/b:2: unknown key \"b\"", "/c:3: unknown key \"c\"",
				"/d:4: unknown key \"d\"", "/e:5: unknown key \"e\"", "/f:6: unknown key \"f\""}},
		{"unknown keys name where they belong", minimal + "instance_groups: []\naddons: []\ndisk_pools: []\n", []string{
			`/instance_groups:5: unknown key "instance_groups": it belongs in a deployment manifest`,
			`/addons:6: unknown key "addons": it belongs in a runtime config`,
			`/disk_pools:7: unknown key "disk_pools": a v1 key (a cloud config has disk_types)`,
		}},
		{"a value of the wrong kind is its only problem, on its key's line",
			"networks: [{name: n, type: [dynamic]}]\ncompilation:\n  workers: 1\n  network:\n  - n\n", []string{
				"/networks/name=n/type:1: must be a string, not a list",
				"/compilation/network:4: must be a string, not a list",
			}},
		{"deep lists", "azs: [{name: z, cloud_properties: {a: " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "}}]\n" + minimal,
			[]string{"/azs/name=z/cloud_properties/a" + strings.Repeat("/0", 62) + ":1: nested deeper than 64 levels"}},
		{"too big", strings.Repeat("#", MaxSize+1), []string{fmt.Sprintf("/:0: a config is at most %d bytes", MaxSize)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			var got []string
			for _, p := range problems(t, err) {
				got = append(got, fmt.Sprintf("%s:%d: %s", p.Field, p.Line, p.Reason))
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseAnchorsAndMerges(t *testing.T) {
	c, err := Parse([]byte(`azs:
- name: z1
  cloud_properties: &dc {datacenters: [{name: dc1}]}
- name: z2
  cloud_properties: *dc
networks:
- name: default
  subnets:
  - &subnet
    range: 10.0.1.0/24
    gateway: 10.0.1.1
    dns: &dns [10.0.0.2]
    az: z1
  - <<: *subnet
    range: 10.0.2.0/24
    gateway: 10.0.2.1
    az: z2
compilation: {workers: 1, az: z1, network: default}
`))
	require.NoError(t, err)
	assert.Equal(t, c.AZs[0].CloudProperties, c.AZs[1].CloudProperties)
	assert.Equal(t, Subnet{Range: "10.0.2.0/24", Gateway: "10.0.2.1", DNS: []string{"10.0.0.2"}, AZ: "z2"}, c.Networks[0].Subnets[1],
		"the merge key brings dns; the subnet's own keys win")
}
