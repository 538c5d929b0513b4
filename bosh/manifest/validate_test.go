package manifest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// valid returns a small valid manifest built in Go.
func valid() *Manifest {
	return &Manifest{
		Name:      "k8s",
		Releases:  []Release{{Name: "kubo", Version: "1.19"}, {Name: "bpm", Version: "1.1"}},
		Stemcells: []Stemcell{{Alias: "default", OS: "ubuntu-jammy", Version: "latest"}},
		Update: &Update{Canaries: CanaryCount(1), MaxInFlight: MaxInFlightPercent(30),
			CanaryWatchTime: WatchRange(time.Second, time.Minute), UpdateWatchTime: Watch(time.Minute)},
		InstanceGroups: []InstanceGroup{{
			Name: "worker", Instances: 3, AZs: []string{"z1", "z2"},
			Jobs:     []Job{{Name: "kubelet", Release: "kubo"}, {Name: "bpm", Release: "bpm"}},
			VMType:   "large",
			Stemcell: "default",
			Networks: []Network{{Name: "nodes"}},
		}},
	}
}

// reasons lists problems as "path: reason", without lines.
func reasons(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, p := range problems(t, err) {
		assert.Zero(t, p.Line, "Validate has no lines")
		out = append(out, p.Field+": "+p.Reason)
	}
	return out
}

func TestValidate(t *testing.T) {
	require.NoError(t, valid().Validate())

	for _, tc := range []struct {
		name   string
		change func(m *Manifest)
		want   []string
	}{
		{"empty", func(m *Manifest) { *m = Manifest{} }, []string{
			"/name: is required",
			"/releases: at least one release is required",
			"/stemcells: at least one stemcell is required",
			"/update: is required",
			"/instance_groups: at least one instance group is required",
		}},
		{"update keys", func(m *Manifest) {
			m.Update = &Update{VMStrategy: "recreate", InitialDeployAZUpdateStrategy: "random",
				Canaries: CanaryCount(-1), CanaryWatchTime: WatchRange(time.Minute, time.Second)}
		}, []string{
			"/update/max_in_flight: is required",
			"/update/update_watch_time: is required",
			"/update/canaries: must not be negative",
			"/update/canary_watch_time: the minimum is greater than the maximum",
			"/update/vm_strategy: must be delete-create or create-swap-delete",
			"/update/initial_deploy_az_update_strategy: must be serial or parallel",
		}},
		{"group update keys are optional", func(m *Manifest) {
			m.InstanceGroups[0].Update = &Update{Canaries: CanaryCount(-1), MaxInFlight: MaxInFlightCount(-2)}
		}, []string{
			"/instance_groups/name=worker/update/canaries: must not be negative",
			"/instance_groups/name=worker/update/max_in_flight: must not be negative",
		}},
		{"duplicates", func(m *Manifest) {
			m.Releases = append(m.Releases, Release{Name: "kubo", Version: "1.20"})
			m.Stemcells = append(m.Stemcells, Stemcell{Alias: "default", Name: "bosh-vsphere", Version: "1"})
			g := m.InstanceGroups[0]
			g.Jobs = append(g.Jobs, Job{Name: "kubelet", Release: "kubo"})
			m.InstanceGroups = append(m.InstanceGroups, g)
			m.Variables = []Variable{{Name: "pw", Type: VariablePassword}, {Name: "pw", Type: VariableRSA}}
		}, []string{
			"/releases/2/name: the release is defined more than once",
			"/stemcells/1/alias: the stemcell alias is defined more than once",
			"/instance_groups/1/name: the instance group is defined more than once",
			"/instance_groups/1/jobs/2/name: the job on this instance group is defined more than once",
			"/variables/1/name: the variable is defined more than once",
		}},
		{"references", func(m *Manifest) {
			g := &m.InstanceGroups[0]
			g.Jobs[0].Release = "kubernetes"
			g.Stemcell = "xenial"
			g.MigratedFrom = []MigratedFrom{{Name: "old", AZ: "z3"}, {AZ: "z1"}}
			g.Lifecycle = "cron"
		}, []string{
			"/instance_groups/name=worker/lifecycle: must be service or errand",
			"/instance_groups/name=worker/jobs/name=kubelet/release: is not a release in releases",
			"/instance_groups/name=worker/stemcell: is not an alias in stemcells",
			"/instance_groups/name=worker/migrated_from/name=old/az: is not one of the instance group's azs",
			"/instance_groups/name=worker/migrated_from/1/name: is required",
		}},
		{"required in elements", func(m *Manifest) {
			m.Releases[1].Version = ""
			m.Releases[0].Stemcell = &ReleaseStemcell{}
			m.Releases[0].ExportedFrom = []ReleaseStemcell{{OS: "ubuntu-jammy"}}
			m.Stemcells[0] = Stemcell{Alias: "default"}
			g := &m.InstanceGroups[0]
			g.Name = ""
			g.Jobs[1] = Job{}
			g.Jobs[0].CustomProviderDefinitions = []CustomProvider{{Name: "a", Type: "address"}, {Name: "a"}, {}}
			g.Networks[0].Name = ""
			m.Variables = []Variable{{Name: " "}}
		}, []string{
			"/releases/name=kubo/stemcell/os: is required",
			"/releases/name=kubo/stemcell/version: is required",
			"/releases/name=kubo/exported_from/0/version: is required",
			"/releases/name=bpm/version: is required",
			"/stemcells/alias=default/version: is required",
			"/stemcells/alias=default/os: is required (or name, the stemcell's full name)",
			"/instance_groups/0/name: is required",
			"/instance_groups/0/jobs/name=kubelet/custom_provider_definitions/1/name: the custom provider is defined more than once",
			"/instance_groups/0/jobs/name=kubelet/custom_provider_definitions/1/type: is required",
			"/instance_groups/0/jobs/name=kubelet/custom_provider_definitions/2/name: is required",
			"/instance_groups/0/jobs/name=kubelet/custom_provider_definitions/2/type: is required",
			"/instance_groups/0/jobs/1/name: is required",
			"/instance_groups/0/jobs/1/release: is required",
			"/instance_groups/0/networks/0/name: is required",
			"/variables/0/name: is required",
			"/variables/0/type: is required (password, certificate, ssh, rsa or user)",
		}},
		{"vm and disks", func(m *Manifest) {
			g := &m.InstanceGroups[0]
			g.VMResources = &VMResources{CPU: 2, RAM: -1}
			g.PersistentDisk = new(-5)
			g.PersistentDisks = []PersistentDisk{{Name: "data", Type: "fast"}, {Name: "data"}}
		}, []string{
			"/instance_groups/name=worker/vm_resources: vm_type and vm_resources are both set: choose one",
			"/instance_groups/name=worker/persistent_disk_type: persistent_disk, persistent_disk_type and persistent_disks: choose one",
			"/instance_groups/name=worker/persistent_disk: must not be negative",
			"/instance_groups/name=worker/persistent_disks/1/name: the persistent disk is defined more than once",
			"/instance_groups/name=worker/persistent_disks/1/type: is required",
		}},
		{"vm_resources", func(m *Manifest) {
			g := &m.InstanceGroups[0]
			g.VMType = ""
			g.VMResources = &VMResources{CPU: 2, RAM: -1}
		}, []string{
			"/instance_groups/name=worker/vm_resources/ram: must be a positive integer",
			"/instance_groups/name=worker/vm_resources/ephemeral_disk_size: is required (a positive integer)",
		}},
		{"no vm", func(m *Manifest) { m.InstanceGroups[0].VMType = "" }, []string{
			"/instance_groups/name=worker/vm_type: is required (or vm_resources)",
		}},
		{"instances", func(m *Manifest) { m.InstanceGroups[0].Instances = -1 }, []string{
			"/instance_groups/name=worker/instances: must not be negative",
		}},
		{"default networks", func(m *Manifest) {
			m.InstanceGroups[0].Networks = []Network{
				{Name: "a", Default: []string{"dns", "addressable"}},
				{Name: "b", Default: []string{"dns", "addressable", "gw"}},
			}
		}, []string{
			"/instance_groups/name=worker/networks/name=b/default/2: must be dns, gateway or addressable",
			"/instance_groups/name=worker/networks: addressable has more than one default network: a, b",
			"/instance_groups/name=worker/networks: dns has more than one default network: a, b",
			"/instance_groups/name=worker/networks: with more than one network, one must be the default for gateway",
		}},
		{"two networks without defaults", func(m *Manifest) {
			m.InstanceGroups[0].Networks = []Network{{Name: "a"}, {Name: "b"}}
		}, []string{
			"/instance_groups/name=worker/networks: with more than one network, one must be the default for dns and gateway",
		}},
		{"addons", func(m *Manifest) {
			m.Addons = []Addon{{
				Jobs:    []Job{{Name: "bosh-dns", Release: "bosh-dns"}},
				Include: &PlacementRule{Deployments: []string{"cf"}, Jobs: []JobRef{{Name: "kubelet"}}, Lifecycle: "batch"},
				Exclude: &PlacementRule{Stemcell: []StemcellRule{{}}, Teams: []string{"ignored"}},
			}}
		}, []string{
			"/addons/0/name: is required",
			"/addons/0/jobs/name=bosh-dns/release: is not a release in releases",
			"/addons/0/include/deployments: a deployment manifest's add-ons cannot filter on deployments (a runtime config's can)",
			"/addons/0/include/jobs/name=kubelet/release: is required",
			"/addons/0/include/lifecycle: must be service or errand",
			"/addons/0/exclude/stemcell/0/os: is required",
		}},
		{"variable type", func(m *Manifest) { m.Variables = []Variable{{Name: "x", Type: "json"}} }, []string{
			"/variables/name=x/type: must be password, certificate, ssh, rsa or user",
		}},
		{"names with slashes are escaped", func(m *Manifest) {
			m.InstanceGroups[0].Name = "a/b~c"
			m.InstanceGroups[0].Instances = -1
		}, []string{
			"/instance_groups/name=a~1b~0c/instances: must not be negative",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.change(m)
			assert.Equal(t, tc.want, reasons(t, m.Validate()))
		})
	}
}

func TestStaticIPs(t *testing.T) {
	for _, tc := range []struct {
		instances int
		ips       []string
		want      []string // reasons at networks/name=nodes/...
	}{
		{3, []string{"10.0.0.10", "10.0.0.11", "10.0.0.12"}, nil},
		{3, []string{"10.0.0.10 - 10.0.0.12"}, nil},
		{3, []string{"10.0.0.10-10.0.0.11", "10.0.0.20"}, nil},
		{4, []string{"10.0.0.8/30"}, nil}, // a CIDR: all its addresses, as BOSH counts them
		{4, []string{"10.0.0.9/30"}, nil}, // host bits are masked
		{2, []string{"fd00::1 - fd00::2"}, nil},
		{2, []string{"fd00::1", "10.0.0.1"}, nil},
		{0, []string{}, nil},
		{2, []string{"10.0.0.10"}, []string{"static_ips: names 1 address for 2 instances: BOSH needs exactly one static IP per instance"}},
		{1, []string{"10.0.0.10 - 10.0.0.12"}, []string{"static_ips: names 3 addresses for 1 instances: BOSH needs exactly one static IP per instance"}},
		{1, []string{"fd00::/64"}, []string{"static_ips: names too many addresses for 1 instances: BOSH needs exactly one static IP per instance"}},
		{1, []string{"::/0"}, []string{"static_ips: names too many addresses for 1 instances: BOSH needs exactly one static IP per instance"}},
		{3, []string{"10.0.0.10 - 10.0.0.11", "10.0.0.11"}, []string{"static_ips/1: names an address that another entry names too"}},
		{3, []string{"10.0.0.1", "10.0.0.2", "10.0.0.0/30"}, []string{"static_ips/2: names an address that another entry names too"}},
		{4, []string{"10.0.0.0/30", "10.0.0.3", "10.0.0.3"}, []string{"static_ips/1: names an address that another entry names too", "static_ips/2: names an address that another entry names too"}},
		{1, []string{"10.0.0.300"}, []string{"static_ips/0: is not an address, a range (a - b) or a CIDR"}},
		{1, []string{"10.0.0.0/33"}, []string{"static_ips/0: is not an address, a range (a - b) or a CIDR"}},
		{1, []string{"10.0.0.1 - x"}, []string{"static_ips/0: is not a range of two addresses (a - b)"}},
		{1, []string{"10.0.0.1 - 10.0.0.2 - 10.0.0.3"}, []string{"static_ips/0: is not an address, a range (a - b) or a CIDR"}},
		{1, []string{"10.0.0.5 - 10.0.0.1"}, []string{"static_ips/0: ends before it starts"}},
		{1, []string{"10.0.0.1 - fd00::1"}, []string{"static_ips/0: mixes IPv4 and IPv6"}},
	} {
		t.Run(fmt.Sprint(tc.ips), func(t *testing.T) {
			m := valid()
			m.InstanceGroups[0].Instances = tc.instances
			m.InstanceGroups[0].Networks[0].StaticIPs = tc.ips
			err := m.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, "/instance_groups/name=worker/networks/name=nodes/"+w)
			}
			assert.Equal(t, want, reasons(t, err))
		})
	}
}

func TestLookups(t *testing.T) {
	m := valid()
	assert.Equal(t, "worker", m.InstanceGroup("worker").Name)
	assert.Nil(t, m.InstanceGroup("master"))
	assert.Equal(t, "1.1", m.Release("bpm").Version)
	assert.Nil(t, m.Release("docker"))
	assert.Equal(t, "ubuntu-jammy", m.Stemcell("default").OS)
	assert.Nil(t, m.Stemcell("xenial"))
	assert.Equal(t, "bpm", m.InstanceGroup("worker").Job("bpm").Release)
	assert.Nil(t, m.InstanceGroup("worker").Job("etcd"))
	m.InstanceGroup("worker").Instances = 5
	assert.Equal(t, 5, m.InstanceGroups[0].Instances, "lookups return the element, not a copy")
}
